"""Walk a plan through the adapters: suspend, roll batch by batch, roll back on failure, restore exactly.

Every change that `recover` would have to undo (suspending processes, disabling alarms,
taking hosts out of service) is written to the journal before it is made, so that `recover`
can restore the fleet if this process dies at any point.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

from rollout.adapters import autoscaling
from rollout.adapters import failpoints
from rollout.adapters import health
from rollout.adapters.health import short
from rollout.adapters.interrupts import StopRequest
from rollout.adapters.ssh import Gate
from rollout.adapters.waiting import Cancelled, WaitTimeout, poll
from rollout.apps.strategies import tail
from rollout.core import recovery as recoveries
from rollout.core.errors import ConnectError, DeployFailed, Interrupted, LockHeld, LockLost, LockUnproven, Paused, RolledBack, RolloutError, StepError
from rollout.core.plan import Host, Plan
from rollout.core.report import HostRecord, Report, StepRecord, now_iso
from rollout.state.journal import Kind, Result

log = logging.getLogger("rollout.runner")


def resume_processes(env, name: str, processes) -> None:
    """Resume `processes` in the Auto Scaling group `name` (the one a journal names, not necessarily the inventory's)."""
    group = env.group if env.group is not None and env.group.name == name else autoscaling.Group(env.aws, name)
    group.resume(tuple(processes))


def _shared(fn: Callable[[], bool], fresh: float = 1.0) -> Callable[[], bool]:
    """`fn` answered once for callers within `fresh` seconds of each other (a batch's sessions at the gate);
    a later caller (a command retried after a dropped connection) asks again."""
    guard, last = threading.Lock(), [False, -fresh]

    def call() -> bool:
        with guard:
            if time.monotonic() - last[1] >= fresh:
                last[0] = fn()
                last[1] = time.monotonic()
            return last[0]

    return call


class _NotRun(Exception):
    """An update held behind a gate that was cancelled: nothing ran on the host."""


@dataclass
class Policy:
    """What to do when hosts fail: how many may fail, and whether to roll the rest back."""

    on_failure: str = "rollback"
    max_failures: int = 0


@dataclass
class BatchResult:
    updated: list[Host] = field(default_factory=list)
    restored: list[Host] = field(default_factory=list)
    left_out: list[Host] = field(default_factory=list)
    errors: dict[str, StepError] = field(default_factory=dict)


class Runner:
    """Runs one planned rollout against one environment's adapters.

    With `recovering` (an Assessment), the run is a recovery: it returns the assessed hosts to
    their decided versions, those already out of service first, and restores the processes
    and alarm actions of the whole chain; no signal or pause stops it, and its journal joins
    the chain, which it closes only once everything is restored.
    """

    def __init__(self, env, plan: Plan, output, report: Report, *, policy: Optional[Policy] = None,
                 journal=None, lock=None, paused: Callable[[], Optional[str]] = lambda: None,
                 stop: Optional[StopRequest] = None, recovering: Optional[recoveries.Assessment] = None,
                 out_of_service: frozenset[str] = frozenset()):
        self.env = env
        self.inv = env.inventory
        self.plan = plan
        self.out = output
        self.report = report
        self.policy = policy or Policy()
        self.journal = journal
        self.lock = lock
        self.paused = paused
        self.stop = stop or StopRequest()
        self.recovering = recovering
        self.targets = recovering.targets if recovering else {}
        self.out_of_service = out_of_service
        self.size = len(plan.batches[0].hosts) if plan.batches else 1
        # A recovery restores, besides its own, what the runs it recovers left suspended or disabled:
        # group name -> processes to resume, in the group the journal names.
        self.suspended_by_us: dict[str, tuple[str, ...]] = (
            {recovering.group: recovering.resume} if recovering and recovering.group and recovering.resume else {})
        self.alarms_disabled: list[str] = list(recovering.alarms) if recovering else []
        self.failures = 0
        self.batch_no = 0
        self._slack_head = ""
        self._registered: dict[int, set[str]] = {}
        self._unproven: Optional[LockUnproven] = None  # set when the gate could not prove the lock

    def target(self, host: Host) -> str:
        return self.targets.get(host.instance_id, self.plan.sha)

    # -- the whole rollout -------------------------------------------------
    def run(self) -> Report:
        plan, report = self.plan, self.report
        report.batches = len(plan.batches)
        report.hosts = [HostRecord(h.instance_id, h.name, h.address, b.index, old_version=h.version, discarded=list(h.local_changes))
                        for b in plan.batches for h in b.hosts]
        t0 = time.monotonic()
        start = {
            "run_id": report.run_id, "ref": plan.ref, "sha": plan.sha, "batch_size": self.size, "who": report.who,
            "direction": "recover" if self.recovering else "deploy",
            "hosts": [{"instance_id": h.instance_id, "address": h.address, "name": h.name, "version": h.version,
                       "target": self.target(h)} for h in plan.hosts],
        }
        if self.env.found_balancers:  # recover must find them even once no instance is left registered
            start["balancers"] = [list(kn) for kn in self.env.found_balancers]
        if self.recovering:
            start.update(recovering=list(self.recovering.chain), decided=self.targets)
        self._journal(Kind.START, start, begin=True)
        self._slack_head = (f":rocket: {self.inv.name}: deploying {short(plan.sha)} ({plan.ref}) to {len(plan.hosts)} hosts"
                            f" in batches of {self.size} — {report.who}")
        self.env.slack.start(self._slack_head)
        error: Optional[RolloutError] = None
        restore_error: Optional[RolloutError] = None
        try:
            self._suspend()
            error = self._forward()
            if error is None:
                self._smoke_checks()
                report.result = Result.RECOVERED if self.recovering else Result.SUCCEEDED
        except LockLost as exc:
            report.result, error = Result.LOST_LOCK, exc
        except LockUnproven as exc:
            report.result, error = Result.FAILED, exc
        except RolloutError as exc:
            report.result = Result.FAILED
            error = exc
        except KeyboardInterrupt:
            report.result = Result.INTERRUPTED
            error = Interrupted("interrupted during a step; see the summary for hosts that may be out of the load balancers")
        finally:
            # A run that lost its lock, or cannot prove it holds it, changes nothing more.
            if not isinstance(error, (LockLost, LockUnproven)):
                try:
                    restore_error = self._restore()
                except LockLost as exc:
                    report.result, error = Result.LOST_LOCK, exc
                except LockUnproven as exc:
                    report.result, error = Result.FAILED, exc
                if restore_error and error is None:
                    report.result, error = Result.FAILED, restore_error
        lost = isinstance(error, LockLost)
        stranded = [h.name or h.instance_id for h in report.hosts
                    if h.result == "failed, out of service" or h.error.startswith("could not roll back")]
        unproven = isinstance(error, LockUnproven)
        if unproven:
            error = self._stopped_unproven(error, stranded)
        if stranded and not lost and not unproven:  # unproven: said above, with what else stays held
            self.out.warn(f"{', '.join(stranded)} need attention; restore the fleet with: fab recover --env={self.inv.name}")
            if error is None:
                report.result = Result.FAILED
                error = DeployFailed(f"out of the load balancers after failing and failing to return to their previous"
                                     f" version: {', '.join(stranded)}; restore the fleet with: fab recover --env={self.inv.name}")
        if error is None:
            try:
                self._fence()
                self._post_deploy()
            except LockLost as exc:
                report.result, error, lost = Result.LOST_LOCK, exc, True
            except LockUnproven as exc:  # nothing is out of service any more: the run is over
                report.result, error = Result.FAILED, DeployFailed(f"{exc}; post-deploy commands were not run")
        report.ended = now_iso()
        report.duration_seconds = round(time.monotonic() - t0, 3)
        report.error = str(error) if error else ""
        report.exit_code = error.exit_code if error else 0
        report.aws_calls = self.env.aws.calls
        report.bastion_connections = self.env.fleet.bastion_opens
        if self.journal is not None and not lost and not unproven:  # unproven: left open, as it was, for recover
            try:
                if stranded or restore_error or (self.recovering and error is not None):
                    # Left open on purpose: the next deploy refuses and `recover` finishes the job.
                    self.journal.write(Kind.STOPPED, {"result": report.result, "stranded": stranded})
                else:
                    self.journal.finish(report.result)
            except Exception as exc:  # noqa: BLE001 - the journal then stays open and `recover` will say so
                log.error("could not close the journal of run %s: %s; run fab recover --env=%s", report.run_id, exc, self.inv.name)
        icon = ":white_check_mark:" if error is None else ":x:"
        rows = "\n".join("  ".join(r) for r in report.summary_rows())
        self.env.slack.finish(f"{icon} {report.headline()}" + (f"\n{report.error}" if error else "") + f"\n```{rows}```")
        if error is not None:
            raise error
        return report

    def _forward(self) -> Optional[RolloutError]:
        """Roll every host forward; on failure beyond the budget apply the policy. None means success."""
        report = self.report
        if self.recovering:
            stopped = self._roll(list(self.plan.hosts), self.target, "recover")
            if stopped is None:
                return None
            return DeployFailed(f"{stopped[1]}; the run stays open: run fab recover --env={self.inv.name} again once fixed")
        stopped = self._roll(list(self.plan.hosts), self.target, "deploy")
        updated = [h for h in self.plan.hosts if self.report.host(h.instance_id).result == "updated"]
        if stopped is None:
            if self.failures:
                self.out.warn(f"{self.failures} host(s) failed within max_failures={self.policy.max_failures}; they run their previous version")
            return None
        kind, why = stopped
        left_out = [h.name or h.instance_id for h in report.hosts if h.result == "failed, out of service"]
        if kind == "failed" and self.policy.on_failure == "rollback":
            if updated:
                self.out.line(f"rolling back {len(updated)} updated host(s) to their previous versions: {why}")
                self.env.slack.progress(f":rewind: {self.inv.name}: rolling back {len(updated)} host(s): {why}")
                back = self._roll(updated, lambda h: h.version, "rollback")
                if back is not None:
                    report.result = Result.FAILED
                    return DeployFailed(f"{why}; rollback did not finish either: {back[1]}; see the summary")
            if not left_out:
                report.result = Result.ROLLED_BACK
                return RolledBack(f"{why}; every host touched was returned to its previous version and is serving")
        if left_out:
            why += f"; out of the load balancers: {', '.join(left_out)} (fix them, then deploy again)"
        report.result = {"paused": Result.PAUSED, "interrupted": Result.INTERRUPTED}.get(kind, Result.FAILED)
        cls = {"paused": Paused, "interrupted": Interrupted, "lock": LockHeld}.get(kind, DeployFailed)
        return cls(why)

    def _roll(self, hosts: list[Host], target: Callable[[Host], str], phase: str) -> Optional[tuple[str, str]]:
        """Update hosts batch by batch; (reason kind, message) if it had to stop, None when all were done."""
        # Hosts already out of service go first (a recovery's plan is ordered so) and use up the room first.
        queue = deque(hosts)
        left_out: list[Host] = []
        while queue:
            # A rollback or a recovery restores the fleet: once started it finishes, whatever signal comes.
            if phase == "deploy" and self.stop.requested:
                return "interrupted", (f"interrupted by {self.stop.reason} after batch {self.batch_no}: the batch in hand was"
                                       f" finished; {len(queue)} host(s) were not updated")
            if self.lock is not None and self.lock.lost:
                raise LockLost.to(self.lock.lost)
            if phase == "deploy" and (why := self.paused()):
                return "paused", f"{self.inv.name} was {why}; stopped after batch {self.batch_no}"
            room = self.size - len(left_out)
            take = recoveries.next_batch_size([h.instance_id for h in queue], self.out_of_service, room)
            if take <= 0:
                return "failed", f"{len(left_out)} failed host(s) are out of the load balancers, which is the whole batch size"
            batch = [queue.popleft() for _ in range(take)]
            if phase == "rollback" and (unreachable := self._unreachable(batch)):
                # Never take a host out of service that we cannot then update.
                for h in unreachable:
                    self.report.host(h.instance_id).error = "could not roll back: unreachable over SSH"
                batch = [h for h in batch if h not in unreachable]
                if not batch:
                    continue
            result = self._batch(batch, target, phase)
            left_out += result.left_out
            if phase == "deploy":
                updated = sum(1 for h in self.report.hosts if h.result == "updated")
                self.env.slack.progress(f"{self._slack_head}\nbatch {self.batch_no} of {len(self.plan.batches)} done:"
                                        f" {updated} of {len(self.plan.hosts)} hosts updated"
                                        + (f", {len(result.errors)} failed in this batch" if result.errors else ""))
                self.failures += len(result.errors)
                if self.failures > self.policy.max_failures:
                    first = next(iter(result.errors.values()))
                    return "failed", (f"{self.failures} host(s) failed (max_failures={self.policy.max_failures}); first: {first}")
            elif result.errors:
                self.failures += len(result.errors)
        if phase == "rollback" and any(self.report.host(h.instance_id).error.startswith("could not roll back") for h in hosts):
            return "failed", "some hosts could not be rolled back"
        return None

    # -- Auto Scaling and alarms: suspend once, restore exactly ---------------
    def _suspend(self) -> None:
        group, plan = self.env.group, self.plan
        if group is not None:
            # Journaled before the call: if it half-succeeds we still resume what we asked for.
            self.suspended_by_us[group.name] = tuple(dict.fromkeys(self.suspended_by_us.get(group.name, ()) + plan.to_suspend))
            self.report.suspended_processes = list(plan.to_suspend)
            self._journal(Kind.SUSPENDED, {"group": group.name, "processes": list(plan.to_suspend)})
            self._fence()
            group.suspend(plan.to_suspend)
            failpoints.reached("after-suspend")
            self.out.line(f"suspended {', '.join(plan.to_suspend) or 'nothing'} on {group.name}"
                          + (f" (already suspended by someone else: {', '.join(sorted(plan.suspended_before))})" if plan.suspended_before else ""))
        if self.env.alarms is not None:
            ours = self.env.alarms.enabled()
            self.alarms_disabled = list(dict.fromkeys(self.alarms_disabled + ours))
            self.report.alarms_disabled = list(ours)
            self._journal(Kind.ALARMS_DISABLED, {"names": ours})
            self._fence()
            self.env.alarms.disable(ours)
            if self.alarms_disabled:
                self.out.line(f"disabled actions of {len(self.alarms_disabled)} alarms")

    def _restore(self) -> Optional[RolloutError]:
        """Resume our processes and re-enable our alarms; each attempted even if the other fails."""
        failure = None
        if self.alarms_disabled and self.env.alarms is not None:
            try:
                self._fence()
                self.env.alarms.enable(self.alarms_disabled)
                self._journal(Kind.ALARMS_ENABLED, {"names": self.alarms_disabled})
                self.out.line(f"re-enabled actions of {len(self.alarms_disabled)} alarms")
            except (LockLost, LockUnproven):
                raise
            except Exception as exc:  # noqa: BLE001 - reported, and the resume below must still run
                log.error("re-enabling alarms %s failed: %s", self.alarms_disabled, exc)
                failure = RolloutError(f"could not re-enable alarm actions ({exc}); run: fab recover --env={self.inv.name}")
        for name, processes in self.suspended_by_us.items():
            if not processes:
                continue
            try:
                self._fence()
                resume_processes(self.env, name, processes)
                self._journal(Kind.RESUMED, {"group": name, "processes": list(processes)})
                self.out.line(f"resumed {', '.join(processes)} on {name}")
            except (LockLost, LockUnproven):
                raise
            except Exception as exc:  # noqa: BLE001
                log.error("resuming %s on %s failed: %s", processes, name, exc)
                failure = RolloutError(f"could not resume processes on {name} ({exc}); run: fab recover --env={self.inv.name}")
        return failure

    def _fence(self) -> None:
        """Before any change: LockLost unless this run still holds the lock."""
        if self.lock is not None:
            self.lock.fence()

    def _holds_lock(self) -> bool:
        """The gate's check: False if the lock is lost or could not be proven; the latter stops the run
        (kept in `_unproven`) rather than failing each host of the batch."""
        try:
            self._fence()
            return True
        except LockLost:
            return False
        except LockUnproven as exc:
            self._unproven = exc
            return False

    def _stopped_unproven(self, exc: LockUnproven, stranded: list[str]) -> DeployFailed:
        """The run's error once it could not prove it holds the lock: it stops, and says what recover must restore."""
        env = self.inv.name
        left = [f"hosts that may be out of the load balancers: {', '.join(stranded)}"] if stranded else []
        held = [f"{', '.join(p)} suspended on {g}" for g, p in self.suspended_by_us.items() if p]
        if self.alarms_disabled:
            held.append(f"actions of {len(self.alarms_disabled)} alarms disabled")
        self.out.warn(f"{exc}; this run changed nothing more and left its run open"
                      + "".join(f"; {x}" for x in left + held) + f"; restore the fleet with: fab recover --env={env}")
        return DeployFailed(f"rollout stopped ({exc}); hosts may be left out of the balancers; run fab recover --env={env}")

    def _journal(self, kind: Kind, data, begin: bool = False) -> None:
        if self.journal is None:
            return
        if begin:
            self.journal.begin(data)
        else:
            self.journal.write(kind, data)

    # -- one batch ---------------------------------------------------------
    def _batch(self, hosts: list[Host], target: Callable[[Host], str], phase: str) -> BatchResult:
        self.batch_no += 1
        out = self.out
        out.batch_started(self.batch_no, f"{phase}", hosts)
        result = BatchResult()
        try:
            t_out = time.monotonic()
            # One record per batch, before anything changes: `recover` needs the hosts that may be
            # out of service; the versions say what each was taken from and to.
            self._journal(Kind.DEREGISTERED, {"batch": self.batch_no, "phase": phase, "hosts": [h.instance_id for h in hosts],
                                           "updating": [{"instance_id": h.instance_id, "from": h.version, "to": target(h)}
                                                        for h in hosts]})
            if not self._out_and_updated(hosts, target, phase, result):
                # Stopped while draining, before any update ran: put the batch back as it was.
                self._balancers("register", hosts)
                self._journal(Kind.REGISTERED, {"batch": self.batch_no, "hosts": [h.instance_id for h in hosts]})
                return result
            back = result.updated + result.restored
            if back:
                failpoints.reached("after-health")
                self._balancers("register", back)
                self._balancers("wait_healthy", back)
                failpoints.reached("after-register")
                for h in back:
                    rec = self.report.host(h.instance_id)
                    rec.out_of_service_seconds = round(time.monotonic() - t_out, 3)
            for h in result.updated:
                rec = self.report.host(h.instance_id)
                rec.result = "updated" if phase == "deploy" else "rolled back"
                if phase == "rollback":
                    rec.new_version = h.version
            for h in result.restored:
                rec = self.report.host(h.instance_id)
                rec.result, rec.new_version = "failed, restored", h.version
            for h in result.left_out:
                self.report.host(h.instance_id).result = "failed, out of service"
            for iid, err in result.errors.items():
                self.report.host(iid).error = f"{err.step}: {err.message}"
        except LockLost:
            raise
        except (RolloutError, Cancelled):
            # A balancer call failed mid-batch: these hosts may be out of some balancer. They
            # count as stranded, so the run stays open and `recover` puts them back.
            for h in hosts:
                rec = self.report.host(h.instance_id)
                if rec.result not in ("updated", "rolled back", "failed, restored"):
                    rec.result = "failed, out of service"
            raise
        finally:
            out.batch_finished()
        return result

    def _unreachable(self, hosts: list[Host]) -> list[Host]:
        bad = []
        for h in hosts:
            try:
                self.env.fleet.connect([h.address])
            except ConnectError:
                bad.append(h)
        return bad

    def _balancers(self, action: str, hosts: list[Host], stoppable: bool = False) -> None:
        """One call per balancer for the whole batch, all balancers side by side; a `stoppable` drain ends on a stop request."""
        if action in ("deregister", "register"):
            self._fence()
        t = time.monotonic()
        lbs = self.env.balancers
        ids = {h.instance_id for h in hosts}

        def one(i: int, lb) -> None:
            if action == "deregister":
                if i not in self._registered:
                    self._registered[i] = set(lb.members())
                # A host already out (say, left out by an earlier failed rollout) has nothing to deregister.
                present = [h for h in hosts if h.instance_id in self._registered[i]]
                if present:
                    lb.deregister(present)
                self._registered[i] -= ids
            elif action == "drain":
                # A run that lost its lock (say, frozen meanwhile) stops waiting at once and changes nothing.
                lb.wait_drained(hosts, cancelled=lambda: (stoppable and self.stop.requested) or bool(self.lock and self.lock.lost),
                                before_change=self._fence)
            elif action == "register":
                lb.register(hosts)
                self._registered.setdefault(i, set()).update(ids)
            else:
                lb.wait_healthy(hosts, self.inv.health.timeout)

        errors = []
        if len(lbs) <= 1:
            # No thread for a single balancer: a thread hand-off costs milliseconds per step.
            for i, lb in enumerate(lbs):
                try:
                    one(i, lb)
                except Exception as exc:  # noqa: BLE001 - handled below exactly as a pooled call's
                    errors.append((lb, exc))
        else:
            with ThreadPoolExecutor(max_workers=len(lbs)) as pool:
                futures = [(lb, pool.submit(one, i, lb)) for i, lb in enumerate(lbs)]
                for lb, fut in futures:
                    exc = fut.exception()
                    if exc is not None:
                        errors.append((lb, exc))
        took = time.monotonic() - t
        for h in hosts:
            self.report.host(h.instance_id).steps.append(StepRecord(action, round(took, 3), not errors))
        if errors:
            lost = [exc for _, exc in errors if isinstance(exc, (LockLost, LockUnproven))]
            lb, exc = errors[0]
            if lost or isinstance(exc, Cancelled):
                raise (lost or [exc])[0]
            raise DeployFailed(
                f"{action} on {lb.kind} {lb.name} failed for {', '.join(h.label for h in hosts)}: {str(exc) or type(exc).__name__}."
                f" These hosts may be out of that load balancer; run: fab recover --env={self.inv.name}"
            )
        self.out.line(f"{action} {', '.join(h.name or h.instance_id for h in hosts)} ({took:.2f}s)")

    # -- updating hosts ------------------------------------------------------
    def _out_and_updated(self, hosts: list[Host], target: Callable[[Host], str], phase: str, result: BatchResult) -> bool:
        """Deregister and drain the batch, then update its hosts; False if stopped while draining (nothing updated).

        Each host's update session is opened first, while the batch still serves, behind a
        gate: its script runs once the batch is out of the balancers, or never. Session
        setup (a round trip through the bastion, sshd starting a shell) is then outside
        the time out of service. Each session proves the lock is still ours just before its
        script is sent, so a run frozen as the gate opened sends nothing once resumed.
        """
        gate = Gate(check=_shared(self._holds_lock))

        def work(h: Host):
            try:
                self._update(h, target(h), gate=gate)
                result.updated.append(h)
            except _NotRun:
                pass  # the gate was cancelled: nothing ran on this host
            except StepError as err:
                log.warning("%s", err)
                result.errors[h.instance_id] = err
                if phase == "deploy" and h.version and h.version != target(h):
                    self._restore_host(h, result)
                else:
                    result.left_out.append(h)

        pool = ThreadPoolExecutor(max_workers=min(len(hosts), self.inv.ssh.parallel))
        try:
            started = [pool.submit(work, h) for h in hosts]
            self._balancers("deregister", hosts)
            failpoints.reached("draining")
            try:
                self._balancers("drain", hosts, stoppable=phase == "deploy")
            except Cancelled:
                return False
            failpoints.reached("after-deregister")
            self._fence()
            gate.open()
            failpoints.reached("updating")
            for fut in started:
                fut.result()
            if self._unproven is not None:
                raise self._unproven
            return True
        finally:
            gate.cancel()  # no-op once open; otherwise the waiting sessions end without running anything
            pool.shutdown(wait=True)

    def _restore_host(self, host: Host, result: BatchResult) -> None:
        """Return a failed host to its previous version; it goes back in service only if healthy."""
        self.out.line(f"{host.label}: returning to {short(host.version)}")
        self._fence()
        try:
            self._update(host, host.version, record=False)
        except StepError as err:
            log.error("%s: could not return to %s: %s; it stays out of the load balancers", host.label, short(host.version), err)
            result.left_out.append(host)
            return
        self._journal(Kind.RESTORED, {"instance_id": host.instance_id, "version": host.version})
        result.restored.append(host)

    def _update(self, host: Host, version: str, record: bool = True, gate: Optional[Gate] = None) -> None:
        """Update the app in one remote script (checkout + reload, or pull + restart), then check health from here.

        With `gate`, the script waits for it (see _out_and_updated); _NotRun if it is cancelled.
        """
        app, fleet = self.env.app, self.env.fleet
        rec = self.report.host(host.instance_id)
        command, stdin = app.update_command(version, wait=min(self.inv.health.timeout, 30))
        timeout = 600.0
        if gate is not None:  # the command's clock starts before the batch is drained
            timeout += max((f.drain_seconds for f in self.plan.balancers), default=0.0) + 60
        t = time.monotonic()
        try:
            res = fleet.run(host.address, command, timeout=timeout, stdin=stdin, gate=gate)
        except ConnectError as exc:
            if gate is not None and (gate.cancelled or self._unproven is not None):
                raise _NotRun() from None
            raise StepError(host.label, "update", str(exc)) from None
        if gate is not None:
            if gate.cancelled or self._unproven is not None:  # the script was not sent: the run stops, no host failed
                raise _NotRun()
            t = gate.opened_at or t  # the command may have ended (connection lost) before the gate opened
        outcome = app.parse_update(res.stdout, version)
        prefix = "" if record else "restore "
        for step in app.steps:
            if step in outcome.seconds:
                rec.steps.append(StepRecord(prefix + step, outcome.seconds[step], True))
                self.out.host_step(host, prefix + step, "ok", outcome.seconds[step])
        if res.exited != 0 or outcome.reached != version:
            failed = app.failed_step(outcome)
            why = (f"exited {res.exited}: {tail(res.stderr or res.stdout)}" if res.exited
                   else f"runs {short(outcome.reached)}, expected {short(version)}")
            why = app.redact(why)
            rec.steps.append(StepRecord(prefix + failed, round(time.monotonic() - t, 3), False, why))
            self.out.host_step(host, prefix + failed, "failed", detail=why)
            raise StepError(host.label, failed, why)
        if record:
            rec.new_version = version
        failpoints.reached("after-update")
        t = time.monotonic()
        # The deadline counts from the reload, part of which was already waited out on the host.
        left = max(1.0, self.inv.health.timeout - outcome.seconds.get("reload", 0.0))
        def run(command: str, stdin: Optional[str]):
            return fleet.run(host.address, command, timeout=30, stdin=stdin)

        try:
            self._wait_healthy(host, version, app.new_check(outcome, run), app.gone_check(outcome, run), left)
        except StepError as err:
            rec.steps.append(StepRecord(prefix + "health", round(time.monotonic() - t, 3), False, err.message))
            self.out.host_step(host, prefix + "health", "failed", time.monotonic() - t, err.message)
            raise
        rec.steps.append(StepRecord(prefix + "health", round(time.monotonic() - t, 3), True))
        self.out.host_step(host, prefix + "health", "ok", time.monotonic() - t)

    def _wait_healthy(self, host: Host, version: str, is_new: Callable[[], tuple[bool, str]],
                      gone: Optional[Callable[[], Optional[str]]], timeout: float) -> None:
        inv, fleet = self.inv, self.env.fleet
        looked = [time.monotonic()]

        def check():
            obs = health.probe(lambda: fleet.host_channel(host.address, inv.health.port), inv.health)
            ok, why = health.judge(obs, inv.health, version)
            if ok:
                return is_new()
            if gone is not None and time.monotonic() - looked[0] >= 1.0:
                # An app that has exited will not become healthy: say why now instead of at the deadline.
                looked[0] = time.monotonic()
                if dead := gone():
                    raise StepError(host.label, "health", dead)
            return ok, why

        try:
            poll(check, lambda r: r[0], timeout=timeout, interval=inv.health.interval, max_interval=1.0,
                 what=f"{host.label}: health")
        except WaitTimeout as exc:
            raise StepError(host.label, "health", f"not healthy {inv.health.timeout:g}s after the update: {exc.last[1]}") from None

    # -- after the last batch ------------------------------------------------
    def _smoke(self) -> None:
        import urllib.error
        import urllib.request

        for check in self.inv.smoke:
            try:
                with urllib.request.urlopen(check.url, timeout=check.timeout) as resp:
                    status, body = resp.status, resp.read(65536).decode(errors="replace")
            except urllib.error.HTTPError as exc:
                status, body = exc.code, ""
            except OSError as exc:
                raise DeployFailed(f"smoke check {check.url}: no answer ({exc}); every host was updated") from None
            if status != check.status or (check.body and check.body not in body):
                raise DeployFailed(f"smoke check {check.url}: got {status}, expected {check.status}"
                                   + (f" with body containing {check.body!r}" if check.body else ""))
            self.out.line(f"smoke {check.url} ok ({status})")

    def _smoke_checks(self) -> None:
        """The smoke checks; for a recovery a failure is a warning only: the chain closes once the fleet is restored."""
        if not self.recovering:
            return self._smoke()
        try:
            self._smoke()
        except DeployFailed as exc:
            self.out.warn(f"{exc}; the fleet is restored, so this recovery closes its run anyway")

    def _post_deploy(self) -> None:
        env = {**os.environ, "DEPLOY_ENV": self.inv.name, "DEPLOY_SHA": self.plan.sha, "DEPLOY_REF": self.plan.ref}
        for command in self.inv.post_deploy:
            done = subprocess.run(command, shell=True, env=env, capture_output=True, text=True, timeout=300, check=False)
            if done.returncode != 0:
                self.out.warn(f"post-deploy `{command}` exited {done.returncode}: {tail(done.stderr or done.stdout)}")
            else:
                self.out.line(f"post-deploy `{command}` ok")

