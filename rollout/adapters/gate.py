"""The batch gate: remote commands started ahead of time whose input is held back until the batch is out of service.

The whole protocol is here. A batch's update commands start (their SSH sessions open) while
the batch drains; each one's stdin is a `GatedStdin`, which SSH's runner holds back
(`wait_open`) until the gate opens, then sends once. A command that has no stdin of its own
first reads a `go` line (`hold`). If the gate is cancelled instead, or its `check` answers
False as a command's input is about to be sent, the command gets end-of-input and runs nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

_POLL = 0.1  # how often a held command looks whether it has ended meanwhile


class Gate:
    """Holds back commands started ahead of time: their sessions open now, they run later.

    open() lets them run; cancel() (a no-op once open) gives them end-of-input instead, so
    nothing runs: `cancelled` then means exactly that. `check`, if given, is asked again by
    each command just before its input is sent; if it answers False, that command gets
    end-of-input too (a run that lost its lock while the gate opened sends nothing).
    """

    def __init__(self, check: Optional[Callable[[], bool]] = None) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.cancelled = False
        self.opened_at: Optional[float] = None
        self.check = check

    def open(self) -> None:
        with self._lock:
            if not self.cancelled:
                self.opened_at = time.monotonic()
            self._event.set()

    def cancel(self) -> None:
        with self._lock:
            if self.opened_at is None:
                self.cancelled = True
            self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


class GatedStdin:
    """One attempt's stdin behind a Gate: `text` once the gate opens, nothing if it is cancelled."""

    def __init__(self, text: str, gate: Gate):
        self.text, self.gate, self._read = text, gate, False

    def read(self, size: int = -1) -> str:
        if self._read or self.gate.cancelled:
            return ""
        self._read = True
        if self.gate.check is not None and not self.gate.check():
            return ""
        return self.text


def hold(command: str, stdin: Optional[str]) -> tuple[str, str]:
    """(command, stdin) to send behind a gate: a command without stdin of its own first waits for a `go` line."""
    if stdin is None:
        return f'read -r go && [ "$go" = go ] && {command}', "go\n"
    return command, stdin


def wait_open(stream, finished: threading.Event) -> bool:
    """For SSH's runner, before it reads `stream`: wait while it is a GatedStdin whose gate is shut.

    False if the command ended meanwhile (nothing is to be sent); True otherwise.
    """
    if not isinstance(stream, GatedStdin):
        return True
    while not stream.gate.wait(_POLL):
        if finished.is_set():
            return False
    return True
