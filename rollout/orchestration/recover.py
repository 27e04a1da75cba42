"""`recover`: restore the fleet after a run that did not finish, as a recovery run of its own.

What to undo is decided by rollout.core.recovery (pure); this module reads the journal and the
fleet, takes the lock, and hands the plan to the same rolling path as a deploy (deploy.run_plan).
"""

from __future__ import annotations

from typing import Optional

from rollout.adapters.interrupts import StopRequest
from rollout.adapters.reportfiles import ReportFiles
from rollout.config.inventory import Inventory
from rollout.core import plan as planning
from rollout.core import recovery
from rollout.core.errors import RecoveryNeeded
from rollout.core.report import Report
from rollout.core.sizes import Size
from rollout.core.vocabulary import Kind, Phase, Result
from rollout.orchestration import stepped
from rollout.orchestration.deploy import run_plan
from rollout.orchestration.environment import Environment
from rollout.orchestration.preflight import current_versions
from rollout.orchestration.suspension import resume_processes
from rollout.state import journal as journals
from rollout.state import lock as locks
from rollout.state.store import Store


def recover(inv: Inventory, output, *, force: bool = False, files: ReportFiles = ReportFiles(),
            abort: bool = False, requester: Optional[str] = None) -> Optional[Report]:
    """Restore the fleet after a run that did not finish, as a recovery run of its own; return its report.

    A run that waits at a step (--step) is not dead: it is left alone, unless `abort`
    (--abort), which returns its updated hosts to their previous versions the same way.

    The lock comes first: a recover that does not get it changes nothing and exits 10. Once it
    is held the state is read again, so a run that finished meanwhile is never recovered. The
    recovery reads the unfinished run and every recovery chained to it, joins the chain, and
    closes it only once every host, process and alarm is restored; no signal stops it. `requester`
    as for deploy.
    """
    files.check()
    env = Environment(inv, requester)
    try:
        env.app  # the app's secrets: without them no host could be restored, so fail before changing anything
        store = Store(env.aws, inv.state.table, inv.name)
        env.aws.check_access()
        store.check()
        chain = journals.chain(store)
        if abort:
            stepped.waiting(store, inv.name)
        elif chain is not None and journals.stepped(store):
            output.line(f"{inv.name}: run {chain[0]} waits after its first batch (--step), every host serving; nothing to"
                        f" recover: continue it with fab deploy --continue --env={inv.name}, or roll it back with"
                        f" fab deploy --abort --env={inv.name}")
            return None
        if chain is None:
            _release_orphan_lock(inv, store, force, output, env.requester)
            return None
        report = Report(env=inv.name, ref=f"{'abort' if abort else 'recover'} {chain[0]}", sha="", run_id=journals.new_run_id(), who=env.requester)
        lock = locks.Lock(store, report.run_id, report.who, report.ref, ttl=inv.state.lock_ttl)
        locks.acquire_for_recovery(lock, force=force, say=output.line)
        stop = StopRequest()
        handed = False
        try:
            with stop.handling_signals(restoring=True):
                chain = journals.chain(store)  # again: what we waited for may have finished it
                if abort:
                    stepped.waiting(store, inv.name)  # not continued by someone else meanwhile
                elif chain is not None and journals.stepped(store):
                    output.line(f"{inv.name}: run {chain[0]} waits at a step; nothing to recover")
                    return None
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
                return run_plan(env, store, plan, output, files, lock=lock, report=report, recovering=a, out_of_service=out, stop=stop)
        finally:
            if not handed:
                lock.release()
    finally:
        env.close()


def _release_orphan_lock(inv: Inventory, store: Store, force: bool, output, requester: str) -> None:
    """No unfinished run: a lock left behind (its holder died before journaling, or after closing) is
    taken over once judged dead as recover judges any holder, then released; a live holder is left alone.
    """
    held = locks.holder(store)
    if held is None:
        output.line(f"{inv.name}: no unfinished run; nothing to recover")
        return
    output.line(f"{inv.name}: no unfinished run, but the lock is held by {locks.describe(held)}")
    lock = locks.Lock(store, journals.new_run_id(), requester, "recover (stale lock)", ttl=inv.state.lock_ttl)
    locks.acquire_for_recovery(lock, force=force, say=output.line)
    lock.release()
    if journals.chain(store) is not None:  # its holder journaled a run after our first look, then died
        raise RecoveryNeeded(f"{inv.name}: a run was journaled while recover watched its lock; run fab recover --env={inv.name} again")
    output.line(f"{inv.name}: released the lock its dead holder left; nothing else to recover")


def _recover_without_hosts(env: Environment, store: Store, lock: locks.Lock, report: Report, a: recovery.Assessment, output) -> None:
    """Close a chain that took no host out of service: resume its processes, re-enable its alarms."""
    journal = journals.Journal(store, report.run_id, fence=report.run_id, joins=a.chain)
    journal.begin(recovery.start_record(run_id=report.run_id, ref=report.ref, who=report.who, phase=Phase.RECOVER,
                                        batch_size=a.batch_size, hosts=[], recovering=a.chain))
    if a.resume and a.group:
        lock.fence()
        resume_processes(env, a.group, a.resume)
        journal.write(Kind.RESUMED, {"group": a.group, "processes": list(a.resume)})
        output.line(f"resumed {', '.join(a.resume)} on {a.group}")
    if a.alarms and env.alarms is not None:
        lock.fence()
        env.alarms.enable(list(a.alarms))
        journal.write(Kind.ALARMS_ENABLED, {"names": list(a.alarms)})
        output.line(f"re-enabled actions of {len(a.alarms)} alarms")
    journal.finish(Result.RECOVERED)
    output.line("no host was taken out of service; the fleet is as it was")
