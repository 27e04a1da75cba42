"""Render a plan for people: what --dry-run prints and what the confirmation shows."""

from __future__ import annotations

from rich.console import Console

from rollout.core import capacity
from rollout.core import gates as gating
from rollout.core.plan import Plan
from rollout.core.report import short
from rollout.core.sizes import ramp_text


def render_plan(plan: Plan, console: Console) -> None:
    """Print hosts with current versions, batches with their steps and capacity, balancers, group, estimate."""
    console.print(f"Plan for [bold]{plan.env}[/]: deploy {plan.sha} ({plan.ref}) to {len(plan.hosts)} hosts in {len(plan.batches)} batches")
    rows = []
    for b in plan.batches:
        for h in b.hosts:
            current = short(h.version) if h.version else "unknown"
            same = " (already this commit)" if h.version == plan.sha else ""
            rows.append((str(b.index), h.instance_id, h.name, h.address, current + same))
    _table(console, "Instances, in order", ("batch", "instance", "name", "address", "current version"), rows)
    _table(console, "Batches", ("batch", "hosts", "in service during the batch"),
           [(str(b.index), ", ".join(h.name or h.instance_id for h in b.hosts), str(b.in_service)) for b in plan.batches])
    for line in capacity_lines(plan):
        console.out(line, highlight=False)
    console.print("Steps per batch: " + " → ".join(plan.steps))
    if plan.balancers:
        _table(console, "Load balancers", ("kind", "name", "draining delay", "healthy after"),
               [(f.kind, f.name, f"{f.drain_seconds:g}s", f"{f.healthy_seconds:g}s") for f in plan.balancers])
    else:
        console.print("Load balancers: none")
    if plan.group:
        before = ", ".join(sorted(plan.suspended_before)) or "none"
        console.print(f"Auto Scaling group {plan.group}: suspended now: {before}; will suspend: {', '.join(plan.to_suspend) or 'nothing'}")
    else:
        console.print("Auto Scaling group: none")
    for note in plan.notes:
        console.print(f"[yellow]note[/] {note}")
    console.print(f"Estimated duration: about {plan.estimate_seconds:g}s (from draining delays and health thresholds)")
    console.print("Dry run: nothing was changed.")


def capacity_lines(plan: Plan) -> list[str]:
    """The ramp, the zones and the capacity floor, in words."""
    sizes = ", ".join(str(len(b.hosts)) for b in plan.batches)
    repeats = " (the last size repeats)" if len(plan.ramp) > 1 else ""
    lines = [f"Ramp: {ramp_text(plan.ramp).replace(',', ', ')}{repeats}: batches of {sizes}"]
    if plan.by_zone:
        zones = [f"{zone[0].zone} ({', '.join(h.name or h.instance_id for h in zone)})" for zone in capacity.by_zone(plan.hosts)]
        lines.append("Batches by zone, one zone after the other: " + "; ".join(zones))
    floor = plan.floor
    if floor is None:
        lines.append("Capacity floor: none (min_healthy not set)")
        return lines
    now = ", ".join(f"{name} {n} healthy now" for name, n in floor.healthy_now) or "no balancer read"
    lines.append(f"Capacity floor: min_healthy {floor.min_healthy} = {floor.hosts} healthy hosts in every load balancer,"
                 f" checked before each batch; waits up to {floor.wait:g}s for them, then stops (exit 14). {now}")
    first = plan.batches[0].hosts if plan.batches else ()
    short_of = [name for name, n in floor.healthy_now if n - len(first) < floor.hosts]
    if short_of:
        lines.append(f"  the first batch would wait now: taking out {len(first)} could leave {', '.join(short_of)} below {floor.hosts}")
    return lines


def _table(console: Console, title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A titled table in plain aligned columns, written as is (no markup).

    rich's Table measures every cell: a 1,000-host plan took 1.3 s to print that way.
    """
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [title, "  ".join(c.upper().ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    console.out("\n".join(lines), highlight=False)


def render_gates(inv, batches: int, step: bool, console: Console) -> None:
    """Print the gates of a rollout of `batches` batches: bakes, rollback alarms, the front-end check, --step."""
    schedule = gating.bake_schedule(batches, inv.bake, gating.BakeAfter(inv.bake_after))
    if schedule:
        after = ", ".join(str(n) for n, _ in schedule)
        total = sum(s for _, s in schedule)
        console.print(f"Bakes: {inv.bake:g}s after batch {after} (bake_after: {inv.bake_after}), {total:g}s in all,"
                      f" on top of the estimate", highlight=False)
    else:
        console.print("Bakes: none" + (f" (bake: {inv.bake:g}s, but no batch is followed by another)" if inv.bake else ""),
                      highlight=False)
    if inv.rollback_alarms:
        console.print(f"Rollback alarms: {', '.join(inv.rollback_alarms)}: read before each batch, after it and through"
                      f" each bake; one in ALARM stops the rollout and rolls back every updated host", highlight=False)
    else:
        console.print("Rollback alarms: none", highlight=False)
    if inv.verify is not None:
        console.print(f"Front end: {inv.verify.url} (from the {inv.verify.via}) must answer the new version within"
                      f" {inv.verify.timeout:g}s after each batch, or the rollout rolls back", highlight=False)
    else:
        console.print("Front end: not checked (no verify in the inventory); each host is checked on its own port", highlight=False)
    if step:
        console.print("Step: stops after batch 1 (exit 15) and waits for fab deploy --continue or --abort", highlight=False)
