"""A run stopped at a step (--step): which run waits, and `--continue`, its remaining hosts from any machine.

`--abort` is a recovery of the waiting run (rollout.orchestration.recover, abort=True).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from rollout.adapters.reportfiles import ReportFiles
from rollout.config.inventory import Inventory
from rollout.core import gates as gating
from rollout.core import plan as planning
from rollout.core import sizes
from rollout.core.errors import Drift, LockHeld, PreflightError, RecoveryNeeded, UsageError
from rollout.core.report import Report
from rollout.core.sizes import Size
from rollout.orchestration.deploy import run_plan
from rollout.orchestration.environment import Environment
from rollout.orchestration.gating import Gates
from rollout.orchestration.preflight import read_balancers, current_versions, drift_message
from rollout.state import journal as journals
from rollout.state import lock as locks
from rollout.state import pause as pauses
from rollout.state.store import Store


def waiting(store: Store, env_name: str) -> gating.Stepped:
    """The run waiting at a step; UsageError if there is none, RecoveryNeeded if the unfinished run is not waiting."""
    chain = journals.chain(store)
    if chain is None:
        raise UsageError(f"no run of {env_name} waits at a step (--step): nothing to continue or abort")
    s = gating.stepped_from(chain[0], journals.records(store, chain[0])) if len(chain) == 1 else None
    if s is None:
        raise RecoveryNeeded(f"run {chain[0]} of {env_name} did not finish and does not wait at a step (it is running,"
                             f" or its controller died); if it is dead, restore the fleet with: fab recover --env={env_name}")
    return s


def resume(inv: Inventory, output, *, files: ReportFiles = ReportFiles(), force: bool = False, confirm=None,
           requester: Optional[str] = None) -> Optional[Report]:
    """Continue the run that waits at a step (--continue), from any machine: its remaining hosts, same SHA and ramp.

    The continuation takes the run's lock only if it is free, so of two continuers one goes
    on and the other exits 10; once it holds it, it reads the journal again. A failure beyond
    the budget (or a gate) rolls back every updated host, the first batch's included. `requester`
    is who continues it, as for deploy.
    """
    files.check()
    env = Environment(inv, requester)
    try:
        store = Store(env.aws, inv.state.table, inv.name)
        env.aws.check_access()
        store.check()
        pauses.refuse_if_paused(store, inv.name)
        s = waiting(store, inv.name)
        lock = locks.Lock(store, s.run_id, env.requester, s.ref, ttl=inv.state.lock_ttl)
        busy = "someone is continuing or aborting this run; see fab status --env=" + inv.name
        try:
            lock.acquire(exclusive=True, hint=busy)
        except LockHeld:
            item = locks.holder(store)
            if item is None or item.get("run_id") != s.run_id:
                raise
            # The waiting run's own lease: its controller died after the step, before releasing it,
            # or another continuer holds it. Only a lease left unrenewed for a whole ttl is taken.
            locks.take_over_if_stale(lock, item, say=output.line, hint=busy, exclusive=True)
        handed = False
        try:
            s = waiting(store, inv.name)  # again, now that no one else can act on it
            found = {h.instance_id: h for h in env.discover(connect=True)}
            gone = [h["name"] or h["instance_id"] for h in s.done + s.remaining if h["instance_id"] not in found]
            if gone:
                raise PreflightError(f"the stepped run's hosts {', '.join(gone)} are no longer running instances of"
                                     f" {inv.name}; roll it back with: fab deploy --abort --env={inv.name}")
            done = [replace(found[h["instance_id"]], version=h["version"]) for h in s.done]
            remaining = current_versions(env, [found[h["instance_id"]] for h in s.remaining], frozenset({s.sha}), s.ref,
                                         drift=True)
            drift = drift_message(remaining)
            if drift and not (force or getattr(inv.app, "discard_local_changes", False)):
                raise Drift(drift)
            facts, _, _, suspended = read_balancers(env, env.balancers)
            plan = planning.build(env=inv.name, ref=s.ref, sha=s.sha, hosts=done + remaining,
                                  batch=sizes.ramp(list(s.ramp)) if s.ramp else Size(s.batch_size), balancers=facts,
                                  group=env.group.name if env.group else None, suspended_before=suspended,
                                  app_steps=env.app.steps, max_failures=inv.max_failures, on_failure=inv.on_failure)
            report = Report(env=inv.name, ref=s.ref, sha=s.sha, run_id=s.run_id, who=env.requester)
            report.started = s.started or report.started
            output.line(f"continuing run {s.run_id} after batch {s.after_batch}: {len(remaining)} host(s) to go")
            if confirm is not None and not confirm(plan):
                raise PreflightError("continue not confirmed; the run still waits at its step")
            handed = True
            return run_plan(env, store, plan, output, files, lock=lock, report=report, continuing=s, gates=Gates.of(env))
        finally:
            if not handed:
                lock.release()
    finally:
        env.close()
