"""Ctrl-C and SIGTERM during a rollout: ask it to stop at the next safe point instead of dying mid-step."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager


#: Set by the command's SIGTERM handler as it raises KeyboardInterrupt: Python drops an exception
#: raised while a finalizer runs ("Exception ignored"), so a loop that must end checks this too.
TERMINATED = threading.Event()


class StopRequest:
    """Set by the first SIGINT/SIGTERM; the runner checks it between steps and in every wait."""

    def __init__(self):
        self._event = threading.Event()
        self.reason = ""

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str) -> None:
        self.reason = reason
        self._event.set()

    @contextmanager
    def handling_signals(self, restoring: bool = False):
        """While inside, SIGINT and SIGTERM request a stop; a second one is ignored with a message.

        `restoring` (a recovery): every one is ignored, since stopping would leave hosts out.
        """

        def handler(signum, frame):
            name = signal.Signals(signum).name
            if restoring:
                print(f"rollout: {name} ignored: a recovery finishes restoring the fleet (if it is killed,"
                      f" the next fab recover takes over where it was)", file=sys.stderr, flush=True)
                return
            if self.requested:
                print(f"rollout: {name} ignored: already stopping, restoring the fleet", file=sys.stderr, flush=True)
                return
            print(f"rollout: {name}: stopping after the batch in hand, then restoring; further signals are ignored",
                  file=sys.stderr, flush=True)
            self.request(name)

        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)
