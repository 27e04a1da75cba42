"""`deploy` and `rollback`: preflight (touching nothing), lock, plan, run, record."""

from __future__ import annotations

import json
import logging
from typing import Optional

from rollout.adapters import desired as desired_ssm
from rollout.adapters import failpoints
from rollout.adapters import registry
from rollout.adapters.interrupts import StopRequest
from rollout.adapters.reportfiles import ReportFiles
from rollout.apps import strategies as apps
from rollout.config.inventory import Inventory
from rollout.core import desired
from rollout.core import gates as gating
from rollout.core import plan as planning
from rollout.core.errors import LockHeld, PreflightError, UsageError
from rollout.core.planview import render_gates, render_plan
from rollout.core.report import Report, short
from rollout.core.sizes import Ramp
from rollout.core.vocabulary import Result
from rollout.orchestration.environment import Environment
from rollout.orchestration.gating import Gates
from rollout.orchestration.preflight import preflight
from rollout.orchestration.runner import Runner
from rollout.state import journal as journals
from rollout.state import lock as locks
from rollout.state import pause as pauses
from rollout.state.store import Store, open_store

log = logging.getLogger("rollout.deploy")


def run_plan(env: Environment, store: Store, plan: planning.Plan, output, files: ReportFiles, *,
         lock: Optional[locks.Lock] = None, report: Optional[Report] = None, recovering=None, out_of_service=frozenset(),
         stop: Optional[StopRequest] = None, whole_fleet: bool = True, step: bool = False,
         continuing: Optional[gating.Stepped] = None, gates: Optional[Gates] = None, drill=None) -> Report:
    """Take the lock (unless given, held), run the plan with journal and pause checks, record history, release the lock.

    Only a run over the `whole_fleet` (not a --hosts selection) publishes the desired version.
    `gates` (rollback alarms, bakes, the front end), `step` (--step), `continuing` (--continue) and
    `drill` (fab drill) go to the Runner. A run that stopped at a step is not recorded in the history yet.
    """
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
                   recovering=recovering, out_of_service=out_of_service, gates=gates, step=step, continuing=continuing,
                   drill=drill).run()
        if whole_fleet:
            publish_desired(env, lock, report, set(recovering.targets.values()) if recovering else {plan.sha}, output)
        return report
    finally:
        # Whatever happens while recording (an error, Ctrl-C, SIGTERM), the lock is released and the report written.
        try:
            if report.ended and report.result not in (Result.LOST_LOCK, Result.STEPPED):
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


def publish_desired(env: Environment, lock: locks.Lock, report: Report, versions: set[str], output) -> None:
    """After a run that left its hosts on one version, write it to `desired_version.parameter` for booting instances.

    A failure to write is a warning naming the parameter and the value to put by hand: the run itself is done.
    """
    inv = env.inventory
    version = desired.after_run(str(report.result), versions)
    if inv.desired_version is None or version is None:
        return
    record = desired.Desired(version=version, run_id=report.run_id, ref=str(report.ref), env=inv.name)
    try:
        lock.fence()
        desired_ssm.publish(env.aws, inv.desired_version.parameter, record)
    except Exception as exc:  # noqa: BLE001 - the rollout is over; say what new instances would boot
        output.warn(f"could not write the desired version to SSM parameter {inv.desired_version.parameter} ({exc});"
                    f" instances launched now boot the previous version: put {desired.encode(record)} there")
        return
    output.line(f"desired version {short(version)} (run {report.run_id}) written to {inv.desired_version.parameter}")


def publish_converged(env: Environment, store: Store, version: str, output) -> None:
    """Publish `version`, which every host already serves, unless it is the published one (a run that
    reached every host but stopped, interrupted or paused, published nothing). Under the lock, with
    the run id of the newest run in the history that deployed it.
    """
    inv = env.inventory
    if inv.desired_version is None:
        return
    current = desired_ssm.read(env.aws, inv.desired_version.parameter)
    if current is not None and current.version == version:
        return
    run = next((r for r in journals.history(store, limit=50) if r.get("sha") == version), None)
    if run is None:
        output.warn(f"every host serves {short(version)}, but none of the last 50 runs in the history deployed it;"
                    f" {inv.desired_version.parameter} is left as it is")
        return
    report = Report(env=inv.name, ref=run["ref"], sha=version, run_id=run["run_id"], who=env.requester)
    report.result = Result.SUCCEEDED
    lock = locks.Lock(store, journals.new_run_id(), report.who, run["ref"], ttl=inv.state.lock_ttl)
    try:
        lock.acquire(exclusive=True)
    except LockHeld as exc:  # a run in progress publishes what it deploys; this deploy had nothing to do
        output.warn(f"{inv.desired_version.parameter} not written back: {exc}")
        return
    try:
        publish_desired(env, lock, report, {version}, output)
    finally:
        lock.release()


def deploy(inv: Inventory, output, *, ref: Optional[apps.Ref] = None, batch: Optional[Ramp] = None, hosts=None, dry_run=False, confirm=None,
           files: ReportFiles = ReportFiles(), sha: Optional[str] = None, ssh: bool = True, force: bool = False,
           step: bool = False, requester: Optional[str] = None) -> Optional[Report]:
    """Deploy `ref` (checked: apps.validate_ref) to the environment; return the report (None for a dry run).
    `batch` overrides the inventory's.

    With `step`, the run stops after its first batch (Stepped, exit 15) and waits, in the journal,
    for orchestration.stepped.resume (--continue) or recover(abort=True) (--abort), from any machine.

    `force` redoes hosts that already serve the target (otherwise left out of the plan), and discards
    local changes in the hosts' checkouts (as does app.discard_local_changes); without it a host with
    such changes is refused (exit 13). `requester` is who asked for it, in the report, the lock, the
    history and the AWS role session (default: this process's operator).
    """
    if not ssh and not dry_run:
        raise UsageError("--no-ssh only goes with --dry-run: a rollout needs SSH to the hosts")
    if not dry_run:
        files.check()
    env = Environment(inv, requester)
    try:
        store = Store(env.aws, inv.state.table, inv.name)
        discard = force or getattr(inv.app, "discard_local_changes", False)
        plan, done = preflight(env, store, ref=ref, batch=batch, hosts=hosts, fetch=not dry_run, sha=sha, ssh=ssh,
                               discard=discard, redo=force)
        if done:
            output.line(f"{len(done)} host(s) already serve the target in every balancer, left as they are"
                        f" (--force redoes them): {', '.join(h.label for h in done)}")
        if plan is None:
            output.line(f"every selected host of {inv.name} already serves the target; nothing to do")
            if not dry_run and hosts is None:  # the whole environment is on it: a run stopped after its last host
                publish_converged(env, store, done[0].version, output)
            return None
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
            render_gates(inv, len(plan.batches), step, output.console)
            return None
        if confirm is not None and not confirm(plan):
            raise PreflightError("deploy not confirmed; nothing was changed")
        report = Report(env=inv.name, ref=plan.ref, sha=plan.sha, run_id=journals.new_run_id(), who=env.requester)
        return run_plan(env, store, plan, output, files, report=report, whole_fleet=hosts is None, step=step, gates=Gates.of(env))
    finally:
        env.close()


def rollback_target(store: Store, to: Optional[str]) -> tuple[str, str]:
    """(ref, sha) to roll back to: `to`, else the last successful version before the current one (from the history)."""
    runs = [r for r in journals.history(store, limit=200)
            if r.get("result") == Result.SUCCEEDED and not str(r.get("ref", "")).startswith(("recover ", "abort "))]
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


def rollback(inv: Inventory, output, *, to: Optional[apps.Ref] = None, batch: Optional[Ramp] = None, confirm=None,
             files: ReportFiles = ReportFiles(), force: bool = False, requester: Optional[str] = None) -> Optional[Report]:
    """Deploy the previous successful version (or `to`) through the same rolling path; `force`, `requester` as for deploy."""
    ref, sha = rollback_target(open_store(inv, requester=requester), to)
    ref = to or apps.validate_ref(inv.app, ref)  # a ref from the history is read here, so checked here
    output.line(f"rolling back {inv.name} to {short(sha) if sha else ref} ({ref})")
    return deploy(inv, output, ref=ref, batch=batch, confirm=confirm, files=files, sha=sha or None, force=force,
                  requester=requester)
