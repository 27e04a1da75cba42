"""What the fabfile calls: each task's logic, with every error leaving through one place."""

from __future__ import annotations

import functools
import gc
import json
import logging
import signal
import sys
from typing import Optional

from invoke.exceptions import Exit

from rollout import deploy as deploying
from rollout import inventory, journal as journals, lock as locks, pause as pauses, personal, refs, sizes, status as statuses
from rollout.environment import Environment
from rollout.errors import RolloutError, UsageError
from rollout.plan import Plan
from rollout.progress import Output
from rollout.report import ReportFiles
from rollout.store import open_store
from rollout.health import short


def _refused_channels(record: logging.LogRecord) -> bool:
    """Drop paramiko's error for a refused channel: the app not listening yet is an observation the runner judges."""
    message = record.getMessage()
    return not ("channel" in message and "open FAILED" in message)


def exits(fn):
    """Run a task body; turn RolloutError and interrupts into one line and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        logging.getLogger("paramiko.transport").addFilter(_refused_channels)  # once: the same filter is not added twice
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        # One command per process: what is imported by now lives until exit, so the
        # collector need not scan it again. Frozen again at the end, nothing is left
        # for the full collection at exit (0.2-0.4 s with boto3's models loaded).
        gc.freeze()
        try:
            return fn(*args, **kwargs)
        except RolloutError as exc:
            raise Exit(f"rollout: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("rollout: interrupted", code=130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            gc.freeze()

    return wrapper


def _raise_interrupt(signum, frame):
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
           junit: Optional[str] = None, branch: Optional[str] = None) -> None:
    size = sizes.batch_flag(batch)
    inv = inventory.load(env)
    if branch is not None:
        if ref is not None or inv.user:
            raise UsageError("--branch deploys a branch's head to its developer's environment: give it with --env=ENV alone, without --ref")
        if inv.personal is None:
            raise UsageError(f"{env} has no personal environments: --branch needs a 'personal' section in inventories/{env}.yml")
        user = personal.user_from_branch(inv.personal.branch_pattern, branch)
        inv, ref = inventory.personal_copy(inv, user), refs.validate(branch)
    confirm = None if dry_run else _confirm(inv, yes)
    deploying.deploy(inv, Output(), ref=ref, batch=size, hosts=hosts, dry_run=dry_run, ssh=not no_ssh,
                     confirm=confirm, files=ReportFiles.of(report, junit))


@exits
def status(env: str, as_json: bool = False) -> None:
    inv = inventory.load(env)
    e = Environment(inv)
    try:
        doc = statuses.collect(e)
    finally:
        e.close()
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        statuses.render(doc, Output().console)


@exits
def recover(env: str, force: bool = False, report: Optional[str] = None, junit: Optional[str] = None) -> None:
    deploying.recover(inventory.load(env), Output(), force=force, files=ReportFiles.of(report, junit))


@exits
def rollback(env: str, to: Optional[str] = None, batch: Optional[str] = None, yes: bool = False,
             report: Optional[str] = None, junit: Optional[str] = None) -> None:
    size = sizes.batch_flag(batch)
    inv = inventory.load(env)
    deploying.rollback(inv, Output(), to=to, batch=size, confirm=_confirm(inv, yes), files=ReportFiles.of(report, junit))


@exits
def history(env: str, limit: int = 20, as_json: bool = False) -> None:
    rows = journals.history(open_store(inventory.load(env)), limit=int(limit))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    out = Output()
    if not rows:
        out.line(f"{env}: no rollouts recorded")
    for r in rows:
        print(f"{r['started']}  {r['result']:<12} {short(r['sha']):<12}  {r['ref']:<24} {r['who']}  ({len(r['hosts'])} hosts, run {r['run_id']})")


def _with_store(env: str, fn):
    return fn(open_store(inventory.load(env)))


@exits
def unlock(env: str, force: bool = False) -> None:
    if not force:
        raise UsageError("unlock removes another rollout's lock; it needs --force (check first that the holder is dead)")
    held = _with_store(env, locks.force_unlock)
    print(f"{env}: removed the lock held by {locks.describe(held)}" if held else f"{env}: no lock was held")
    run = _with_store(env, journals.unfinished)
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
def enqueue(env: str, ref: str, request_id: Optional[str] = None, wait: bool = False, timeout: float = 3600) -> None:
    from rollout import worker

    code = worker.enqueue(inventory.load(env), Output(), ref=ref, request_id=request_id, wait=wait, timeout=float(timeout))
    if code:
        raise Exit(f"rollout: the queued deploy ended with exit code {code}", code=code)


@exits
def work(env: str, once: bool = False, idle_timeout: float = 0, wait: int = 20) -> None:
    from rollout import worker

    worker.run(inventory.load(env), Output(), once=once, idle_timeout=float(idle_timeout), wait=int(wait))
