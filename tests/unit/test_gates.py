"""The gates' decisions as tables: bake schedule, rollback alarms, the front end, a stepped run."""

from __future__ import annotations

import pytest

from rollout.core.gates import (Answer, BakeAfter, PASS, Verdict, alarms_verdict, bake_schedule, bake_seconds,
                                front_end_verdict, missing_alarms, step_now, stepped_from)

SHA = "a" * 40
OLD = "b" * 40


@pytest.mark.parametrize("batch_no, batches, bake, after, expected", [
    (1, 4, 60, BakeAfter.FIRST, 60.0),   # the canary bakes
    (2, 4, 60, BakeAfter.FIRST, 0.0),    # later batches do not
    (1, 4, 60, BakeAfter.EACH, 60.0),
    (3, 4, 60, BakeAfter.EACH, 60.0),
    (4, 4, 60, BakeAfter.EACH, 0.0),     # nothing follows the last batch: no bake
    (1, 1, 60, BakeAfter.FIRST, 0.0),    # a single batch is also the last
    (1, 4, 0, BakeAfter.EACH, 0.0),      # no bake configured
    (2, 3, 0.5, BakeAfter.EACH, 0.5),
])
def test_bake_seconds(batch_no, batches, bake, after, expected):
    assert bake_seconds(batch_no, batches, bake, after) == expected


@pytest.mark.parametrize("batches, bake, after, expected", [
    (4, 60, BakeAfter.FIRST, [(1, 60.0)]),
    (4, 60, BakeAfter.EACH, [(1, 60.0), (2, 60.0), (3, 60.0)]),
    (1, 60, BakeAfter.EACH, []),
    (4, 0, BakeAfter.EACH, []),
])
def test_bake_schedule(batches, bake, after, expected):
    assert bake_schedule(batches, bake, after) == expected


@pytest.mark.parametrize("wanted, states, expected", [
    (["a", "b"], {"a": "OK", "b": "OK"}, PASS),
    (["a", "b"], {"a": "OK", "b": "INSUFFICIENT_DATA"}, PASS),   # no data is not an alarm
    (["a", "b"], {"a": "ALARM", "b": "OK"}, Verdict(True, "rollback alarm a in ALARM")),
    (["a", "b"], {"a": "ALARM", "b": "ALARM"}, Verdict(True, "rollback alarm a, b in ALARM")),
    (["a", "b"], {"a": "OK"}, Verdict(True, "rollback alarm b no longer exists, so its state cannot be read")),
    (["a", "b"], {"a": "ALARM"}, Verdict(True, "rollback alarm a in ALARM")),  # firing is said first
    ([], {}, PASS),
    (["a"], {"a": "OK", "other": "ALARM"}, PASS),   # an alarm not named does not gate
])
def test_alarms_verdict(wanted, states, expected):
    assert alarms_verdict(wanted, states) == expected


def test_missing_alarms_keep_the_inventory_order():
    assert missing_alarms(["z", "a", "m"], ["m"]) == ["z", "a"]
    assert missing_alarms(["a"], ["a", "b"]) == []


@pytest.mark.parametrize("answers, expected", [
    ([Answer(200, OLD), Answer(200, SHA + "\n")], PASS),    # seen once is enough
    ([Answer(200, SHA)], PASS),
    ([], Verdict(True, "no answer yet")),
    ([Answer(None, error="ConnectionRefusedError: refused")], Verdict(True, "no answer (ConnectionRefusedError: refused)")),
    ([Answer(503, "")], Verdict(True, "answered 503, expected 200")),
    ([Answer(200, OLD), Answer(200, OLD)], Verdict(True, f"answers {OLD[:12]}, not yet {SHA[:12]} (2 answers seen)")),
    ([Answer(500, SHA)], Verdict(True, "answered 500, expected 200")),   # the version with an error status does not count
    ([Answer(200, SHA + "x")], Verdict(True, f"answers {SHA[:12]}, not yet {SHA[:12]} (1 answers seen)")),
])
def test_front_end_verdict(answers, expected):
    assert front_end_verdict(answers, SHA) == expected


@pytest.mark.parametrize("stepping, batch_no, batches, expected", [
    (True, 1, 4, True),
    (True, 2, 4, False),
    (True, 1, 1, False),   # a single batch has nothing to step before
    (False, 1, 4, False),
])
def test_step_now(stepping, batch_no, batches, expected):
    assert step_now(stepping, batch_no, batches) is expected


def _host(n: int) -> dict:
    return {"instance_id": f"i-{n}", "address": f"10.0.0.{n}", "name": f"h{n}", "version": OLD, "target": SHA}


START = {"type": "start", "data": {"run_id": "r1", "ref": "main", "sha": SHA, "batch_size": 1,
                                   "hosts": [_host(1), _host(2), _host(3)]}}
DEREG = {"type": "deregistered", "data": {"batch": 1, "hosts": ["i-1"]}}
STEPPED = {"type": "stepped", "data": {"after_batch": 1, "done": ["i-1"], "failed": [], "started": "2026-11-30T06:00:00.000Z"}}


@pytest.mark.parametrize("records, expected", [
    ([START, DEREG, STEPPED], ("r1", ["i-1"], ["i-2", "i-3"])),
    ([START, DEREG, STEPPED, {"type": "continued", "data": {"action": "continue"}}], None),  # taken on by someone
    ([START, DEREG], None),          # running, or died mid-batch: recover's, not a step
    ([], None),
    ([STEPPED], None),               # no start record: nothing to continue from
    ([START, DEREG, {"type": "stepped", "data": {"after_batch": 1, "done": [], "failed": ["i-1"]}}],
     ("r1", [], ["i-2", "i-3"])),   # a host failed within the budget is not retried
])
def test_stepped_from(records, expected):
    got = stepped_from("r1", records)
    if expected is None:
        assert got is None
        return
    run, done, remaining = expected
    assert (got.run_id, [h["instance_id"] for h in got.done], [h["instance_id"] for h in got.remaining]) == (run, done, remaining)
    assert got.sha == SHA and got.ref == "main" and got.batch_size == 1 and got.after_batch == 1


# -- what a gate's stop leads to (rollout.core.policy) ------------------------------

from rollout.core import policy  # noqa: E402
from rollout.core.errors import DeployFailed, RolledBack, Stepped  # noqa: E402
from rollout.core.vocabulary import Phase, Result, Stop  # noqa: E402


@pytest.mark.parametrize("stop, on_failure, updated, expected", [
    (Stop.GATE, "rollback", 2, True),
    (Stop.GATE, "stop", 2, True),        # a gate rolls back whatever on_failure says
    (Stop.GATE, "rollback", 0, False),   # nothing updated: nothing to roll back
    (Stop.STEPPED, "rollback", 1, False),
    (Stop.FAILED, "stop", 2, False),
])
def test_rolls_back(stop, on_failure, updated, expected):
    assert policy.rolls_back(stop, on_failure, updated) is expected


@pytest.mark.parametrize("stop, on_failure, rolled_back, left_out, result, error", [
    (Stop.GATE, "stop", True, [], Result.ROLLED_BACK, RolledBack),
    (Stop.GATE, "rollback", None, [], Result.ROLLED_BACK, RolledBack),     # tripped before any host was updated
    (Stop.GATE, "rollback", False, [], Result.FAILED, DeployFailed),      # the rollback did not finish
    (Stop.GATE, "rollback", True, ["h2"], Result.FAILED, DeployFailed),   # a host stays out
    (Stop.STEPPED, "rollback", None, [], Result.STEPPED, Stepped),
    (Stop.STEPPED, "rollback", None, ["h1"], Result.FAILED, DeployFailed),
])
def test_a_gate_or_a_step_ends_the_run_so(stop, on_failure, rolled_back, left_out, result, error):
    v = policy.verdict(phase=Phase.DEPLOY, stop=stop, why="why", on_failure=on_failure, env="prod", rolled_back=rolled_back,
                       left_out=left_out)
    assert (v.result, v.error) == (result, error)
    if error is Stepped:
        assert v.exit_code == 15 and "fab deploy --continue --env=prod" in v.why and "fab deploy --abort --env=prod" in v.why


# -- what --dry-run shows of them ----------------------------------------------------

from types import SimpleNamespace  # noqa: E402

from rich.console import Console  # noqa: E402

from rollout.core.planview import render_gates  # noqa: E402


def _shown(batches: int, step: bool = False, **inv) -> str:
    keys = {"bake": 0.0, "bake_after": "first", "rollback_alarms": [], "verify": None, **inv}
    console = Console(record=True, width=400)
    render_gates(SimpleNamespace(**keys), batches, step, console)
    return console.export_text()


@pytest.mark.parametrize("batches, step, inv, expected", [
    (4, False, {}, ["Bakes: none", "Rollback alarms: none", "Front end: not checked (no verify in the inventory)"]),
    (4, False, {"bake": 60.0}, ["Bakes: 60s after batch 1 (bake_after: first), 60s in all"]),
    (4, False, {"bake": 30.0, "bake_after": "each"}, ["Bakes: 30s after batch 1, 2, 3 (bake_after: each), 90s in all"]),
    (1, False, {"bake": 30.0}, ["Bakes: none (bake: 30s, but no batch is followed by another)"]),
    (2, False, {"rollback_alarms": ["a", "b"]}, ["Rollback alarms: a, b: read before each batch"]),
    (2, False, {"verify": SimpleNamespace(url="http://lb/version", via="bastion", timeout=30.0)},
     ["Front end: http://lb/version (from the bastion) must answer the new version within 30s"]),
    (2, True, {}, ["Step: stops after batch 1 (exit 15)"]),
])
def test_dry_run_shows_the_bakes_and_gates(batches, step, inv, expected):
    text = _shown(batches, step, **inv)
    for line in expected:
        assert line in text, text
    assert ("Step:" in text) is step
