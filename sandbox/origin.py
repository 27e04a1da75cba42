"""Bare git origin for the example app, with known refs v1, v2 and broken."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

APP_SRC = Path(__file__).resolve().parent.parent / "examples" / "node-cluster-app"
GIT = "/usr/bin/git"
REFS = {"v1": "refs/tags/v1", "v2": "refs/tags/v2", "broken": "refs/heads/broken"}

BROKEN_PREAMBLE = "throw new Error('broken build: this worker refuses to start');\n"


def git_env(global_config: str = "/dev/null", date: str | None = None) -> dict[str, str]:
    """Environment for git that ignores the user's and the system's config."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "LANG": "C",
        "GIT_CONFIG_GLOBAL": global_config,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Rollout Sandbox",
        "GIT_AUTHOR_EMAIL": "sandbox@rollout.invalid",
        "GIT_COMMITTER_NAME": "Rollout Sandbox",
        "GIT_COMMITTER_EMAIL": "sandbox@rollout.invalid",
    }
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return env


def git(*args: str | os.PathLike, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run git, return its stripped stdout; raise CalledProcessError with stderr on failure."""
    r = subprocess.run(
        [GIT, *map(str, args)], cwd=cwd, env=env or git_env(),
        capture_output=True, text=True, timeout=60,
    )
    if r.returncode:
        raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
    return r.stdout.strip()


def _existing_refs(path: Path) -> dict[str, str] | None:
    """The v1/v2/broken SHAs of the origin at `path`, or None if any is missing."""
    out = {}
    for name, ref in REFS.items():
        try:
            out[name] = git("--git-dir", path, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
        except subprocess.CalledProcessError:
            return None
    return out


def _make_readable(root: Path) -> None:
    for d, dirs, files in os.walk(root):
        os.chmod(d, 0o755)
        for f in files:
            p = os.path.join(d, f)
            os.chmod(p, os.stat(p).st_mode | 0o444)


def _commit(work: Path, message: str, date: str) -> str:
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", message, cwd=work, env=git_env(date=date))
    return git("rev-parse", "HEAD", cwd=work)


def _build(bare: Path) -> None:
    """Create the bare repository at `bare` (which must not exist) with v1, v2 and broken."""
    git("init", "-q", "--bare", "--shared=0644", "-b", "main", bare)
    with tempfile.TemporaryDirectory(prefix="rollout-origin-") as tmp:
        work = Path(tmp) / "work"
        git("init", "-q", "-b", "main", work)
        for name in ("server.js", "worker.js", "package.json", "README.md"):
            shutil.copyfile(APP_SRC / name, work / name)
        # Fixed dates make the SHAs the same on every machine.
        _commit(work, "v1", "2024-01-01T00:00:00+0000")
        git("tag", "v1", cwd=work)
        (work / "RELEASE").write_text("v2: adds this RELEASE file\n")
        _commit(work, "v2", "2024-01-02T00:00:00+0000")
        git("tag", "v2", cwd=work)
        git("checkout", "-q", "-b", "broken", cwd=work)
        worker = work / "worker.js"
        worker.write_text(worker.read_text().replace("'use strict';\n", "'use strict';\n" + BROKEN_PREAMBLE, 1))
        _commit(work, "broken: worker throws at startup", "2024-01-03T00:00:00+0000")
        git("push", "-q", bare, "main", "broken", "v1", "v2", cwd=work)
    _make_readable(bare)


def ensure_origin(path: Path) -> dict[str, str]:
    """Create the origin at `path` unless it already has v1, v2 and broken; return their SHAs."""
    path = Path(path)
    refs = _existing_refs(path) if path.exists() else None
    if refs:
        return refs
    if path.exists():
        raise RuntimeError(f"{path} exists but lacks the refs {sorted(REFS)}; remove it")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so `path` is either absent or complete.
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        _build(staging / "repo")
        try:
            os.rename(staging / "repo", path)
        except OSError:
            if not (path.exists() and _existing_refs(path)):  # lost a race to another builder?
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    refs = _existing_refs(path)
    assert refs, f"origin at {path} incomplete after build"
    return refs


def add_commit(
    path: Path, message: str, worker_patch: str | Callable[[str], str] | None = None, branch: str = "main",
    files: dict[str, str] | None = None,
) -> str:
    """Add a commit on top of main, pushed to `branch` (main by default), of the origin at `path`; return its SHA.

    The commit writes `message` to RELEASE, and each of `files` (relative path -> text).
    `worker_patch`, if given, is either the new worker.js text or a function from the old text to the new one.
    """
    path = Path(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # serialize pushes to main
        with tempfile.TemporaryDirectory(prefix="rollout-commit-") as tmp:
            work = Path(tmp) / "work"
            git("clone", "-q", "-b", "main", path, work)
            (work / "RELEASE").write_text(message.rstrip("\n") + "\n")
            if worker_patch is not None:
                worker = work / "worker.js"
                text = worker_patch(worker.read_text()) if callable(worker_patch) else worker_patch
                worker.write_text(text)
            for name, text in (files or {}).items():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                (work / name).write_text(text)
            git("add", "-A", cwd=work)
            git("commit", "-q", "--allow-empty", "-m", message, cwd=work)
            sha = git("rev-parse", "HEAD", cwd=work)
            git("push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        _make_readable(path)
        return sha
    finally:
        os.close(fd)
