"""The journal: every state change of a run, written before the next step, so a crash can be undone.

Every write is conditional on the writing run still holding the lock (a transaction with a
check of the lock item), and a record is never overwritten: a run that lost its lock writes
nothing more. The `active` item names the unfinished run and the recoveries that have
worked on it since (its chain); it is deleted only when the fleet is restored.

Also the history of finished runs, which `history` and `rollback` read.

The state table (`state.table`, string keys `pk` and `sk`, made by `fab setup`) holds one
partition per environment, `pk = "env#NAME"`, with one item per kind of record, `sk`: `lock`,
`pause`, `active`, `journal#RUN#SEQ` and `run#STARTED#RUN` (the history); the queue adds
`request#ID` (each request's outcome, which `enqueue --wait` reads) and `action#AT#ID` (the worker's
action log), and a worker with --status-every `status` and `progress` (what the page shows). A run writes these
journal records in order (`rollout.core.vocabulary.Kind`; the runner writes them and `recovery.assess` reads them):
- `start`: run id, ref, SHA, batch size, who, and every planned host with its current version
  and its target; written together with the `active` item, which marks the unfinished run.
- `suspended` and `alarms_disabled` before each such call; before each batch one
  `deregistered` record with the batch's hosts and, for each, the versions it goes from and to;
  `registered` once they are back (read by the page, for out-of-service windows).
- `restored` when a failed host is back on its previous version; at the end `alarms_enabled`
  and `resumed`.
- `end` with the result, after which `active` is deleted. A run that leaves hosts out, or could
  not resume its processes or re-enable its alarms, writes `stopped` instead and keeps `active`.
- `stepped` instead of `end` when --step stopped the run after its first batch (with its processes
  resumed and alarms re-enabled): the hosts done, the batch and ramp, who; `active` keeps the run
  and carries the same data under `stepped`, and the lock is released. `continued` (written with
  `active` no longer stepped, by a --continue holding the run's lock alone) is followed by the rest
  of the same run's records; --abort is a recovery that joins the run's chain.
"""

from __future__ import annotations

import time
import uuid
from typing import Optional

from rollout.core.errors import LockLost, RecoveryNeeded
from rollout.core.vocabulary import Kind, Result
from rollout.state.store import Conflict, Store


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def _key(run_id: str, seq: int) -> str:
    return f"journal#{run_id}#{seq:06d}"


class Journal:
    """Appends the records of one run, fenced by the lock of run `fence` (normally itself).

    `joins` (the chain of an unfinished run) makes this run a recovery: `begin` adds it to
    the chain instead of opening a new one, and `finish` closes the whole chain.
    """

    def __init__(self, store: Store, run_id: str, fence: Optional[str] = None, joins: Optional[tuple[str, ...]] = None):
        self.store = store
        self.run_id = run_id
        self.fence = fence
        self.joins = joins
        self.seq = 0

    def _write(self, *ops) -> None:
        try:
            self.store.transact(("run_id", self.fence) if self.fence else None, *ops)
        except Conflict as exc:
            if self.fence and (exc.item is None or exc.item.get("run_id") != self.fence):
                held = f"run {exc.item.get('run_id')} of {exc.item.get('who')}" if exc.item else "nobody (it was removed)"
                raise LockLost.to(held) from None
            raise

    def _record(self, kind: Kind, data: dict) -> tuple:
        self.seq += 1
        return ("put", _key(self.run_id, self.seq), {"type": Kind(kind).value, "data": data, "at": time.time()},
                "attribute_not_exists(sk)", None)

    def begin(self, data: dict) -> None:
        """Open the run (or join the chain being recovered) and write its `start` record."""
        start = self._record(Kind.START, data)
        if self.joins:
            first, *rest = self.joins
            active = ("put", "active", {"run_id": first, "since": time.time(), "data": {"recoveries": [*rest, self.run_id]}},
                      "run_id = :first", {"first": first})
        else:
            active = ("put", "active", {"run_id": self.run_id, "since": time.time(), "data": {"recoveries": []}},
                      "attribute_not_exists(pk)", None)
        try:
            self._write(active, start)
        except Conflict:
            if (item := self.store.get(_key(self.run_id, 1))) is not None and item.get("type") == Kind.START:
                return  # a retried write whose first attempt had succeeded
            if self.joins:
                raise RecoveryNeeded(f"run {self.joins[0]} is no longer the unfinished run; run fab recover again") from None
            run = unfinished(self.store)
            raise RecoveryNeeded(f"run {run or '?'} did not finish; restore the fleet first with: fab recover --env=ENV") from None

    def write(self, kind: Kind, data: dict) -> None:
        record = self._record(kind, data)
        try:
            self._write(record)
        except Conflict:
            if self.store.get(record[1]) is None:
                raise
            # a retried write whose first attempt had succeeded

    def step(self, data: dict) -> None:
        """Write `stepped` and mark the run, still unfinished, as waiting at a step (in `active`, for status and refusals)."""
        record = self._record(Kind.STEPPED, data)
        active = ("put", "active", {"run_id": self.run_id, "since": time.time(), "data": {"recoveries": [], "stepped": data}},
                  "run_id = :run", {"run": self.run_id})
        self._write_once(record, active)

    def take_step(self, data: dict) -> None:
        """Continue a run that waits at a step: `continued` after its records, and `active` no longer marked stepped.

        The caller holds the run's lock alone (taken with `exclusive`), so no one else continues it.
        """
        self.seq = len(records(self.store, self.run_id))
        record = self._record(Kind.CONTINUED, data)
        active = ("put", "active", {"run_id": self.run_id, "since": time.time(), "data": {"recoveries": []}},
                  "run_id = :run", {"run": self.run_id})
        self._write_once(record, active)

    def _write_once(self, record: tuple, *ops) -> None:
        """Write `record` with `ops` atomically; a retried write whose first attempt had succeeded is not an error."""
        try:
            self._write(record, *ops)
        except Conflict:
            if (item := self.store.get(record[1])) is None or item.get("type") != record[2]["type"]:
                raise

    def finish(self, result: Result) -> None:
        """Write `end` and close the run, or, for a recovery, every run of its chain."""
        ops = [self._record(Kind.END, {"result": Result(result).value})]
        first = self.joins[0] if self.joins else self.run_id
        if self.joins:
            seq = len(records(self.store, first)) + 1
            ops.append(("put", _key(first, seq), {"type": Kind.END.value, "at": time.time(),
                                                  "data": {"result": Result.RECOVERED.value, "by": self.run_id}},
                        "attribute_not_exists(sk)", None))
        ops.append(("delete", "active", "run_id = :run", {"run": first}))
        try:
            self._write(*ops)
        except Conflict:
            if (item := self.store.get(ops[0][1])) is None or item.get("type") != Kind.END:
                raise
            # a retried write whose first attempt had succeeded


def chain(store: Store) -> Optional[tuple[str, ...]]:
    """The unfinished run followed by the recoveries that worked on it, in order; None if there is none."""
    item = store.get("active")
    if not item:
        return None
    return (item["run_id"], *((item.get("data") or {}).get("recoveries") or ()))


def stepped(store: Store) -> Optional[dict]:
    """The `stepped` record's data of the unfinished run if it waits at a step (--step), else None."""
    item = store.get("active")
    return ((item or {}).get("data") or {}).get("stepped")


def unfinished(store: Store) -> Optional[str]:
    """The run id of the environment's unfinished run, if any."""
    item = store.get("active")
    return item["run_id"] if item else None


def refuse_if_unfinished(store: Store, env: str) -> None:
    item = store.get("active")
    run = item["run_id"] if item else None
    if run and ((item.get("data") or {}).get("stepped")):
        raise RecoveryNeeded(f"run {run} on {env} waits after its first batch (--step): continue it with"
                             f" fab deploy --continue --env={env}, or roll it back with fab deploy --abort --env={env}")
    if run:
        raise RecoveryNeeded(f"run {run} on {env} did not finish (controller crashed?); restore the fleet first with: fab recover --env={env}")


def records(store: Store, run_id: str) -> list[dict]:
    return store.query(f"journal#{run_id}#")


def record_run(store: Store, report, fence: Optional[str] = None) -> None:
    """Add a finished run to the history (only while run `fence` holds the lock, if given)."""
    entry = {"data": {"run_id": report.run_id, "who": report.who, "ref": report.ref, "sha": report.sha, "started": report.started,
                      "ended": report.ended, "result": str(report.result), "exit_code": report.exit_code,
                      "hosts": [h.instance_id for h in report.hosts],
                      "details": [{"instance_id": h.instance_id, "name": h.name, "batch": h.batch, "result": str(h.result),
                                   "old_version": h.old_version, "new_version": h.new_version,
                                   "out_of_service_seconds": h.out_of_service_seconds} for h in report.hosts]}}
    store.transact(("run_id", fence) if fence else None, ("put", f"run#{report.started}#{report.run_id}", entry, None, None))


def succeeded_with(runs: list[dict], sha: str) -> bool:
    """Whether any of `runs` (history entries) deployed `sha` successfully."""
    return any(r.get("sha") == sha and r.get("result") == Result.SUCCEEDED for r in runs)


def history(store: Store, limit: int = 20) -> list[dict]:
    """The most recent runs, newest first."""
    return [i["data"] for i in store.query("run#", newest_first=True, limit=limit)]


def record_action(store: Store, request: dict, outcome: str, detail: str = "") -> None:
    """Add a handled queue request (who asked for what, and what came of it) to the action log."""
    at = float(request.get("at", 0))
    store.put(f"action#{at:017.6f}#{request.get('id')}", {"data": {
        "id": request.get("id"), "action": request.get("action") or "deploy", "ref": request.get("ref", ""),
        "reason": request.get("reason", ""), "requested_by": request.get("requested_by", ""), "at": at,
        "outcome": outcome, "detail": detail[:500], "done": time.time()}})


def actions(store: Store, limit: int = 20) -> list[dict]:
    """The most recent handled requests, newest first."""
    return [i["data"] for i in store.query("action#", newest_first=True, limit=limit)]
