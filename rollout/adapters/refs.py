"""Resolve a branch, tag or SHA of the app's repository to one exact commit, once."""

from __future__ import annotations

import os
import re
import subprocess

from rollout.core.errors import RefError

_HEX = re.compile(r"^[0-9a-f]{7,40}$")
# What git itself accepts in a ref name (git check-ref-format), minus anything a shell cares about.
REF_PATTERN = r"^(?!-)(?!.*\.\.)(?!.*@\{)(?!.*//)[A-Za-z0-9._/+-]+(?<![./])$"
_REF = re.compile(REF_PATTERN)


def validate(ref: str) -> str:
    """The ref, if it is a plausible git ref name or SHA; RefError otherwise."""
    if not ref or not _REF.match(ref) or ref.endswith(".lock"):
        raise RefError(f"ref {ref!r} is not a valid branch, tag or commit SHA; use names like main, v1.2.3 or a 40-character SHA")
    return ref


def parse_ls_remote(output: str) -> dict[str, str]:
    """Ref name -> SHA from `git ls-remote`; annotated tags map to the commit they point at."""
    refs: dict[str, str] = {}
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) != 2:
            continue
        sha, name = parts
        if name.endswith("^{}"):
            refs[name[:-3]] = sha
        else:
            refs.setdefault(name, sha)
    return refs


def pick(ref: str, refs: dict[str, str]) -> str | None:
    """The SHA `ref` names among `refs`: a branch, then a tag, then a full ref name, then a SHA."""
    for name in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
        if name in refs:
            return refs[name]
    if _HEX.match(ref):
        if len(ref) == 40:
            return ref
        matches = {sha for sha in refs.values() if sha.startswith(ref)}
        if len(matches) == 1:
            return matches.pop()
    return None


def resolve(repository: str, ref: str, timeout: float = 60) -> str:
    """The full SHA that `ref` (checked already: apps.validate_ref) names in `repository` (read with `git ls-remote`)."""
    sha = pick(ref, list_remote(repository, f"to resolve {ref!r}", timeout))
    if sha is None:
        hint = " (an abbreviated SHA must be the head of a branch or tag; give the full 40 characters)" if _HEX.match(ref) else ""
        raise RefError(f"ref {ref!r} not found in {repository}{hint}; check the branch or tag name")
    return sha


def list_remote(repository: str, why: str = "to list its refs", timeout: float = 60) -> dict[str, str]:
    """Every ref of `repository` and its SHA, read with `git ls-remote`; RefError saying `why` if it cannot be read."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        out = subprocess.run(
            ["git", "ls-remote", "--", repository],
            capture_output=True, text=True, timeout=timeout, env=env, check=False,
        )
    except subprocess.TimeoutExpired:
        raise RefError(f"git ls-remote {repository} did not answer in {timeout:g}s; check the repository URL and network") from None
    except FileNotFoundError:
        raise RefError("git is not installed on this machine; install git to resolve refs") from None
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RefError(f"cannot read {repository} {why}: {tail}")
    return parse_ls_remote(out.stdout)
