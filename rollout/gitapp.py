"""The git app strategy: each remote step is a shell command plus a pure parser of its output.

Every value that reaches the remote shell goes through shlex.quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from shlex import quote
from typing import Optional

SHA_LINE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Processes:
    """The app's primary and its worker pids, as seen on the host."""

    primary: Optional[int]
    workers: frozenset[int]


def version_command(path: str) -> str:
    return f"git -C {quote(path)} rev-parse --verify --quiet HEAD"


def parse_version(output: str) -> Optional[str]:
    """The SHA printed by `git rev-parse HEAD`, or None."""
    line = output.strip().splitlines()[-1].strip() if output.strip() else ""
    return line if SHA_LINE.match(line) else None


def fetch_command(path: str, sha: str) -> str:
    """Make `sha` present in the checkout without changing what is checked out."""
    p, s = quote(path), quote(sha)
    has = f"git -C {p} cat-file -e {quote(sha + '^{commit}')} 2>/dev/null"
    return f"{has} || git -C {p} fetch --quiet origin {s} || git -C {p} fetch --quiet --tags origin; {has}"


def checkout_command(path: str, sha: str) -> str:
    """Force the working tree to exactly `sha` (detached)."""
    return f"git -C {quote(path)} checkout --quiet --force --detach {quote(sha)} && git -C {quote(path)} rev-parse HEAD"


def install_command(path: str, install: str, sha: str) -> str:
    """The inventory's install command, run in the checkout with DEPLOY_SHA set."""
    return f"cd {quote(path)} && DEPLOY_SHA={quote(sha)} sh -c {quote(install)}"


def processes_command(pid_file: str) -> str:
    """Print the primary's pid, then its children's pids, one per line."""
    f = quote(pid_file)
    return f'pid=$(cat -- {f}) && kill -0 "$pid" && echo "$pid" && (pgrep -P "$pid" || true)'


def parse_processes(output: str) -> Processes:
    pids = [int(x) for x in output.split() if x.isdigit()]
    if not pids:
        return Processes(primary=None, workers=frozenset())
    return Processes(primary=pids[0], workers=frozenset(pids[1:]))


def signal_command(pid_file: str, signal: str) -> str:
    """Send `signal` to the pid in `pid_file`, failing if no such process runs."""
    f = quote(pid_file)
    return f'pid=$(cat -- {f}) && kill -0 "$pid" && kill -s {quote(signal)} "$pid"'


def reload_command(path: str, command: str, sha: str) -> str:
    return f"cd {quote(path)} && DEPLOY_SHA={quote(sha)} sh -c {quote(command)}"


def workers_replaced(before: Processes, after: Processes, expected: Optional[int]) -> tuple[bool, str]:
    """Whether every worker from `before` is gone and enough new ones run; with the reason if not."""
    if after.primary is None:
        return False, "the primary is not running"
    left = before.workers & after.workers
    if left:
        return False, f"old worker pids still running: {', '.join(map(str, sorted(left)))}"
    want = expected if expected is not None else len(before.workers)
    if len(after.workers) < want:
        return False, f"{len(after.workers)} workers running, expected {want}"
    return True, ""
