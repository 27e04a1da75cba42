"""What the fabfile calls: each task's logic, with every error leaving through one place."""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import traceback
from typing import Optional

from invoke.exceptions import Exit

from rollout.adapters import interrupts
from rollout.adapters import log
from rollout.adapters import refs
from rollout.adapters import ssh
from rollout.adapters.progress import Output
from rollout.adapters.reportfiles import ReportFiles
from rollout.apps import strategies as apps
from rollout.config import args as arguments
from rollout.config import check as checking
from rollout.config import inventory
from rollout.core import personal
from rollout.core import plan as planning
from rollout.core import sizes
from rollout.core.errors import ConfigError, ConnectError, RolloutError, UsageError
from rollout.core.plan import Plan
from rollout.core.report import short, who
from rollout.orchestration import deploy as deploying
from rollout.orchestration import recover as recovering
from rollout.orchestration import status as statuses
from rollout.orchestration import stepped
from rollout.orchestration.environment import Environment
from rollout.state import journal as journals
from rollout.state import lock as locks
from rollout.state import pause as pauses
from rollout.state.store import open_store


def session(c, verbose: bool = False, quiet: bool = False) -> None:
    """Set this command's log detail (-v/-q) and SSH login (Fabric's -i, -S, --prompt-for-passphrase) from the task's context."""
    log.setup(log.verbosity(verbose, quiet))
    ssh.use(ssh.auth_from_config(c.config))


def exits(fn):
    """Run a task body; turn RolloutError and interrupts into one line and their exit code."""
    task_name = TASK_NAMES.get(fn.__name__, fn.__name__)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not logging.getLogger().handlers:
            log.setup()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        # One command per process: what is imported by now lives until exit, so the
        # collector need not scan it again. Frozen again at the end, nothing is left
        # for the full collection at exit (0.2-0.4 s with boto3's models loaded).
        gc.freeze()
        try:
            if not args or not args[0]:
                raise UsageError(f"--env is required: fab {task_name} --env=NAME (environments here: {_environments()})")
            return fn(*args, **kwargs)
        except RolloutError as exc:
            raise Exit(f"rollout: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("rollout: interrupted", code=130) from None
        except Exception as exc:  # noqa: BLE001 - never a traceback: one line and exit 1, the traceback in a file
            raise Exit(f"rollout: unexpected error ({type(exc).__name__}: {_one_line(exc)}); the traceback is in"
                       f" {_save_traceback()}; if a rollout was running, check fab status --env=ENV, and run fab recover"
                       f" if a run is left unfinished", code=1) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            gc.freeze()

    return wrapper


TASK_NAMES = {"work": "worker"}


def _environments() -> str:
    return ", ".join(inventory.known_environments(inventory.inventory_dir())) or "none"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _save_traceback() -> str:
    """Write the exception being handled to a new file; return its path."""
    fd, path = tempfile.mkstemp(prefix="rollout-error-", suffix=".txt")
    with os.fdopen(fd, "w") as out:
        traceback.print_exc(file=out)
    return path


def _raise_interrupt(signum, frame):
    interrupts.TERMINATED.set()
    raise KeyboardInterrupt


def confirmation(inv, yes: bool, terminal: bool) -> Optional[str]:
    """How the operator must confirm: None (no need), "y/N", or "type-name"; UsageError if --yes is required."""
    if yes:
        return None
    if not terminal:
        if inv.protected or not inv.unattended:
            why = "is protected" if inv.protected else "does not allow unattended deploys"
            raise UsageError(f"{inv.name} {why}: without a terminal, deploy with --yes")
        return None
    return "type-name" if inv.protected else "y/N"


def _confirm(inv, yes: bool):
    how = confirmation(inv, yes, sys.stdin.isatty())
    if how is None:
        return None

    def ask(plan: Plan) -> bool:
        what = f"{short(plan.sha)} ({plan.ref}) to {len(plan.hosts)} hosts of {plan.env} in {len(plan.batches)} batches"
        if how == "type-name":
            return input(f"{plan.env} is protected. Deploy {what}? Type the environment's name to go on: ").strip() == plan.env
        return input(f"Deploy {what}? [y/N] ").strip().lower() in ("y", "yes")

    return ask


@exits
def deploy(env: str, ref: Optional[str] = None, batch: Optional[str] = None, hosts: Optional[str] = None,
           dry_run: bool = False, yes: bool = False, report: Optional[str] = None, no_ssh: bool = False,
           junit: Optional[str] = None, branch: Optional[str] = None, force: bool = False, step: bool = False,
           resume: bool = False, abort: bool = False) -> None:
    planning.parse_host_filter(hosts)  # malformed arguments fail before anything is read
    size = sizes.ramp_flag(batch)
    if resume or abort:
        _stepped_action(env, "--continue" if resume else "--abort", ref=ref, batch=batch, hosts=hosts, dry_run=dry_run,
                        branch=branch, step=step, both=resume and abort)
    inv = inventory.load(env)
    if resume:
        return stepped.resume(inv, Output(), files=ReportFiles.of(report, junit), force=force, confirm=_confirm(inv, yes),
                              requester=who())
    if abort:
        return recovering.recover(inv, Output(), files=ReportFiles.of(report, junit), abort=True, requester=who())
    if branch is not None:
        if ref is not None or inv.user:
            raise UsageError("--branch deploys a branch's head to its developer's environment: give it with --env=ENV alone, without --ref")
        if inv.personal is None:
            raise UsageError(f"{env} has no personal environments: --branch needs a 'personal' section in inventories/{env}.yml")
        user = personal.user_from_branch(inv.personal.branch_pattern, branch)
        inv, ref = inventory.personal_copy(inv, user), apps.Ref(refs.validate(branch))  # a branch: git's rules
    else:
        ref = apps.validate_ref(inv.app, ref) if ref else None  # an empty --ref means the default, as before
    confirm = None if dry_run else _confirm(inv, yes)
    deploying.deploy(inv, Output(), ref=ref, batch=size, hosts=hosts, dry_run=dry_run, ssh=not no_ssh,
                     confirm=confirm, files=ReportFiles.of(report, junit), force=force, step=step, requester=who())


def _stepped_action(env: str, flag: str, both: bool, **given) -> None:
    """--continue and --abort act on the run that waits, as it was planned: they take no option that would change it."""
    if both:
        raise UsageError("--continue and --abort are two answers to a stepped run: give one")
    extra = [f"--{k.replace('_', '-')}" for k, v in given.items() if v not in (None, False)]
    if extra:
        raise UsageError(f"{flag} acts on the stepped run as it was planned; it takes no {', '.join(extra)}"
                         f" (give --env, and --yes, --report, --junit, --force if needed)")


@exits
def drill(env: str, fail_at: Optional[str] = None, host: Optional[str] = None, alarm: Optional[str] = None,
          batch: Optional[str] = None, yes: bool = False, report: Optional[str] = None, junit: Optional[str] = None) -> None:
    from rollout.orchestration import drill as drills

    size = sizes.ramp_flag(batch)
    inv = inventory.load(env)
    drills.drill(inv, Output(), fail_at=fail_at, host=host, alarm=alarm, batch=size, confirm=_confirm(inv, yes),
                 files=ReportFiles.of(report, junit))


@exits
def status(env: str, as_json: bool = False) -> None:
    inv = inventory.load(env)
    e = Environment(inv)
    try:
        doc = statuses.collect(e)
    finally:
        e.close()
    doc["state"] = _state(inv)
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        statuses.render(doc, Output().console)
    if not doc["bastion"]["reachable"]:
        raise ConnectError(doc["bastion"]["error"])


def _state(inv) -> dict:
    """The lock, pause, unfinished run and last deploy; an unreadable state table is shown, not raised."""
    try:
        store = open_store(inv)
        return statuses.state(locks.holder(store), pauses.current(store), journals.unfinished(store),
                              next(iter(journals.history(store, limit=1)), None), journals.stepped(store))
    except RolloutError as exc:
        return {"error": str(exc)}


@exits
def keys(env: str, replace: Optional[str] = None) -> None:
    from rollout.orchestration.keys import keys as show_keys

    show_keys(inventory.load(env), print, replace=replace)


@exits
def recover(env: str, force: bool = False, report: Optional[str] = None, junit: Optional[str] = None) -> None:
    recovering.recover(inventory.load(env), Output(), force=force, files=ReportFiles.of(report, junit), requester=who())


@exits
def rollback(env: str, to: Optional[str] = None, batch: Optional[str] = None, yes: bool = False,
             report: Optional[str] = None, junit: Optional[str] = None, force: bool = False) -> None:
    size = sizes.ramp_flag(batch)
    inv = inventory.load(env)
    to = apps.validate_ref(inv.app, to) if to else None
    deploying.rollback(inv, Output(), to=to, batch=size, confirm=_confirm(inv, yes), files=ReportFiles.of(report, junit),
                       force=force, requester=who())


@exits
def history(env: str, limit: Optional[str] = None, as_json: bool = False) -> None:
    count = arguments.whole(limit, "--limit", 20, minimum=1)
    rows = journals.history(open_store(inventory.load(env)), limit=count)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    out = Output()
    if not rows:
        out.line(f"{env}: no rollouts recorded")
    for r in rows:
        print(f"{r['started']}  {r['result']:<12} {short(r['sha'], 'nothing'):<12}  {r['ref']:<24} {r['who']}  ({len(r['hosts'])} hosts, run {r['run_id']})")


def _with_store(env: str, fn):
    return fn(open_store(inventory.load(env)))


@exits
def unlock(env: str, force: bool = False) -> None:
    if not force:
        raise UsageError("unlock removes another rollout's lock; it needs --force (check first that the holder is dead)")
    inv = inventory.load(env)
    store = open_store(inv)
    held = locks.force_unlock(store, ttl=inv.state.lock_ttl, who=who(), say=lambda line: print(f"{env}: {line}", flush=True))
    print(f"{env}: removed the lock held by {locks.describe(held)}" if held else f"{env}: no lock was held")
    run = journals.unfinished(store)
    if run:
        print(f"{env}: run {run} did not finish; restore the fleet with: fab recover --env={env}")


@exits
def pause(env: str, reason: str = "") -> None:
    item = _with_store(env, lambda store: pauses.pause(store, reason))
    print(f"{env}: {pauses.describe(item)}")


@exits
def unpause(env: str) -> None:
    item = _with_store(env, pauses.unpause)
    print(f"{env}: unpaused" + (f" (was {pauses.describe(item)})" if item else " (was not paused)"))


@exits
def setup(env: str) -> None:
    inv = inventory.load(env)
    created = open_store(inv, check=False).create_table()
    print(f"state table {inv.state.table}: {'created' if created else 'already exists'}")


@exits
def enqueue(env: str, ref: Optional[str], request_id: Optional[str] = None, wait: bool = False, timeout: Optional[str] = None) -> None:
    from rollout.orchestration import worker

    if not ref:
        raise UsageError(f"--ref is required: fab enqueue --env={env} --ref=BRANCH_TAG_OR_SHA")
    seconds = arguments.seconds(timeout, "--timeout", 3600)
    code = worker.enqueue(inventory.load(env), Output(), ref=ref, request_id=request_id, wait=wait, timeout=seconds)
    if code:
        raise Exit(f"rollout: the queued deploy ended with exit code {code}", code=code)


@exits
def work(env: str, once: bool = False, idle_timeout: Optional[str] = None, wait: Optional[str] = None,
         status_every: Optional[str] = None) -> None:
    from rollout.orchestration import worker

    idle = arguments.seconds(idle_timeout, "--idle-timeout", 0)
    poll = arguments.whole(wait, "--wait", 20, maximum=20)  # SQS long-polls 20 s at most
    every = arguments.seconds(status_every, "--status-every", 0)
    worker.run(inventory.load(env), Output(), once=once, idle_timeout=idle, wait=poll, status_every=every)


@exits
def check(env: str) -> None:
    """Check the environment's configuration offline (rollout.config.check); every problem, or one line that it is valid."""
    found = checking.problems(env)
    if len(found) == 1:
        raise ConfigError(found[0])
    if found:
        raise ConfigError(f"{env}: {len(found)} problems:\n  " + "\n  ".join(found))
    print(f"{env}: inventory valid ({inventory.inventory_dir() / (env + '.yml')})")


@exits
def ui(envs: str, bind: Optional[str] = None, port: Optional[str] = None, trusted_header: Optional[str] = None) -> None:
    from rollout.ui import serve

    serve.run([e for e in envs.split(",") if e], bind=bind or "127.0.0.1", port=arguments.whole(port, "--port", 8765, maximum=65535),
              trusted_header=trusted_header)


@exits
def init(env: str, given: dict) -> None:
    """Write inventories/ENV.yml from what AWS shows and what is asked (or given as flags), then check it."""
    from rollout.adapters.aws import Aws
    from rollout.config import scaffold
    from rollout.orchestration import init as initializing

    directory = inventory.inventory_dir()
    initializing.refuse_existing(directory, env)
    ask = (lambda q: input(f"{q.what} ({q.flag}): ")) if sys.stdin.isatty() else None
    where = initializing.where_from(env, *(given.get(k) for k in (
        "region", "endpoint_url", "profile", "stack", "tags", "address", "bastion_tags", "bastion_host", "bastion_address")), ask=ask)
    answers = scaffold.answers({q.name: given.get(q.name) for q in scaffold.QUESTIONS} | {"signal": given.get("signal"),
                                                                                          "branch": given.get("branch")}, ask)
    found = initializing.facts(Aws(where.region, where.endpoint_url, where.profile), where)
    path = initializing.write(directory, where, found, answers)
    print(f"{env}: wrote {path} ({len(found.instances)} instances, {len(found.balancers)} balancers found);"
          f" fab check: inventory valid. Next: fab status --env={env}, then fab deploy --env={env} --dry-run")

