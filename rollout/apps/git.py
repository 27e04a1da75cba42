"""The git app strategy: each remote step is a shell command plus a pure parser of its output.

Every value that reaches the remote shell goes through shlex.quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from shlex import quote
from typing import Optional

from rollout.core import marks

SHA_LINE = re.compile(r"^[0-9a-f]{40}$")
# Seconds between the host-side checks for replaced workers.
POLL = 0.02


@dataclass(frozen=True)
class Update:
    """What the update script reported: the new HEAD, workers before and after, host-side timings."""

    head: Optional[str]
    before: "Processes"
    after: "Processes"
    seconds: dict[str, float]


@dataclass(frozen=True)
class Processes:
    """The app's primary and its worker pids, as seen on the host."""

    primary: Optional[int]
    workers: frozenset[int]


def version_command(path: str) -> str:
    """Print HEAD's SHA; fail if `path` is not a git checkout.

    A detached HEAD (as every update leaves it) holds the SHA itself: it is read with shell
    builtins, one process fewer per host read. Anything else (a branch, a .git file) asks git.
    """
    p = quote(path)
    return (f"{{ {{ h=; [ -f {p}/.git/HEAD ] && read -r h < {p}/.git/HEAD; case $h in *[!0-9a-f]*) false;; esac"
            f' && [ ${{#h}} -eq 40 ] && echo "$h"; }} || git -C {p} rev-parse --verify --quiet HEAD; }}')


def parse_version(output: str) -> Optional[str]:
    """The SHA printed by `git rev-parse HEAD`, or None."""
    line = output.strip().splitlines()[-1].strip() if output.strip() else ""
    return line if SHA_LINE.match(line) else None


REMOTE_LINE = "rollout-remote "


def fetch_command(path: str, sha: str) -> str:
    """Make `sha` present in the checkout without changing what is checked out.

    If it is still missing, name the origin's URL on stderr (see parse_fetch_error) and fail.
    """
    p, s = quote(path), quote(sha)
    has = f"git -C {p} cat-file -e {quote(sha + '^{commit}')} 2>/dev/null"
    remote = f'{{ printf \'{REMOTE_LINE}%s\\n\' "$(git -C {p} remote get-url origin 2>&1)" >&2; false; }}'
    return f"{{ {has} || git -C {p} fetch --quiet origin {s} || git -C {p} fetch --quiet --tags origin; {has} || {remote}; }}"


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def parse_fetch_error(stderr: str) -> tuple[str, str]:
    """(origin's URL without credentials, git's first error line) from a failed fetch_command's stderr."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    remote = next((ln[len(REMOTE_LINE):] for ln in lines if ln.startswith(REMOTE_LINE)), "") or "unknown"
    errors = [ln for ln in lines if not ln.startswith(REMOTE_LINE)]
    first = next((ln for ln in errors if ln.startswith(("fatal:", "error:"))), errors[0] if errors else "no error output")
    return _USERINFO.sub("", remote), first


DRIFT_UNTRACKED = "--- rollout: untracked ---"


def drift_command(path: str, sha: str) -> str:
    """Print what `checkout --force sha` would discard: tracked changes (git status -z), then untracked
    (or ignored) files at paths that `sha` adds. `sha` must be present (run after fetch_command)."""
    p, s = quote(path), quote(sha)
    return (f"git --no-optional-locks -C {p} status --porcelain=v1 -z --untracked-files=no --no-renames"
            f" && echo && echo {quote(DRIFT_UNTRACKED)}"
            f" && git -C {p} diff --name-only -z --no-renames --diff-filter=A HEAD {s} --"
            f" | xargs -0 -r git --literal-pathspecs -C {p} ls-files --others -z --")


def parse_drift(output: str) -> tuple[str, ...]:
    """Each local change as git's short status (`XY path`, `?? path` for untracked), from drift_command's output."""
    tracked, _, untracked = output.partition("\n" + DRIFT_UNTRACKED + "\n")
    changes = [e for e in tracked.split("\0") if len(e) > 3 and e[2] == " "]
    changes += [f"?? {e}" for e in untracked.split("\0") if e]
    return tuple(changes)


def processes_command(pid_file: str) -> str:
    """Print the primary's pid, then its children's pids, one per line."""
    f = quote(pid_file)
    return f'pid=$(cat -- {f}) && kill -0 "$pid" && echo "$pid" && (pgrep -P "$pid" || true)'


def parse_processes(output: str) -> Processes:
    pids = [int(x) for x in output.split() if x.isdigit()]
    if not pids:
        return Processes(primary=None, workers=frozenset())
    return Processes(primary=pids[0], workers=frozenset(pids[1:]))


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


def update_script(path: str, sha: str, *, install: Optional[str], pid_file: Optional[str], signal: Optional[str],
                  command: Optional[str], workers: Optional[int], wait: float = 10.0) -> str:
    """One remote script: checkout, install, reload, then wait on the host for the workers to be replaced.

    Waiting on the host spares a network round trip per poll; the controller still
    judges the printed pids with `workers_replaced` and checks health itself.
    Each phase prints a `mark NAME EPOCH` line so the phases can be timed.
    """
    p, s = quote(path), quote(sha)
    lines = [
        "set -e",
        marks.FUNCTION,
        "mark start",
        f"git -C {p} checkout --quiet --force --detach {s}",
        # Detached, .git/HEAD holds the SHA itself: read with a builtin instead of forking git.
        f'if [ -f {p}/.git/HEAD ]; then read -r head < {p}/.git/HEAD; else head=$(git -C {p} rev-parse HEAD); fi',
        'echo "head $head"',
        "mark checkout",
    ]
    if install:
        lines += [f"cd {p} && DEPLOY_SHA={s} sh -c {quote(install)}", "mark install"]
    if pid_file:
        f = quote(pid_file)
        want = int(workers) if workers else 0
        # Between the checkout and the end of the reload only `sleep` forks: on a busy host
        # every fork competes with the app starting its new workers. The children are read
        # from /proc with builtins; pgrep (which scans all of /proc) is the fallback for
        # kernels without /proc/PID/task/TID/children.
        lines += [
            f'pid=; read -r pid < {f} || [ -n "$pid" ]; kill -0 "$pid"',
            'kids() { if [ -e "/proc/$pid/task/$pid/children" ]; then new=; for t in /proc/"$pid"/task/*/children;'
            ' do c=; read -r c < "$t" || :; new="$new $c"; done; else new=$(pgrep -P "$pid" || :); fi; }',
            'kids; set -- $new; old="$*"',
            'echo "before $pid" $old',
            f'kill -s {quote(signal)} "$pid"',
            "set -- $old; want=$#" if not want else f"want={want}",
            f"tries={int(wait / POLL)}",
            'while [ "$tries" -gt 0 ]; do',
            '  kids; set -- $new; new="$*"; left=0',
            '  for o in $old; do case " $new " in *" $o "*) left=1;; esac; done',
            '  if [ $left = 0 ] && [ $# -ge "$want" ]; then break; fi',
            f'  tries=$((tries - 1)); sleep {POLL}',
            "done",
            'echo "after $pid" $new',
            "mark reload",
        ]
    else:
        lines += [f"cd {p} && DEPLOY_SHA={s} sh -c {quote(command)}", "mark reload"]
    return "\n".join(lines) + "\n"


def parse_update(output: str) -> Update:
    """The Update an update_script printed."""
    head, before, after = None, Processes(None, frozenset()), Processes(None, frozenset())
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word == "head":
            head = parse_version(rest)
        elif word in ("before", "after"):
            procs = parse_processes(rest)
            before, after = (procs, after) if word == "before" else (before, procs)
    return Update(head=head, before=before, after=after, seconds=marks.seconds(output))
