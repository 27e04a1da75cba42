"""The pause flag: running rollouts stop after the batch in hand; new ones are refused."""

from __future__ import annotations

import time
from typing import Optional

from rollout.core.errors import Paused
from rollout.core.report import who
from rollout.state.store import Store


def pause(store: Store, reason: str, by: Optional[str] = None) -> dict:
    """Set the pause flag, by `by` (default: this operator)."""
    item = {"who": by or who(), "reason": reason or "no reason given", "since": time.time()}
    store.put("pause", item)
    return item


def unpause(store: Store) -> Optional[dict]:
    return store.delete("pause")


def current(store: Store) -> Optional[dict]:
    return store.get("pause")


def describe(item: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(item.get("since", 0)))
    return f"paused by {item.get('who')} since {since}: {item.get('reason')}"


def refuse_if_paused(store: Store, env: str) -> None:
    item = current(store)
    if item:
        raise Paused(f"{env} is {describe(item)}; resume with: fab unpause --env={env}")
