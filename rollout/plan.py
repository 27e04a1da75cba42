"""Pure planning: which hosts, in which batches, through which steps, at what capacity.

Nothing here touches the network; every function takes facts and returns data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from rollout.errors import UsageError
from rollout.sizes import Size, batch_hosts

#: Auto Scaling processes that could launch, terminate or rebalance instances mid-rollout.
ASG_PROCESSES = (
    "Launch",
    "Terminate",
    "HealthCheck",
    "ReplaceUnhealthy",
    "AZRebalance",
    "AlarmNotification",
    "ScheduledActions",
    "AddToLoadBalancer",
)

def batch_steps(app_steps: tuple[str, ...]) -> tuple[str, ...]:
    """The steps each batch goes through, in order, around the app's own (git: checkout, install, reload)."""
    return ("deregister", "drain", *app_steps, "health", "register", "wait_healthy")


#: The app's own steps when none are given: the git strategy's.
GIT_STEPS = ("checkout", "install", "reload")
BATCH_STEPS = batch_steps(GIT_STEPS)

VERSION = re.compile(r"^([0-9a-f]{40}|sha256:[0-9a-f]{64})$")  # a commit SHA or an image digest


@dataclass(frozen=True)
class Host:
    """One instance to update."""

    instance_id: str
    address: str
    name: str = ""
    version: Optional[str] = None

    @property
    def label(self) -> str:
        return f"{self.name or self.instance_id} ({self.address})"


@dataclass(frozen=True)
class BalancerFacts:
    """What the planner needs to know about one load balancer."""

    kind: str
    name: str
    drain_seconds: float
    healthy_seconds: float


@dataclass(frozen=True)
class Batch:
    index: int
    hosts: tuple[Host, ...]
    in_service: int


@dataclass(frozen=True)
class Plan:
    """A complete rollout, decided before anything changes."""

    env: str
    ref: str
    sha: str
    hosts: tuple[Host, ...]
    batches: tuple[Batch, ...]
    balancers: tuple[BalancerFacts, ...]
    group: Optional[str]
    suspended_before: frozenset[str]
    to_suspend: tuple[str, ...]
    estimate_seconds: float
    steps: tuple[str, ...] = BATCH_STEPS
    notes: tuple[str, ...] = field(default=())


def parse_host_filter(spec: Optional[str]) -> Optional[frozenset[str]]:
    """The --hosts value as a set of instance ids, names or addresses; None means all."""
    if spec is None or str(spec).strip() == "":
        return None
    items = [s.strip() for s in str(spec).split(",") if s.strip()]
    bad = [s for s in items if not re.fullmatch(r"[A-Za-z0-9._:-]+", s)]
    if bad:
        raise UsageError(f"--hosts: {bad[0]!r} is not an instance id, name or address")
    return frozenset(items)


def select_hosts(hosts: list[Host], wanted: Optional[frozenset[str]]) -> list[Host]:
    """Hosts in a stable order (name, then id), limited to `wanted` if given."""
    ordered = sorted(hosts, key=lambda h: (h.name, h.instance_id))
    if wanted is None:
        return ordered
    chosen = [h for h in ordered if {h.instance_id, h.address, h.name} & wanted]
    found = {k for h in chosen for k in (h.instance_id, h.address, h.name)}
    missing = sorted(wanted - found)
    if missing:
        raise UsageError(f"--hosts: no instance of this environment matches {', '.join(missing)}")
    return chosen


def make_batches(hosts: list[Host], size: int, total_in_service: int) -> tuple[Batch, ...]:
    """Split hosts into batches of `size`; in_service counts the others still serving."""
    batches = []
    for i in range(0, len(hosts), size):
        chunk = tuple(hosts[i : i + size])
        batches.append(Batch(index=len(batches) + 1, hosts=chunk, in_service=total_in_service - len(chunk)))
    return tuple(batches)


def estimate(batches: tuple[Batch, ...], balancers: tuple[BalancerFacts, ...], per_host_update: float = 2.0) -> float:
    """Seconds the rollout should take: per batch, the slowest drain, the update, the slowest health wait."""
    drain = max((b.drain_seconds for b in balancers), default=0.0)
    healthy = max((b.healthy_seconds for b in balancers), default=0.0)
    return round(len(batches) * (drain + per_host_update + healthy), 1)


def build(
    *,
    env: str,
    ref: str,
    sha: str,
    hosts: list[Host],
    batch: Size,
    balancers: tuple[BalancerFacts, ...],
    group: Optional[str],
    suspended_before: frozenset[str],
    total_in_service: Optional[int] = None,
    notes: tuple[str, ...] = (),
    app_steps: tuple[str, ...] = GIT_STEPS,
) -> Plan:
    """The plan for rolling `sha` over `hosts` (already selected and ordered)."""
    if not VERSION.match(sha):
        raise ValueError(f"plan needs a full commit SHA or image digest, got {sha!r}")
    if not hosts:
        raise UsageError(f"no hosts to deploy to in {env}")
    size = batch_hosts(batch, len(hosts))
    serving = len(hosts) if total_in_service is None else total_in_service
    batches = make_batches(hosts, size, serving)
    to_suspend = tuple(p for p in ASG_PROCESSES if p not in suspended_before) if group else ()
    return Plan(
        env=env,
        ref=ref,
        sha=sha,
        hosts=tuple(hosts),
        batches=batches,
        balancers=balancers,
        group=group,
        suspended_before=frozenset(suspended_before),
        to_suspend=to_suspend,
        estimate_seconds=estimate(batches, balancers),
        notes=notes,
        steps=batch_steps(app_steps),
    )


def membership_differences(instance_ids: set[str], members: dict[str, set[str]]) -> list[str]:
    """Human lines for instances missing from, or unknown to, each balancer."""
    lines = []
    for name, ids in sorted(members.items()):
        missing = sorted(instance_ids - ids)
        extra = sorted(ids - instance_ids)
        if missing:
            lines.append(f"{name}: not registered: {', '.join(missing)}")
        if extra:
            lines.append(f"{name}: registered but not selected by the tag filter: {', '.join(extra)}")
    return lines
