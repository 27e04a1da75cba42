"""What the fabfile calls: each task's logic, with every error leaving through one place."""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Optional

from invoke.exceptions import Exit

from rollout import deploy as deploying
from rollout import inventory, status as statuses
from rollout.environment import Environment
from rollout.errors import RolloutError
from rollout.plan import Plan
from rollout.progress import Output


def exits(fn):
    """Run a task body; turn RolloutError and interrupts into one line and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return fn(*args, **kwargs)
        except RolloutError as exc:
            raise Exit(f"rollout: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("rollout: interrupted", code=130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _confirm_on_terminal(yes: bool):
    if yes or not sys.stdin.isatty():
        return None

    def ask(plan: Plan) -> bool:
        answer = input(f"Deploy {plan.sha[:12]} ({plan.ref}) to {len(plan.hosts)} hosts of {plan.env} in {len(plan.batches)} batches? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return ask


@exits
def deploy(env: str, ref: Optional[str] = None, batch: Optional[str] = None, hosts: Optional[str] = None,
           dry_run: bool = False, yes: bool = False, report: Optional[str] = None) -> None:
    inv = inventory.load(env)
    deploying.deploy(inv, Output(), ref=ref, batch=batch, hosts=hosts, dry_run=dry_run,
                     confirm=_confirm_on_terminal(yes), report_path=Path(report) if report else None)


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
