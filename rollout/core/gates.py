"""The gates between batches, as decisions of data: bakes, rollback alarms, the front end, a stepped run.

Nothing here touches the network. The runner asks these functions what to do with what its
adapters observed (alarm states, front-end answers, journal records) and carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Iterable, Mapping, Optional, Sequence

#: The CloudWatch alarm state that trips a rollback gate. OK and INSUFFICIENT_DATA do not.
ALARM = "ALARM"


class BakeAfter(StrEnum):
    """After which batches a bake runs: the first only (a canary), or each one but the last."""

    FIRST = "first"
    EACH = "each"


def bake_seconds(batch_no: int, batches: int, bake: float, after: BakeAfter) -> float:
    """Seconds to bake after batch `batch_no` (1-based) of `batches`; 0 for none.

    A bake waits before the next batch, so none follows the last batch (the gates are
    still read once after it).
    """
    if bake <= 0 or batch_no >= batches:
        return 0.0
    if after == BakeAfter.FIRST and batch_no != 1:
        return 0.0
    return float(bake)


def bake_schedule(batches: int, bake: float, after: BakeAfter) -> list[tuple[int, float]]:
    """(batch number, seconds) of every bake a rollout of `batches` batches runs, in order."""
    return [(n, s) for n in range(1, batches + 1) if (s := bake_seconds(n, batches, bake, after)) > 0]


@dataclass(frozen=True)
class Verdict:
    """A gate's outcome: `tripped` stops the rollout and rolls back, with `reason` in words."""

    tripped: bool
    reason: str = ""


PASS = Verdict(False)


def alarms_verdict(wanted: Sequence[str], states: Mapping[str, str]) -> Verdict:
    """Whether the rollback alarms `wanted`, read as `states` (name -> StateValue), trip the gate.

    An alarm in ALARM trips it. An alarm that `states` lacks (deleted since the preflight)
    trips it too: a gate that cannot be read must not be taken as open.
    """
    firing = [n for n in wanted if states.get(n) == ALARM]
    gone = [n for n in wanted if n not in states]
    if firing:
        return Verdict(True, f"rollback alarm {', '.join(firing)} in ALARM")
    if gone:
        return Verdict(True, f"rollback alarm {', '.join(gone)} no longer exists, so its state cannot be read")
    return PASS


def missing_alarms(wanted: Sequence[str], found: Iterable[str]) -> list[str]:
    """The rollback alarms named in the inventory that CloudWatch does not have, in the inventory's order."""
    have = set(found)
    return [n for n in wanted if n not in have]


@dataclass(frozen=True)
class Answer:
    """One request to the balancer's front end: its status and body, or the error instead."""

    status: Optional[int]
    body: str = ""
    error: str = ""


def front_end_verdict(answers: Sequence[Answer], version: str, status: int = 200) -> Verdict:
    """Whether the front end has been seen serving `version`: some answer with `status` whose body is it.

    `tripped` here means "not yet": the caller polls until it passes or its deadline, and
    then says why with the last answer.
    """
    if any(a.status == status and a.body.strip() == version for a in answers):
        return PASS
    if not answers:
        return Verdict(True, "no answer yet")
    last = answers[-1]
    if last.status is None:
        return Verdict(True, f"no answer ({last.error})")
    if last.status != status:
        return Verdict(True, f"answered {last.status}, expected {status}")
    body = last.body.strip()
    return Verdict(True, f"answers {body[:12] or 'nothing'}, not yet {version[:12]} ({len(answers)} answers seen)")


# -- a stepped run ---------------------------------------------------------------


class StepAction(StrEnum):
    """What an operator does with a stepped run."""

    CONTINUE = "continue"
    ABORT = "abort"


@dataclass(frozen=True)
class Stepped:
    """A run stopped after its first batch by --step, waiting for --continue or --abort.

    `done` are the hosts updated and back in service, `remaining` those not yet touched, each
    as its `start` entry (instance id, address, name, version, target), in plan order.
    """

    run_id: str
    ref: str
    sha: str
    batch_size: int
    after_batch: int
    started: str
    done: tuple[dict, ...]
    remaining: tuple[dict, ...]
    failed: tuple[str, ...] = field(default=())
    ramp: tuple[str, ...] = field(default=())  # the run's batch sizes, as written (`1`, `10%`)


def stepped_from(run_id: str, records: Sequence[dict]) -> Optional[Stepped]:
    """The stepped state of a run from its journal records, or None if it is not waiting at a step.

    A run waits at a step when its last record is `stepped`: a `continued` after it (someone
    took it on), or any other last record (it died, or it is running), is not a step to act on.
    """
    if not records or records[-1].get("type") != "stepped":
        return None
    start = next((r["data"] for r in records if r.get("type") == "start"), None)
    if start is None:
        return None
    data = records[-1]["data"]
    done_ids = list(data.get("done", []))
    hosts = list(start.get("hosts", []))
    done = tuple(h for iid in done_ids for h in hosts if h["instance_id"] == iid)
    remaining = tuple(h for h in hosts if h["instance_id"] not in done_ids and h["instance_id"] not in data.get("failed", []))
    return Stepped(run_id=run_id, ref=start.get("ref", ""), sha=start.get("sha", ""), batch_size=int(start.get("batch_size", 1)),
                   after_batch=int(data.get("after_batch", 1)), started=str(data.get("started", "")), done=done,
                   remaining=remaining, failed=tuple(data.get("failed", [])), ramp=tuple(data.get("ramp", [])))


def step_now(stepping: bool, batch_no: int, batches: int) -> bool:
    """Whether a --step run stops after batch `batch_no` of `batches`: after the first, unless it was the last."""
    return stepping and batch_no == 1 and batches > 1
