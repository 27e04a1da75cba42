"""`fab drill`: rehearse the safety net on a real environment, and report how it held and how fast.

The drill redeploys the version every host runs, through the whole rolling path, and makes
it fail on purpose: one host fails a step (`update`: nothing runs on it; `health`: its
check is judged failed once it has passed), or a rollback alarm is set to ALARM with
CloudWatch's SetAlarmState after the first batch (and set back afterwards). It runs with
max_failures 0 and on_failure rollback, so the rollback must then return every updated host.
The injection is the runner's `drill` argument (Drill.fire), not an environment variable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Optional

from rollout.adapters.reportfiles import ReportFiles
from rollout.apps import strategies as apps
from rollout.config.inventory import Inventory
from rollout.core import drills, recovery
from rollout.core.drills import FaultStep
from rollout.core.errors import NOTHING_CHANGED, DeployFailed, PreflightError, RolloutError, UsageError
from rollout.core.report import Report, short
from rollout.core.sizes import Size
from rollout.orchestration.deploy import run_plan
from rollout.orchestration.preflight import current_versions, preflight
from rollout.orchestration.environment import Environment
from rollout.orchestration.gating import Gates
from rollout.state import journal as journals
from rollout.state.store import Store


@dataclass
class Drill:
    """One planned failure, fired once; what the run observed is noted here for the verdict."""

    host: Optional[str] = None          # instance id that fails
    step: Optional[FaultStep] = None
    alarm: Optional[str] = None          # or this rollback alarm is forced to ALARM after the first batch
    fired_at: Optional[float] = None
    most_out: int = 0
    rollback_started: Optional[float] = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fire(self, host, step: str) -> Optional[str]:
        """The failure message if `host` is the drill's and `step` its step, the first time only; else None."""
        if self.alarm is not None or host.instance_id != self.host or step != self.step:
            return None
        with self._lock:
            if self.fired_at is not None:
                return None
            self.fired_at = time.monotonic()
        return f"drill: failure injected at {step}"

    def observe(self, most_out: int, rollback_started: Optional[float]) -> None:
        """What the runner saw: the most hosts out at once and when the rollback started."""
        self.most_out, self.rollback_started = most_out, rollback_started


class _ForcingGates(Gates):
    """The environment's gates, with the drill's alarm set to ALARM just before it is first read after a batch."""

    def __init__(self, base: Gates, drill: Drill):
        super().__init__(base.inv, base.alarms, base.front, base.sleep)
        self.drill = drill
        self.before: Optional[str] = None

    def bake(self, seconds, cancelled=lambda: False):
        if self.drill.fired_at is None:
            self.before = self.alarms.states().get(self.drill.alarm)
            self.alarms.set_state(self.drill.alarm, "ALARM", "rollout drill: forced to ALARM")
            self.drill.fired_at = time.monotonic()
        return super().bake(seconds, cancelled)

    def put_back(self) -> None:
        """Set the alarm back to the state it had (CloudWatch evaluates it again at its next period anyway)."""
        if self.drill.fired_at is not None and self.before and self.before != "ALARM":
            self.alarms.set_state(self.drill.alarm, self.before, "rollout drill: over, state put back")


def drill(inv: Inventory, output, *, fail_at: Optional[str] = None, host: Optional[str] = None, alarm: Optional[str] = None,
          batch: Optional[Size] = None, confirm=None, files: ReportFiles = ReportFiles()) -> dict:
    """Run a drill on the environment; return its findings (also in the report's `drill`). DeployFailed if the net did not hold."""
    if alarm is not None and (fail_at is not None or host is not None):
        raise UsageError("--alarm drills a rollback alarm; --fail-at and --host drill a host's failure: give one or the other")
    if alarm is not None and alarm not in inv.rollback_alarms:
        raise UsageError(f"--alarm={alarm!r} is not one of the rollback_alarms of {inv.name}"
                         f" ({', '.join(inv.rollback_alarms) or 'none set'})")
    try:
        fault = None if alarm is not None else FaultStep(fail_at or FaultStep.HEALTH)
    except ValueError:
        raise UsageError(f"--fail-at={fail_at!r}: give update or health") from None
    files.check()
    sha = _the_version(inv)
    env = Environment(inv)
    try:
        store = Store(env.aws, inv.state.table, inv.name)
        plan, _ = preflight(env, store, ref=apps.Ref(sha), batch=batch, hosts=None, fetch=True, sha=sha, redo=True)
        names = {h.name or h.instance_id: h.instance_id for h in plan.hosts}
        chosen = drills.failing_host([[h.instance_id for h in b.hosts] for b in plan.batches],
                                     names.get(host, host) if host else None)
        if alarm is None and chosen is None:
            raise UsageError(f"--host={host!r} is not a host of {inv.name} (its hosts: {', '.join(names)})")
        plan_drill = Drill(host=chosen if alarm is None else None, step=fault, alarm=alarm)
        label = (f"rollback alarm {alarm} forced to ALARM after batch 1" if alarm else
                 f"{next(h.label for h in plan.hosts if h.instance_id == chosen)} failing at {fault}")
        output.line(f"drill on {inv.name}: redeploying {short(sha)} to {len(plan.hosts)} hosts in {len(plan.batches)} batches,"
                    f" {label}; then checking that every host is back and capacity held")
        if confirm is not None and not confirm(plan):
            raise PreflightError("drill not confirmed; nothing was changed")
        gates = Gates.of(env)
        forcing = _ForcingGates(gates, plan_drill) if alarm else None
        serving = plan.batches[0].in_service + len(plan.batches[0].hosts)
        t0 = time.monotonic()
        code = 0
        report = Report(env=inv.name, ref=plan.ref, sha=plan.sha, run_id=journals.new_run_id())
        try:
            run_plan(env, store, replace(plan, on_failure="rollback", max_failures=0), output, files, report=report,
                     gates=forcing or gates, drill=plan_drill)
        except RolloutError as exc:  # judged below with the fleet as it is, unless nothing was changed
            if exc.exit_code in NOTHING_CHANGED:
                raise
            code = exc.exit_code
        finally:
            if forcing is not None:
                forcing.put_back()
        ended = time.monotonic()
        seen = {h.instance_id: h.version for h in current_versions(env, list(plan.hosts))}
        members = [lb.members() for lb in env.balancers]
        out = recovery.out_of_service([h.instance_id for h in plan.hosts], members)
        floor = _floor(plan)
        observed = drills.Observed(expected={h.instance_id: h.version for h in plan.hosts}, seen=seen, out_of_service=sorted(out),
                                   exit_code=code, serving_before=serving, most_out=plan_drill.most_out, floor=floor)
        found = drills.problems(observed)
        fired, back = plan_drill.fired_at, plan_drill.rollback_started
        findings = {
            "fault": label, "passed": not found, "problems": found,
            "seconds": {"total": round(ended - t0, 3),
                        "to_fault": round(fired - t0, 3) if fired else None,
                        "fault_to_rollback": round(back - fired, 3) if fired and back else None,
                        "rollback": round(ended - back, 3) if back else None},
            "serving_before": serving, "lowest_in_service": serving - plan_drill.most_out, "floor": floor,
        }
        _say(output, findings)
        report.drill = findings
        files.write(report, output.warn)
        if found:
            raise DeployFailed(f"drill failed: {'; '.join(found)}")
        return findings
    finally:
        env.close()


def _the_version(inv: Inventory) -> str:
    """The one version every host of the environment runs (read once, on a connection of its own)."""
    env = Environment(inv)
    try:
        hosts = current_versions(env, env.discover(connect=True))
    finally:
        env.close()
    version, why = drills.one_version({h.name or h.instance_id: h.version for h in hosts})
    if version is None:
        raise PreflightError(f"a drill redeploys the one version every host runs, but {why}; deploy one version first")
    return version


def _floor(plan) -> int:
    """The capacity the rollout promises: the plan's floor (min_healthy) where the inventory sets one, else the
    planned in-service count."""
    if plan.floor is not None:
        return plan.floor.hosts
    return min(b.in_service for b in plan.batches)


def _say(output, f: dict) -> None:
    s = f["seconds"]
    output.line(f"drill {'passed' if f['passed'] else 'FAILED'}: {f['fault']}")
    output.line(f"  fault after {s['to_fault']}s; rollback started {s['fault_to_rollback']}s after it and took {s['rollback']}s;"
                f" {s['total']}s in all")
    output.line(f"  in service: {f['serving_before']} before, {f['lowest_in_service']} at the lowest (floor {f['floor']})")
    for p in f["problems"]:
        output.warn(f"  {p}")
