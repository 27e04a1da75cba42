"""The journal: every state change of a run, written before the next step, so a crash can be undone.

Also the history of finished runs, which `history` and `rollback` read.
"""

from __future__ import annotations

import time
import uuid
from typing import Optional

from rollout.errors import RecoveryNeeded
from rollout.store import Conflict, Store


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class Journal:
    """Appends the records of one run; `begin` marks the environment as having an unfinished run."""

    def __init__(self, store: Store, run_id: str):
        self.store = store
        self.run_id = run_id
        self.seq = 0

    def begin(self, data: dict) -> None:
        try:
            self.store.put("active", {"run_id": self.run_id, "since": time.time()}, condition="attribute_not_exists(pk)")
        except Conflict as exc:
            if exc.item and exc.item.get("run_id") == self.run_id:
                self.write("start", data)  # a retried write whose first attempt had succeeded
                return
            raise RecoveryNeeded(
                f"run {exc.item.get('run_id') if exc.item else '?'} did not finish; restore the fleet first with: fab recover --env=ENV"
            ) from None
        self.write("start", data)

    def write(self, kind: str, data: dict) -> None:
        self.seq += 1
        self.store.put(f"journal#{self.run_id}#{self.seq:06d}", {"type": kind, "data": data, "at": time.time()})

    def finish(self, result: str) -> None:
        self.write("end", {"result": result})
        self.store.delete("active", condition="run_id = :run", params={"run": self.run_id})


def unfinished(store: Store) -> Optional[str]:
    """The run id of the environment's unfinished run, if any."""
    item = store.get("active")
    return item["run_id"] if item else None


def refuse_if_unfinished(store: Store, env: str) -> None:
    run = unfinished(store)
    if run:
        raise RecoveryNeeded(f"run {run} on {env} did not finish (controller crashed?); restore the fleet first with: fab recover --env={env}")


def records(store: Store, run_id: str) -> list[dict]:
    return store.query(f"journal#{run_id}#")


def record_run(store: Store, report) -> None:
    """Add a finished run to the history."""
    store.put(f"run#{report.started}#{report.run_id}", {
        "data": {"run_id": report.run_id, "who": report.who, "ref": report.ref, "sha": report.sha, "started": report.started,
                 "ended": report.ended, "result": report.result, "exit_code": report.exit_code,
                 "hosts": [h.instance_id for h in report.hosts]},
    })


def succeeded_with(runs: list[dict], sha: str) -> bool:
    """Whether any of `runs` (history entries) deployed `sha` successfully."""
    return any(r.get("sha") == sha and r.get("result") == "succeeded" for r in runs)


def history(store: Store, limit: int = 20) -> list[dict]:
    """The most recent runs, newest first."""
    return [i["data"] for i in store.query("run#", newest_first=True, limit=limit)]
