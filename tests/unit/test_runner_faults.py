"""The runner when the lock's store does not answer, a recovery's smoke check fails, a recovery resumes
the journaled group, and the history cannot be recorded: small fakes at the AWS, SSH and Slack boundaries."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rollout.apps.strategies import Outcome
from rollout.core.errors import DeployFailed, LockLost, LockUnproven
from rollout.core.plan import Batch, Host, Plan
from rollout.core.recovery import Assessment
from rollout.core.report import HostRecord, Report
from rollout.core.sizes import Size
from rollout.orchestration import deploy
from rollout.orchestration import suspension
from rollout.orchestration.batch import BatchResult
from rollout.orchestration.runner import Runner
from rollout.state import journal as journals
from rollout.state import lock as locks
from rollout.state.journal import Kind, Result
from rollout.state.store import Conflict


class Store:
    """The lock item's store: the first `good` conditional renewals succeed, later ones fail as an unreachable table."""

    def __init__(self, good: int = 10**6, conflict: bool = False):
        self.good, self.conflict, self.updates = good, conflict, 0

    def update(self, *args, **kwargs):
        self.updates += 1
        if self.updates > self.good:
            if self.conflict:
                raise Conflict({"run_id": "run-b", "who": "bo"})
            raise ConnectionError("Could not connect to the endpoint URL")

    def delete(self, *args, **kwargs):
        return None


class Out:
    def __init__(self):
        self.lines, self.warnings = [], []

    def line(self, text):
        self.lines.append(text)

    def warn(self, text):
        self.warnings.append(text)

    def batch_started(self, *args):
        pass

    def batch_finished(self):
        pass

    def host_step(self, *args, **kwargs):
        pass

    def summary(self, report):
        self.lines.append("summary")


class Journal:
    def __init__(self):
        self.records, self.finished = [], None

    def begin(self, data):
        self.records.append((Kind.START, data))

    def write(self, kind, data):
        self.records.append((kind, data))

    def finish(self, result):
        self.finished = result


class Group:
    made: dict = {}

    def __init__(self, aws, name):
        self.name, self.suspended_now, self.resumed = name, [], []
        Group.made[name] = self

    def suspend(self, processes):
        self.suspended_now += list(processes)

    def resume(self, processes):
        self.resumed.append(tuple(processes))


class Alarms:
    def __init__(self):
        self.disabled, self.enabled_again = [], []

    def enabled(self):
        return ["web-5xx"]

    def disable(self, names):
        self.disabled += names

    def enable(self, names):
        self.enabled_again += names


class App:
    """Update scripts that report nothing: a host whose script ran but did not reach the version fails."""

    steps = ()

    def update_command(self, version, wait):
        return "update", "script"

    def parse_update(self, stdout, version):
        return Outcome(None, {}, None)

    def failed_step(self, outcome):
        return "reload"

    def redact(self, text):
        return text


class Fleet:
    """Each command waits for its gate like a real session, and is sent only if the gate's check says so."""

    bastion_opens = 0

    def __init__(self):
        self.sent = []

    def run(self, address, command, timeout, stdin=None, gate=None):
        if gate is not None:
            assert gate.wait(5), "the gate never opened or was cancelled"
            if gate.cancelled or (gate.check is not None and not gate.check()):
                return SimpleNamespace(exited=255, stdout="", stderr="end of input")
        self.sent.append(address)
        return SimpleNamespace(exited=0, stdout="", stderr="")


HOSTS = (Host("i-1", "10.0.0.1", "h1", "old"), Host("i-2", "10.0.0.2", "h2", "old"))


def make(*, store=None, group=None, recovering=None, hosts=(), alarms=None, reuse=0.0, clock=None):
    """A runner on fakes; its lock reuses no proof unless `reuse` says so (these tests count renewals, one per fence)."""
    inv = SimpleNamespace(name="test", smoke=[], post_deploy=[], ssh=SimpleNamespace(parallel=4),
                          health=SimpleNamespace(timeout=5, interval=0.1))
    env = SimpleNamespace(inventory=inv, group=group, alarms=alarms, balancers=[], found_balancers=(), app=App(), fleet=Fleet(),
                          aws=SimpleNamespace(calls=0),
                          slack=SimpleNamespace(start=lambda *a: None, progress=lambda *a: None, finish=lambda *a: None))
    plan = Plan(env="test", ref="main", sha="new", hosts=tuple(hosts), batches=(Batch(1, tuple(hosts), 0),) if hosts else (),
                balancers=(), group=group.name if group else None, suspended_before=frozenset(), to_suspend=("Launch",),
                estimate_seconds=0, ramp=(Size(max(len(hosts), 1)),))
    lock = locks.Lock(store or Store(), "run-a", "ana", "main", ttl=60, clock=clock, reuse=reuse)
    out, journal = Out(), Journal()
    report = Report(env="test", ref="main", sha="new", run_id="run-a")
    runner = Runner(env, plan, out, report, journal=journal, lock=lock, recovering=recovering)
    return runner, out, journal, report


@pytest.mark.parametrize("conflict, raised, lost", [
    (True, LockLost, True),         # someone else holds it: known lost
    (False, LockUnproven, False),   # the table did not answer: not proven, not lost
])
def test_a_fence_tells_a_lost_lock_from_one_it_could_not_prove(conflict, raised, lost):
    held = locks.Lock(Store(good=0, conflict=conflict), "run-a", "ana", "main", ttl=60)
    with pytest.raises(raised) as info:
        held.fence()
    assert type(info.value) is raised
    assert bool(held.lost) is lost


def test_an_unproven_lock_stops_the_run_open_for_recover_and_says_so():
    group, alarms = Group(None, "asg"), Alarms()
    # Renewals 1 and 2 (suspend, disable alarms) succeed; the table stops answering after that.
    runner, out, journal, report = make(store=Store(good=2), group=group, alarms=alarms, hosts=HOSTS)
    with pytest.raises(DeployFailed) as info:
        runner.run()
    assert info.value.exit_code == 1 and not isinstance(info.value, LockLost)
    assert "rollout stopped" in str(info.value) and "fab recover --env=test" in str(info.value)
    assert report.exit_code == 1 and report.result == Result.FAILED
    # Nothing more changed: nothing resumed or re-enabled, and the run stays open (no STOPPED, no end).
    assert group.suspended_now == ["Launch"] and group.resumed == [] and alarms.enabled_again == []
    assert journal.finished is None and Kind.STOPPED not in [k for k, _ in journal.records]
    said = " ".join(out.warnings)
    assert "fab recover --env=test" in said and "Launch suspended on asg" in said and "changed nothing more" in said
    assert "h1" in said and "h2" in said


def test_a_gate_that_cannot_prove_the_lock_stops_the_batch_without_failing_hosts():
    # Renewals: deregister (1), just before the gate opens (2); the gate's own check (3) gets no answer.
    runner, out, journal, report = make(store=Store(good=2), hosts=HOSTS)
    runner.report.hosts = [HostRecord(h.instance_id, h.name, h.address, 1, old_version=h.version) for h in HOSTS]
    result = BatchResult()
    with pytest.raises(LockUnproven):
        runner.batches._out_and_updated(list(HOSTS), lambda h: "new", "deploy", result)
    assert result.errors == {} and result.left_out == [] and result.updated == []
    assert runner.env.fleet.sent == []  # no script was sent


def test_the_fences_of_a_run_reuse_one_recent_proof_and_it_changes_the_same():
    def run(reuse):
        group, alarms, store = Group(None, "asg"), Alarms(), Store()
        runner, out, journal, report = make(store=store, group=group, alarms=alarms, hosts=HOSTS, reuse=reuse, clock=lambda: 100.0)
        with pytest.raises(DeployFailed):  # the fake app reaches no version: both hosts fail, and are restored
            runner.run()
        changed = (sorted(runner.env.fleet.sent), group.suspended_now, group.resumed, alarms.disabled, alarms.enabled_again,
                   [k for k, _ in journal.records], journal.finished, report.exit_code)
        return store.updates, changed

    each, reused = run(0.0), run(None)  # on a clock that stands still, within a quarter ttl of the first proof
    assert reused[1] == each[1] and reused[0] == 1 < each[0]


def test_a_recovery_whose_smoke_check_fails_still_closes_the_chain(monkeypatch):
    def smoke(self):
        raise DeployFailed("smoke check http://127.0.0.1:9/health: got 503, expected 200")

    monkeypatch.setattr(Runner, "_smoke", smoke)
    a = Assessment(run_id="run-0", chain=("run-0",), direction="deploy", batch_size=1, group=None, resume=(), alarms=())
    runner, out, journal, report = make(recovering=a)
    runner.run()
    assert journal.finished == Result.RECOVERED and report.exit_code == 0
    assert any("smoke check" in w for w in out.warnings)


@pytest.mark.parametrize("inventory_group, resumed", [
    (None, {"asg-old": [("Launch", "Terminate")]}),
    ("asg-new", {"asg-old": [("Launch", "Terminate")], "asg-new": [("Launch",)]}),
    ("asg-old", {"asg-old": [("Launch", "Terminate")]}),
])
def test_a_recovery_resumes_the_journaled_groups_processes(monkeypatch, inventory_group, resumed):
    Group.made = {}
    monkeypatch.setattr(suspension.autoscaling, "Group", Group)
    group = Group(None, inventory_group) if inventory_group else None
    a = Assessment(run_id="run-0", chain=("run-0",), direction="deploy", batch_size=1, group="asg-old",
                   resume=("Launch", "Terminate"), alarms=())
    runner, out, journal, report = make(group=group, recovering=a)
    runner.run()
    assert {name: g.resumed for name, g in Group.made.items() if g.resumed} == resumed
    assert [d["group"] for k, d in journal.records if k == Kind.RESUMED] == list(resumed)
    assert journal.finished == Result.RECOVERED


@pytest.mark.parametrize("fault", [KeyboardInterrupt, RuntimeError])
def test_the_lock_is_released_and_the_report_written_whatever_recording_the_history_does(monkeypatch, fault):
    class Ran:
        def __init__(self, env, plan, output, report, **kwargs):
            self.report = report

        def run(self):
            self.report.ended, self.report.result = "now", Result.SUCCEEDED

    def record_run(*args, **kwargs):
        raise fault()

    released, written = [], []
    lock = SimpleNamespace(release=lambda: released.append(True))
    files = SimpleNamespace(write=lambda report, warn: written.append(report))
    monkeypatch.setattr(deploy, "Runner", Ran)
    monkeypatch.setattr(journals, "record_run", record_run)
    env = SimpleNamespace(inventory=SimpleNamespace(name="test", on_failure="rollback",
                                                    max_failures=SimpleNamespace(of=lambda n: 0), desired_version=None))
    plan = Plan(env="test", ref="main", sha="new", hosts=(), batches=(), balancers=(), group=None,
                suspended_before=frozenset(), to_suspend=(), estimate_seconds=0)
    try:
        deploy.run_plan(env, Store(), plan, Out(), files, lock=lock)
    except KeyboardInterrupt:
        assert fault is KeyboardInterrupt
    assert released == [True] and len(written) == 1
