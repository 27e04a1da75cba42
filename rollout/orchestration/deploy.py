"""`deploy`, `recover` and `rollback`: preflight (touching nothing), lock, plan, run, record."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Optional

from rollout.adapters import failpoints
from rollout.adapters import registry
from rollout.adapters.health import short
from rollout.adapters.interrupts import StopRequest
from rollout.apps import strategies as apps
from rollout.apps.strategies import tail
from rollout.config import inventory
from rollout.config.inventory import Inventory
from rollout.core import personal
from rollout.core import plan as planning
from rollout.core import recovery
from rollout.core.errors import Drift, LockHeld, PreflightError, RecoveryNeeded, RefError, UsageError
from rollout.core.planview import render_plan
from rollout.core.report import Report, ReportFiles, who
from rollout.core.sizes import Size
from rollout.core.vocabulary import Phase, Result
from rollout.orchestration.environment import Environment
from rollout.orchestration.runner import Runner
from rollout.orchestration.suspension import resume_processes
from rollout.state import journal as journals
from rollout.state import lock as locks
from rollout.state import pause as pauses
from rollout.state.store import Store, open_store

log = logging.getLogger("rollout.deploy")


def on_hosts(env: Environment, hosts: list, command) -> dict[str, object]:
    """Run one command on every host in parallel, each as soon as it is connected; instance id -> invoke Result.

    `command` is a (command, stdin) pair, or a callable returning one once the host is connected.
    A host that cannot be connected raises ConnectError (the first such host in order).
    """
    fleet = env.fleet

    def one(h):
        fleet.connect([h.address])
        cmd, stdin = command() if callable(command) else command
        return h.instance_id, fleet.run(h.address, cmd, timeout=300, stdin=stdin)

    with ThreadPoolExecutor(max_workers=max(1, min(len(hosts), env.inventory.ssh.parallel))) as pool:
        return dict(pool.map(one, hosts))


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


def require_success(upstream: str, sha: str, ref: str) -> None:
    """Refuse `sha` unless a rollout of it succeeded in the `upstream` environment (its own history)."""
    runs = journals.history(open_store(inventory.load(upstream)), limit=500)
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


def preflight(env: Environment, store: Optional[Store], *, ref: Optional[apps.Ref], batch: Optional[Size], hosts: Optional[str],
              fetch: bool, sha: Optional[str] = None, ssh: bool = True, discard: bool = False) -> planning.Plan:
    """Check everything a rollout needs and return its plan; change nothing on the fleet.

    With ssh=False (dry runs only) the plan comes from AWS alone: no host is contacted,
    current versions are unknown and HAProxy backends are not read. With `fetch`, a host
    whose checkout has local changes the update would discard is refused (Drift) unless `discard`.
    """
    inv = env.inventory
    wanted = planning.parse_host_filter(hosts)
    app = env.app  # reads the app's secrets: a missing one fails here, before any network call
    ref = ref or apps.Ref(app.default_ref)  # checked where it was read: the flag, the request, the inventory
    # Everything below only reads. The independent parts (the state table, the ref, discovery,
    # SSH, the balancers) run side by side; their errors are raised in a fixed order, discovery's
    # first, so which problem is reported does not depend on timing.
    with ThreadPoolExecutor(max_workers=5) as pool:
        busy = pool.submit(_refuse_if_busy, store, inv.name)
        resolved = None if sha else pool.submit(app.resolve, ref)
        all_hosts = env.discover(connect=ssh)
        if inv.user:
            personal.refuse_shared(env.instances, inventory.shared_selectors(), inv.name)
        selected = planning.select_hosts(all_hosts, wanted)
        balancers = [lb for lb in env.balancers if ssh or lb.kind != "haproxy"]
        versions = pool.submit(_read_hosts, env, selected, resolved, sha, busy, ref, fetch) if ssh else None
        read = pool.submit(_read_balancers, env, balancers)
        busy.result()
        if resolved is not None:
            sha = resolved.result()
        if inv.require_success_in:
            require_success(inv.require_success_in, sha, ref)
        if versions is not None:
            selected = versions.result()
        facts, members, suspended = read.result()
    drift = drift_message(selected)
    if drift and not discard:
        raise Drift(drift)
    ids = {h.instance_id for h in all_hosts}
    notes = tuple(planning.membership_differences(ids, members))
    serving = len([h for h in all_hosts if all(h.instance_id in m for m in members.values())])
    return planning.build(
        env=inv.name, ref=ref, sha=sha, hosts=selected, batch=batch or inv.batch,
        balancers=facts, group=env.group.name if env.group else None, suspended_before=suspended,
        total_in_service=serving, notes=notes, app_steps=app.steps, max_failures=inv.max_failures, on_failure=inv.on_failure,
    )


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


def _read_balancers(env: Environment, balancers: list) -> tuple:
    """(facts, members by balancer, processes suspended before): one read of each balancer and the group."""
    facts = tuple(lb.facts() for lb in balancers)
    members = {f"{lb.kind} {lb.name}": set(lb.members()) for lb in balancers}
    return facts, members, env.group.suspended() if env.group else frozenset()


def _run(env: Environment, store: Store, plan: planning.Plan, output, files: ReportFiles, *,
         lock: Optional[locks.Lock] = None, report: Optional[Report] = None, recovering=None, out_of_service=frozenset(),
         stop: Optional[StopRequest] = None) -> Report:
    """Take the lock (unless given, held), run the plan with journal and pause checks, record history, release the lock."""
    inv = env.inventory
    if report is None:
        report = Report(env=inv.name, ref=plan.ref, sha=plan.sha, run_id=journals.new_run_id())
    run_id = report.run_id
    if lock is None:
        lock = locks.Lock(store, run_id, report.who, plan.ref, ttl=inv.state.lock_ttl)
        lock.acquire()
        failpoints.reached("after-lock")
    stop = stop or StopRequest()

    def paused() -> Optional[str]:
        if recovering:  # a recovery restores the fleet: a pause does not stop it
            return None
        item = pauses.current(store)
        return pauses.describe(item) if item else None

    try:
        output.line(f"run {run_id}: {'recovering' if recovering else 'deploying'} {short(plan.sha)} ({plan.ref}) to"
                    f" {len(plan.hosts)} hosts of {inv.name} in {len(plan.batches)} batches")
        journal = journals.Journal(store, run_id, fence=run_id, joins=recovering.chain if recovering else None)
        with stop.handling_signals(restoring=recovering is not None):
            Runner(env, plan, output, report, journal=journal, lock=lock, paused=paused, stop=stop,
                   recovering=recovering, out_of_service=out_of_service).run()
        return report
    finally:
        # Whatever happens while recording (an error, Ctrl-C, SIGTERM), the lock is released and the report written.
        try:
            if report.ended and report.result != journals.Result.LOST_LOCK:
                try:
                    journals.record_run(store, report, fence=run_id)
                except Exception as exc:  # noqa: BLE001 - the rollout itself is over; say so and go on
                    log.error("could not record run %s in the history: %s", run_id, exc)
        finally:
            try:
                lock.release()
            finally:
                output.summary(report)
                files.write(report, output.warn)


def deploy(inv: Inventory, output, *, ref: Optional[apps.Ref] = None, batch: Optional[Size] = None, hosts=None, dry_run=False, confirm=None,
           files: ReportFiles = ReportFiles(), sha: Optional[str] = None, ssh: bool = True, force: bool = False) -> Optional[Report]:
    """Deploy `ref` (checked: apps.validate_ref) to the environment; return the report (None for a dry run).
    `batch` overrides the inventory's.

    `force` discards local changes in the hosts' checkouts (as does app.discard_local_changes);
    without it a host with such changes is refused (exit 13).
    """
    if not ssh and not dry_run:
        raise UsageError("--no-ssh only goes with --dry-run: a rollout needs SSH to the hosts")
    if not dry_run:
        files.check()
    env = Environment(inv)
    try:
        store = Store(env.aws, inv.state.table, inv.name)
        discard = force or getattr(inv.app, "discard_local_changes", False)
        plan = preflight(env, store, ref=ref, batch=batch, hosts=hosts, fetch=not dry_run, sha=sha, ssh=ssh, discard=discard)
        if env.found_balancers:
            output.line("load balancers found from membership: " + ", ".join(f"{k} {n}" for k, n in env.found_balancers))
        for note in plan.notes:
            output.warn(note)
        for h in plan.hosts:
            if h.local_changes:
                output.warn(f"{h.label}: discarding {len(h.local_changes)} local change(s) in {inv.app.path}"
                            f" (listed in the report): {', '.join(json.dumps(c, ensure_ascii=False) for c in h.local_changes[:5])}")
        if dry_run:
            render_plan(plan, output.console)
            return None
        if confirm is not None and not confirm(plan):
            raise PreflightError("deploy not confirmed; nothing was changed")
        return _run(env, store, plan, output, files)
    finally:
        env.close()


def recover(inv: Inventory, output, *, force: bool = False, files: ReportFiles = ReportFiles()) -> Optional[Report]:
    """Restore the fleet after a run that did not finish, as a recovery run of its own; return its report.

    The lock comes first: a recover that does not get it changes nothing and exits 10. Once it
    is held the state is read again, so a run that finished meanwhile is never recovered. The
    recovery reads the unfinished run and every recovery chained to it, joins the chain, and
    closes it only once every host, process and alarm is restored; no signal stops it.
    """
    files.check()
    env = Environment(inv)
    try:
        env.app  # the app's secrets: without them no host could be restored, so fail before changing anything
        store = Store(env.aws, inv.state.table, inv.name)
        env.aws.check_access()
        store.check()
        chain = journals.chain(store)
        if chain is None:
            _release_orphan_lock(inv, store, force, output)
            return None
        report = Report(env=inv.name, ref=f"recover {chain[0]}", sha="", run_id=journals.new_run_id())
        lock = locks.Lock(store, report.run_id, report.who, report.ref, ttl=inv.state.lock_ttl)
        locks.acquire_for_recovery(lock, force=force, say=output.line)
        stop = StopRequest()
        handed = False
        try:
            with stop.handling_signals(restoring=True):
                chain = journals.chain(store)  # again: what we waited for may have finished it
                if chain is None:
                    output.line(f"{inv.name}: the unfinished run was closed while we waited for the lock; nothing to recover")
                    return None
                a = recovery.assess([(run, journals.records(store, run)) for run in chain])
                output.line(f"recovering run {a.run_id} ({a.direction}, last step: {a.last_step}"
                            + (f"; recoveries interrupted since: {', '.join(a.chain[1:])}" if len(a.chain) > 1 else "")
                            + f"): {len(a.targets)} host(s) to restore, processes to resume: {', '.join(a.resume) or 'none'}")
                hosts = [h for h in env.discover(known_balancers=a.balancers, restoring=True) if h.instance_id in a.targets]
                if not hosts:
                    _recover_without_hosts(env, store, lock, report, a, output)
                    return None
                members = [lb.members() for lb in env.balancers]
                out = frozenset(recovery.out_of_service([h.instance_id for h in hosts], members))
                facts = tuple(lb.facts() for lb in env.balancers)
                # Reading and fetching changes nothing: a failure here leaves the chain as it was.
                by_id = {h.instance_id: h for h in current_versions(env, hosts, frozenset(a.targets.values()), "recover")}
                hosts = [by_id[i] for i in recovery.order([h.instance_id for h in hosts], out)]
                plan = planning.build(
                    env=inv.name, ref=report.ref, sha=a.version, hosts=hosts, batch=Size(a.batch_size),
                    balancers=facts, group=env.group.name if env.group else None,
                    suspended_before=env.group.suspended() if env.group else frozenset(), app_steps=env.app.steps,
                )
                report.sha = plan.sha
                if out:
                    output.line(f"out of service now, restored first: {', '.join(by_id[i].label for i in sorted(out))}")
                handed = True
                return _run(env, store, plan, output, files, lock=lock, report=report, recovering=a, out_of_service=out, stop=stop)
        finally:
            if not handed:
                lock.release()
    finally:
        env.close()


def _release_orphan_lock(inv: Inventory, store: Store, force: bool, output) -> None:
    """No unfinished run: a lock left behind (its holder died before journaling, or after closing) is
    taken over once judged dead as recover judges any holder, then released; a live holder is left alone.
    """
    held = locks.holder(store)
    if held is None:
        output.line(f"{inv.name}: no unfinished run; nothing to recover")
        return
    output.line(f"{inv.name}: no unfinished run, but the lock is held by {locks.describe(held)}")
    lock = locks.Lock(store, journals.new_run_id(), who(), "recover (stale lock)", ttl=inv.state.lock_ttl)
    locks.acquire_for_recovery(lock, force=force, say=output.line)
    lock.release()
    if journals.chain(store) is not None:  # its holder journaled a run after our first look, then died
        raise RecoveryNeeded(f"{inv.name}: a run was journaled while recover watched its lock; run fab recover --env={inv.name} again")
    output.line(f"{inv.name}: released the lock its dead holder left; nothing else to recover")


def _recover_without_hosts(env: Environment, store: Store, lock: locks.Lock, report: Report, a: recovery.Assessment, output) -> None:
    """Close a chain that took no host out of service: resume its processes, re-enable its alarms."""
    journal = journals.Journal(store, report.run_id, fence=report.run_id, joins=a.chain)
    journal.begin({"run_id": report.run_id, "ref": report.ref, "direction": Phase.RECOVER.value, "who": report.who,
                   "batch_size": a.batch_size, "hosts": [], "recovering": list(a.chain), "decided": {}})
    if a.resume and a.group:
        lock.fence()
        resume_processes(env, a.group, a.resume)
        journal.write(journals.Kind.RESUMED, {"group": a.group, "processes": list(a.resume)})
        output.line(f"resumed {', '.join(a.resume)} on {a.group}")
    if a.alarms and env.alarms is not None:
        lock.fence()
        env.alarms.enable(list(a.alarms))
        journal.write(journals.Kind.ALARMS_ENABLED, {"names": list(a.alarms)})
        output.line(f"re-enabled actions of {len(a.alarms)} alarms")
    journal.finish(journals.Result.RECOVERED)
    output.line("no host was taken out of service; the fleet is as it was")


def rollback_target(store: Store, to: Optional[str]) -> tuple[str, str]:
    """(ref, sha) to roll back to: `to`, else the last successful version before the current one (from the history)."""
    runs = [r for r in journals.history(store, limit=200)
            if r.get("result") == Result.SUCCEEDED and not str(r.get("ref", "")).startswith("recover ")]
    if to:
        # An image digest names itself: the hosts that ran it still have it, no registry needed.
        return to, to if registry.DIGEST.match(to) else ""
    if not runs:
        raise UsageError("no successful rollout in the history; give --to=SHA")
    current = runs[0]["sha"]
    before = next((r for r in runs if r["sha"] != current), None)
    if before is None:
        raise UsageError(f"every successful rollout in the history deployed {short(current)}; give --to=SHA")
    return before["ref"], before["sha"]


def rollback(inv: Inventory, output, *, to: Optional[apps.Ref] = None, batch: Optional[Size] = None, confirm=None,
             files: ReportFiles = ReportFiles(), force: bool = False) -> Optional[Report]:
    """Deploy the previous successful version (or `to`) through the same rolling path; `force` as for deploy."""
    ref, sha = rollback_target(open_store(inv), to)
    ref = to or apps.validate_ref(inv.app, ref)  # a ref from the history is read here, so checked here
    output.line(f"rolling back {inv.name} to {short(sha) if sha else ref} ({ref})")
    return deploy(inv, output, ref=ref, batch=batch, confirm=confirm, files=files, sha=sha or None, force=force)
