"""Journal writes that are retried after a first attempt that had committed."""

import pytest

from rollout.state.journal import Journal, Kind, Result
from rollout.state.store import Conflict


class CommittedOnce:
    """A store whose transaction committed once, so the retried transaction's conditions fail."""

    def __init__(self, committed: bool):
        self.items = {}
        self.committed = committed
        self.calls = 0

    def transact(self, fence, *ops):
        self.calls += 1
        if self.committed:
            for kind, sk, *rest in ops:
                if kind == "put":
                    self.items[sk] = dict(rest[0])
        raise Conflict({"run_id": "r1"})

    def get(self, sk):
        return self.items.get(sk)


def test_finish_retried_after_its_commit_had_succeeded_is_success():
    store = CommittedOnce(committed=True)
    Journal(store, "r1", fence="r1").finish(Result.SUCCEEDED)
    assert store.calls == 1 and any(i["type"] == Kind.END.value for i in store.items.values())


def test_finish_whose_condition_really_failed_is_a_conflict():
    store = CommittedOnce(committed=False)
    with pytest.raises(Conflict):
        Journal(store, "r1", fence="r1").finish(Result.SUCCEEDED)
