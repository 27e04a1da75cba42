"""One batch of a run: out of the balancers, each host updated behind a gate, a failed host restored
when the policy says so, and back into the balancers; what happened to each host goes in the report."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

from rollout.adapters import failpoints
from rollout.adapters.balancers.group import BalancerGroup
from rollout.adapters.gate import Gate
from rollout.adapters.waiting import Cancelled
from rollout.core import policy
from rollout.core.errors import ConnectError, DeployFailed, LockLost, LockUnproven, RolloutError, StepError
from rollout.core.plan import Host
from rollout.core.report import StepRecord, short
from rollout.core.vocabulary import HostResult, Kind, Phase
from rollout.orchestration.update import NotRun, Updater, shared

log = logging.getLogger("rollout.runner")


@dataclass
class BatchResult:
    updated: list[Host] = field(default_factory=list)
    restored: list[Host] = field(default_factory=list)
    left_out: list[Host] = field(default_factory=list)
    errors: dict[str, StepError] = field(default_factory=dict)


class Batches:
    """Runs a run's batches, numbered in order across its phases, through its balancers and hosts.

    `journal(kind, data)` records and `fence()` proves the lock before each change; `stop` (a
    StopRequest) ends a stoppable drain, as does a lock that `lock` knows is lost.
    """

    def __init__(self, env, plan, report, output, *, journal: Callable, fence: Callable[[], None], stop, lock=None, drill=None):
        self.env, self.inv, self.report, self.out = env, env.inventory, report, output
        self.journal, self.fence, self.stop, self.lock = journal, fence, stop, lock
        self.drill = drill  # a drill redeploys the version hosts run: a failed host is restored to it all the same
        self.number = 0
        self.out_now: set[str] = set()  # hosts this run has out of the balancers now
        self.most_out = 0               # the most at once
        self.unproven: Optional[LockUnproven] = None  # set when the gate could not prove the lock
        self.balancers = BalancerGroup(env.balancers)
        self.updater = Updater(env, plan, report, output, stopped=lambda: self.unproven is not None, drill=drill)

    def run(self, hosts: list[Host], target: Callable[[Host], str], phase: Phase) -> BatchResult:
        """Take `hosts` out, update each to `target(host)`, put the healthy ones back; the hosts' results."""
        self.number += 1
        self.out.batch_started(self.number, phase.value, hosts)
        if phase is not Phase.ROLLBACK:  # the batch each host actually ran in
            for h in hosts:
                self.report.host(h.instance_id).batch = self.number
        result = BatchResult()
        try:
            t_out = time.monotonic()
            # One record per batch, before anything changes: `recover` needs the hosts that may be
            # out of service; the versions say what each was taken from and to.
            self.journal(Kind.DEREGISTERED, {"batch": self.number, "phase": phase.value, "hosts": [h.instance_id for h in hosts],
                                             "updating": [{"instance_id": h.instance_id, "from": h.version, "to": target(h)}
                                                          for h in hosts]})
            if not self._out_and_updated(hosts, target, phase, result):
                # Stopped while draining, before any update ran: put the batch back as it was.
                self._balancers("register", hosts)
                self.journal(Kind.REGISTERED, {"batch": self.number, "hosts": [h.instance_id for h in hosts]})
                return result
            back = result.updated + result.restored
            if back:
                failpoints.reached("after-health")
                self._balancers("register", back)
                self._balancers("wait_healthy", back)
                failpoints.reached("after-register")
                for h in back:
                    self.report.host(h.instance_id).out_of_service_seconds = round(time.monotonic() - t_out, 3)
            for h in result.updated:
                rec = self.report.host(h.instance_id)
                rec.result = policy.updated_result(phase)
                if phase is Phase.ROLLBACK:
                    rec.new_version = h.version
            for h in result.restored:
                rec = self.report.host(h.instance_id)
                rec.result, rec.new_version = HostResult.RESTORED, h.version
            for h in result.left_out:
                self.report.host(h.instance_id).result = HostResult.LEFT_OUT
            for iid, err in result.errors.items():
                self.report.host(iid).error = f"{err.step}: {err.message}"
        except LockLost:
            raise
        except (RolloutError, Cancelled):
            # A balancer call failed mid-batch: these hosts may be out of some balancer. They
            # count as stranded, so the run stays open and `recover` puts them back.
            for h in hosts:
                rec = self.report.host(h.instance_id)
                rec.result = policy.after_failure(phase=phase, step=policy.BATCH, previous=h.version, target=target(h),
                                                  current=rec.result)
            raise
        finally:
            self.out.batch_finished()
        return result

    def unreachable(self, hosts: list[Host]) -> list[Host]:
        """The hosts that cannot be connected to over SSH now."""
        bad = []
        for h in hosts:
            try:
                self.env.fleet.connect([h.address])
            except ConnectError:
                bad.append(h)
        return bad

    def _holds_lock(self) -> bool:
        """The gate's check: False if the lock is lost or could not be proven; the latter stops the run
        (kept in `unproven`) rather than failing each host of the batch."""
        try:
            self.fence()
            return True
        except LockLost:
            return False
        except LockUnproven as exc:
            self.unproven = exc
            return False

    def _balancers(self, action: str, hosts: list[Host], stoppable: bool = False) -> None:
        """One call per balancer for the whole batch, all balancers side by side; a `stoppable` drain ends on a stop request."""
        if action in ("deregister", "register"):
            self.fence()
        if action == "deregister":
            self.out_now |= {h.instance_id for h in hosts}
            self.most_out = max(self.most_out, len(self.out_now))
        t = time.monotonic()
        group = self.balancers
        results = {
            "deregister": lambda: group.deregister(hosts),
            # A run that lost its lock (say, frozen meanwhile) stops waiting at once and changes nothing.
            "drain": lambda: group.drain(hosts, cancelled=lambda: (stoppable and self.stop.requested) or bool(self.lock and self.lock.lost),
                                         before_change=self.fence),
            "register": lambda: group.register(hosts),
            "wait_healthy": lambda: group.wait_healthy(hosts, self.inv.health.timeout),
        }[action]()
        errors = [(r.balancer, r.error) for r in results if r.error is not None]
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
        if action == "register":
            self.out_now -= {h.instance_id for h in hosts}
        self.out.line(f"{action} {', '.join(h.name or h.instance_id for h in hosts)} ({took:.2f}s)")

    def _out_and_updated(self, hosts: list[Host], target: Callable[[Host], str], phase: Phase, result: BatchResult) -> bool:
        """Deregister and drain the batch, then update its hosts; False if stopped while draining (nothing updated).

        Each host's update session is opened first, while the batch still serves, behind a
        gate: its script runs once the batch is out of the balancers, or never. Session
        setup (a round trip through the bastion, sshd starting a shell) is then outside
        the time out of service. Each session proves the lock is still ours just before its
        script is sent, so a run frozen as the gate opened sends nothing once resumed.
        """
        phase = Phase(phase)
        gate = Gate(check=shared(self._holds_lock))

        def work(h: Host):
            try:
                self.updater.update(h, target(h), gate=gate)
                result.updated.append(h)
            except NotRun:
                pass  # the gate was cancelled: nothing ran on this host
            except StepError as err:
                log.warning("%s", err)
                result.errors[h.instance_id] = err
                # A drill's host failed on the version it already ran: restoring it is redeploying that version.
                back_to = target(h) if self.drill is None else None
                restored = self._restore_host(h) if policy.restores(phase, h.version, back_to) else None
                after = policy.after_failure(phase=phase, step=err.step, previous=h.version, target=back_to, restored=restored)
                (result.restored if after is HostResult.RESTORED else result.left_out).append(h)

        pool = ThreadPoolExecutor(max_workers=min(len(hosts), self.inv.ssh.parallel))
        try:
            started = [pool.submit(work, h) for h in hosts]
            self._balancers("deregister", hosts)
            failpoints.reached("draining")
            try:
                self._balancers("drain", hosts, stoppable=policy.stoppable(phase))
            except Cancelled:
                return False
            failpoints.reached("after-deregister")
            self.fence()
            gate.open()
            failpoints.reached("updating")
            for fut in started:
                fut.result()
            if self.unproven is not None:
                raise self.unproven
            return True
        finally:
            gate.cancel()  # no-op once open; otherwise the waiting sessions end without running anything
            pool.shutdown(wait=True)

    def _restore_host(self, host: Host) -> bool:
        """Return a failed host to its previous version; whether it worked (it goes back in service only then)."""
        self.out.line(f"{host.label}: returning to {short(host.version, 'nothing')}")
        self.fence()
        try:
            self.updater.update(host, host.version, record=False)
        except StepError as err:
            log.error("%s: could not return to %s: %s; it stays out of the load balancers", host.label, short(host.version, 'nothing'), err)
            return False
        self.journal(Kind.RESTORED, {"instance_id": host.instance_id, "version": host.version})
        return True
