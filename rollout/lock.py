"""One rollout per environment: a lock item taken atomically, renewed while held, expiring if abandoned."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Optional

from rollout.errors import LockHeld
from rollout.store import Conflict, Store

log = logging.getLogger("rollout.lock")


def describe(item: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(item.get("since", 0)))
    left = max(0, int(item.get("expires_at", 0) - time.time()))
    return f"{item.get('who')} on {item.get('host')} (run {item.get('run_id')}, ref {item.get('ref')}, since {since}, expires in {left}s unless renewed)"


class Lock:
    """The environment's deploy lock, held by one run id and renewed by a heartbeat thread."""

    def __init__(self, store: Store, run_id: str, who: str, ref: str, ttl: float = 60):
        self.store = store
        self.run_id = run_id
        self.who = who
        self.ref = ref
        self.ttl = ttl
        self.lost: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def acquire(self, take_over: Optional[str] = None) -> None:
        """Take the lock if free, expired, or held by run `take_over` (a crashed run being recovered)."""
        now = time.time()
        cond = "attribute_not_exists(pk) OR expires_at < :now OR run_id = :run"
        params = {"now": now, "run": self.run_id}
        if take_over:
            cond += " OR run_id = :dead"
            params["dead"] = take_over
        try:
            self.store.put("lock", {"run_id": self.run_id, "who": self.who, "host": socket.gethostname(), "ref": self.ref,
                                    "since": now, "expires_at": now + self.ttl}, condition=cond, params=params)
        except Conflict as exc:
            # A retried write whose first attempt succeeded finds the lock already ours.
            if not exc.item or exc.item.get("run_id") != self.run_id:
                holder = describe(exc.item) if exc.item else "someone (the lock changed while we looked)"
                raise LockHeld(f"another rollout holds the lock: {holder}; wait for it, or if it is dead: fab unlock --env=ENV --force") from None
        self._thread = threading.Thread(target=self._heartbeat, name="lock-heartbeat", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.store.update("lock", {"expires_at": time.time() + self.ttl}, condition="run_id = :run", params={"run": self.run_id})
            except Conflict as exc:
                self.lost = describe(exc.item) if exc.item else "nobody (it was removed)"
                log.error("lost the deploy lock; it is now held by %s; stopping after the batch in hand", self.lost)
                return
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried at the next beat
                log.warning("could not renew the deploy lock: %s", exc)

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still ours."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        try:
            self.store.delete("lock", condition="run_id = :run", params={"run": self.run_id})
        except Conflict:
            log.warning("the deploy lock was no longer ours at release")


def force_unlock(store: Store) -> Optional[dict]:
    """Remove the lock whoever holds it; return what it held."""
    return store.delete("lock")


def holder(store: Store) -> Optional[dict]:
    item = store.get("lock")
    return item if item and item.get("expires_at", 0) > time.time() else None
