"""The rollout's decisions as functions of data: batch sizes along a ramp, the next batch and the
capacity rule, the failure budget, what a stop leads to, and which hosts a rollback returns.

Nothing here does I/O or reads a clock. The runner asks, then does what the answer says; each
function is tested with tables of cases (tests/unit/test_policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from rollout.core.errors import CapacityFloor, DeployFailed, Interrupted, Paused, RolledBack, RolloutError, Stepped
from rollout.core.sizes import Ramp, Size, batch_hosts
from rollout.core.vocabulary import HostResult, NOT_ROLLED_BACK, Phase, Result, Stop

def batch_size(ramp: Ramp, index: int, total: int) -> int:
    """Hosts in batch `index` (0-based, within a phase) among `total` selected hosts: the ramp's entry,
    its last entry once past its end; at least 1, at most `total`."""
    return batch_hosts(ramp[min(index, len(ramp) - 1)], total)


def batch_sizes(ramp: Ramp, hosts: int, total: int, start: int = 0, left_out: int = 0) -> list[int]:
    """The sizes of the batches that `hosts` hosts still take, from batch `start` on, when `left_out`
    failed hosts keep their slots (see `next_batch`); stops short where no room is left."""
    sizes = []
    while hosts > 0:
        take = min(hosts, batch_size(ramp, start + len(sizes), total) - left_out)
        if take <= 0:
            break
        sizes.append(take)
        hosts -= take
    return sizes


def budget(max_failures: Size, hosts: int) -> int:
    """Hosts that may fail among `hosts`: the count, or the percentage rounded down."""
    return max_failures.of(hosts)


def stoppable(phase: Phase) -> bool:
    """Whether a pause or a signal stops this phase: a rollback or a recovery restores the fleet, so it finishes."""
    return phase is Phase.DEPLOY


@dataclass(frozen=True)
class Next:
    """The next move between batches: take the first `take` hosts of the queue, or stop (`stop`, `why`)."""

    take: int = 0
    stop: Optional[Stop] = None
    why: str = ""


def first_out(queue: Sequence[str], out_of_service: frozenset[str] | set[str]) -> int:
    """How many hosts at the head of `queue` are already out of service."""
    n = 0
    for h in queue:
        if h not in out_of_service:
            break
        n += 1
    return n


def next_batch(*, phase: Phase, queue: Sequence[str], size: int, left_out: int = 0, ceiling: int = 0,
               out_of_service: frozenset[str] | set[str] = frozenset(), done: int = 0, env: str = "",
               interrupted: Optional[str] = None, lock_lost: Optional[str] = None, paused: Optional[str] = None) -> Next:
    """What to do before the next batch of `phase`, with `queue` (instance ids) still to do.

    The capacity rule: no more hosts are out of service at once than `size`, and each of the
    `left_out` failed hosts that stayed out keeps its slot. Hosts already out of service at the
    head of the queue (a recovery orders them first) join the batch whatever the room, since
    restoring them takes nothing more out; they use the room up first. `done` is the number of
    batches run so far; `interrupted` the signal's name, `lock_lost` the new holder, `paused`
    the pause in words, when there is one (a pause or a signal stops only a stoppable phase).
    `ceiling` is the most hosts this run already had out at once (a rollback's largest deployed
    batch): left-out hosts then take their slots from it, so a ramp's small first batches, rolled
    back last, are never starved by a host left out of a larger one.
    """
    if interrupted and stoppable(phase):
        return Next(stop=Stop.INTERRUPTED, why=f"interrupted by {interrupted} after batch {done}: the batch in hand was"
                                               f" finished; {len(queue)} host(s) were not updated")
    if lock_lost:
        return Next(stop=Stop.LOCK_LOST, why=lock_lost)
    if paused and stoppable(phase):
        return Next(stop=Stop.PAUSED, why=f"{env} was {paused}; stopped after batch {done}")
    room = min(size, max(size, ceiling) - left_out)
    take = min(len(queue), max(first_out(queue, out_of_service), room))
    if take <= 0:
        return Next(stop=Stop.FAILED, why=f"{left_out} failed host(s) are out of the load balancers, which is the whole batch size")
    return Next(take=take)


def over_budget(*, phase: Phase, failures: int, allowed: int, first: str = "") -> Next:
    """After a batch: stop once `failures` (so far, this run) exceed the `allowed` budget; only a deploy stops so."""
    if phase is Phase.DEPLOY and failures > allowed:
        return Next(stop=Stop.FAILED, why=f"{failures} host(s) failed (max_failures={allowed}); first: {first}")
    return Next()


def restores(phase: Phase, previous: Optional[str], target: Optional[str]) -> bool:
    """Whether a host that failed its update goes back to `previous` at once: only in a deploy, and only
    to a known version other than the one it failed to reach (`target` None: any known version, as in a drill)."""
    return phase is Phase.DEPLOY and bool(previous) and previous != target


#: Steps done on the balancers for a whole batch; a failure there leaves the batch's hosts where it found them.
BALANCER_STEPS = ("deregister", "drain", "register", "wait_healthy")
#: The batch as a whole failed: a balancer step, or the lock could not be proven mid-batch.
BATCH = "batch"


def after_failure(*, phase: Phase, step: str, previous: Optional[str], target: str, restored: Optional[bool] = None,
                  current: HostResult = HostResult.PENDING) -> HostResult:
    """A host's result once `step` failed for it (or for its batch, on a balancer step).

    A host that failed its own update is restored when `restores` says so, and is back in
    service only if that worked (`restored`). A balancer step that fails leaves every host of
    the batch not yet back in service out of it, for `recover`.
    """
    if step in BALANCER_STEPS or step == BATCH:
        return current if current in (HostResult.UPDATED, HostResult.ROLLED_BACK, HostResult.RESTORED) else HostResult.LEFT_OUT
    if restores(phase, previous, target) and restored:
        return HostResult.RESTORED
    return HostResult.LEFT_OUT


def updated_result(phase: Phase) -> HostResult:
    """The result of a host that a batch of `phase` updated and put back in service."""
    return HostResult.UPDATED if phase is Phase.DEPLOY else HostResult.ROLLED_BACK


def rollback_hosts(hosts: Sequence, results: dict[str, str]) -> list:
    """The hosts a rollback returns, in plan order: those updated (by instance id in `results`)."""
    return [h for h in hosts if results.get(h.instance_id) == HostResult.UPDATED]


def rolls_back(stop: Stop, on_failure: str, updated: int) -> bool:
    """Whether a stop leads to rolling the `updated` hosts back: a failure, with on_failure=rollback; a gate (a
    rollback alarm, the front end), whatever on_failure says: rolling back is what a gate is for."""
    return (stop is Stop.GATE or (stop is Stop.FAILED and on_failure == "rollback")) and updated > 0


def stranded(hosts: Sequence) -> list[str]:
    """Names of hosts (report records) that may be out of service or not on their previous version: the run stays open."""
    return [h.name or h.instance_id for h in hosts if h.result == HostResult.LEFT_OUT or h.error.startswith(NOT_ROLLED_BACK)]


@dataclass(frozen=True)
class Verdict:
    """How a run's roll ended: its result, the error to raise (None: it succeeded) and what to say."""

    result: Result
    error: Optional[type[RolloutError]] = None
    why: str = ""
    warning: str = ""

    @property
    def exit_code(self) -> int:
        return self.error.exit_code if self.error else 0


_STOPPED = {Stop.PAUSED: (Result.PAUSED, Paused), Stop.INTERRUPTED: (Result.INTERRUPTED, Interrupted),
            Stop.FAILED: (Result.FAILED, DeployFailed), Stop.CAPACITY: (Result.FAILED, CapacityFloor)}


def verdict(*, phase: Phase, stop: Optional[Stop], why: str = "", on_failure: str = "rollback", env: str = "",
            failures: int = 0, allowed: int = 0, rolled_back: Optional[bool] = None, rollback_why: str = "",
            left_out: Sequence[str] = ()) -> Verdict:
    """The outcome of a run's roll forward (`phase` deploy or recover) that stopped with `stop` (None: every host done).

    `rolled_back` says whether the rollback that `rolls_back` asked for finished (None: none ran),
    with `rollback_why` when it did not; `left_out` names the hosts out of the balancers once it is over.
    """
    if phase is Phase.RECOVER:
        if stop is None:
            return Verdict(Result.RECOVERED)
        return Verdict(Result.FAILED, DeployFailed, f"{why}; the run stays open: run fab recover --env={env} again once fixed")
    if stop is None:
        warning = (f"{failures} host(s) failed within max_failures={allowed}; they run their previous version"
                   if failures else "")
        return Verdict(Result.SUCCEEDED, warning=warning)
    if stop is Stop.LOCK_LOST:
        raise ValueError("a lost lock is raised, not judged")
    if rolled_back is False:
        return Verdict(Result.FAILED, DeployFailed, f"{why}; rollback did not finish either: {rollback_why}; see the summary")
    if (stop is Stop.GATE or (stop is Stop.FAILED and on_failure == "rollback")) and not left_out:
        return Verdict(Result.ROLLED_BACK, RolledBack, f"{why}; every host touched was returned to its previous version and is serving")
    if stop is Stop.STEPPED and not left_out:
        return Verdict(Result.STEPPED, Stepped, f"{why}: continue with: fab deploy --continue --env={env}, or roll back with:"
                                                f" fab deploy --abort --env={env}")
    if left_out:
        why += f"; out of the load balancers: {', '.join(left_out)} (fix them, then deploy again)"
    result, error = _STOPPED.get(stop, (Result.FAILED, DeployFailed))  # a gate or a step that left a host out
    return Verdict(result, error, why)


def batch_count(done: int, ramp: Ramp, remaining: int, total: int, left_out: int = 0) -> int:
    """The batches a phase runs in all, `done` of them run: those done and those the `remaining` hosts still take,
    each `left_out` host keeping its slot (so a label never reads "batch 3 of 2")."""
    return done + len(batch_sizes(ramp, remaining, total, start=done, left_out=left_out))
