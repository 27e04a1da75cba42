"""Capacity decisions, pure: the ramp's batches, zones, the live floor of healthy hosts, the rollback order.

Nothing here reads the network: each function takes facts (hosts, sizes, what a balancer
reports healthy now) and returns a decision, so each is tested with a table of cases.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional, Protocol

from rollout.core import policy
from rollout.core.sizes import Ramp, Size


class Host(Protocol):
    """What these decisions read of a host (rollout.plan.Host)."""

    instance_id: str
    name: str
    zone: str


@dataclass(frozen=True)
class Floor:
    """The live capacity floor of a rollout: `hosts` healthy in every balancer (from `min_healthy`),
    waited for up to `wait` seconds before a batch; `healthy_now` is what each balancer reported
    healthy when the plan was made (balancer -> count; a balancer not read is left out)."""

    min_healthy: Size
    hosts: int
    wait: float
    healthy_now: tuple[tuple[str, int], ...] = ()


def by_zone(hosts: Sequence[Host]) -> list[list[Host]]:
    """The hosts grouped by availability zone, zones in name order, each zone's hosts in their given order."""
    zones: dict[str, list[Host]] = {}
    for h in hosts:
        zones.setdefault(h.zone, []).append(h)
    return [zones[z] for z in sorted(zones)]


def without_zone(hosts: Sequence[Host]) -> list[Host]:
    """Hosts whose availability zone is not known (`batch_by: zone` cannot place them)."""
    return [h for h in hosts if not h.zone]


def cut(hosts: Sequence[Host], ramp: Ramp, zones: bool = False) -> list[tuple[Host, ...]]:
    """The batches, in order: `hosts` cut by the ramp (sizes of all the hosts given).

    With `zones`, the hosts go zone after zone and a batch never spans two zones: a zone's
    last batch may be smaller than the ramp says, and the ramp goes on in the next zone.
    """
    total = len(hosts)
    batches: list[tuple[Host, ...]] = []
    for group in (by_zone(hosts) if zones else [list(hosts)]):
        start = 0
        while start < len(group):
            n = policy.batch_size(ramp, len(batches), total)
            batches.append(tuple(group[start:start + n]))
            start += n
    return batches


def within_zone(queue: Sequence[Host], take: int) -> int:
    """How many of the first `take` hosts of `queue` are in the first one's zone: a batch never spans two zones."""
    n = 0
    while n < min(take, len(queue)) and queue[n].zone == queue[0].zone:
        n += 1
    return n


def floor_hosts(min_healthy: Size, total: int) -> int:
    """Healthy hosts every balancer must keep: the count, or the percentage of `total` rounded up."""
    return math.ceil(total * min_healthy.value / 100) if min_healthy.percent else min_healthy.value


def never_fits(floor: int, total: int, counts: Sequence[int]) -> Optional[str]:
    """Why no fleet of `total` healthy hosts could ever take the largest batch out above `floor`, or None."""
    largest = max(counts, default=0)
    if largest and total - largest < floor:
        return (f"min_healthy keeps {floor} of {total} hosts healthy, which leaves no room for a batch of {largest};"
                f" lower min_healthy or the batch sizes")
    return None


def refusal(batch: Collection[str], healthy: Mapping[str, Collection[str]], floor: int) -> Optional[str]:
    """Why taking `batch` (instance ids) out now would leave a balancer below `floor` healthy hosts, or None.

    `healthy` is, per balancer, the members it reports healthy now, whoever made the others
    unhealthy. A batch none of whose hosts a balancer counts as healthy takes nothing from it.
    The first balancer in name order that would go below the floor is named.
    """
    ids = set(batch)
    for name in sorted(healthy):
        now = set(healthy[name])
        taking = len(now & ids)
        if taking and len(now) - taking < floor:
            return (f"{name} reports {len(now)} healthy hosts; taking out {taking} would leave {len(now) - taking},"
                    f" below min_healthy {floor}")
    return None


def held(number: int, batch: Sequence[Host], why: str, floor: Floor) -> str:
    """The stop's reason when the floor held batch `number` past its wait."""
    names = ", ".join(h.name or h.instance_id for h in batch)
    return (f"batch {number} ({names}) was not taken out of service: {why}, still after waiting {floor.wait:g}s"
            f" (min_healthy_wait); hosts already updated keep the new version. Deploy again once the load balancers"
            f" report enough healthy hosts, or lower min_healthy")


def zone_clash(batch: Sequence[Host], out: Sequence[Host]) -> Optional[str]:
    """Why `batch` may not go out while the hosts in `out` are out of service in another zone, or None."""
    zones = {h.zone for h in batch}
    others = sorted({h.zone for h in out} - zones)
    if others:
        names = ", ".join(h.name or h.instance_id for h in out if h.zone in others)
        return (f"batch_by zone: {names} still out of service in {', '.join(others)}; the next batch is in"
                f" {', '.join(sorted(zones))}, and two zones are never out at once")
    return None


def rollback_batches(deployed: Sequence[Sequence[Host]], updated: Collection[str]) -> list[tuple[Host, ...]]:
    """Batches that roll the `updated` hosts (instance ids) back: the deployed batches last first, each
    reversed, so hosts go back in the reverse order of deployment with the same batch sizes."""
    out = []
    for batch in reversed(deployed):
        back = tuple(h for h in reversed(batch) if h.instance_id in updated)
        if back:
            out.append(back)
    return out
