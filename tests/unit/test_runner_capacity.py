"""The runner carries out the capacity decisions: the floor holds a batch (exit 14, nothing rolled back),
zones cut the batches and never overlap, a rollback goes back last batch first. Whole runs with each
batch's outcome scripted (balancers and hosts faked), as in test_runner_decisions."""

from __future__ import annotations

from types import SimpleNamespace

from rollout.core import capacity, plan as planning
from rollout.core.errors import RolloutError
from rollout.core.report import Report
from rollout.core.sizes import Size
from rollout.core.vocabulary import Result
from rollout.orchestration.runner import Runner
from tests.unit.test_runner_decisions import NEW, OLD, Batches
from tests.unit.test_runner_faults import Journal, Out


class Balancer:
    """HAProxy as the floor reads it: each read returns the next scripted member states (the last repeats)."""

    kind, name = "haproxy", "app"

    def __init__(self, *readings):
        self.readings, self.reads = list(readings), 0

    def members(self):
        self.reads += 1
        return self.readings[min(self.reads, len(self.readings)) - 1]


UP = {f"i-{i}": "UP" for i in range(1, 5)}
H4_DOWN = {**UP, "i-4": "DOWN"}


def run(*, zones: str = "", batch=(Size(1),), allowed: int = 0, fails: dict | None = None, floor=None, balancers=(),
        paused=lambda: None):
    hosts = [planning.Host(f"i-{i}", f"10.0.0.{i}", f"h{i}", OLD, zone=f"z{zones[i - 1]}" if zones else "")
             for i in range(1, 5)]
    plan = planning.build(env="test", ref="main", sha=NEW, hosts=hosts, batch=batch, balancers=(), group=None,
                          suspended_before=frozenset(), max_failures=Size(allowed), by_zone=bool(zones), floor=floor)
    inv = SimpleNamespace(name="test", smoke=[], post_deploy=[], ssh=SimpleNamespace(parallel=4),
                          health=SimpleNamespace(timeout=5, interval=0.1))
    env = SimpleNamespace(inventory=inv, group=None, alarms=None, balancers=list(balancers), found_balancers=(),
                          aws=SimpleNamespace(calls=0), fleet=SimpleNamespace(bastion_opens=0),
                          slack=SimpleNamespace(start=lambda *a: None, progress=lambda *a: None, finish=lambda *a: None))
    report = Report(env="test", ref="main", sha=NEW, run_id="run-a")
    out = Out()
    runner = Runner(env, plan, out, report, journal=Journal(), paused=paused)
    runner.batches = Batches(report, fails or {})
    error = None
    try:
        runner.run()
    except RolloutError as exc:
        error = exc
    return runner, report, error


def test_a_host_unhealthy_from_outside_holds_the_first_batch_and_nothing_runs():
    lb = Balancer(H4_DOWN)
    runner, report, error = run(floor=capacity.Floor(Size(75, True), 3, 0), balancers=[lb])
    assert runner.batches.ran == []
    assert error is not None and error.exit_code == 14 and report.result == Result.FAILED
    assert str(error).startswith("batch 1 (h1) was not taken out of service: haproxy app reports 3 healthy hosts;")
    assert lb.reads == 2, "one read, and one more at the deadline of a wait of 0 s"


def test_a_batch_the_floor_holds_later_stops_the_run_and_rolls_nothing_back():
    # Healthy for batch 1; then h4 goes down from outside and batch 2 (h2) would leave 2 < 3.
    runner, report, error = run(floor=capacity.Floor(Size(3), 3, 0), balancers=[Balancer(UP, H4_DOWN)])
    assert runner.batches.ran == [("deploy", ["h1"])]
    assert error.exit_code == 14 and "batch 2 (h2)" in str(error)
    assert {h.name: str(h.result) for h in report.hosts} == {"h1": "updated", "h2": "pending", "h3": "pending", "h4": "pending"}


def test_a_pause_ends_the_wait_for_capacity():
    # Paused from the third look on (the policy's look before batch 1, then the floor's): the wait ends, exit 11.
    looks = []
    paused = lambda: looks.append(1) or ("paused by ana" if len(looks) >= 3 else None)  # noqa: E731
    lb = Balancer(H4_DOWN)
    runner, report, error = run(floor=capacity.Floor(Size(3), 3, 3600), balancers=[lb], paused=paused)
    assert runner.batches.ran == [] and error.exit_code == 11 and report.result == Result.PAUSED
    assert lb.reads < 10


def test_zone_by_zone_batches_never_span_two_zones():
    runner, _, error = run(zones="abab", batch=(Size(100, True),))
    assert error is None
    assert runner.batches.ran == [("deploy", ["h1", "h3"]), ("deploy", ["h2", "h4"])]


def test_a_host_left_out_in_one_zone_keeps_the_next_zone_from_starting():
    runner, report, error = run(zones="abab", batch=(Size(2),), allowed=1, fails={"deploy": {"h1": False}})
    assert runner.batches.ran == [("deploy", ["h1", "h3"]), ("rollback", ["h3"])]
    assert error.exit_code == 1 and "two zones are never out at once" in str(error)


def test_a_ramped_rollback_returns_the_last_batch_first_with_the_same_sizes():
    runner, _, error = run(batch=(Size(1), Size(2)), fails={"deploy": {"h4": True}})
    assert runner.batches.ran == [("deploy", ["h1"]), ("deploy", ["h2", "h3"]), ("deploy", ["h4"]),
                                  ("rollback", ["h3", "h2"]), ("rollback", ["h1"])]
    assert error.exit_code == 9
