"""Reading a dead run's journal: what it changed, and what restoring the fleet takes. Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Assessment:
    """What `recover` must undo for one unfinished run."""

    run_id: str
    direction: str
    batch_size: int
    group: Optional[str]
    resume: tuple[str, ...]
    alarms: tuple[str, ...]
    targets: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, dict] = field(default_factory=dict)
    last_step: str = ""

    @property
    def version(self) -> Optional[str]:
        """The version most hosts go back to."""
        counts = Counter(self.targets.values())
        return counts.most_common(1)[0][0] if counts else None


def assess(run_id: str, records: list[dict]) -> Assessment:
    """The assessment of a run from its journal records (in order).

    A deploy that died is rolled back: every host it took out of service returns to the
    version it had before. A recovery that died is finished: its hosts go to its targets.
    """
    start = next((r["data"] for r in records if r["type"] == "start"), None)
    if start is None:
        return Assessment(run_id, "deploy", 1, None, (), ())
    suspended: list[str] = []
    resumed: set[str] = set()
    group = None
    alarms_off: list[str] = []
    alarms_on: set[str] = set()
    touched: list[str] = []
    for r in records:
        kind, data = r["type"], r["data"]
        if kind == "suspended":
            group = data["group"]
            suspended += [p for p in data["processes"] if p not in suspended]
        elif kind == "resumed":
            resumed |= set(data["processes"])
        elif kind == "alarms_disabled":
            alarms_off += data["names"]
        elif kind == "alarms_enabled":
            alarms_on |= set(data["names"])
        elif kind == "deregistered":
            touched += [h for h in data["hosts"] if h not in touched]
    hosts = {h["instance_id"]: h for h in start["hosts"]}
    key = "target" if start.get("direction") == "recover" else "version"
    targets = {iid: hosts[iid][key] for iid in touched if iid in hosts and hosts[iid].get(key)}
    return Assessment(
        run_id=run_id,
        direction=start.get("direction", "deploy"),
        batch_size=int(start.get("batch_size", 1)),
        group=group,
        resume=tuple(p for p in suspended if p not in resumed),
        alarms=tuple(a for a in alarms_off if a not in alarms_on),
        targets=targets,
        hosts=hosts,
        last_step=records[-1]["type"] if records else "",
    )
