"""What the worker publishes to the state table for the deployer's page, which reaches no host itself.

`status`: the environment's status document (as `fab status --json`), with when it was read.
`progress`: the run in hand's batch and each host's step, written by LiveOutput at most
every `every` seconds from a background thread, so publishing never slows a batch.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from rollout.adapters.progress import Output
from rollout.orchestration import status as statuses
from rollout.orchestration.environment import Environment
from rollout.state.store import Store

log = logging.getLogger("rollout.publish")


def publish_status(inv, store: Store) -> dict:
    """Read the environment's status (AWS and SSH, read only) and store it; return the document."""
    env = Environment(inv)
    try:
        doc = statuses.collect(env)
    finally:
        env.close()
    store.put("status", {"data": doc, "at": time.time()})
    return doc


class LiveOutput(Output):
    """An Output that also publishes the batch in hand and each host's step to the state table."""

    def __init__(self, store: Store, every: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.store, self.every = store, every
        self._state: dict = {"batch": 0, "phase": "", "hosts": {}}
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "LiveOutput":
        self._thread = threading.Thread(target=self._publisher, name="progress-publisher", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._changed.set()
        if self._thread:
            self._thread.join(timeout=10)
        try:
            self.store.delete("progress")
        except Exception as err:  # noqa: BLE001 - the page ignores progress without an active run
            log.warning("could not remove the published progress: %s", err)

    def batch_started(self, index: int, phase: str, hosts) -> None:
        super().batch_started(index, phase, hosts)
        with self._lock:
            self._state = {"batch": index, "phase": phase, "hosts": {h.instance_id: ["waiting", ""] for h in hosts}}
        self._changed.set()

    def host_step(self, host, step: str, state: str, seconds: float | None = None, detail: str = "") -> None:
        super().host_step(host, step, state, seconds, detail)
        with self._lock:
            self._state["hosts"][host.instance_id] = [step, state]
        self._changed.set()

    def _publisher(self) -> None:
        while not self._stop.is_set():
            self._changed.wait()
            self._changed.clear()
            with self._lock:
                data = {**self._state, "hosts": dict(self._state["hosts"])}
            try:
                self.store.put("progress", {"data": data, "at": time.time()})
            except Exception as err:  # noqa: BLE001 - the next change tries again
                log.warning("could not publish progress: %s", err)
            self._stop.wait(self.every)
