"""Walk a plan through the adapters: suspend, roll batch by batch, restore exactly what was changed."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Optional

from rollout import gitapp, health
from rollout.errors import DeployFailed, Interrupted, RolloutError, StepError
from rollout.plan import Batch, Host, Plan
from rollout.report import HostRecord, Report, StepRecord, now_iso
from rollout.waiting import WaitTimeout, poll

log = logging.getLogger("rollout.runner")


def tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "no output"


class Runner:
    """Runs one planned rollout against one environment's adapters."""

    def __init__(self, env, plan: Plan, output, report: Report):
        self.env = env
        self.inv = env.inventory
        self.plan = plan
        self.out = output
        self.report = report
        self.suspended_by_us: tuple[str, ...] = ()
        self._registered: dict[int, set[str]] = {}
        self.alarms_disabled: list[str] = []

    # -- the whole rollout -------------------------------------------------
    def run(self) -> Report:
        plan, report = self.plan, self.report
        report.batches = len(plan.batches)
        report.hosts = [
            HostRecord(h.instance_id, h.name, h.address, b.index, old_version=h.version) for b in plan.batches for h in b.hosts
        ]
        t0 = time.monotonic()
        self.env.slack.start(f":rocket: {self.inv.name}: deploying {plan.sha[:12]} ({plan.ref}) to {len(plan.hosts)} hosts"
                             f" in {len(plan.batches)} batches — {report.who}")
        error: Optional[BaseException] = None
        try:
            self._suspend()
            for batch in plan.batches:
                self._batch(batch)
                self.env.slack.progress(
                    f":hourglass_flowing_sand: {self.inv.name}: {plan.sha[:12]} — batch {batch.index}/{len(plan.batches)} done"
                )
            self._smoke()
            report.result = "succeeded"
        except KeyboardInterrupt:
            report.result = "interrupted"
            error = Interrupted("interrupted: the batch in hand was restored where possible; see the summary")
        except RolloutError as exc:
            report.result = "failed"
            error = exc
        finally:
            restore_error = self._restore()
            if restore_error and error is None:
                report.result = "failed"
                error = restore_error
        if error is None:
            self._post_deploy()
        report.ended = now_iso()
        report.duration_seconds = round(time.monotonic() - t0, 3)
        report.error = str(error) if error else ""
        report.exit_code = error.exit_code if isinstance(error, RolloutError) else 0
        report.aws_calls = self.env.aws.calls
        report.bastion_connections = self.env.fleet.bastion_opens
        icon = ":white_check_mark:" if error is None else ":x:"
        rows = "\n".join("  ".join(r) for r in report.summary_rows())
        self.env.slack.finish(f"{icon} {report.headline()}" + (f"\n{report.error}" if error else "") + f"\n```{rows}```")
        if error is not None:
            raise error
        return report

    # -- Auto Scaling and alarms: suspend once, restore exactly ---------------
    def _suspend(self) -> None:
        group, plan = self.env.group, self.plan
        if group is not None:
            # Recorded before the call: if it half-succeeds we still resume what we asked for.
            self.suspended_by_us = plan.to_suspend
            self.report.suspended_processes = list(plan.to_suspend)
            group.suspend(plan.to_suspend)
            self.out.line(f"suspended {', '.join(plan.to_suspend) or 'nothing'} on {group.name}"
                          + (f" (already suspended by someone else: {', '.join(sorted(plan.suspended_before))})" if plan.suspended_before else ""))
        if self.env.alarms is not None:
            self.alarms_disabled = self.env.alarms.enabled()
            self.report.alarms_disabled = list(self.alarms_disabled)
            self.env.alarms.disable(self.alarms_disabled)
            if self.alarms_disabled:
                self.out.line(f"disabled actions of {len(self.alarms_disabled)} alarms")

    def _restore(self) -> Optional[RolloutError]:
        """Resume our processes and re-enable our alarms; each attempted even if the other fails."""
        failure = None
        if self.alarms_disabled:
            try:
                self.env.alarms.enable(self.alarms_disabled)
                self.out.line(f"re-enabled actions of {len(self.alarms_disabled)} alarms")
            except Exception as exc:  # noqa: BLE001 - reported, and the resume below must still run
                log.error("re-enabling alarms %s failed: %s", self.alarms_disabled, exc)
                failure = RolloutError(f"could not re-enable alarm actions ({exc}); run: aws cloudwatch enable-alarm-actions --alarm-names {' '.join(self.alarms_disabled)}")
        if self.suspended_by_us:
            try:
                self.env.group.resume(self.suspended_by_us)
                self.out.line(f"resumed {', '.join(self.suspended_by_us)} on {self.env.group.name}")
            except Exception as exc:  # noqa: BLE001
                log.error("resuming %s failed: %s", self.suspended_by_us, exc)
                failure = RolloutError(
                    f"could not resume processes on {self.env.group.name} ({exc}); run: aws autoscaling resume-processes"
                    f" --auto-scaling-group-name {self.env.group.name} --scaling-processes {' '.join(self.suspended_by_us)}"
                )
        return failure

    # -- one batch ---------------------------------------------------------
    def _batch(self, batch: Batch) -> None:
        hosts = list(batch.hosts)
        out = self.out
        out.batch_started(batch.index, len(self.plan.batches), hosts)
        started: set[str] = set()
        try:
            t_out = time.monotonic()
            self._balancers("deregister", hosts)
            self._balancers("drain", hosts)
            failures = self._update_all(hosts, started)
            healthy = [h for h in hosts if h.instance_id not in failures]
            if healthy:
                self._balancers("register", healthy)
                self._balancers("wait_healthy", healthy)
                for h in healthy:
                    rec = self.report.host(h.instance_id)
                    rec.out_of_service_seconds = round(time.monotonic() - t_out, 3)
                    rec.result = "updated"
        except KeyboardInterrupt:
            self._restore_untouched(hosts, started)
            raise
        finally:
            out.batch_finished()
        if failures:
            for iid, err in failures.items():
                rec = self.report.host(iid)
                rec.result, rec.error = "failed", f"{err.step}: {err.message}"
            first = next(iter(failures.values()))
            names = ", ".join(self.report.host(i).name or i for i in failures)
            raise DeployFailed(
                f"batch {batch.index}: {len(failures)} host(s) failed ({names}); first: {first}."
                f" Failed hosts were left out of the load balancers; the rest of the fleet is untouched."
            )

    def _balancers(self, action: str, hosts: list[Host]) -> None:
        """One call per balancer for the whole batch, all balancers side by side."""
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
                lb.wait_drained(hosts)
            elif action == "register":
                lb.register(hosts)
                self._registered.setdefault(i, set()).update(ids)
            else:
                lb.wait_healthy(hosts, self.inv.health.timeout)

        errors = []
        with ThreadPoolExecutor(max_workers=max(1, len(lbs))) as pool:
            futures = [(lb, pool.submit(one, i, lb)) for i, lb in enumerate(lbs)]
            for lb, fut in futures:
                exc = fut.exception()
                if exc is not None:
                    errors.append((lb, exc))
        took = time.monotonic() - t
        for h in hosts:
            self.report.host(h.instance_id).steps.append(StepRecord(action, round(took, 3), not errors))
        if errors:
            lb, exc = errors[0]
            raise DeployFailed(
                f"{action} on {lb.kind} {lb.name} failed for {', '.join(h.label for h in hosts)}: {exc}."
                " These hosts may be out of that load balancer; check it before retrying."
            )
        self.out.line(f"{action} {', '.join(h.name or h.instance_id for h in hosts)} ({took:.2f}s)")

    # -- updating hosts ------------------------------------------------------
    def _update_all(self, hosts: list[Host], started: set[str]) -> dict[str, StepError]:
        failures: dict[str, StepError] = {}

        def work(h: Host):
            started.add(h.instance_id)
            try:
                self._update(h)
            except StepError as err:
                failures[h.instance_id] = err
                log.warning("%s", err)

        with ThreadPoolExecutor(max_workers=min(len(hosts), self.inv.ssh.parallel)) as pool:
            list(pool.map(work, hosts))
        return failures

    @contextmanager
    def _step(self, host: Host, step: str):
        rec = self.report.host(host.instance_id)
        self.out.host_step(host, step, "started")
        t = time.monotonic()
        try:
            yield
        except StepError as err:
            took = time.monotonic() - t
            rec.steps.append(StepRecord(step, round(took, 3), False, err.message))
            self.out.host_step(host, step, "failed", took, err.message)
            raise
        except RolloutError as err:
            took = time.monotonic() - t
            rec.steps.append(StepRecord(step, round(took, 3), False, str(err)))
            self.out.host_step(host, step, "failed", took, str(err))
            raise StepError(host.label, step, str(err)) from None
        took = time.monotonic() - t
        rec.steps.append(StepRecord(step, round(took, 3), True))
        self.out.host_step(host, step, "ok", took)

    def _remote(self, host: Host, step: str, command: str, timeout: float = 600):
        result = self.env.fleet.run(host.address, command, timeout=timeout)
        if result.exited != 0:
            raise StepError(host.label, step, f"`{command}` exited {result.exited}: {tail(result.stderr or result.stdout)}")
        return result.stdout

    def _update(self, host: Host) -> None:
        """Checkout, install and reload in one remote script, then check health from here."""
        app, sha = self.inv.app, self.plan.sha
        rec = self.report.host(host.instance_id)
        script = gitapp.update_script(app.path, sha, install=app.install, pid_file=app.reload.pid_file,
                                      signal=app.reload.signal, command=app.reload.command, workers=app.workers,
                                      wait=min(self.inv.health.timeout, 30))
        self.out.host_step(host, "update", "started")
        t = time.monotonic()
        result = self.env.fleet.run(host.address, f"sh -c {shlex.quote(script)}", timeout=600)
        update = gitapp.parse_update(result.stdout)
        for step in ("checkout", "install", "reload"):
            if step in update.seconds:
                rec.steps.append(StepRecord(step, update.seconds[step], True))
                self.out.host_step(host, step, "ok", update.seconds[step])
        if result.exited != 0 or update.head != sha:
            failed = next((s for s in ("checkout", "install", "reload") if s not in update.seconds and
                           (s != "install" or app.install)), "reload")
            why = f"exited {result.exited}: {tail(result.stderr or result.stdout)}" if result.exited else f"HEAD is {update.head}, expected {sha}"
            rec.steps.append(StepRecord(failed, round(time.monotonic() - t, 3), False, why))
            self.out.host_step(host, failed, "failed", detail=why)
            raise StepError(host.label, failed, why)
        rec.new_version = sha
        with self._step(host, "health"):
            self._wait_healthy(host, update.before if app.reload.pid_file else None, update.after)

    def _wait_healthy(self, host: Host, before, after) -> None:
        inv, fleet, sha = self.inv, self.env.fleet, self.plan.sha
        seen = {"after": after}

        def check():
            obs = health.probe(lambda: fleet.host_channel(host.address, inv.health.port), inv.health)
            ok, why = health.judge(obs, inv.health, sha)
            if ok and before is not None and before.primary is not None:
                ok, why = gitapp.workers_replaced(before, seen["after"], inv.app.workers)
                if not ok:
                    out = fleet.run(host.address, gitapp.processes_command(inv.app.reload.pid_file), timeout=30)
                    seen["after"] = gitapp.parse_processes(out.stdout)
                    ok, why = gitapp.workers_replaced(before, seen["after"], inv.app.workers)
            return ok, why

        try:
            poll(check, lambda r: r[0], timeout=inv.health.timeout, interval=inv.health.interval, max_interval=1.0,
                 what=f"{host.label}: health")
        except WaitTimeout as exc:
            raise StepError(host.label, "health", f"not healthy after {inv.health.timeout:g}s: {exc.last[1]}") from None

    def _restore_untouched(self, hosts: list[Host], started: set[str]) -> None:
        """After an interrupt: put back the hosts whose update never started."""
        untouched = [h for h in hosts if h.instance_id not in started]
        if not untouched:
            return
        self.out.line(f"interrupted: putting back {', '.join(h.label for h in untouched)} (not updated)")
        try:
            for lb in self.env.balancers:
                lb.register(untouched)
            for h in untouched:
                self.report.host(h.instance_id).result = "not started"
        except Exception as exc:  # noqa: BLE001 - reported; the caller still restores processes
            log.error("re-registering %s after the interrupt failed: %s", [h.label for h in untouched], exc)

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

    def _post_deploy(self) -> None:
        env = {**os.environ, "DEPLOY_ENV": self.inv.name, "DEPLOY_SHA": self.plan.sha, "DEPLOY_REF": self.plan.ref}
        for command in self.inv.post_deploy:
            done = subprocess.run(command, shell=True, env=env, capture_output=True, text=True, timeout=300, check=False)
            if done.returncode != 0:
                self.out.warn(f"post-deploy `{command}` exited {done.returncode}: {tail(done.stderr or done.stdout)}")
            else:
                self.out.line(f"post-deploy `{command}` ok")
