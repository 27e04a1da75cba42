"""The runner carries out the policy's decisions: whole runs with each batch's outcome scripted at the
batch boundary (balancers and hosts faked), the batches, rollbacks, labels and exit codes checked."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rollout.core import plan as planning, policy
from rollout.core.errors import RolloutError, StepError
from rollout.core.report import Report
from rollout.core.sizes import Size
from rollout.core.vocabulary import HostResult, Kind, Result
from rollout.orchestration.batch import BatchResult
from rollout.orchestration.runner import Runner
from tests.unit.test_runner_faults import Journal, Out

OLD, NEW = "a" * 40, "b" * 40


class Batches:
    """Each batch's outcome from `fails`: phase -> {host name: True if its restore works, False if it stays out}."""

    def __init__(self, report, fails, after_first=None):
        self.report, self.fails, self.after_first = report, fails, after_first
        self.number, self.ran = 0, []

    def unreachable(self, hosts):
        return []

    def run(self, hosts, target, phase):
        self.number += 1
        self.ran.append((phase.value, [h.name for h in hosts]))
        result = BatchResult()
        for h in hosts:
            rec = self.report.host(h.instance_id)
            fails = self.fails.get(phase.value, {})
            if h.name not in fails:
                result.updated.append(h)
                rec.result = policy.updated_result(phase)
                continue
            result.errors[h.instance_id] = StepError(h.label, "health", "503")
            after = policy.after_failure(phase=phase, step="health", previous=h.version, target=target(h), restored=fails[h.name])
            (result.restored if after is HostResult.RESTORED else result.left_out).append(h)
            rec.result = after
        if self.after_first and self.number == 1:
            self.after_first()
        return result


def run(n: int, batch: int, allowed: int, on_failure: str, fails: dict, stop_after_first: str = ""):
    hosts = [planning.Host(f"i-{i}", f"10.0.0.{i}", f"h{i}", OLD) for i in range(1, n + 1)]
    plan = planning.build(env="test", ref="main", sha=NEW, hosts=hosts, batch=Size(batch), balancers=(), group=None,
                          suspended_before=frozenset(), max_failures=Size(allowed), on_failure=on_failure)
    progress = []
    inv = SimpleNamespace(name="test", smoke=[], post_deploy=[], ssh=SimpleNamespace(parallel=4),
                          health=SimpleNamespace(timeout=5, interval=0.1))
    env = SimpleNamespace(inventory=inv, group=None, alarms=None, balancers=[], found_balancers=(),
                          aws=SimpleNamespace(calls=0), fleet=SimpleNamespace(bastion_opens=0),
                          slack=SimpleNamespace(start=lambda *a: None, progress=progress.append, finish=lambda *a: None))
    report = Report(env="test", ref="main", sha=NEW, run_id="run-a")
    paused = []
    runner = Runner(env, plan, Out(), report, journal=Journal(), paused=lambda: paused[0] if paused else None)
    after = {"SIGTERM": lambda: runner.stop.request("SIGTERM"), "pause": lambda: paused.append("paused by ana")}.get(stop_after_first)
    runner.batches = Batches(report, fails, after)
    try:
        runner.run()
        code = 0
    except RolloutError as exc:
        code = exc.exit_code
    labels = [p.split("\n")[1].split(" done")[0] for p in progress if "\n" in p]
    return runner, report, code, labels


# name: (hosts, batch, max_failures, on_failure, failing hosts by phase, stop after batch 1)
#       -> (batches run, batch labels, result, exit code)
RUNS = {
    "every host updated": (
        (4, 2, 0, "rollback", {}, ""),
        ([("deploy", ["h1", "h2"]), ("deploy", ["h3", "h4"])], ["batch 1 of 2", "batch 2 of 2"], Result.SUCCEEDED, 0)),
    "a failure over the budget rolls the updated hosts back in reverse order, the last batch first": (
        (4, 2, 0, "rollback", {"deploy": {"h3": True}}, ""),
        ([("deploy", ["h1", "h2"]), ("deploy", ["h3", "h4"]), ("rollback", ["h4"]), ("rollback", ["h2", "h1"])],
         ["batch 1 of 2", "batch 2 of 2"], Result.ROLLED_BACK, 9)),
    "a host left out within the budget: later batches one smaller, labels count them": (
        (4, 2, 1, "rollback", {"deploy": {"h1": False}}, ""),
        ([("deploy", ["h1", "h2"]), ("deploy", ["h3"]), ("deploy", ["h4"])],
         ["batch 1 of 3", "batch 2 of 3", "batch 3 of 3"], Result.FAILED, 1)),
    "on_failure stop leaves the updated hosts": (
        (4, 2, 0, "stop", {"deploy": {"h2": True}}, ""),
        ([("deploy", ["h1", "h2"])], ["batch 1 of 2"], Result.FAILED, 1)),
    "a rollback that leaves a host out is no clean rollback": (
        (4, 2, 0, "rollback", {"deploy": {"h3": True}, "rollback": {"h1": False}}, ""),
        ([("deploy", ["h1", "h2"]), ("deploy", ["h3", "h4"]), ("rollback", ["h4"]), ("rollback", ["h2", "h1"])],
         ["batch 1 of 2", "batch 2 of 2"], Result.FAILED, 1)),
    "interrupted after batch 1: nothing rolled back": (
        (4, 2, 0, "rollback", {}, "SIGTERM"),
        ([("deploy", ["h1", "h2"])], ["batch 1 of 2"], Result.INTERRUPTED, 130)),
    "paused after batch 1: nothing rolled back": (
        (4, 1, 0, "rollback", {}, "pause"),
        ([("deploy", ["h1"])], ["batch 1 of 4"], Result.PAUSED, 11)),
    "within the budget, restored: success with the host on its old version": (
        (3, 1, 1, "rollback", {"deploy": {"h2": True}}, ""),
        ([("deploy", ["h1"]), ("deploy", ["h2"]), ("deploy", ["h3"])], ["batch 1 of 3", "batch 2 of 3", "batch 3 of 3"],
         Result.SUCCEEDED, 0)),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_the_runner_carries_out_the_policy(name):
    (n, batch, allowed, on_failure, fails, stop), (ran, labels, result, code) = RUNS[name]
    runner, report, got_code, got_labels = run(n, batch, allowed, on_failure, fails, stop)
    assert runner.batches.ran == ran
    assert got_labels == labels
    assert (report.result, got_code, report.exit_code) == (result, code, code)
    assert report.batches == int(labels[-1].rsplit(" ", 1)[1])  # what ran, never fewer than the labels say
    stopped = [k for k, _ in runner.journal.records if k == Kind.STOPPED]
    assert bool(stopped) == any(h.result == HostResult.LEFT_OUT for h in report.hosts)
