"""Host keys pinned per instance id, in the environment's partition of the state table (sk "hostkey#ID")."""

from __future__ import annotations

import time
from typing import Optional

from rollout.state.store import Conflict, Store

PREFIX = "hostkey#"


class Pins:
    """The keys pinned for each instance id; a pin is written once and replaced only on the operator's word."""

    def __init__(self, store: Store):
        self.store = store

    def get(self, instance_id: str) -> frozenset[str]:
        """The keys pinned for `instance_id` (empty if none)."""
        return _keys(self.store.get(PREFIX + instance_id))

    def all(self) -> dict[str, dict]:
        """Instance id -> {keys, source, since} for every pin of the environment."""
        return {item["sk"][len(PREFIX):]: {"keys": _keys(item), "source": item.get("data", {}).get("source"),
                                           "since": item.get("since")}
                for item in self.store.query(PREFIX)}

    def pin(self, instance_id: str, keys: frozenset[str], source: str) -> frozenset[str]:
        """Pin `keys` for an instance that has no pin yet; return the pin that holds (another's, if it won the race)."""
        try:
            self.store.put(PREFIX + instance_id, _values(keys, source), condition="attribute_not_exists(sk)")
        except Conflict as exc:
            return _keys(exc.item)
        return keys

    def replace(self, instance_id: str, keys: frozenset[str], source: str) -> None:
        """Pin `keys` for `instance_id`, whatever was pinned before (fab keys --replace)."""
        self.store.put(PREFIX + instance_id, _values(keys, source))

    def drop(self, instance_id: str) -> None:
        """Forget the pin of an instance that no longer runs."""
        self.store.delete(PREFIX + instance_id)


def _values(keys: frozenset[str], source: str) -> dict:
    return {"data": {"keys": sorted(keys), "source": source}, "since": time.time()}


def _keys(item: Optional[dict]) -> frozenset[str]:
    return frozenset(item.get("data", {}).get("keys", ())) if item else frozenset()
