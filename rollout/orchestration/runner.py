"""Walk a plan through the adapters: suspend, roll batch by batch, roll back on failure, restore exactly.

Every choice (the next batch, when to stop, what a stop leads to, which hosts a rollback
returns) is rollout.core.policy's; the runner carries it out. Every change that `recover`
would have to undo (suspending processes, disabling alarms, taking hosts out of service) is
written to the journal before it is made, so that `recover` can restore the fleet if this
process dies at any point.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable, Optional

from rollout.adapters import failpoints, hooks, smoke
from rollout.adapters.interrupts import StopRequest
from rollout.adapters.waiting import Cancelled
from rollout.core import capacity, messages, policy
from rollout.core import gates as gating
from rollout.core import recovery as recoveries
from rollout.core.errors import DeployFailed, Interrupted, LockLost, LockUnproven, RolloutError, Stepped
from rollout.core.gates import Stepped as StepState
from rollout.core.plan import Host, Plan
from rollout.core.report import HostRecord, Report, now_iso, short
from rollout.core.vocabulary import NOT_ROLLED_BACK, HostResult, Kind, Phase, Result, Stop
from rollout.orchestration import floor
from rollout.orchestration.batch import Batches
from rollout.orchestration.suspension import Suspension

log = logging.getLogger("rollout.runner")


class Runner:
    """Runs one planned rollout against one environment's adapters.

    With `recovering` (an Assessment), the run is a recovery: it returns the assessed hosts to
    their decided versions, those already out of service first, and restores the processes
    and alarm actions of the whole chain; no signal or pause stops it, and its journal joins
    the chain, which it closes only once everything is restored.
    """

    def __init__(self, env, plan: Plan, output, report: Report, *, journal=None, lock=None,
                 paused: Callable[[], Optional[str]] = lambda: None, stop: Optional[StopRequest] = None,
                 recovering: Optional[recoveries.Assessment] = None, out_of_service: frozenset[str] = frozenset(),
                 gates=None, step: bool = False, continuing: Optional[StepState] = None, drill=None):
        self.env, self.inv, self.plan, self.out, self.report = env, env.inventory, plan, output, report
        self.journal, self.lock, self.paused, self.stop = journal, lock, paused, stop or StopRequest()
        self.recovering = recovering
        self.targets = recovering.targets if recovering else {}
        self.out_of_service = out_of_service
        self.forward = Phase.RECOVER if recovering else Phase.DEPLOY
        self.failures = 0
        self.deployed: list[list[Host]] = []  # the deploy's batches, in order: a rollback returns them last first
        self._slack_head = ""
        self.held = Suspension(env, plan, report, output, self._journal, self._fence, recovering)
        # A drill (rollout.orchestration.drill.Drill) injects one failure into a redeploy of the version hosts run.
        self.drill = drill
        self.rollback_started: Optional[float] = None
        self.batches = Batches(env, plan, report, output, journal=self._journal, fence=self._fence, stop=self.stop, lock=lock,
                               drill=drill)
        self.gates = gates  # rollout.orchestration.gating.Gates, or None: no gate but each host's health
        self.step = step
        self.continuing = continuing  # the stepped run this one continues (--continue)
        self.done = frozenset(h["instance_id"] for h in continuing.done) if continuing else frozenset()

    def target(self, host: Host) -> str:
        return self.targets.get(host.instance_id, self.plan.sha)

    # -- the whole rollout -------------------------------------------------
    def run(self) -> Report:
        plan, report = self.plan, self.report
        report.batches = len(plan.batches)
        report.hosts = [HostRecord(h.instance_id, h.name, h.address, b.index, old_version=h.version, discarded=list(h.local_changes))
                        for b in plan.batches for h in b.hosts]
        t0 = time.monotonic()
        start = recoveries.start_record(
            run_id=report.run_id, ref=plan.ref, sha=plan.sha, who=report.who, phase=self.forward,
            batch_size=policy.batch_size(plan.ramp, 0, len(plan.hosts)),
            hosts=[{"instance_id": h.instance_id, "address": h.address, "name": h.name, "version": h.version,
                    "target": self.target(h)} for h in plan.hosts],
            balancers=tuple(self.env.found_balancers or ()),
            recovering=self.recovering.chain if self.recovering else (), decided=self.targets)
        if self.continuing:
            self.batches.number = self.continuing.after_batch
            self.deployed.append([h for h in plan.hosts if h.instance_id in self.done])  # rolled back last, if it comes to that
            for h in report.hosts:
                if h.instance_id in self.done:
                    h.result, h.new_version = HostResult.UPDATED, plan.sha
            if self.journal is not None:
                self.journal.take_step({"action": gating.StepAction.CONTINUE.value, "who": report.who})
        else:
            self._journal(Kind.START, start, begin=True)
        self._slack_head = messages.started(plan, report.who)
        self.env.slack.start(self._slack_head)
        error: Optional[RolloutError] = None
        restore_error: Optional[RolloutError] = None
        try:
            self.held.suspend()
            error = self._forward()
            if error is None:
                self._smoke_checks()
        except LockLost as exc:
            report.result, error = Result.LOST_LOCK, exc
        except RolloutError as exc:  # LockUnproven among them
            report.result, error = Result.FAILED, exc
        except KeyboardInterrupt:
            report.result = Result.INTERRUPTED
            error = Interrupted("interrupted during a step; see the summary for hosts that may be out of the load balancers")
        finally:
            # A run that lost its lock, or cannot prove it holds it, changes nothing more.
            if not isinstance(error, (LockLost, LockUnproven)):
                try:
                    restore_error = self.held.restore()
                except LockLost as exc:
                    report.result, error = Result.LOST_LOCK, exc
                except LockUnproven as exc:
                    report.result, error = Result.FAILED, exc
                if restore_error and error is None:
                    report.result, error = Result.FAILED, restore_error
        lost, unproven = isinstance(error, LockLost), isinstance(error, LockUnproven)
        stranded = policy.stranded(report.hosts)
        if unproven:
            error = self._stopped_unproven(error, stranded)
        elif stranded and not lost:
            self.out.warn(f"{', '.join(stranded)} need attention; restore the fleet with: fab recover --env={self.inv.name}")
            if error is None:
                report.result = Result.FAILED
                error = DeployFailed(f"out of the load balancers after failing and failing to return to their previous"
                                     f" version: {', '.join(stranded)}; restore the fleet with: fab recover --env={self.inv.name}")
        if error is None:
            try:
                self._fence()
                hooks.post_deploy(self.inv.post_deploy, env=self.inv.name, sha=plan.sha, ref=plan.ref, say=self.out.line,
                                  warn=self.out.warn)
            except LockLost as exc:
                report.result, error, lost = Result.LOST_LOCK, exc, True
            except LockUnproven as exc:  # nothing is out of service any more: the run is over
                report.result, error = Result.FAILED, DeployFailed(f"{exc}; post-deploy commands were not run")
        report.ended, report.duration_seconds = now_iso(), round(time.monotonic() - t0, 3)
        report.error, report.exit_code = (str(error), error.exit_code) if error else ("", 0)
        report.aws_calls, report.bastion_connections = self.env.aws.calls, self.env.fleet.bastion_opens
        if self.journal is not None and not lost and not unproven:  # unproven: left open, as it was, for recover
            try:
                if isinstance(error, Stepped) and not stranded and not restore_error:
                    # Left open, waiting: the next deploy refuses and names --continue and --abort.
                    self.journal.step({"after_batch": self.batches.number, "started": report.started, "who": report.who,
                                       "ramp": [str(s) for s in plan.ramp],
                                       "done": [h.instance_id for h in report.hosts if h.result == HostResult.UPDATED],
                                       "failed": [h.instance_id for h in report.hosts if h.result == HostResult.RESTORED]})
                    failpoints.reached("after-step")
                elif stranded or restore_error or (self.recovering and error is not None):
                    # Left open on purpose: the next deploy refuses and `recover` finishes the job.
                    self.journal.write(Kind.STOPPED, {"result": report.result, "stranded": stranded})
                else:
                    self.journal.finish(report.result)
            except Exception as exc:  # noqa: BLE001 - the journal then stays open and `recover` will say so
                log.error("could not close the journal of run %s: %s; run fab recover --env=%s", report.run_id, exc, self.inv.name)
        self.env.slack.finish(messages.finished(report, failed=error is not None))
        if self.drill is not None:
            self.drill.observe(most_out=self.batches.most_out, rollback_started=self.rollback_started)
        if error is not None:
            raise error
        return report

    def _forward(self) -> Optional[RolloutError]:
        """Roll every host forward, then roll back if the policy says so; the policy's verdict as an error (None: success)."""
        todo = [h for h in self.plan.hosts if h.instance_id not in self.done]
        stop, why = self._roll(todo, self.target, self.forward) or (None, "")
        rolled_back, rollback_why = None, ""
        updated = policy.rollback_hosts(self.plan.hosts, {h.instance_id: h.result for h in self.report.hosts})
        if self.forward is Phase.DEPLOY and stop and policy.rolls_back(stop, self.plan.on_failure, len(updated)):
            self.rollback_started = time.monotonic()
            self.out.line(f"rolling back {len(updated)} updated host(s) to their previous versions: {why}")
            self.env.slack.progress(messages.rolling_back(self.inv.name, len(updated), why))
            batches = capacity.rollback_batches(self.deployed, {h.instance_id for h in updated})
            back = self._roll([h for b in batches for h in b], lambda h: h.version, Phase.ROLLBACK, [len(b) for b in batches])
            rolled_back, rollback_why = back is None, back[1] if back else ""
        verdict = policy.verdict(phase=self.forward, stop=stop, why=why, on_failure=self.plan.on_failure, env=self.inv.name,
                                 failures=self.failures, allowed=self.plan.max_failures, rolled_back=rolled_back,
                                 rollback_why=rollback_why,
                                 left_out=[h.name or h.instance_id for h in self.report.hosts if h.result == HostResult.LEFT_OUT])
        if verdict.warning:
            self.out.warn(verdict.warning)
        self.report.result = verdict.result
        return verdict.error(verdict.why) if verdict.error else None

    def _roll(self, hosts: list[Host], target: Callable[[Host], str], phase: Phase,
              sizes: Optional[list[int]] = None) -> Optional[tuple[Stop, str]]:
        """Update hosts batch by batch as the policy decides; (stop, why) if it had to stop, None when all were done.

        `sizes` are the batch sizes to take (a rollback's), instead of the plan's ramp.
        """
        queue, left_out, done, total = deque(hosts), [], 0, len(self.plan.hosts)
        if phase is Phase.DEPLOY and self.continuing:  # the ramp goes on where the stepped run stopped
            done = self.continuing.after_batch
        while queue:
            interrupted = self.stop.reason if self.stop.requested else None
            lost = self.lock.lost if self.lock is not None else None
            size = sizes[min(done, len(sizes) - 1)] if sizes else policy.batch_size(self.plan.ramp, done, total)
            nxt = policy.next_batch(
                phase=phase, queue=[h.instance_id for h in queue], size=size,
                left_out=len(left_out), ceiling=max(sizes) if sizes else 0, out_of_service=self.out_of_service, done=self.batches.number, env=self.inv.name,
                interrupted=interrupted, lock_lost=lost,
                paused=self.paused() if policy.stoppable(phase) and not interrupted and not lost else None)
            if nxt.stop is Stop.LOCK_LOST:
                raise LockLost.to(nxt.why)
            if nxt.stop:
                return nxt.stop, nxt.why
            if phase is Phase.DEPLOY and self.gates is not None and (gate := self.gates.check()).tripped:
                return Stop.GATE, f"{gate.reason} before batch {self.batches.number + 1}"
            take = capacity.within_zone(list(queue), nxt.take) if self.plan.by_zone else nxt.take
            head = list(queue)[:take]
            if self.plan.by_zone and (why := capacity.zone_clash(head, left_out)):
                return Stop.FAILED, why
            if phase is Phase.DEPLOY and self.plan.floor is not None:
                try:
                    held = floor.hold(self.env.balancers, head, self.plan.floor, say=self.out.line,
                                      cancelled=lambda: self.stop.requested or bool(self.lock and self.lock.lost)
                                      or bool(self.paused()))
                except Cancelled:
                    continue  # the policy now stops on the signal, the lost lock or the pause
                except (LockLost, LockUnproven):
                    raise
                except Exception as exc:  # an unreadable balancer mid-run is a failure the policy judges, like a batch's
                    return Stop.FAILED, f"reading the load balancers' healthy hosts before batch {self.batches.number + 1}: {exc}"
                if held:
                    return Stop.CAPACITY, capacity.held(self.batches.number + 1, head, held, self.plan.floor)
            batch = [queue.popleft() for _ in range(take)]
            if phase is Phase.ROLLBACK and (unreachable := self.batches.unreachable(batch)):
                # Never take a host out of service that we cannot then update.
                for h in unreachable:
                    self.report.host(h.instance_id).error = f"{NOT_ROLLED_BACK}: unreachable over SSH"
                batch = [h for h in batch if h not in unreachable]
                if not batch:
                    done += 1  # the next batch keeps its own deployed size
                    continue
            done += 1
            if phase is Phase.DEPLOY:
                self.deployed.append(batch)
            result = self.batches.run(batch, target, phase)
            left_out += result.left_out
            self.failures += len(result.errors)
            if phase is not Phase.ROLLBACK:
                count = policy.batch_count(done, self.plan.ramp, len(queue), total, len(left_out))
                self.report.batches = max(self.report.batches, count)
            if phase is Phase.DEPLOY:
                self.env.slack.progress(messages.progress(self._slack_head, done, count, self.report, len(result.errors)))
                nxt = policy.over_budget(phase=phase, failures=self.failures, allowed=self.plan.max_failures,
                                         first=str(next(iter(result.errors.values()), "")))
                if nxt.stop:
                    return nxt.stop, nxt.why
                if (gate := self._after_batch(result, more=bool(queue))) is not None:
                    return gate
        if phase is Phase.ROLLBACK and any(self.report.host(h.instance_id).error.startswith(NOT_ROLLED_BACK) for h in hosts):
            return Stop.FAILED, "some hosts could not be rolled back"
        return None

    def _after_batch(self, result, more: bool) -> Optional[tuple[Stop, str]]:
        """The gates after a deploy batch: the front end, then the alarms through the bake; then --step.

        (GATE, why) stops and rolls back, (STEPPED, why) stops and waits, None goes on.
        """
        n = self.batches.number
        if self.gates is not None:
            stopping = lambda: self.stop.requested or bool(self.lock and self.lock.lost)  # noqa: E731
            if result.updated:
                version = self.target(result.updated[0])
                seen = self.gates.verify(version, cancelled=stopping)
                if seen.tripped:
                    return Stop.GATE, f"{seen.reason} (batch {n})"
                if self.gates.front is not None:
                    self.out.line(f"front end {self.gates.front.url} serves {short(version)}")
            bake = gating.bake_seconds(n, n + 1 if more else n, self.inv.bake, gating.BakeAfter(self.inv.bake_after))
            if bake:
                watching = f", watching {', '.join(self.gates.alarms.names)}" if self.gates.alarms else ""
                self.out.line(f"baking {bake:g}s after batch {n}{watching}")
            verdict = self.gates.bake(bake, cancelled=stopping)
            if verdict.tripped:
                return Stop.GATE, f"{verdict.reason} after batch {n}"
        if more and gating.step_now(self.step, n, n + 1):
            return Stop.STEPPED, f"stopped after batch {n} as --step asked"
        return None

    def _fence(self) -> None:
        """Before any change: LockLost unless this run still holds the lock."""
        if self.lock is not None:
            self.lock.fence()

    def _stopped_unproven(self, exc: LockUnproven, stranded: list[str]) -> DeployFailed:
        """The run's error once it could not prove it holds the lock: it stops, and says what recover must restore."""
        env = self.inv.name
        left = [f"hosts that may be out of the load balancers: {', '.join(stranded)}"] if stranded else []
        self.out.warn(f"{exc}; this run changed nothing more and left its run open"
                      + "".join(f"; {x}" for x in left + self.held.held()) + f"; restore the fleet with: fab recover --env={env}")
        return DeployFailed(f"rollout stopped ({exc}); hosts may be left out of the balancers; run fab recover --env={env}")

    def _journal(self, kind: Kind, data, begin: bool = False) -> None:
        if self.journal is None:
            return
        if begin:
            self.journal.begin(data)
        else:
            self.journal.write(kind, data)

    # -- after the last batch ------------------------------------------------
    def _smoke(self) -> None:
        smoke.check(self.inv.smoke, self.out.line)

    def _smoke_checks(self) -> None:
        """The smoke checks; for a recovery a failure is a warning only: the chain closes once the fleet is restored."""
        if not self.recovering:
            return self._smoke()
        try:
            self._smoke()
        except DeployFailed as exc:
            self.out.warn(f"{exc}; the fleet is restored, so this recovery closes its run anyway")
