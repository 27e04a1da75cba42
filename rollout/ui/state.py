"""What the page shows of one environment, read through rollout's public functions (state table and git only)."""

from __future__ import annotations

import threading
import time
from typing import Optional

from rollout.adapters import refs
from rollout.config.inventory import Inventory
from rollout.core.errors import RolloutError
from rollout.core.vocabulary import Kind
from rollout.state import journal as journals
from rollout.state import lock as locks
from rollout.state import pause as pauses
from rollout.state.store import open_store
from rollout.ui import model


class EnvState:
    """One environment's readers; the store is opened on first use, so one broken environment
    shows its error on its own tab."""

    def __init__(self, inv: Inventory):
        self.inv = inv
        self._store = None
        self._builds: tuple[float, list[dict]] = (0.0, [])
        self.builds_error = ""
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inv.name

    @property
    def store(self):
        with self._lock:
            if self._store is None:
                self._store = open_store(self.inv)
            return self._store

    def live(self, now: Optional[float] = None) -> dict:
        """Hosts (as the worker last published them), lock, pause, the run in hand and the last run."""
        now = time.time() if now is None else now
        store = self.store
        status = store.get("status")
        active = journals.unfinished(store)
        records = journals.records(store, active) if active else []
        start = next((r for r in records if r.get("type") == Kind.START), None)
        history = journals.history(store, limit=20)
        progress = store.get("progress") if active else None
        return {
            "env": self.name,
            "protected": self.inv.protected,
            "status": status["data"] if status else None,
            "status_age": round(now - status["at"]) if status else None,
            "lock": locks.holder(store),
            "pause": pauses.current(store),
            "active": active,
            "stepped": journals.stepped(store) if active else None,
            "run": start["data"] if start else None,
            "records": records,
            "eta": model.eta(records, now) if records else None,
            "timeline": model.timeline(records, now=now) if records else None,
            "progress": (progress or {}).get("data"),
            "desired": model.desired(history, start),
            "last": history[0] if history else None,
            "actions": journals.actions(store, limit=8),
        }

    def history(self, limit: int = 20) -> list[dict]:
        return journals.history(self.store, limit=limit)

    def run(self, run_id: str) -> Optional[dict]:
        """A finished run's history entry with its journal and timeline, or None if unknown."""
        entry = next((r for r in journals.history(self.store, limit=500) if r.get("run_id") == run_id), None)
        if entry is None:
            return None
        records = journals.records(self.store, run_id)
        return {**entry, "records": records, "timeline": model.timeline(records, entry.get("details"))}

    def builds(self, max_age: float = 30) -> list[dict]:
        """Deployable builds: the repository's branches and tags (git apps; read at most every `max_age` s)."""
        if self.inv.app.kind != "git":
            return []
        at, cached = self._builds
        if time.monotonic() - at > max_age:
            try:
                cached, self.builds_error = model.builds(refs.list_remote(self.inv.app.repository, timeout=20)), ""
            except RolloutError as exc:  # shown on the page: a ref can still be typed in
                cached, self.builds_error = [], str(exc)
            self._builds = (time.monotonic(), cached)
        return cached
