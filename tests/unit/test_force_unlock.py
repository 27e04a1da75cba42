"""`unlock --force`: a dead holder loses the lock at once; one that may be alive is held off past its last reusable proof."""

import os

import pytest

from rollout.core.errors import LockHeld
from rollout.state import lock as locks
from rollout.state.store import Conflict


class LockItem:
    """The state table's lock item, with the conditions rollout's lock writes use."""

    def __init__(self, item):
        self.item, self.deleted, self.renewals_by_others = item, [], 0
        self.before_put = []  # callables run before each put: someone else writing meanwhile

    def get(self, sk):
        return dict(self.item) if self.item else None

    def put(self, sk, values, condition=None, params=None):
        if self.before_put:
            self.before_put.pop(0)(self)
        p, cur = params or {}, self.item
        ok = (cur is None or cur.get("run_id") == p.get("run")
              or (cur.get("run_id") == p.get("old") and locks.renewal_token(cur) == _token(p, cur)))
        if not ok:
            raise Conflict(self.get(sk))
        self.item = dict(values)

    def update(self, sk, values, condition, params):
        if not self.item or self.item.get("run_id") != params["run"]:
            raise Conflict(self.get(sk))
        self.item.update(values)

    def delete(self, sk, condition=None, params=None):
        if condition and (not self.item or self.item.get("run_id") != params["run"]):
            raise Conflict(self.get(sk))
        old, self.item = self.item, None
        self.deleted.append(old)
        return old


def _token(params, cur):
    if "seen" not in params:
        return locks.UNVERSIONED
    return params["seen"] if cur.get("version") else f"expires_at={params['seen']!r}"


ME = locks.this_process()
ELSEWHERE = {"run_id": "r-ana", "who": "ana@laptop", "host": "laptop", "boot": "b", "pid": 4242, "start": "1",
             "version": "v1", "ttl": 30}
DEAD_HERE = {"run_id": "r-bob", "who": "bob", "host": ME.host, "boot": ME.boot, "pid": os.getpid(), "start": "not-this-one",
             "version": "v1", "ttl": 30}


def unlock(table, ttl=10.0):
    slept, said = [], []

    def sleep(seconds):
        # While it waits, the lease is the breaker's: the old holder's renewal fails and nobody else gets it.
        assert table.item["run_id"].startswith(locks.BREAKER)
        with pytest.raises(Conflict):
            table.update("lock", {"version": "v2"}, "run_id = :run", {"run": "r-ana"})
        slept.append(seconds)

    held = locks.force_unlock(table, ttl=ttl, who="ops", say=said.append, sleep=sleep)
    return held, slept, said


def test_no_lock_is_nothing_to_do():
    assert unlock(LockItem(None)) == (None, [], [])


def test_a_run_dead_on_this_machine_loses_the_lock_at_once():
    table = LockItem(dict(DEAD_HERE))
    held, slept, _ = unlock(table)
    assert held["run_id"] == "r-bob" and slept == [] and table.item is None


@pytest.mark.parametrize("holder, ttl, wait", [
    (ELSEWHERE, 10.0, 15.0),                                      # the holder's ttl (30) is the longer: half of it
    ({**ELSEWHERE, "ttl": 4}, 10.0, 5.0),                         # the inventory's is: half of that
    ({k: v for k, v in ELSEWHERE.items() if k not in ("version", "ttl")} | {"expires_at": 99}, 10.0, 5.0),  # an old-format lease
])
def test_a_holder_that_may_be_alive_is_held_off_for_half_a_ttl_then_the_lock_is_removed(holder, ttl, wait):
    table = LockItem(dict(holder))
    held, slept, said = unlock(table, ttl=ttl)
    assert held["run_id"] == "r-ana" and slept == [wait]
    assert "ana@laptop" in said[0] and f"holding it {wait:g}s" in said[0]
    assert table.item is None and table.deleted[-1]["run_id"].startswith(locks.BREAKER)


def test_a_breaker_left_by_a_killed_unlock_is_held_off_again_not_removed_at_once():
    # Dead on this machine, but the holder it was holding off may still be within its window.
    left = {**DEAD_HERE, "run_id": locks.BREAKER + "dead0001", "who": "ops"}
    table = LockItem(dict(left))
    held, slept, _ = unlock(table)
    assert held["run_id"] == left["run_id"] and slept == [15.0] and table.item is None


def test_a_holder_renewing_meanwhile_is_looked_at_again():
    table = LockItem(dict(ELSEWHERE))
    table.before_put = [lambda t: t.item.update(version="v9")]  # renewed between our read and our takeover
    held, slept, _ = unlock(table)
    assert held["version"] == "v9" and slept == [15.0] and table.item is None


def test_a_holder_renewing_every_time_is_alive_and_left_alone():
    table = LockItem(dict(ELSEWHERE))
    table.before_put = [lambda t, n=n: t.item.update(version=f"v{n}") for n in range(10)]
    with pytest.raises(LockHeld, match="alive"):
        unlock(table)
    assert table.item["run_id"] == "r-ana" and table.deleted == []


def test_an_unlock_interrupted_while_holding_off_leaves_the_lock_held_not_free():
    table = LockItem(dict(ELSEWHERE))

    def interrupted(seconds):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        locks.force_unlock(table, ttl=10.0, who="ops", sleep=interrupted)
    assert table.item["run_id"].startswith(locks.BREAKER) and table.deleted == []
