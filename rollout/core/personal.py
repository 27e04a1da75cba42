"""Personal environments: a developer's branch deployed to that developer's own instances.

`dev@ben` is ben's copy of the `dev` environment: the inventory's `personal.tags`, with
{user} replaced, select his instances. Users are plain identifiers, and a personal
environment never deploys to an instance that a shared environment's tags also select.
"""

from __future__ import annotations

import re

from rollout.core.errors import PreflightError, UsageError

USER = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def user_from_branch(pattern: str, branch: str) -> str:
    """The user a branch belongs to, by the inventory's branch_pattern (its `user` group)."""
    m = re.fullmatch(pattern, branch)
    if not m:
        raise UsageError(f"branch {branch!r} does not match this environment's personal branch pattern {pattern!r}")
    return check_user(m.group("user"))


def check_user(user: str) -> str:
    if not USER.match(user or ""):
        raise UsageError(f"user {user!r} is not a plain identifier (lower-case letters, digits, '-' and '_', starting with a letter)")
    return user


def selector(tags: dict[str, str], user: str) -> dict[str, str]:
    """The instance tags of `user`'s environment."""
    check_user(user)
    return {k: v.replace("{user}", user) for k, v in tags.items()}


def shared_claims(instances, shared: dict[str, dict[str, str]]) -> list[str]:
    """'instance (env)' for every instance that a shared environment's tag filter also selects."""
    claims = []
    for inst in instances:
        for env, tags in sorted(shared.items()):
            if all(inst.tags.get(k) == v for k, v in tags.items()):
                claims.append(f"{inst.instance_id} ({env})")
    return claims


def refuse_shared(instances, shared: dict[str, dict[str, str]], personal_env: str) -> None:
    claims = shared_claims(instances, shared)
    if claims:
        raise PreflightError(f"{personal_env} would deploy to instances of shared environments: {', '.join(claims[:5])};"
                             " personal tags must never select a shared environment's instances")
