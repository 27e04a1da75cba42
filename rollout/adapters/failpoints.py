"""Named points where a fault-injection test makes the controller die, stop or get a signal at an exact step.

ROLLOUT_CRASH_AT=POINT: the process kills itself with SIGKILL the first time it reaches
POINT, as if by kill -9. ROLLOUT_SIGNAL_AT=POINT:SIGNAME (SIGTERM, SIGINT, SIGSTOP, ...): it
sends itself that signal there instead, once; SIGSTOP freezes it until a SIGCONT. POINT@N
means the Nth time the point is reached (batch N, for the per-batch points). Unset (always,
in real use) they do nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

POINTS = ("after-suspend", "after-deregister", "after-update", "after-health", "after-register")
# Besides POINTS: "draining" (the batch was just deregistered), "updating" (the batch's update
# scripts were just let go), "after-lock" (a deploy holds the lock, nothing journaled yet), and
# "after-step" (a --step run has journaled its step and still holds its lock).

_seen: Counter = Counter()
_lock = threading.Lock()


def _matches(spec: str, name: str, count: int) -> bool:
    point, _, nth = spec.partition("@")
    return point == name and count == (int(nth) if nth else 1)


def reached(name: str) -> None:
    crash, signal_at = os.environ.get("ROLLOUT_CRASH_AT"), os.environ.get("ROLLOUT_SIGNAL_AT")
    if not crash and not signal_at:
        return
    with _lock:
        _seen[name] += 1
        count = _seen[name]
    if crash and _matches(crash, name, count):
        os.kill(os.getpid(), signal.SIGKILL)
    if signal_at:
        spec, _, signame = signal_at.partition(":")
        if _matches(spec, name, count):
            os.kill(os.getpid(), signal.Signals[signame])
