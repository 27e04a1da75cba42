"""What `update` means for each app kind: git checkout + reload, or container image + restart.

Each strategy turns versions into remote scripts and parses what they print; the runner
and preflight drive them the same way. A version is a commit SHA (git) or an image
digest (container), resolved once from the ref before anything changes.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Optional

from rollout.adapters import refs
from rollout.adapters import registry
from rollout.apps import container as containerapp
from rollout.apps import git as gitapp
from rollout.core.errors import PreflightError
from rollout.core.plan import GIT_STEPS
from rollout.core.report import tail


@dataclass(frozen=True)
class Outcome:
    """What one update script did: the version the host now runs (None if unsure), phase timings, raw state."""

    reached: Optional[str]
    seconds: dict[str, float]
    state: Any


FETCH_MARK = "--- rollout: fetch ---"
DRIFT_MARK = "--- rollout: drift ---"


def read_and_fetch(strategy, versions: set[str], drift_for: Optional[str] = None) -> tuple[str, Optional[str]]:
    """One remote command: print the current version, then fetch `versions` (one SSH round trip, not two).

    With `drift_for`, the same command then reads the checkout's local changes that updating
    to that version would discard (apps whose strategy has a drift_command).
    """
    read, read_in = strategy.version_command()
    fetch, fetch_in = strategy.prefetch_command(versions)
    if read_in is None and fetch_in is None:
        command = f"{read} && echo {shlex.quote(FETCH_MARK)} && {{ {fetch}; }}"
        drift = strategy.drift_command(drift_for) if drift_for else None
        if drift:
            command += f" && echo {shlex.quote(DRIFT_MARK)} && {{ {drift}; }}"
        return command, None
    return containerapp.COMMAND, f"{read_in}echo {shlex.quote(FETCH_MARK)}\n{fetch_in}"


def split_read_and_fetch(result):
    """(the version part, the fetch part or None if the fetch never ran, the drift part or None), each as a result."""
    before, mark, after = result.stdout.partition(FETCH_MARK + "\n")
    if not mark:
        return result, None, None
    fetched, mark, drift = after.partition(DRIFT_MARK + "\n")
    if not mark:
        return _result(result, stdout=before, exited=0), _result(result, stdout=after), None
    return _result(result, stdout=before, exited=0), _result(result, stdout=fetched, exited=0), _result(result, stdout=drift)


def _result(result, **changes):
    return SimpleNamespace(**{"stdout": result.stdout, "stderr": result.stderr, "exited": result.exited, **changes})


class GitStrategy:
    """Check out an exact commit and reload the app in place (SIGHUP to a Node cluster primary, or a command)."""

    kind = "git"
    steps = GIT_STEPS

    def __init__(self, app):
        self.app = app
        self.default_ref = app.branch

    def resolve(self, ref: str) -> str:
        return refs.resolve(self.app.repository, ref)

    def version_command(self) -> tuple[str, Optional[str]]:
        return gitapp.version_command(self.app.path), None

    def parse_version(self, label: str, result) -> Optional[str]:
        if result.exited != 0:
            raise PreflightError(f"{label}: {self.app.path} is not a git checkout ({tail(result.stderr)}); set up the app there first")
        return gitapp.parse_version(result.stdout)

    def prefetch_command(self, versions: set[str]) -> tuple[str, Optional[str]]:
        # "&&": a version that cannot be fetched fails the command, whichever it is.
        return " && ".join(gitapp.fetch_command(self.app.path, v) for v in sorted(versions)), None

    def fetch_error(self, stderr: str) -> str:
        remote, first = gitapp.parse_fetch_error(stderr)
        return f"git fetch from {remote} failed: {first}"

    def drift_command(self, version: str) -> Optional[str]:
        return gitapp.drift_command(self.app.path, version)

    def parse_drift(self, output: str) -> tuple[str, ...]:
        return gitapp.parse_drift(output)

    def update_command(self, version: str, wait: float) -> tuple[str, Optional[str]]:
        app = self.app
        script = gitapp.update_script(app.path, version, install=app.install, pid_file=app.reload.pid_file,
                                      signal=app.reload.signal, command=app.reload.command, workers=app.workers, wait=wait)
        return f"sh -c {shlex.quote(script)}", None

    def parse_update(self, output: str, version: str) -> Outcome:
        update = gitapp.parse_update(output)
        return Outcome(update.head, update.seconds, update)

    def failed_step(self, outcome: Outcome) -> str:
        return next((s for s in self.steps if s not in outcome.seconds and (s != "install" or self.app.install)), "reload")

    def new_check(self, outcome: Outcome, run: Callable[[str, Optional[str]], Any]) -> Callable[[], tuple[bool, str]]:
        """A check, polled with health, that the app's processes are new: every old worker replaced."""
        before, seen = outcome.state.before, {"after": outcome.state.after}
        app = self.app
        if not app.reload.pid_file or before.primary is None:
            return lambda: (True, "")

        def check() -> tuple[bool, str]:
            ok, why = gitapp.workers_replaced(before, seen["after"], app.workers)
            if not ok:
                seen["after"] = gitapp.parse_processes(run(gitapp.processes_command(app.reload.pid_file), None).stdout)
                ok, why = gitapp.workers_replaced(before, seen["after"], app.workers)
            return ok, why

        return check

    def gone_check(self, outcome: Outcome, run) -> Optional[Callable[[], Optional[str]]]:
        """Nothing to look at beyond health for a reloaded process: the primary keeps running."""
        return None

    def redact(self, text: str) -> str:
        return text


class ContainerStrategy:
    """Pull an image digest while serving; then stop the old container and run the new one under the same name."""

    kind = "container"
    steps = ("pull", "stop", "run")

    def __init__(self, app):
        self.app = app
        self.default_ref = app.tag
        self.creds = registry.credentials(app.registry.credentials_env)
        env, self._secrets = {}, []
        for key, value in app.env.items():
            if hasattr(value, "from_env"):
                if value.from_env not in os.environ:
                    raise PreflightError(f"app.env.{key} comes from ${value.from_env}, which is not set on this machine;"
                                         f" export it (its value is never printed)")
                env[key] = os.environ[value.from_env]
                self._secrets.append(env[key])
            else:
                env[key] = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            containerapp.env_lines(env)
        except ValueError as exc:
            raise PreflightError(str(exc)) from None
        self.spec = containerapp.Spec(
            cli=app.cli, image=app.image, registry=registry.ImageName.parse(app.image).registry, name=app.name,
            env=env, env_file=app.env_file, ports=tuple(app.ports), volumes=tuple(app.volumes), options=tuple(app.options),
            init=app.init, stop_timeout=app.stop_timeout, digest_env=app.digest_env, creds=self.creds,
        )
        if self.creds:
            self._secrets.append(self.creds[1])

    def resolve(self, ref: str) -> str:
        r = self.app.registry
        return registry.resolve(self.app.image, ref, url=r.url, insecure=r.insecure, creds=self.creds, timeout=r.timeout)

    def version_command(self) -> tuple[str, Optional[str]]:
        return containerapp.COMMAND, containerapp.version_script(self.spec)

    def parse_version(self, label: str, result) -> Optional[str]:
        if result.exited != 0:
            raise PreflightError(f"{label}: cannot run the app's container there: {tail(self.redact(result.stderr))};"
                                 f" install {self.app.cli} (or set app.cli) and check the deploy user may use it")
        return containerapp.current_digest(containerapp.parse_running(result.stdout), self.app.image)

    def prefetch_command(self, versions: set[str]) -> tuple[str, Optional[str]]:
        return containerapp.COMMAND, containerapp.prefetch_script(self.spec, versions)

    def fetch_error(self, stderr: str) -> str:
        return self.redact(tail(stderr))

    def drift_command(self, version: str) -> Optional[str]:
        """A container has no checkout to drift from: each run starts from its image."""
        return None

    def parse_drift(self, output: str) -> tuple[str, ...]:
        return ()

    def update_command(self, version: str, wait: float) -> tuple[str, Optional[str]]:
        return containerapp.COMMAND, containerapp.update_script(self.spec, version)

    def parse_update(self, output: str, version: str) -> Outcome:
        update = containerapp.parse_update(output)
        # The container's image is the one `version` names on this host: it runs that digest.
        reached = version if update.want and update.image == update.want else None
        return Outcome(reached, update.seconds, update)

    def failed_step(self, outcome: Outcome) -> str:
        return next((s for s in self.steps if s not in outcome.seconds), "run")

    def new_check(self, outcome: Outcome, run: Callable[[str, Optional[str]], Any]) -> Callable[[], tuple[bool, str]]:
        """A check, polled with health, that the container is the one just started and still running."""
        update = outcome.state
        ok, why = containerapp.is_new(update)
        if not ok:
            return lambda: (False, why)

        def check() -> tuple[bool, str]:
            now = containerapp.parse_update(run(containerapp.COMMAND, containerapp.state_script(self.spec)).stdout)
            if now.container != update.container:
                return False, f"container {update.container[:12]} was replaced by {(now.container or 'nothing')[:12]}"
            if now.status != "running":
                return False, f"container {update.container[:12]} is {now.status}"
            return True, ""

        return check

    def gone_check(self, outcome: Outcome, run) -> Optional[Callable[[], Optional[str]]]:
        """A check, run while health fails, that says why if the new container has exited (so we stop waiting)."""
        def check() -> Optional[str]:
            out = run(containerapp.COMMAND, containerapp.state_script(self.spec) + containerapp.logs_script(self.spec)).stdout
            now = containerapp.parse_update(out)
            if now.status in ("running", "created", "configured", "initialized", "restarting", None):
                return None
            logs = [line[4:] for line in out.splitlines() if line.startswith("log ")]
            return self.redact(f"container {(now.container or '?')[:12]} is {now.status}; its last output: "
                               + (" | ".join(logs[-3:]) or "none"))

        return check

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


class Ref(str):
    """A ref checked for the app's kind where it was read (a git branch, tag or SHA; an image tag or digest).

    Made by `validate_ref` at the edge (a flag, a queued request, the history), or from the
    inventory's default, which was checked when the inventory was read; nothing checks it again.
    """


def validate_ref(app, ref: str) -> Ref:
    """The ref, as the app kind writes it (an image digest loses a leading @), if valid for it; RefError otherwise."""
    return Ref(registry.validate_ref(ref) if app.kind == "container" else refs.validate(ref))


def strategy(inventory):
    """The strategy for the inventory's app kind."""
    return ContainerStrategy(inventory.app) if inventory.app.kind == "container" else GitStrategy(inventory.app)
