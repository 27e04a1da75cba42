"""A fence reuses a recent proof of the lease: any of our writes that rewrote its version, timed from that write's start."""

import time

import pytest

from rollout.core.errors import LockLost, LockUnproven
from rollout.state import lock as locks
from rollout.state.store import Conflict

TTL = 20.0  # proofs are reused for TTL/4 = 5 s


class Table:
    """The lock item's store on an injected clock: counts writes; `took` seconds pass during each; `fail` is raised by the next."""

    def __init__(self, now: list, took: float = 0.0):
        self.now, self.took, self.writes, self.fail, self.during = now, took, 0, None, None

    def _write(self):
        self.writes += 1
        self.now[0] += self.took
        if self.during:
            self.during, during = None, self.during
            during()
        if self.fail is not None:
            raise self.fail

    def put(self, *args, **kwargs):
        self._write()

    def update(self, *args, **kwargs):
        self._write()

    def delete(self, *args, **kwargs):
        return None


@pytest.fixture
def held():
    """A lease acquired at t=0 on an injected clock, and its table; released (heartbeat stopped) after the test."""
    now = [0.0]
    table = Table(now)
    lease = locks.Lock(table, "run-a", "ana", "main", ttl=TTL, clock=lambda: now[0])
    lease.acquire()
    yield lease, table, now
    lease.release()


def at(now: list, t: float) -> None:
    now[0] = t


# (what happens, at time t, the write taking `took` seconds) -> writes it costs; the lease was acquired at 0.
@pytest.mark.parametrize("steps, writes", [
    ([("fence", 1.0, 0)], [0]),                                     # within the window of the acquire: no call
    ([("fence", 4.9, 0)], [0]),
    ([("fence", 5.0, 0)], [1]),                                     # past it: renewed, one call
    ([("fence", 5.0, 0), ("fence", 9.9, 0)], [1, 0]),               # a fence's own renewal is a proof
    ([("fence", 5.0, 3.0), ("fence", 9.9, 0)], [1, 0]),             # timed from its start (5), not its end (8)
    ([("fence", 5.0, 3.0), ("fence", 10.0, 0)], [1, 1]),            # ...so 2 s after its end it is already stale
    ([("beat", 4.0, 0), ("fence", 8.0, 0)], [1, 0]),                # a heartbeat renewal refreshes the proof
    ([("beat", 4.0, 0), ("fence", 9.0, 0)], [1, 1]),
    ([("fence", 1.0, 0), ("fence", 2.0, 0), ("fence", 3.0, 0)], [0, 0, 0]),  # the batch's fences: no call at all
    ([("fence", 3600.0, 0)], [1]),                                  # the clock jumped (frozen, or the machine slept)
])
def test_a_fence_reuses_a_proof_only_within_a_quarter_ttl_of_its_start(held, steps, writes):
    lease, table, now = held
    spent = []
    for what, t, took in steps:
        at(now, t)
        table.took, before = took, table.writes
        lease.renew() if what == "beat" else lease.fence()
        spent.append(table.writes - before)
    assert spent == writes and lease.lost is None


def test_the_acquire_is_timed_from_its_start():
    now = [0.0]
    table = Table(now, took=4.0)
    lease = locks.Lock(table, "run-a", "ana", "main", ttl=TTL, clock=lambda: now[0])
    lease.acquire()
    try:
        table.took = 0.0
        at(now, 5.0)  # 1 s after the put ended, 5 s after it started
        lease.fence()
        assert table.writes == 2
    finally:
        lease.release()


def test_an_older_write_ending_last_does_not_move_the_proof_back(held):
    lease, table, now = held
    at(now, 6.0)
    # While the fence's renewal (started at 6) is in flight, the heartbeat starts one at 8 that ends first.
    table.during = lambda: (at(now, 8.0), lease.renew())
    lease.fence()
    at(now, 12.5)  # 6.5 s after the fence's start, 4.5 s after the heartbeat's
    before = table.writes
    lease.fence()
    assert table.writes == before


def test_a_known_loss_raises_at_once_without_a_call(held):
    lease, table, now = held
    lease.lost = "bo on ctl-2"
    at(now, 1.0)
    with pytest.raises(LockLost):
        lease.fence()
    assert table.writes == 1  # the acquire only


def test_a_lease_taken_over_is_never_reused(held):
    lease, table, now = held
    # The heartbeat finds it taken over, within the window of the acquire's proof.
    table.fail = Conflict({"run_id": "run-b", "who": "bo"})
    at(now, 1.0)
    with pytest.raises(LockLost):
        lease.renew()
    at(now, 2.0)
    with pytest.raises(LockLost):
        lease.fence()
    assert table.writes == 2 and "bo" in lease.lost


def test_a_frozen_process_renews_on_its_next_fence_and_finds_the_lease_lost(held):
    lease, table, now = held
    at(now, 1.0)
    lease.fence()  # reused
    # SIGSTOPped for an hour; meanwhile a recover watched the version for a ttl and took the lease over.
    table.fail = Conflict({"run_id": "run-r", "who": "bo"})
    at(now, 3601.0)
    with pytest.raises(LockLost):
        lease.fence()
    assert table.writes == 2 and lease.lost
    with pytest.raises(LockLost):  # and it changes nothing more, without asking again
        lease.fence()
    assert table.writes == 2


def test_a_renewal_that_got_no_answer_is_no_proof(held):
    lease, table, now = held
    table.fail = ConnectionError("Could not connect to the endpoint URL")
    at(now, 6.0)
    with pytest.raises(LockUnproven):
        lease.fence()
    at(now, 6.5)
    table.fail = None
    lease.fence()
    assert table.writes == 3 and lease.lost is None


def test_a_released_lease_is_not_reused(held):
    lease, table, now = held
    lease.release()
    table.fail = Conflict(None)
    at(now, 1.0)
    with pytest.raises(LockLost):
        lease.fence()
    assert table.writes == 2


def test_no_proof_is_reused_when_asked_for_none():
    now = [0.0]
    table = Table(now)
    lease = locks.Lock(table, "run-a", "ana", "main", ttl=TTL, clock=lambda: now[0], reuse=0.0)
    for t in (0.0, 0.1, 0.2):
        at(now, t)
        lease.fence()
    assert table.writes == 3


def test_the_window_is_measured_on_a_clock_that_counts_suspend():
    clock = locks.suspend_aware_clock(time)
    assert clock is not None
    a, boot, b = clock(), time.clock_gettime(time.CLOCK_BOOTTIME), clock()
    assert a <= boot <= b
    lease = locks.Lock(Table([0.0]), "run-a", "ana", "main", ttl=TTL)
    assert lease.reuse == TTL / 4


def test_without_such_a_clock_every_fence_renews(monkeypatch):
    class NoBoottime:
        """A time module without CLOCK_BOOTTIME (macOS, Windows)."""

    assert locks.suspend_aware_clock(NoBoottime) is None
    monkeypatch.setattr(locks, "BOOT_CLOCK", None)
    lease = locks.Lock(Table([0.0]), "run-a", "ana", "main", ttl=TTL)
    assert lease.reuse == 0.0 and lease.clock is time.monotonic


def test_a_lock_removed_by_unlock_force_is_found_lost_by_the_first_renewal_after_the_window(held):
    # unlock --force deletes the item at once (no waiter watches a ttl): a live holder learns it at its next write.
    lease, table, now = held
    table.fail = Conflict(None)
    at(now, 4.9)
    lease.fence()  # still within a quarter ttl of the acquire: no call, nothing noticed
    at(now, 5.0)
    with pytest.raises(LockLost):
        lease.fence()
    assert table.writes == 2 and lease.lost == "nobody (it was removed)"
