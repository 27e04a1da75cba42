"""Recovery's decisions and the lease's judgement, from tables of journal records and observations."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rollout.core import recovery
from rollout.state import journal
from rollout.state import lock
from rollout.core.vocabulary import Kind, Phase

ALL = ["Launch", "Terminate"]
OLD, NEW = "a" * 40, "b" * 40


def rec(kind: Kind, **data) -> dict:
    return {"type": kind.value, "data": data}


def start(direction="deploy", batch_size=1, hosts=("i-1", "i-2", "i-3"), **extra) -> dict:
    key = "target" if direction == "recover" else "version"
    return rec(Kind.START, direction=direction, batch_size=batch_size,
               hosts=[{"instance_id": h, "version": OLD, "target": NEW} if key == "version"
                      else {"instance_id": h, "version": NEW, "target": OLD} for h in hosts], **extra)


def dereg(*hosts, frm=OLD, to=NEW, phase="deploy") -> dict:
    return rec(Kind.DEREGISTERED, batch=1, phase=phase, hosts=list(hosts),
               updating=[{"instance_id": h, "from": frm, "to": to} for h in hosts])


def recovery_start(chain, targets) -> dict:
    return rec(Kind.START, direction="recover", batch_size=1, recovering=list(chain), decided=targets,
               hosts=[{"instance_id": h, "version": None, "target": v} for h, v in targets.items()])


DEPLOY = [start(), rec(Kind.SUSPENDED, group="g", processes=ALL), rec(Kind.ALARMS_DISABLED, names=["cpu"])]

CASES = {
    # name: (chain, expected targets, expected resume, expected alarms)
    "killed after suspend: nothing touched, processes resumed": (
        [("d", DEPLOY)], {}, ALL, ["cpu"]),
    "killed mid batch 2: both batches' hosts back to the version the deploy found": (
        [("d", DEPLOY + [dereg("i-1"), dereg("i-2")])], {"i-1": OLD, "i-2": OLD}, ALL, ["cpu"]),
    "killed while rolling back": (
        [("d", DEPLOY + [dereg("i-1"), dereg("i-2"), dereg("i-1", frm=NEW, to=OLD, phase="rollback")])],
        {"i-1": OLD, "i-2": OLD}, ALL, ["cpu"]),
    "processes already resumed and alarms re-enabled by the deploy": (
        [("d", DEPLOY + [dereg("i-3"), rec(Kind.ALARMS_ENABLED, names=["cpu"]), rec(Kind.RESUMED, group="g", processes=ALL),
                         rec(Kind.STOPPED, result="failed", stranded=["h3"])])], {"i-3": OLD}, [], []),
    # The SIGKILL case of the issue: the recovery took h001 out; the deploy had h003 out.
    "recovery killed in its batch 1: hosts of both restored to the deploy's versions": (
        [("d", DEPLOY + [dereg("i-1"), dereg("i-2"), dereg("i-3")]),
         ("r1", [recovery_start(["d"], {"i-1": OLD, "i-2": OLD, "i-3": OLD}), rec(Kind.SUSPENDED, group="g", processes=[]),
                 dereg("i-1", frm=NEW, to=OLD, phase="recover")])],
        {"i-1": OLD, "i-2": OLD, "i-3": OLD}, ALL, ["cpu"]),
    "a recovery that suspended more than the deploy: both sets resumed": (
        [("d", [start(), rec(Kind.SUSPENDED, group="g", processes=["Launch"]), dereg("i-2")]),
         ("r1", [recovery_start(["d"], {"i-2": OLD}), rec(Kind.SUSPENDED, group="g", processes=["Terminate"])])],
        {"i-2": OLD}, ["Launch", "Terminate"], []),
    "second recovery resumed, then died before closing: nothing left to resume": (
        [("d", DEPLOY + [dereg("i-1")]),
         ("r1", [recovery_start(["d"], {"i-1": OLD})]),
         ("r2", [recovery_start(["d", "r1"], {"i-1": OLD}), rec(Kind.SUSPENDED, group="g", processes=[]),
                 dereg("i-1", phase="recover"), rec(Kind.ALARMS_ENABLED, names=["cpu"]), rec(Kind.RESUMED, group="g", processes=ALL)])],
        {"i-1": OLD}, [], []),
    "a failed host restored by the deploy counts as changed": (
        [("d", [start(), rec(Kind.RESTORED, instance_id="i-2", version=OLD)])], {"i-2": OLD}, [], []),
    "legacy: an old-format recovery as the unfinished run finishes forward to its targets": (
        [("r", [start(direction="recover"), dereg("i-1", frm=NEW, to=OLD)])], {"i-1": OLD}, [], []),
}


@pytest.mark.parametrize("name", list(CASES))
def test_assess_restores_every_host_of_the_chain_to_the_first_runs_versions(name):
    chain, targets, resume, alarms = CASES[name]
    a = recovery.assess(chain)
    assert a.targets == targets
    assert list(a.resume) == resume
    assert list(a.alarms) == alarms
    assert a.run_id == chain[0][0] and a.chain == tuple(r for r, _ in chain)


def test_assess_of_a_run_without_start_restores_nothing():
    a = recovery.assess([("d", [])])
    assert (a.targets, a.resume, a.alarms) == ({}, (), ())


def test_recovery_reads_every_record_kind_the_runner_writes():
    assert set(recovery.READS) == set(Kind)
    # Every kind the runner and recover write is a Kind member, named, never a bare string.
    root = Path(__file__).resolve().parents[2] / "rollout"
    writers = [p for p in sorted(root.rglob("*.py")) if "Kind." in p.read_text()]  # every module that writes records
    assert len(writers) >= 4
    for path in writers:
        name = path.relative_to(root)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("_journal", "write") \
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                pytest.fail(f"{name}:{node.lineno}: journal record kind written as a bare string {node.args[0].value!r}")


@pytest.mark.parametrize("hosts, out, expected", [
    (["a", "b", "c"], set(), ["a", "b", "c"]),
    (["a", "b", "c"], {"c"}, ["c", "a", "b"]),
    (["a", "b", "c", "d"], {"d", "b"}, ["b", "d", "a", "c"]),
])
def test_hosts_out_of_service_are_restored_first(hosts, out, expected):
    assert recovery.order(hosts, out) == expected


@pytest.mark.parametrize("members, out", [
    ([{"i-1": "InService", "i-2": "InService"}, {"i-1": "UP", "i-2": "MAINT"}], {"i-2"}),
    ([{"i-1": "InService"}, {"i-1": "UP", "i-2": "UP"}], {"i-2"}),          # deregistered from the ELB
    ([{"i-1": "healthy", "i-2": "draining"}], {"i-2"}),
    ([{"i-1": "UP", "i-2": "DRAIN"}], {"i-2"}),
    ([{"i-1": "InService", "i-2": "InService"}], set()),
])
def test_out_of_service_is_any_balancer_not_sending_traffic(members, out):
    assert recovery.out_of_service(["i-1", "i-2"], members) == out


@pytest.mark.parametrize("observations, stale", [
    ([("v1", 0.0), ("v1", 5.0)], False),
    ([("v1", 0.0), ("v1", 10.0)], True),                    # unchanged for a whole ttl of the waiter's clock
    ([("v1", 0.0), ("v2", 9.0), ("v2", 18.0)], False),      # renewed: the watch starts again
    ([("v1", 0.0), ("v2", 9.0), ("v2", 19.0)], True),
    ([(None, 0.0), (None, 20.0)], False),                   # no lock at all is never "stale"
])
def test_a_lease_is_stale_only_after_a_whole_ttl_without_renewal_on_the_waiters_clock(observations, stale):
    judge = lock.Staleness(10.0)
    seen = [judge.see(v, t) for v, t in observations]
    assert seen[-1] is stale and not any(seen[:-1])


@pytest.mark.parametrize("items, stale", [
    ([{"run_id": "a", "expires_at": 100.0}, {"run_id": "a", "expires_at": 100.0}], True),   # previous rollout's format
    ([{"run_id": "a", "expires_at": 100.0}, {"run_id": "a", "expires_at": 130.0}], False),  # it renewed
    ([{"run_id": "a"}, {"run_id": "a"}], True),                                            # neither field: never renews
    ([{"run_id": "a", "version": "v1"}, {"run_id": "a", "version": "v1"}], True),
    ([{"run_id": "a", "version": "v1"}, {"run_id": "a", "version": "v2"}], False),
])
def test_a_lock_item_of_any_format_unchanged_for_a_ttl_is_stale(items, stale):
    judge = lock.Staleness(10.0)
    assert judge.see(lock.renewal_token(items[0]), 0.0) is False
    assert judge.see(lock.renewal_token(items[1]), 10.0) is stale


ME = lock.Process(host="ctl", boot="boot-1", pid=100, start="555")


@pytest.mark.parametrize("item, proc, state", [
    ({"host": "ctl", "boot": "boot-1", "pid": 42, "start": "777"}, None, "dead"),              # no such process
    ({"host": "ctl", "boot": "boot-1", "pid": 42, "start": "777"}, ("S", "999"), "dead"),      # pid reused since
    ({"host": "ctl", "boot": "boot-1", "pid": 42, "start": "777"}, ("Z", "777"), "dead"),      # killed, not reaped
    ({"host": "ctl", "boot": "boot-1", "pid": 42, "start": "777"}, ("S", "777"), "running"),
    ({"host": "ctl", "boot": "boot-1", "pid": 42, "start": "777"}, ("T", "777"), "stopped"),   # frozen (SIGSTOP)
    ({"host": "other", "boot": "boot-1", "pid": 42, "start": "777"}, None, "unknown"),         # another machine
    ({"host": "ctl", "boot": "boot-0", "pid": 42, "start": "777"}, None, "unknown"),           # before a reboot
    ({"host": "ctl", "boot": "boot-1", "run_id": "old format"}, None, "unknown"),
])
def test_force_can_only_tell_a_dead_holder_on_the_same_machine(item, proc, state):
    assert lock.holder_state(item, ME, read=lambda pid: proc) == state


def test_results_and_kinds_are_one_vocabulary():
    assert journal.Result("recovered") is journal.Result.RECOVERED
    assert {k.value for k in Kind} >= {"start", "deregistered", "end"}


class _Table:
    """The lock item's store, answering the conditional renewal; `during(n)` runs while write n is in flight."""

    def __init__(self, during):
        self.during, self.writes = during, 0

    def update(self, *args, **kwargs):
        self.writes += 1
        self.during(self.writes)


@pytest.mark.parametrize("frozen, writes", [
    ({}, 1),
    ({1: 4.9}, 1),
    ({1: 5.0}, 2),              # frozen for half a ttl while proving it: the proof is made again
    ({1: 600.0, 2: 600.0}, 3),
])
def test_a_proof_of_the_lock_that_took_half_a_ttl_is_made_again(frozen, writes):
    now = [100.0]
    table = _Table(during=lambda n: now.__setitem__(0, now[0] + frozen.get(n, 0.0)))
    held = lock.Lock(table, "run-a", "ana", "main", ttl=10, clock=lambda: now[0])
    held.fence()
    assert table.writes == writes and held.lost is None


def test_a_run_never_proving_its_lock_in_time_counts_it_as_unproven_not_lost():
    now = [100.0]
    table = _Table(during=lambda n: now.__setitem__(0, now[0] + 6.0))
    held = lock.Lock(table, "run-a", "ana", "main", ttl=10, clock=lambda: now[0])
    with pytest.raises(lock.LockUnproven):
        held.fence()
    assert table.writes == 3 and held.lost is None


@pytest.mark.parametrize("chain, expected", [
    ([("d", [start()])], ()),
    ([("d", [start(balancers=[["elb", "web"], ["alb", "tg"]]), dereg("i-1")])], (("elb", "web"), ("alb", "tg"))),
    # a recovery interrupted after finding one more: the union, in the order first journaled
    ([("d", [start(balancers=[["elb", "web"]]), dereg("i-1")]),
      ("r1", [{**recovery_start(["d"], {"i-1": OLD}), "data": {**recovery_start(["d"], {"i-1": OLD})["data"],
                                                               "balancers": [["alb", "tg"], ["elb", "web"]]}}])],
     (("elb", "web"), ("alb", "tg"))),
])
def test_balancers_found_from_membership_by_any_run_of_the_chain_are_recovers_too(chain, expected):
    assert recovery.assess(chain).balancers == expected


@pytest.mark.parametrize("written, assessed", [
    # a deploy's start, as the runner writes it: recover reads its batch size, balancers and each host's version
    (dict(run_id="d", ref="main", sha=NEW, who="ana", phase=Phase.DEPLOY, batch_size=2,
          hosts=[{"instance_id": "i-1", "address": "10.0.0.1", "name": "h1", "version": OLD, "target": NEW}],
          balancers=(("elb", "web"),)),
     dict(direction="deploy", batch_size=2, targets={"i-1": OLD}, balancers=(("elb", "web"),))),
    # a recovery's start, joining the chain, with the version it decided per host
    (dict(run_id="r1", ref="recover d", who="bo", phase=Phase.RECOVER, batch_size=1,
          hosts=[{"instance_id": "i-1", "address": "10.0.0.1", "name": "h1", "version": NEW, "target": OLD}],
          recovering=("d",), decided={"i-1": OLD}),
     dict(direction="recover", batch_size=1, targets={"i-1": OLD}, balancers=())),
])
def test_the_start_record_is_written_as_assess_reads_it(written, assessed):
    """One builder of the start record, for the runner and for a recovery without hosts."""
    data = recovery.start_record(**written)
    a = recovery.assess([(written["run_id"], [rec(Kind.START, **data), dereg("i-1")])])
    assert (a.direction, a.batch_size, a.targets, a.balancers) == \
        (assessed["direction"], assessed["batch_size"], assessed["targets"], assessed["balancers"])
    assert ("recovering" in data) == (written["phase"] is Phase.RECOVER) and ("sha" in data) == ("sha" in written)
