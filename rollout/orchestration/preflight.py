"""Preflight: everything a rollout needs, checked and read without changing anything; returns the plan."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Optional

from rollout.adapters import health
from rollout.adapters.balancers import healthy_members
from rollout.apps import strategies as apps
from rollout.config import inventory
from rollout.core import capacity
from rollout.core import convergence, personal
from rollout.core import plan as planning
from rollout.core.errors import Drift, LockHeld, PreflightError, RefError
from rollout.core.report import short
from rollout.core.report import tail
from rollout.core.sizes import Ramp
from rollout.orchestration.environment import Environment
from rollout.orchestration.gating import Gates
from rollout.state import journal as journals
from rollout.state import lock as locks
from rollout.state import pause as pauses
from rollout.state.store import Store, open_store


def on_hosts(env: Environment, hosts: list, command) -> dict[str, object]:
    """Run one command on every host in parallel, each as soon as it is connected; instance id -> invoke Result.

    `command` is a (command, stdin) pair, or a callable returning one once the host is connected.
    Every host is tried; if any cannot be reached, one ConnectError names them all.
    """
    fleet = env.fleet

    def one(address: str):
        cmd, stdin = command() if callable(command) else command
        return fleet.run(address, cmd, timeout=300, stdin=stdin)

    outcome = fleet.each([h.address for h in hosts], one)
    outcome.raise_failed()
    return {h.instance_id: outcome.succeeded[h.address] for h in hosts}


def refuse_if_busy(store: Store, env_name: str) -> None:
    """Refuse while paused, locked by another run, or left unfinished by a dead one."""
    pauses.refuse_if_paused(store, env_name)
    # The journal before the lock: a run takes the lock first and releases it last, so a
    # run seen unfinished here without a lock holder is dead or has just finished, which
    # refuse_if_unfinished reads again to tell.
    active = journals.chain(store) or ()
    holder = locks.holder(store)
    if holder:
        hint = (f"if its controller died, restore the fleet with: fab recover --env={env_name}" if holder.get("run_id") in active
                else f"wait for it, or if it is dead: fab unlock --env={env_name} --force")
        raise LockHeld(f"another rollout holds the lock: {locks.describe(holder)}; {hint}")
    journals.refuse_if_unfinished(store, env_name)


def require_success(upstream: str, sha: str, ref: str, requester: Optional[str] = None) -> None:
    """Refuse `sha` unless a rollout of it succeeded in the `upstream` environment (its own history)."""
    runs = journals.history(open_store(inventory.load(upstream), requester=requester), limit=500)
    if not journals.succeeded_with(runs, sha):
        raise PreflightError(f"{short(sha)} ({ref}) has no successful rollout in {upstream}, which this environment requires;"
                             f" deploy it there first: fab deploy --env={upstream} --ref={sha}")


def current_versions(env: Environment, hosts: list, fetch=frozenset(), ref: str = "", drift: bool = False) -> list:
    """The hosts with the version each runs now (None where it cannot tell).

    With `fetch` (versions, or a callable returning them, called once a host is connected),
    each host also fetches those versions in the same command, while it still serves: out
    of service then holds only the switch. With `drift` (and one version to fetch), the same
    command also reads the local changes that updating to it would discard (`local_changes`).
    """
    def wanted() -> frozenset:
        return frozenset(fetch() if callable(fetch) else fetch)

    def command():
        versions = wanted()
        if not versions:
            return env.app.version_command()
        return apps.read_and_fetch(env.app, set(versions), drift_for=next(iter(versions)) if drift and len(versions) == 1 else None)

    results = on_hosts(env, hosts, command)
    parts = {h.instance_id: apps.split_read_and_fetch(results[h.instance_id]) for h in hosts}
    out = []
    for h in hosts:
        read, fetched, drifted = parts[h.instance_id]
        if fetched is not None and fetched.exited != 0:
            what = "fetch" if env.app.kind == "git" else "pull"
            raise RefError(f"{h.label} cannot {what} {', '.join(short(v) for v in sorted(wanted()))} for {ref!r}:"
                           f" {env.app.fetch_error(fetched.stderr)}")
        if drifted is not None and drifted.exited != 0:
            raise PreflightError(f"{h.label}: cannot read the local changes in {env.inventory.app.path}: {tail(drifted.stderr)}")
        changes = env.app.parse_drift(drifted.stdout) if drifted is not None else ()
        out.append(replace(h, version=env.app.parse_version(h.label, read), local_changes=changes))
    return out


def drift_message(hosts: list, per_host: int = 5) -> Optional[str]:
    """One line naming every host with local changes and its first changed files (None if there are none)."""
    drifted = [h for h in hosts if h.local_changes]
    if not drifted:
        return None

    def files(h) -> str:
        shown = ", ".join(json.dumps(c, ensure_ascii=False) for c in h.local_changes[:per_host])
        more = len(h.local_changes) - per_host
        return shown + (f" and {more} more" if more > 0 else "")

    return (f"local changes that the checkout would discard on {len(drifted)} host(s): "
            + "; ".join(f"{h.label}: {files(h)}" for h in drifted)
            + "; commit or remove them on the host, or deploy with --force (or set app.discard_local_changes: true)"
              " to discard them")


def preflight(env: Environment, store: Optional[Store], *, ref: Optional[apps.Ref], batch: Optional[Ramp], hosts: Optional[str],
              fetch: bool, sha: Optional[str] = None, ssh: bool = True, discard: bool = False,
              redo: bool = True) -> tuple[Optional[planning.Plan], list]:
    """Check everything a rollout needs and return its plan (None if no host is left), and the hosts left out as
    already done; change nothing on the fleet.

    With ssh=False (dry runs only) the plan comes from AWS alone: no host is contacted,
    current versions are unknown and HAProxy backends are not read. With `fetch`, a host
    whose checkout has local changes the update would discard is refused (Drift) unless `discard`.
    Unless `redo`, hosts that already serve the target and are in service in every balancer
    are left out of the plan (core.convergence), so a rerun goes on where a run stopped.
    """
    inv = env.inventory
    wanted = planning.parse_host_filter(hosts)
    app = env.app  # reads the app's secrets: a missing one fails here, before any network call
    ref = ref or apps.Ref(app.default_ref)  # checked where it was read: the flag, the request, the inventory
    # Everything below only reads. The independent parts (the state table, the ref, discovery,
    # SSH, the balancers) run side by side; their errors are raised in a fixed order, discovery's
    # first, so which problem is reported does not depend on timing.
    with ThreadPoolExecutor(max_workers=5) as pool:
        env.aws.client("ec2")  # made first (one at a time): the way to the hosts starts with discovery
        busy = pool.submit(_refuse_if_busy, store, inv.name)
        resolved = None if sha else pool.submit(app.resolve, ref)
        all_hosts = env.discover(connect=ssh, ssh=ssh)
        if inv.user:
            personal.refuse_shared(env.instances, inventory.shared_selectors(), inv.name)
        selected = planning.select_hosts(all_hosts, wanted)
        balancers = [lb for lb in env.balancers if ssh or lb.kind != "haproxy"]
        versions = pool.submit(_read_hosts, env, selected, resolved, sha, busy, ref, fetch) if ssh else None
        read = pool.submit(read_balancers, env, balancers)
        gates_ok = pool.submit(Gates.of(env).check_configured)  # the rollback alarms exist, none in ALARM
        busy.result()
        if resolved is not None:
            sha = resolved.result()
        if inv.require_success_in:
            require_success(inv.require_success_in, sha, ref, env.requester)
        if versions is not None:
            selected = versions.result()
        facts, members, healthy, suspended = read.result()
        gates_ok.result()
    done = [] if redo or not ssh else already_done(env, selected, sha, list(healthy.values()))
    selected = [h for h in selected if h not in done]
    drift = drift_message(selected)
    if drift and not discard:
        raise Drift(drift)
    if not selected:
        return None, done
    ids = {h.instance_id for h in all_hosts}
    notes = tuple(planning.membership_differences(ids, members))
    serving = len([h for h in all_hosts if all(h.instance_id in m for m in members.values())])
    floor = None
    if inv.min_healthy is not None:
        floor = capacity.Floor(inv.min_healthy, capacity.floor_hosts(inv.min_healthy, len(all_hosts)), inv.min_healthy_wait,
                               tuple((name, len(up)) for name, up in healthy.items()))
    return planning.build(
        env=inv.name, ref=ref, sha=sha, hosts=selected, batch=batch or inv.batch,
        balancers=facts, group=env.group.name if env.group else None, suspended_before=suspended,
        total_in_service=serving, notes=notes, app_steps=app.steps, max_failures=inv.max_failures, on_failure=inv.on_failure,
        by_zone=inv.batch_by == "zone", floor=floor,
    ), done


def already_done(env: Environment, hosts: list, target: str, healthy: list[frozenset[str]]) -> list:
    """The hosts whose checkout is `target`, healthy in every balancer, and serving `target` (asked only of those)."""
    inv = env.inventory
    candidates = [h for h in hosts if h.version == target and convergence.in_service_everywhere(h.instance_id, healthy)]

    def served(h) -> Optional[str]:
        return health.probe(lambda: env.fleet.host_channel(h.address, inv.health.port), inv.health).version

    with ThreadPoolExecutor(max_workers=max(1, min(len(candidates), inv.ssh.parallel))) as pool:
        seen = list(pool.map(served, candidates))
    return [h for h, v in zip(candidates, seen) if convergence.converged(h.version, v, target, True)]


def _read_hosts(env: Environment, hosts: list, resolved, sha: Optional[str], busy, ref: str, fetch: bool) -> list:
    """Each host as soon as it is connected: its current version, and (once the ref is resolved and
    nothing else runs) the fetch."""
    if not fetch:
        return current_versions(env, hosts)

    def versions() -> frozenset:
        busy.result()  # never pull or fetch for an environment another rollout holds
        return frozenset({resolved.result() if resolved is not None else sha})

    return current_versions(env, hosts, versions, ref, drift=True)


def _refuse_if_busy(store: Optional[Store], env_name: str) -> None:
    if store is not None:
        store.check()
        refuse_if_busy(store, env_name)


def read_one(lb) -> tuple:
    """(facts, members) of one balancer."""
    return lb.facts(), lb.members()


def read_balancers(env: Environment, balancers: list) -> tuple:
    """(facts, members by balancer, healthy members by balancer, processes suspended before): one read
    of each balancer and the group, side by side. Errors are raised in the balancers' order, the
    group's last, whichever came first."""
    with ThreadPoolExecutor(max_workers=len(balancers) + 1) as pool:
        reads = [pool.submit(read_one, lb) for lb in balancers]
        group = env.group and pool.submit(env.group.suspended)
        results = [r.result() for r in reads]
        suspended = group.result() if group else frozenset()
    facts = tuple(f for f, _ in results)
    states = {f"{lb.kind} {lb.name}": (lb.kind, m) for lb, (_, m) in zip(balancers, results)}
    members = {name: set(m) for name, (_, m) in states.items()}
    healthy = {name: healthy_members(kind, m) for name, (kind, m) in states.items()}
    return facts, members, healthy, suspended
