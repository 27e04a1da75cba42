"""Pure planning: which hosts, in which batches, through which steps, at what capacity.

Nothing here touches the network; every function takes facts and returns data.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

from rollout.core import capacity, policy
from rollout.core.errors import PreflightError, UsageError
from rollout.core.sizes import Ramp, Size

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
    # Local changes in the host's checkout that updating it discards (git short status lines).
    local_changes: tuple[str, ...] = ()
    zone: str = ""  # availability zone, as EC2 reports it ("" if unknown)

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
    #: Batch sizes in order (rollout.core.Ramp); the last one repeats.
    ramp: Ramp = (Size(1),)
    #: Hosts that may fail before the rollout stops (max_failures, as a count of these hosts).
    max_failures: int = 0
    #: What a failure over the budget leads to: "rollback" or "stop".
    on_failure: str = "rollback"
    by_zone: bool = False  # batch_by: zone: every batch within one availability zone, zone after zone
    floor: Optional[capacity.Floor] = None  # min_healthy, if set


@dataclass(frozen=True)
class HostFilter:
    """A parsed --hosts value: patterns to include (none: every host) and patterns to exclude."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]


_HOST_PATTERN = re.compile(r"[A-Za-z0-9._:*?\[\]-]+")


def parse_host_filter(spec: Optional[str]) -> Optional[HostFilter]:
    """The --hosts value (`web-*,!h003`: ids, names or addresses, fnmatch patterns, `!` to exclude); None means all."""
    if spec is None:
        return None
    items = [s.strip() for s in str(spec).split(",")]
    if not any(items):
        raise UsageError(f"--hosts={spec!r} names no host: give ids, names or addresses like h001,web-*,!h003, or leave --hosts out for every host")
    if "" in items:
        raise UsageError(f"--hosts={spec!r} has an empty entry: separate hosts with single commas")
    for item in items:
        if not _HOST_PATTERN.fullmatch(item.removeprefix("!")):
            raise UsageError(f"--hosts: {item!r} is not an instance id, name or address (or a pattern of one, or ! and one)")
    return HostFilter(tuple(i for i in items if not i.startswith("!")), tuple(i[1:] for i in items if i.startswith("!")))


def _matches(host: Host, pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for key in (host.instance_id, host.name, host.address))


def select_hosts(hosts: list[Host], wanted: Optional[HostFilter]) -> list[Host]:
    """Hosts in a stable order (name, then id), limited by `wanted` if given.

    Every pattern, to include or to exclude, must match an instance of the environment: a typo
    in an exclusion would otherwise deploy the host it meant to spare.
    """
    ordered = sorted(hosts, key=lambda h: (h.name, h.instance_id))
    if wanted is None:
        return ordered
    missing = [p for p in wanted.include if not any(_matches(h, p) for h in ordered)]
    missing += [f"!{p}" for p in wanted.exclude if not any(_matches(h, p) for h in ordered)]
    if missing:
        raise UsageError(f"--hosts: no instance of this environment matches {', '.join(missing)}")
    chosen = [h for h in ordered if (not wanted.include or any(_matches(h, p) for p in wanted.include))
              and not any(_matches(h, p) for p in wanted.exclude)]
    if not chosen:
        raise UsageError("--hosts: the exclusions leave no host to deploy to")
    return chosen


def make_batches(hosts: list[Host], ramp: Ramp, total_in_service: int, zones: bool = False) -> tuple[Batch, ...]:
    """Split hosts into batches along the ramp (zone by zone with `zones`); in_service counts the others still serving."""
    return tuple(Batch(index=i, hosts=chunk, in_service=total_in_service - len(chunk))
                 for i, chunk in enumerate(capacity.cut(hosts, ramp, zones), start=1))


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
    batch: Union[Size, Sequence[Size]],
    balancers: tuple[BalancerFacts, ...],
    group: Optional[str],
    suspended_before: frozenset[str],
    total_in_service: Optional[int] = None,
    notes: tuple[str, ...] = (),
    app_steps: tuple[str, ...] = GIT_STEPS,
    max_failures: Size = Size(0),
    on_failure: str = "rollback",
    by_zone: bool = False,
    floor: Optional[capacity.Floor] = None,
) -> Plan:
    """The plan for rolling `sha` over `hosts` (already selected and ordered; with `by_zone`, reordered zone by zone).

    `batch` is one size or a ramp of them; `max_failures` becomes a count of `hosts`. PreflightError if
    `by_zone` meets a host whose zone is unknown; PreflightError if `floor` leaves no room for the largest batch.
    """
    if not VERSION.match(sha):
        raise ValueError(f"plan needs a full commit SHA or image digest, got {sha!r}")
    if not hosts:
        raise UsageError(f"no hosts to deploy to in {env}")
    ramp = (batch,) if isinstance(batch, Size) else tuple(batch)
    if by_zone:
        if unplaced := capacity.without_zone(hosts):
            raise PreflightError(f"batch_by: zone, but EC2 reports no availability zone for {', '.join(h.label for h in unplaced)};"
                                 f" remove batch_by from the inventory or deploy the others with --hosts")
        hosts = [h for zone in capacity.by_zone(hosts) for h in zone]
    serving = len(hosts) if total_in_service is None else total_in_service
    batches = make_batches(hosts, ramp, serving, by_zone)
    if floor is not None and (why := capacity.never_fits(floor.hosts, serving, [len(b.hosts) for b in batches])):
        raise PreflightError(f"{why}; lower min_healthy or the batch size; nothing was changed")
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
        ramp=ramp,
        max_failures=policy.budget(max_failures, len(hosts)),
        on_failure=on_failure,
        by_zone=by_zone,
        floor=floor,
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
