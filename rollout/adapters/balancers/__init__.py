"""Load balancer adapters: classic ELB, ALB target group, HAProxy runtime API.

Every adapter takes a whole batch in each call, so AWS sees one request per batch.
"""

from __future__ import annotations

from typing import Protocol

from rollout.core.plan import BalancerFacts, Host


class Balancer(Protocol):
    kind: str
    name: str

    def facts(self) -> BalancerFacts:
        """Draining and health-check delays, for the plan and its estimate."""

    def members(self) -> dict[str, str]:
        """Registered instance id -> state as the balancer reports it."""

    def registered(self) -> set[str]:
        """The registered instance ids, read as cheaply as the balancer allows (no states)."""


    def deregister(self, hosts: list[Host]) -> None:
        """Stop sending new traffic to the hosts (one call for the batch)."""

    def wait_drained(self, hosts: list[Host], cancelled=lambda: False, before_change=lambda: None) -> None:
        """Return once the hosts have no traffic left, or their draining deadline passed.

        Raises waiting.Cancelled if `cancelled()` turns true first. An adapter that changes
        anything once drained (HAProxy: maintenance) calls `before_change()` first.
        """

    def register(self, hosts: list[Host]) -> None:
        """Send traffic to the hosts again (one call for the batch)."""

    def wait_healthy(self, hosts: list[Host], timeout: float) -> None:
        """Return once the balancer reports every host healthy; raise WaitTimeout otherwise."""


#: The state each kind of balancer reports for a member that passes its checks and takes traffic.
HEALTHY = {"elb": "InService", "alb": "healthy", "haproxy": "UP"}


def healthy_members(kind: str, members: dict[str, str]) -> frozenset[str]:
    """The members (as `Balancer.members` returns them) that a balancer of `kind` reports healthy."""
    return frozenset(member for member, state in members.items() if state == HEALTHY[kind])


def healthy(lb: Balancer) -> frozenset[str]:
    """Members `lb` reports healthy now, whoever made the others unhealthy: one read of the balancer
    (ELB DescribeInstanceHealth, ALB DescribeTargetHealth, HAProxy `show servers state`)."""
    return healthy_members(lb.kind, lb.members())


def build(specs, aws, fleet, hosts: list[Host]) -> list[Balancer]:
    """Adapters for the inventory's load_balancers entries."""
    from rollout.adapters.balancers.alb import TargetGroup
    from rollout.adapters.balancers.elb import ClassicElb
    from rollout.adapters.balancers.haproxy import HaproxyBackend

    out = []
    for spec in specs:
        if spec.kind == "elb":
            out.append(ClassicElb(aws, spec.name))
        elif spec.kind == "alb":
            out.append(TargetGroup(aws, spec.target_group, spec.port))
        else:
            out.append(HaproxyBackend(spec, fleet, hosts))
    return out
