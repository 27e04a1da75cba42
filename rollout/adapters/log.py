"""The process's logging: one setup, three levels of detail (-q, default, -v)."""

from __future__ import annotations

import logging
import sys

QUIET, NORMAL, VERBOSE = -1, 0, 1

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _refused_channels(record: logging.LogRecord) -> bool:
    """Drop paramiko's error for a refused channel: the app not listening yet is an observation the runner judges."""
    message = record.getMessage()
    return not ("channel" in message and "open FAILED" in message)


def verbosity(verbose: bool = False, quiet: bool = False) -> int:
    """The level of detail from the -v/--verbose and -q/--quiet flags (quiet wins)."""
    return QUIET if quiet else VERBOSE if verbose else NORMAL


def setup(level: int = NORMAL) -> None:
    """Send log records to stderr with the detail `level` asks for (QUIET, NORMAL or VERBOSE).

    QUIET: errors only. NORMAL: warnings (every retry, every host failure), nothing from paramiko.
    VERBOSE: rollout's debug records and paramiko's own log. Safe to call more than once: the last call wins.
    """
    root = logging.getLogger()
    if not any(getattr(h, "_rollout", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._rollout = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel({QUIET: logging.ERROR, NORMAL: logging.WARNING}.get(level, logging.DEBUG))
    transport = logging.getLogger("paramiko.transport")
    if _refused_channels not in transport.filters:
        transport.addFilter(_refused_channels)
    # paramiko's own log (DEBUG for the transport) shows with -v, and only then: its transport
    # thread logs a traceback for errors rollout reports itself in one line (a bastion that does
    # not speak SSH printed ~25 lines of it before rollout's own).
    logging.getLogger("paramiko").setLevel(logging.DEBUG if level >= VERBOSE else logging.CRITICAL + 1)
    for chatty in ("botocore", "boto3", "urllib3", "invoke", "fabric"):  # their debug records would drown rollout's
        logging.getLogger(chatty).setLevel(logging.WARNING)
