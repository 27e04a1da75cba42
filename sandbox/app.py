"""Check out the example app and build the commands that start and stop it on a host."""

from __future__ import annotations

import atexit
import os
import shlex
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from sandbox.origin import git, git_env

APP_DIR = "/srv/rollout-sandbox/app"
PID_FILE = "/srv/rollout-sandbox/run/app.pid"
LOG_FILE = "/srv/rollout-sandbox/log/app.log"


@cache
def _safe_global_config() -> str:
    """A global git config trusting every directory, for repositories owned by the deploy user."""
    # `-c safe.directory` is ignored by some commands; a global config is honoured by all.
    fd, name = tempfile.mkstemp(prefix="rollout-gitconfig-")
    with os.fdopen(fd, "w") as f:
        f.write("[safe]\n\tdirectory = *\n")
    atexit.register(lambda: os.path.exists(name) and os.unlink(name))
    return name


def checkout(app_dir: Path, origin: Path, ref: str, owner: str | None = "deploy") -> str:
    """Clone or fetch `origin` into `app_dir`, force-check out `ref` detached, chown to `owner`; return the SHA."""
    app_dir = Path(app_dir)
    env = git_env(global_config=_safe_global_config())
    if not (app_dir / ".git").exists():
        app_dir.parent.mkdir(parents=True, exist_ok=True)
        # Hard links would share inodes with the origin, and chown would reach into it.
        git("clone", "-q", "--no-checkout", "--no-hardlinks", origin, app_dir, env=env)
    else:
        git("remote", "set-url", "origin", origin, cwd=app_dir, env=env)
    git("fetch", "-q", "--force", "--prune", "--tags", "origin",
        "+refs/heads/*:refs/remotes/origin/*", cwd=app_dir, env=env)
    sha = None
    # Branches resolve through origin/, so a stale local branch of the same name cannot win.
    for candidate in (f"refs/remotes/origin/{ref}", ref):
        try:
            sha = git("rev-parse", "--verify", "-q", f"{candidate}^{{commit}}", cwd=app_dir, env=env)
            break
        except subprocess.CalledProcessError:
            continue
    if sha is None:
        raise ValueError(f"unknown ref {ref!r} in {origin}")
    git("checkout", "-q", "--force", "--detach", sha, cwd=app_dir, env=env)
    git("clean", "-q", "-ffd", cwd=app_dir, env=env)
    if owner:
        subprocess.run(["chown", "-R", "--no-dereference", f"{owner}:", str(app_dir)],
                       check=True, capture_output=True, timeout=60)
    return sha


def start_argv(
    app_dir: str = APP_DIR,
    pid_file: str = PID_FILE,
    log_file: str = LOG_FILE,
    port: int = 14000,
    workers: int = 2,
    host: str = "0.0.0.0",
    node: str = "node",
) -> list[str]:
    """argv that starts the app detached (returns at once), creating the pid and log directories."""
    q = shlex.quote
    script = (
        f"mkdir -p {q(os.path.dirname(pid_file))} {q(os.path.dirname(log_file))} && "
        f"cd {q(str(app_dir))} && "
        f"PORT={int(port)} HOST={q(host)} WORKERS={int(workers)} PID_FILE={q(pid_file)} "
        f"exec setsid -f {q(node)} server.js >>{q(log_file)} 2>&1 </dev/null"
    )
    return ["sh", "-c", script]


def stop_argv(pid_file: str = PID_FILE, timeout: float = 15.0) -> list[str]:
    """argv that sends SIGTERM to the app and waits for it to exit.

    Exits 0 if it stopped or was not running; after `timeout` seconds it kills the
    app's process group, removes the pid file and exits 1.
    """
    q = shlex.quote
    ticks = max(1, int(timeout * 10))
    script = (
        f"f={q(pid_file)}; "
        '[ -f "$f" ] || exit 0; '
        'pid=$(cat "$f"); '
        'case "$pid" in ""|*[!0-9]*) echo "bad pid file $f" >&2; exit 1;; esac; '
        'kill -TERM "$pid" 2>/dev/null || { rm -f "$f"; exit 0; }; '
        "i=0; "
        'while kill -0 "$pid" 2>/dev/null; do '
        f"  i=$((i+1)); if [ $i -ge {ticks} ]; then "
        '    echo "app $pid did not stop; killing its process group" >&2; '
        '    kill -KILL -- "-$pid" 2>/dev/null; rm -f "$f"; exit 1; '
        "  fi; sleep 0.1; "
        "done; exit 0"
    )
    return ["sh", "-c", script]
