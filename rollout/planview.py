"""Render a plan for people: what --dry-run prints and what the confirmation shows."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rollout.plan import Plan
from rollout.health import short


def render_plan(plan: Plan, console: Console) -> None:
    """Print hosts with current versions, batches with their steps and capacity, balancers, group, estimate."""
    console.print(f"Plan for [bold]{plan.env}[/]: deploy {plan.sha} ({plan.ref}) to {len(plan.hosts)} hosts in {len(plan.batches)} batches")

    hosts = Table(title="Instances, in order", title_justify="left")
    for col in ("batch", "instance", "name", "address", "current version"):
        hosts.add_column(col)
    for b in plan.batches:
        for h in b.hosts:
            current = short(h.version) if h.version else "unknown"
            same = " (already this commit)" if h.version == plan.sha else ""
            hosts.add_row(str(b.index), h.instance_id, h.name, h.address, current + same)
    console.print(hosts)

    batches = Table(title="Batches", title_justify="left")
    for col in ("batch", "hosts", "in service during the batch"):
        batches.add_column(col)
    for b in plan.batches:
        batches.add_row(str(b.index), ", ".join(h.name or h.instance_id for h in b.hosts), str(b.in_service))
    console.print(batches)
    console.print("Steps per batch: " + " → ".join(plan.steps))

    lbs = Table(title="Load balancers", title_justify="left")
    for col in ("kind", "name", "draining delay", "healthy after"):
        lbs.add_column(col)
    for f in plan.balancers:
        lbs.add_row(f.kind, f.name, f"{f.drain_seconds:g}s", f"{f.healthy_seconds:g}s")
    console.print(lbs if plan.balancers else "Load balancers: none")

    if plan.group:
        before = ", ".join(sorted(plan.suspended_before)) or "none"
        console.print(f"Auto Scaling group {plan.group}: suspended now: {before}; will suspend: {', '.join(plan.to_suspend) or 'nothing'}")
    else:
        console.print("Auto Scaling group: none")
    for note in plan.notes:
        console.print(f"[yellow]note[/] {note}")
    console.print(f"Estimated duration: about {plan.estimate_seconds:g}s (from draining delays and health thresholds)")
    console.print("Dry run: nothing was changed.")
