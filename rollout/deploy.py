"""`deploy`: preflight (touching nothing), plan, then run the plan."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Optional

from rollout import gitapp, plan as planning, refs
from rollout.environment import Environment
from rollout.errors import PreflightError, RefError
from rollout.inventory import Inventory
from rollout.planview import render_plan
from rollout.report import Report
from rollout.runner import Runner, tail


def on_hosts(env: Environment, hosts: list, command_for) -> dict[str, object]:
    """Run command_for(host) on every host in parallel; instance id -> invoke Result."""
    fleet = env.fleet

    def one(h):
        return h.instance_id, fleet.run(h.address, command_for(h), timeout=300)

    with ThreadPoolExecutor(max_workers=max(1, min(len(hosts), env.inventory.ssh.parallel))) as pool:
        return dict(pool.map(one, hosts))


def preflight(env: Environment, *, ref: Optional[str], batch: Optional[str], hosts: Optional[str], fetch: bool) -> planning.Plan:
    """Check everything a rollout needs and return its plan; change nothing on the fleet.

    With `fetch`, every selected host also fetches the commit while it still serves,
    so that time out of service holds only checkout and reload.
    """
    inv = env.inventory
    wanted = planning.parse_host_filter(hosts)
    planning.parse_batch(batch or inv.batch, 1)  # malformed --batch fails before any network call
    ref = refs.validate(ref or inv.app.branch)
    all_hosts = env.discover()
    selected = planning.select_hosts(all_hosts, wanted)
    env.fleet.connect([h.address for h in selected])
    sha = refs.resolve(inv.app.repository, ref)

    versions = on_hosts(env, selected, lambda h: gitapp.version_command(inv.app.path))
    broken = [h for h in selected if versions[h.instance_id].exited != 0]
    if broken:
        h = broken[0]
        raise PreflightError(f"{h.label}: {inv.app.path} is not a git checkout ({tail(versions[h.instance_id].stderr)}); set up the app there first")
    selected = [replace(h, version=gitapp.parse_version(versions[h.instance_id].stdout)) for h in selected]

    facts = tuple(lb.facts() for lb in env.balancers)
    ids = {h.instance_id for h in all_hosts}
    members = {f"{lb.kind} {lb.name}": set(lb.members()) for lb in env.balancers}
    notes = tuple(planning.membership_differences(ids, members))
    suspended = env.group.suspended() if env.group else frozenset()
    serving = len([h for h in all_hosts if all(h.instance_id in m for m in members.values())])

    if fetch:
        fetched = on_hosts(env, selected, lambda h: gitapp.fetch_command(inv.app.path, sha))
        bad = [h for h in selected if fetched[h.instance_id].exited != 0]
        if bad:
            h = bad[0]
            raise RefError(f"{h.label} cannot fetch {sha} for {ref!r}: {tail(fetched[h.instance_id].stderr)}")

    return planning.build(
        env=inv.name, ref=ref, sha=sha, hosts=selected, batch=batch or inv.batch,
        balancers=facts, group=env.group.name if env.group else None, suspended_before=suspended,
        total_in_service=serving, notes=notes,
    )


def deploy(inv: Inventory, output, *, ref=None, batch=None, hosts=None, dry_run=False, confirm=None, report_path: Optional[Path] = None) -> Optional[Report]:
    """Deploy `ref` to the environment; return the report (None for a dry run)."""
    env = Environment(inv)
    try:
        plan = preflight(env, ref=ref, batch=batch, hosts=hosts, fetch=not dry_run)
        for note in plan.notes:
            output.warn(note)
        if dry_run:
            render_plan(plan, output.console)
            return None
        if confirm is not None and not confirm(plan):
            raise PreflightError("deploy not confirmed; nothing was changed")
        report = Report(env=inv.name, ref=plan.ref, sha=plan.sha)
        output.line(f"deploying {plan.sha[:12]} ({plan.ref}) to {len(plan.hosts)} hosts of {inv.name} in {len(plan.batches)} batches")
        try:
            Runner(env, plan, output, report).run()
        finally:
            output.summary(report)
            if report_path:
                report.write(report_path)
        return report
    finally:
        env.close()
