"""An idle worker stops on SIGTERM even when the KeyboardInterrupt its handler raised was lost."""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from rollout.adapters import interrupts
from rollout.orchestration import worker


def test_an_idle_worker_stops_once_terminated_even_if_the_interrupt_was_lost(monkeypatch):
    calls = []

    def idle_poll(inv, output, wait=20, control=False):
        calls.append(1)
        if len(calls) == 1:
            interrupts.TERMINATED.set()  # the handler ran; its KeyboardInterrupt died in a finalizer
        return None

    monkeypatch.setattr(worker, "process_one", idle_poll)
    monkeypatch.setattr(worker, "_secret", lambda inv: "s")
    monkeypatch.setattr(worker, "_beside", lambda *a: nullcontext())
    try:
        with pytest.raises(KeyboardInterrupt):
            worker.run(object(), None, wait=0)
    finally:
        interrupts.TERMINATED.clear()
    assert len(calls) == 1
