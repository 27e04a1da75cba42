"""Convergence: which hosts already serve the target in every balancer (a rerun skips them), which differ from the desired version."""

from __future__ import annotations

from typing import Optional


def in_service_everywhere(instance_id: str, healthy: list[frozenset[str]]) -> bool:
    """Whether every balancer (the members each reports healthy: adapters.balancers.healthy_members) has the instance."""
    return all(instance_id in members for members in healthy)


def converged(checked_out: Optional[str], served: Optional[str], target: str, in_service: bool) -> bool:
    """A host is done when its checkout and what it serves are both the target, and every balancer sends it traffic."""
    return checked_out == target and served == target and in_service


def differs(served: Optional[str], desired: Optional[str]) -> bool:
    """Whether `fab status` flags a host: a desired version is published and the host serves another (or nothing readable)."""
    return desired is not None and served != desired
