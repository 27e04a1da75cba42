"""The rollout's decisions (rollout.core.policy) from tables of cases: inputs in, decisions out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rollout.core import policy
from rollout.core.sizes import Ramp, Size
from rollout.core.vocabulary import HostResult, Phase, Result, Stop

D, RB, RC = Phase.DEPLOY, Phase.ROLLBACK, Phase.RECOVER
OLD, NEW = "a" * 40, "b" * 40


def ramp(*sizes: str) -> Ramp:
    return tuple(Size(int(s.rstrip("%")), s.endswith("%")) for s in sizes)


# ramp, batch index, selected hosts -> hosts in that batch
BATCH_SIZE = [
    (ramp("1"), 0, 10, 1),
    (ramp("1"), 7, 10, 1),                  # a ramp of one: every batch the same
    (ramp("3"), 0, 2, 2),                   # never more than there are
    (ramp("25%"), 0, 10, 2),                # rounded down
    (ramp("5%"), 0, 10, 1),                 # ... to at least 1
    (ramp("100%"), 0, 4, 4),
    (ramp("1", "10%", "50%"), 0, 40, 1),    # a canary first
    (ramp("1", "10%", "50%"), 1, 40, 4),
    (ramp("1", "10%", "50%"), 2, 40, 20),
    (ramp("1", "10%", "50%"), 9, 40, 20),   # the last size repeats
]


@pytest.mark.parametrize("sizes, index, total, expected", BATCH_SIZE)
def test_batch_size_follows_the_ramp_and_repeats_its_last_size(sizes, index, total, expected):
    assert policy.batch_size(sizes, index, total) == expected


# ramp, hosts still to do, selected hosts, first batch index, hosts left out -> sizes of the batches they take
BATCH_SIZES = [
    (ramp("2"), 5, 5, 0, 0, [2, 2, 1]),
    (ramp("2"), 4, 5, 1, 1, [1, 1, 1, 1]),        # a host left out keeps its slot: every later batch one smaller
    (ramp("2"), 3, 5, 1, 2, []),                  # left out fill the batch size: no batch can run
    (ramp("1", "2", "50%"), 10, 10, 0, 0, [1, 2, 5, 2]),
    (ramp("1", "2", "50%"), 7, 10, 2, 0, [5, 2]),  # from the third batch on
    (ramp("1"), 0, 4, 0, 0, []),
]


@pytest.mark.parametrize("sizes, hosts, total, start, left_out, expected", BATCH_SIZES)
def test_batch_sizes_count_hosts_left_out_against_every_batch(sizes, hosts, total, start, left_out, expected):
    assert policy.batch_sizes(sizes, hosts, total, start=start, left_out=left_out) == expected


# max_failures, selected hosts -> hosts that may fail
BUDGETS = [
    (Size(0), 10, 0),
    (Size(2), 10, 2),
    (Size(2), 1, 2),              # a count is a count, whatever the fleet
    (Size(10, True), 10, 1),
    (Size(10, True), 9, 0),       # 10% of 9 rounds down to 0
    (Size(50, True), 5, 2),
    (Size(100, True), 7, 7),
    (Size(0, True), 7, 0),
]


@pytest.mark.parametrize("max_failures, hosts, allowed", BUDGETS)
def test_the_failure_budget_is_a_count_or_a_percentage_rounded_down(max_failures, hosts, allowed):
    assert policy.budget(max_failures, hosts) == allowed


# phase, failures so far, allowed -> stop?
OVER_BUDGET = [
    (D, 0, 0, None),
    (D, 1, 0, Stop.FAILED),       # the first failure over a budget of 0
    (D, 1, 1, None),              # within the budget: carry on
    (D, 2, 1, Stop.FAILED),
    (D, 3, 5, None),
    (RB, 4, 0, None),             # a rollback never stops for failures: it restores what it can
    (RC, 4, 0, None),             # nor does a recovery
]


@pytest.mark.parametrize("phase, failures, allowed, stop", OVER_BUDGET)
def test_only_a_deploy_stops_when_failures_exceed_the_budget(phase, failures, allowed, stop):
    decided = policy.over_budget(phase=phase, failures=failures, allowed=allowed, first="h1: health: 503")
    assert decided.stop is stop
    if stop:
        assert decided.why == f"{failures} host(s) failed (max_failures={allowed}); first: h1: health: 503"


# name: (keyword arguments of next_batch) -> (take, stop)
NEXT = {
    "a deploy takes the batch size":
        (dict(phase=D, queue=["a", "b", "c"], size=2), (2, None)),
    "the last batch takes what is left":
        (dict(phase=D, queue=["c"], size=2), (1, None)),
    "a host left out keeps its slot":
        (dict(phase=D, queue=["b", "c", "d"], size=2, left_out=1), (1, None)),
    "hosts left out fill the batch size: stop as failed":
        (dict(phase=D, queue=["c", "d"], size=2, left_out=2), (0, Stop.FAILED)),
    "more left out than the batch size: stop as failed":
        (dict(phase=RB, queue=["c"], size=1, left_out=2), (0, Stop.FAILED)),
    "recovery: a host already out goes alone at batch size 1":
        (dict(phase=RC, queue=["c", "a", "b"], size=1, out_of_service={"c"}), (1, None)),
    "recovery: a host already out and one more at batch size 2":
        (dict(phase=RC, queue=["c", "a", "b"], size=2, out_of_service={"c"}), (2, None)),
    "recovery: all hosts already out at once, nobody else":
        (dict(phase=RC, queue=["c", "d", "a"], size=1, out_of_service={"c", "d"}), (2, None)),
    "recovery: a host already out is restored even with no room":
        (dict(phase=RC, queue=["c", "a"], size=1, left_out=1, out_of_service={"c"}), (1, None)),
    "an interrupt stops a deploy":
        (dict(phase=D, queue=["b"], size=1, done=1, interrupted="SIGTERM"), (0, Stop.INTERRUPTED)),
    "an interrupt does not stop a rollback":
        (dict(phase=RB, queue=["b"], size=1, interrupted="SIGTERM"), (1, None)),
    "an interrupt does not stop a recovery":
        (dict(phase=RC, queue=["b"], size=1, interrupted="SIGINT"), (1, None)),
    "a pause stops a deploy":
        (dict(phase=D, queue=["b"], size=1, done=1, env="prod", paused="paused by ana"), (0, Stop.PAUSED)),
    "a pause does not stop a rollback":
        (dict(phase=RB, queue=["b"], size=1, paused="paused by ana"), (1, None)),
    "a pause does not stop a recovery":
        (dict(phase=RC, queue=["b"], size=1, paused="paused by ana"), (1, None)),
    "a lost lock stops every phase":
        (dict(phase=RC, queue=["b"], size=1, lock_lost="run r2 of bo"), (0, Stop.LOCK_LOST)),
    "an interrupt comes before a lost lock in a deploy":
        (dict(phase=D, queue=["b"], size=1, interrupted="SIGINT", lock_lost="run r2 of bo"), (0, Stop.INTERRUPTED)),
    "a lost lock comes before a pause":
        (dict(phase=D, queue=["b"], size=1, lock_lost="run r2 of bo", paused="paused by ana"), (0, Stop.LOCK_LOST)),
    "an interrupt comes before a pause":
        (dict(phase=D, queue=["b"], size=1, interrupted="SIGINT", paused="paused by ana"), (0, Stop.INTERRUPTED)),
    "a rollback's canary batch of 1 has room under the deployed ceiling of 2 with one host left out":
        (dict(phase=RB, queue=["h1"], size=1, left_out=1, ceiling=2), (1, None)),
    "a rollback's batch never grows past its own size under a higher ceiling":
        (dict(phase=RB, queue=["h3", "h2", "h1"], size=2, ceiling=4), (2, None)),
    "a rollback with the ceiling full of left-out hosts stops as failed":
        (dict(phase=RB, queue=["h1"], size=1, left_out=2, ceiling=2), (0, Stop.FAILED)),
    "a deploy's ceiling is its batch size: a left-out host still keeps its slot":
        (dict(phase=D, queue=["b", "c"], size=2, left_out=1, ceiling=2), (1, None)),
    "an interrupt comes before running out of room":
        (dict(phase=D, queue=["b"], size=1, left_out=1, interrupted="SIGINT"), (0, Stop.INTERRUPTED)),
}


@pytest.mark.parametrize("name", list(NEXT))
def test_next_batch(name):
    kwargs, (take, stop) = NEXT[name]
    decided = policy.next_batch(**kwargs)
    assert (decided.take, decided.stop) == (take, stop)


@pytest.mark.parametrize("kwargs, why", [
    (dict(phase=D, queue=["b", "c"], size=1, done=1, interrupted="SIGTERM"),
     "interrupted by SIGTERM after batch 1: the batch in hand was finished; 2 host(s) were not updated"),
    (dict(phase=D, queue=["b"], size=1, done=2, env="prod", paused="paused by ana (incident 42)"),
     "prod was paused by ana (incident 42); stopped after batch 2"),
    (dict(phase=D, queue=["b"], size=2, left_out=2),
     "2 failed host(s) are out of the load balancers, which is the whole batch size"),
    (dict(phase=D, queue=["b"], size=2, lock_lost="run r2 of bo"), "run r2 of bo"),
])
def test_a_stop_says_why(kwargs, why):
    assert policy.next_batch(**kwargs).why == why


# phase, step that failed, previous version, target, restore worked, result so far -> host result
FAILED_AT = [
    (D, "checkout", OLD, NEW, True, HostResult.PENDING, HostResult.RESTORED),
    (D, "install", OLD, NEW, True, HostResult.PENDING, HostResult.RESTORED),
    (D, "reload", OLD, NEW, True, HostResult.PENDING, HostResult.RESTORED),
    (D, "health", OLD, NEW, True, HostResult.PENDING, HostResult.RESTORED),
    (D, "health", OLD, NEW, False, HostResult.PENDING, HostResult.LEFT_OUT),   # the restore failed too
    (D, "update", None, NEW, None, HostResult.PENDING, HostResult.LEFT_OUT),   # previous version unknown
    (D, "health", NEW, NEW, None, HostResult.PENDING, HostResult.LEFT_OUT),    # already ran the target
    (RB, "health", NEW, OLD, None, HostResult.UPDATED, HostResult.LEFT_OUT),   # a rollback does not restore
    (RC, "reload", NEW, OLD, None, HostResult.PENDING, HostResult.LEFT_OUT),   # nor does a recovery
    (D, "deregister", OLD, NEW, None, HostResult.PENDING, HostResult.LEFT_OUT),
    (D, "drain", OLD, NEW, None, HostResult.PENDING, HostResult.LEFT_OUT),
    (D, "register", OLD, NEW, None, HostResult.PENDING, HostResult.LEFT_OUT),
    (D, "wait_healthy", OLD, NEW, None, HostResult.PENDING, HostResult.LEFT_OUT),
    (D, "register", OLD, NEW, None, HostResult.UPDATED, HostResult.UPDATED),   # back in service before the failure
    (RB, "wait_healthy", NEW, OLD, None, HostResult.ROLLED_BACK, HostResult.ROLLED_BACK),
    (D, "deregister", OLD, NEW, None, HostResult.RESTORED, HostResult.RESTORED),
]


@pytest.mark.parametrize("phase, step, previous, target, restored, current, expected", FAILED_AT)
def test_a_failure_at_each_step_leaves_the_host_restored_or_out_of_service(phase, step, previous, target, restored, current, expected):
    assert policy.after_failure(phase=phase, step=step, previous=previous, target=target, restored=restored,
                                current=current) is expected


@pytest.mark.parametrize("phase, result", [(D, HostResult.UPDATED), (RB, HostResult.ROLLED_BACK), (RC, HostResult.ROLLED_BACK)])
def test_an_updated_host_is_reported_by_its_phase(phase, result):
    assert policy.updated_result(phase) is result


# stop, on_failure, hosts updated -> roll back?
ROLLS_BACK = [
    (Stop.FAILED, "rollback", 2, True),
    (Stop.FAILED, "rollback", 0, False),     # nothing to return
    (Stop.FAILED, "stop", 2, False),
    (Stop.PAUSED, "rollback", 2, False),     # a pause leaves every host serving what it runs
    (Stop.INTERRUPTED, "rollback", 2, False),
]


@pytest.mark.parametrize("stop, on_failure, updated, expected", ROLLS_BACK)
def test_only_a_failure_with_on_failure_rollback_rolls_back(stop, on_failure, updated, expected):
    assert policy.rolls_back(stop, on_failure, updated) is expected


def test_a_rollback_returns_the_updated_hosts_in_plan_order():
    hosts = [SimpleNamespace(instance_id=i) for i in ("i-1", "i-2", "i-3", "i-4", "i-5")]
    results = {"i-1": HostResult.UPDATED, "i-2": HostResult.RESTORED, "i-3": HostResult.LEFT_OUT, "i-4": HostResult.UPDATED,
               "i-5": HostResult.PENDING}
    assert [h.instance_id for h in policy.rollback_hosts(hosts, results)] == ["i-1", "i-4"]


# name: (keyword arguments of verdict) -> (result, exit code, start of why)
VERDICTS = {
    "every host done": (dict(phase=D, stop=None), (Result.SUCCEEDED, 0, "")),
    "failures within the budget: success": (dict(phase=D, stop=None, failures=1, allowed=1), (Result.SUCCEEDED, 0, "")),
    "over budget, rolled back, nobody left out": (
        dict(phase=D, stop=Stop.FAILED, why="2 host(s) failed", rolled_back=True),
        (Result.ROLLED_BACK, 9, "2 host(s) failed; every host touched was returned")),
    "over budget before any host was updated: nothing to roll back, still rolled back": (
        dict(phase=D, stop=Stop.FAILED, why="1 host(s) failed", rolled_back=None),
        (Result.ROLLED_BACK, 9, "1 host(s) failed; every host touched")),
    "over budget, the rollback did not finish": (
        dict(phase=D, stop=Stop.FAILED, why="2 host(s) failed", rolled_back=False, rollback_why="some hosts could not be rolled back"),
        (Result.FAILED, 1, "2 host(s) failed; rollback did not finish either: some hosts could not be rolled back")),
    "over budget, rolled back, a host left out": (
        dict(phase=D, stop=Stop.FAILED, why="2 host(s) failed", rolled_back=True, left_out=["h2"]),
        (Result.FAILED, 1, "2 host(s) failed; out of the load balancers: h2 (fix them, then deploy again)")),
    "over budget with on_failure=stop": (
        dict(phase=D, stop=Stop.FAILED, why="1 host(s) failed", on_failure="stop"), (Result.FAILED, 1, "1 host(s) failed")),
    "on_failure=stop, a host left out": (
        dict(phase=D, stop=Stop.FAILED, why="x", on_failure="stop", left_out=["h1", "h3"]),
        (Result.FAILED, 1, "x; out of the load balancers: h1, h3")),
    "no room left for a batch": (
        dict(phase=D, stop=Stop.FAILED, why="2 failed host(s) are out", on_failure="stop", left_out=["h1", "h2"]),
        (Result.FAILED, 1, "2 failed host(s) are out; out of the load balancers: h1, h2")),
    "paused": (dict(phase=D, stop=Stop.PAUSED, why="prod was paused"), (Result.PAUSED, 11, "prod was paused")),
    "paused with a host left out": (
        dict(phase=D, stop=Stop.PAUSED, why="prod was paused", left_out=["h1"]),
        (Result.PAUSED, 11, "prod was paused; out of the load balancers: h1")),
    "interrupted": (dict(phase=D, stop=Stop.INTERRUPTED, why="interrupted by SIGINT"), (Result.INTERRUPTED, 130, "interrupted")),
    "held at the capacity floor: nothing rolled back, exit 14": (
        dict(phase=D, stop=Stop.CAPACITY, why="before batch 2", on_failure="stop"), (Result.FAILED, 14, "before batch 2")),
    "interrupted with on_failure=rollback does not roll back": (
        dict(phase=D, stop=Stop.INTERRUPTED, why="interrupted by SIGTERM", on_failure="rollback"), (Result.INTERRUPTED, 130, "inter")),
    "a recovery that restored every host": (dict(phase=RC, stop=None), (Result.RECOVERED, 0, "")),
    "a recovery that had to stop stays open": (
        dict(phase=RC, stop=Stop.FAILED, why="1 failed host(s) are out", env="prod"),
        (Result.FAILED, 1, "1 failed host(s) are out; the run stays open: run fab recover --env=prod again once fixed")),
}


@pytest.mark.parametrize("name", list(VERDICTS))
def test_verdict(name):
    kwargs, (result, code, why) = VERDICTS[name]
    v = policy.verdict(**kwargs)
    assert (v.result, v.exit_code) == (result, code)
    assert v.why.startswith(why)


def test_failures_within_the_budget_are_a_warning():
    v = policy.verdict(phase=D, stop=None, failures=1, allowed=2)
    assert v.warning == "1 host(s) failed within max_failures=2; they run their previous version"
    assert policy.verdict(phase=D, stop=None).warning == ""


@pytest.mark.parametrize("stop", [s for s in Stop if s is not Stop.LOCK_LOST])
@pytest.mark.parametrize("on_failure", ["rollback", "stop"])
def test_every_stop_kind_has_a_result_and_an_exit_code(stop, on_failure):
    v = policy.verdict(phase=D, stop=stop, why="why", on_failure=on_failure, rolled_back=None)
    assert v.result not in (Result.RUNNING, Result.SUCCEEDED) and v.exit_code != 0


def test_a_lost_lock_is_never_judged_as_a_verdict():
    with pytest.raises(ValueError):
        policy.verdict(phase=D, stop=Stop.LOCK_LOST, why="run r2 of bo")


# batches done, ramp, hosts still to do, selected hosts, hosts left out -> batches in all ("batch N of M": M)
BATCH_COUNTS = [
    (1, ramp("1"), 3, 4, 0, 4),
    (4, ramp("1"), 0, 4, 0, 4),
    (1, ramp("2"), 3, 4, 1, 4),     # planned 2 batches; a host left out makes the rest one at a time
    (2, ramp("2"), 2, 4, 1, 4),     # never "batch 3 of 2"
    (3, ramp("2"), 1, 4, 1, 4),
    (1, ramp("1", "50%"), 9, 10, 0, 3),
    (2, ramp("2"), 2, 4, 2, 2),     # no room left: the run stops after this batch
]


@pytest.mark.parametrize("done, sizes, remaining, total, left_out, expected", BATCH_COUNTS)
def test_batch_labels_count_the_batches_that_actually_run(done, sizes, remaining, total, left_out, expected):
    assert policy.batch_count(done, sizes, remaining, total, left_out) == expected


def test_hosts_left_out_or_not_rolled_back_are_stranded():
    rec = lambda name, result, error="": SimpleNamespace(name=name, instance_id="i-" + name, result=result, error=error)
    hosts = [rec("h1", HostResult.UPDATED), rec("h2", HostResult.LEFT_OUT), rec("h3", HostResult.RESTORED),
             rec("h4", HostResult.UPDATED, "could not roll back: unreachable over SSH"), rec("", HostResult.LEFT_OUT)]
    assert policy.stranded(hosts) == ["h2", "h4", "i-"]


def walk(n: int, sizes: Ramp, allowed: int, fails: dict[str, bool]) -> tuple[list[list[str]], object]:
    """A deploy of hosts h1..hn driven by the policy alone: `fails` maps a failing host to whether its restore works."""
    queue = [f"h{i}" for i in range(1, n + 1)]
    batches, left_out, failures, first = [], [], 0, ""
    while queue:
        nxt = policy.next_batch(phase=D, queue=queue, size=policy.batch_size(sizes, len(batches), n), left_out=len(left_out),
                                done=len(batches))
        if nxt.stop:
            return batches, nxt
        batch, queue = queue[:nxt.take], queue[nxt.take:]
        batches.append(batch)
        for h in batch:
            if h in fails:
                failures += 1
                first = first or h
                if policy.after_failure(phase=D, step="health", previous=OLD, target=NEW, restored=fails[h]) is HostResult.LEFT_OUT:
                    left_out.append(h)
        nxt = policy.over_budget(phase=D, failures=failures, allowed=allowed, first=first)
        if nxt.stop:
            return batches, nxt
    return batches, policy.Next()


# hosts, ramp, allowed failures, failing hosts (restore works?) -> batches run, stop
WALKS = [
    (4, ramp("1"), 0, {}, [["h1"], ["h2"], ["h3"], ["h4"]], None),
    (4, ramp("2"), 0, {"h1": True}, [["h1", "h2"]], Stop.FAILED),                     # a failure in batch 1
    (4, ramp("2"), 0, {"h3": True}, [["h1", "h2"], ["h3", "h4"]], Stop.FAILED),       # ... in the last batch
    (4, ramp("1"), 1, {"h2": True}, [["h1"], ["h2"], ["h3"], ["h4"]], None),          # within the budget
    (4, ramp("2"), 1, {"h1": False}, [["h1", "h2"], ["h3"], ["h4"]], None),           # left out: later batches one smaller
    (4, ramp("2"), 2, {"h1": False, "h3": False}, [["h1", "h2"], ["h3"]], Stop.FAILED),  # no room left
    (5, ramp("1", "2"), 0, {}, [["h1"], ["h2", "h3"], ["h4", "h5"]], None),
    (10, ramp("10%"), Size(20, True).of(10), {"h2": True, "h5": True}, [[f"h{i}"] for i in range(1, 11)], None),
    (10, ramp("10%"), Size(20, True).of(10), {"h2": True, "h5": True, "h7": True}, [[f"h{i}"] for i in range(1, 8)], Stop.FAILED),
]


@pytest.mark.parametrize("n, sizes, allowed, fails, batches, stop", WALKS)
def test_a_whole_deploy_decided_by_the_policy(n, sizes, allowed, fails, batches, stop):
    ran, last = walk(n, sizes, allowed, fails)
    assert ran == batches
    assert last.stop is stop


# Moved from test_recovery.py with recovery.next_batch_size, now policy.next_batch: room = size - hosts left out.
@pytest.mark.parametrize("queue, out, room, take", [
    (["a", "b", "c"], set(), 1, 1),          # a deploy: the room decides
    (["c", "a", "b"], {"c"}, 1, 1),          # batch size 1, c out: c alone, never c and a together
    (["c", "a", "b"], {"c"}, 2, 2),          # batch size 2: c and one more
    (["c", "d", "a"], {"c", "d"}, 1, 2),     # more out than the batch size: all of them, nobody else
    (["a", "b"], set(), 0, 0),               # the room is used up by hosts left out: stop
    (["c"], {"c"}, 0, 1),                    # ... unless the host is already out
    (["a"], set(), 3, 1),                    # never more than there is
])
def test_a_batch_never_takes_more_hosts_out_than_the_batch_size(queue, out, room, take):
    assert policy.next_batch(phase=RC, queue=queue, size=room + 1, left_out=1, out_of_service=out).take == take


def test_every_host_result_is_produced_and_junit_judges_each():
    from xml.etree import ElementTree as ET

    from rollout.core import junit
    from rollout.core.report import HostRecord, Report

    produced = {HostResult(HostRecord("i", "", "", 1).result)}  # a host not reached
    produced |= {policy.updated_result(p) for p in Phase}
    produced |= {policy.after_failure(phase=p, step=s, previous=prev, target=t, restored=r, current=c)
                 for p, s, prev, t, r, c, _ in FAILED_AT}
    assert produced == set(HostResult)  # no result that nothing produces
    report = Report(env="e", ref="main", sha=NEW, hosts=[HostRecord(f"i-{r.name}", "", "", 1, result=r) for r in HostResult])
    suite = ET.fromstring(junit.render(report))
    assert (suite.get("tests"), suite.get("skipped"), suite.get("failures")) == (str(len(HostResult)), "1", str(len(HostResult) - 2))
