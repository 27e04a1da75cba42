"""One host's update: the app's update script in one SSH command (behind the batch's gate), then the
health check from the controller until the host serves the new version."""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from rollout.adapters import failpoints
from rollout.adapters import health
from rollout.adapters.gate import Gate
from rollout.adapters.waiting import WaitTimeout, poll
from rollout.core.errors import ConnectError, StepError
from rollout.core.plan import Host, Plan
from rollout.core.report import Report, StepRecord, short
from rollout.core.report import tail


class NotRun(Exception):
    """An update held behind a gate that was cancelled: nothing ran on the host."""


def shared(fn: Callable[[], bool], fresh: float = 1.0) -> Callable[[], bool]:
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


class Updater:
    """Updates hosts of one run through the environment's app strategy and SSH fleet, recording each step.

    `stopped()` is true once the run stopped (its lock could not be proven): an update held at
    the gate then did not run (NotRun), which is no failure of the host.
    """

    def __init__(self, env, plan: Plan, report: Report, output, stopped: Callable[[], bool] = lambda: False, drill=None):
        self.env, self.inv, self.plan, self.report, self.out, self.stopped = env, env.inventory, plan, report, output, stopped
        self.drill = drill  # rollout.orchestration.drill.Drill: fails one host at one step, once

    def update(self, host: Host, version: str, record: bool = True, gate: Optional[Gate] = None) -> None:
        """Update the app in one remote script (checkout + reload, or pull + restart), then check health from here.

        With `gate`, the script waits for it (see Batches._out_and_updated); NotRun if it is cancelled.
        `record` False is a failed host's restore: its steps are recorded as `restore STEP`.
        StepError names the step that failed.
        """
        app, fleet = self.env.app, self.env.fleet
        rec = self.report.host(host.instance_id)
        command, stdin = app.update_command(version, wait=min(self.inv.health.timeout, 30))
        timeout = 600.0
        if gate is not None:  # the command's clock starts before the batch is drained
            timeout += max((f.drain_seconds for f in self.plan.balancers), default=0.0) + 60
        if record and self.drill is not None and (fault := self.drill.fire(host, "update")):
            # Nothing runs on the host: it fails once its batch is out of service, as a real failure would.
            if gate is not None and not (gate.wait(timeout) and gate.opened_at is not None and not self.stopped()):
                raise NotRun()
            self._failed(rec, host, "update", 0.0, fault)
            raise StepError(host.label, "update", fault)
        t = time.monotonic()
        try:
            res = fleet.run(host.address, command, timeout=timeout, stdin=stdin, gate=gate)
        except ConnectError as exc:
            if gate is not None and (gate.cancelled or self.stopped()):
                raise NotRun() from None
            raise StepError(host.label, "update", str(exc)) from None
        if gate is not None:
            if gate.cancelled or self.stopped():  # the script was not sent: the run stops, no host failed
                raise NotRun()
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
                   else f"runs {short(outcome.reached, 'nothing')}, expected {short(version)}")
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
            if record and self.drill is not None and (fault := self.drill.fire(host, "health")):
                raise StepError(host.label, "health", fault)
        except StepError as err:
            self._failed(rec, host, prefix + "health", time.monotonic() - t, err.message)
            raise
        rec.steps.append(StepRecord(prefix + "health", round(time.monotonic() - t, 3), True))
        self.out.host_step(host, prefix + "health", "ok", time.monotonic() - t)

    def _failed(self, rec, host: Host, step: str, seconds: float, why: str) -> None:
        rec.steps.append(StepRecord(step, round(seconds, 3), False, why))
        self.out.host_step(host, step, "failed", seconds, why)

    def _wait_healthy(self, host: Host, version: str, is_new: Callable[[], tuple[bool, str]],
                      gone: Optional[Callable[[], Optional[str]]], timeout: float) -> None:
        """Poll the host's health until it serves `version` (and `is_new` agrees); StepError at the deadline."""
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
