"""Named points where a fault-injection test makes the controller die as if by kill -9.

Set ROLLOUT_CRASH_AT to one of POINTS; the process kills itself with SIGKILL the first
time it reaches that point. Unset (always, in real use) it does nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after-suspend", "after-deregister", "after-update", "after-health", "after-register")


def reached(name: str) -> None:
    if os.environ.get("ROLLOUT_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
