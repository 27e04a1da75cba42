"""`enqueue` and `worker`: deploys requested through a queue, so CI needs no route to the bastion.

A request is signed with the environment's queue secret. The worker, inside the network,
takes one request at a time, runs the same rollout, and records the result in the state
table, where `enqueue --wait` reads it. Requests are deduplicated by id; a request whose
worker died is run again only after `recover`; a poisoned request goes to the dead-letter queue.
A request may also ask for a rollback, a pause or an unpause (the deployer's page sends them);
pauses come through the control queue, taken beside a running rollout so they can stop it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Optional

from rollout.adapters import interrupts
from rollout.adapters.queue import DeployQueue
from rollout.adapters.waiting import WaitTimeout, poll
from rollout.apps import strategies as apps
from rollout.config.inventory import Inventory
from rollout.core import signing
from rollout.core.actions import CONTROL, Action, of as action_of
from rollout.core.errors import NOTHING_CHANGED, ConfigError, RefError, RolloutError, UsageError
from rollout.core.report import who
from rollout.orchestration import deploy as deploying
from rollout.orchestration import recover as recovering
from rollout.orchestration import publish
from rollout.state import journal as journals
from rollout.state import pause as pauses
from rollout.state.store import Store, open_store

log = logging.getLogger("rollout.worker")
FINAL = ("succeeded", "failed", "refused")


def _secret(inv: Inventory) -> str:
    if inv.queue is None:
        raise UsageError(f"{inv.name} has no deploy queue: add a 'queue' section to inventories/{inv.name}.yml")
    secret = os.environ.get(inv.queue.secret_env)
    if not secret:
        raise ConfigError(f"{inv.queue.secret_env} is not set: the queue secret signs and checks deploy requests")
    return secret


def _parts(inv: Inventory, control: bool = False) -> tuple[Store, DeployQueue]:
    """The state table and the deploy (or control) queue: AWS only, no SSH (the enqueuer has no route to the fleet)."""
    store = open_store(inv)
    name = inv.queue.control if control and inv.queue.control else inv.queue.name
    return store, DeployQueue(store.aws, name, inv.queue.dead_letter, inv.queue.visibility_timeout)


def submit(inv: Inventory, action: Action, requested_by: str, ref: str = "", reason: Optional[str] = None) -> dict:
    """Sign a request and put it on its queue: pauses on the control queue if there is one, the rest
    on the deploy queue. Returns the request."""
    secret = _secret(inv)
    if action not in CONTROL:
        apps.validate_ref(inv.app, ref)
    request = signing.make(inv.name, ref, requested_by, secret, action=action, reason=reason)
    _, q = _parts(inv, control=action in CONTROL)
    q.send(request)
    return request


def enqueue(inv: Inventory, output, *, ref: str, request_id: Optional[str] = None, wait: bool = False,
            timeout: float = 3600) -> int:
    """Put a signed request on the queue; with `wait`, return the deploy's exit code once the worker is done."""
    secret = _secret(inv)
    ref = apps.validate_ref(inv.app, ref)  # exit 4 here; the worker's rules below would make it a refused request (2)
    request = signing.make(inv.name, ref, who(), secret, request_id)
    try:  # the worker's own rules, so a request it would refuse is never queued
        read_request(inv, json.dumps(request), secret)
    except signing.BadRequest as exc:
        raise UsageError(f"cannot queue this request ({exc}); check --id and $ROLLOUT_USER") from None
    store, q = _parts(inv)
    seen = store.get(f"request#{request['id']}") if request_id else None
    if seen and seen.get("ref") != ref:
        raise UsageError(_reused(request_id, seen.get("ref"), ref))
    q.send(request)
    output.line(f"queued request {request['id']}: deploy {ref} to {inv.name}")
    if not wait:
        return 0
    try:
        item = poll(lambda: store.get(f"request#{request['id']}"), lambda i: bool(i) and i.get("status") in FINAL,
                    timeout=timeout, interval=1, max_interval=5, what=f"waiting for request {request['id']}")
    except WaitTimeout:
        raise RolloutError(f"request {request['id']} not finished after {timeout:g}s; is a worker running for {inv.name}?") from None
    output.line(f"request {request['id']}: {item['status']} (exit {int(item.get('exit_code', 1))}) {item.get('error', '')}".rstrip())
    return int(item.get("exit_code", 1))


@contextmanager
def _kept_invisible(q: DeployQueue, receipt: str):
    """While a deploy runs, keep its message from other workers."""
    stop = threading.Event()

    def beat():
        while not stop.wait(max(1.0, q.visibility / 3)):
            try:
                q.keep(receipt)
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("could not extend the request's visibility: %s", exc)

    t = threading.Thread(target=beat, name="queue-heartbeat", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=5)


def _reused(request_id: str, before, now: str) -> str:
    return f"request id {request_id} was used before for ref {before!r}, not {now!r}: give each request its own --id"


def read_request(inv: Inventory, body, secret: str, now: Optional[float] = None) -> dict:
    """The verified request in a message body, for this environment with a valid ref; BadRequest for anything else.

    Any exception while checking the content is a BadRequest, so no body can stop the worker.
    """
    try:
        req = signing.verify(body, secret, max_age=inv.queue.max_age, now=now)
        if req["env"] != inv.name:
            raise signing.BadRequest(f"request for {req['env']!r}, not {inv.name!r}")
        if action_of(req) not in CONTROL:
            req["ref"] = apps.validate_ref(inv.app, req["ref"])
    except signing.BadRequest:
        raise
    except RefError as exc:
        raise signing.BadRequest(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a hostile body is dead-lettered, never fatal
        raise signing.BadRequest(f"could not be checked: {type(exc).__name__}: {str(exc)[:200]}") from None
    return req


def process_one(inv: Inventory, output, wait: int = 20, control: bool = False) -> Optional[str]:
    """Take one request (from the control queue with `control`) and handle it; what happened
    ("succeeded", "duplicate", "poisoned", "paused", ...) or None if none came."""
    secret = _secret(inv)
    store, q = _parts(inv, control)
    msg = q.receive(wait)
    if msg is None:
        return None
    body, receipt, _ = msg
    try:
        req = read_request(inv, body, secret)
        if control and action_of(req) not in CONTROL:
            raise signing.BadRequest(f"a {action_of(req).value} request on the control queue, which takes only pause and unpause")
        key = f"request#{req['id']}"
        seen = store.get(key)
        if seen and seen.get("ref") != req["ref"]:
            raise signing.BadRequest(_reused(req["id"], seen.get("ref"), req["ref"]))
    except signing.BadRequest as exc:
        output.warn(f"poisoned request sent to {inv.queue.dead_letter}: {exc}")
        q.dead_letter(body, str(exc))
        q.delete(receipt)
        return "poisoned"
    if seen and seen.get("status") in FINAL:
        output.line(f"request {req['id']} was already handled ({seen['status']}); not deploying it twice")
        q.delete(receipt)
        return "duplicate"
    if action_of(req) in CONTROL:
        return _control(inv, output, req, receipt, store, q)
    if seen and journals.unfinished(store):
        output.line(f"request {req['id']}: its previous worker died mid-rollout; recovering first")
        recovering.recover(inv, output)
    return _run_request(inv, output, req, receipt, store, q, key)


def _run_request(inv, output, req, receipt, store, q, key) -> str:
    store.put(key, {"status": "running", "ref": req["ref"], "requested_by": req["requested_by"], "updated": time.time()})
    action = action_of(req)
    output.line(f"request {req['id']}: {'deploying' if action is Action.DEPLOY else 'rolling back to'} {req['ref']}"
                f" on {inv.name} for {req['requested_by']}")
    requester = f"{req['requested_by']} via queue"
    code, status, error = 0, "succeeded", ""
    try:
        with _kept_invisible(q, receipt), publish.LiveOutput(store, console=output.console, live=output.live_enabled) as live:
            if action is Action.ROLLBACK:
                deploying.rollback(inv, live, to=req["ref"], requester=requester)
            else:
                deploying.deploy(inv, live, ref=req["ref"], requester=requester)
    except RolloutError as exc:
        code, error = exc.exit_code, str(exc)
        status = "refused" if code in NOTHING_CHANGED else "failed"
    store.put(key, {"status": status, "exit_code": code, "error": error[:1000], "ref": req["ref"], "updated": time.time()})
    journals.record_action(store, req, status, f"exit {code}" + (f": {error}" if error else ""))
    q.delete(receipt)
    output.line(f"request {req['id']}: {status} (exit {code})")
    return status


def _control(inv, output, req, receipt, store, q) -> str:
    """Pause or unpause the environment, as the request's sender."""
    if action_of(req) is Action.PAUSE:
        pauses.pause(store, str(req.get("reason") or ""), by=f"{req['requested_by']} via queue")
        outcome = "paused"
    else:
        pauses.unpause(store)
        outcome = "unpaused"
    store.put(f"request#{req['id']}", {"status": "succeeded", "exit_code": 0, "ref": req["ref"], "updated": time.time()})
    journals.record_action(store, req, outcome)
    q.delete(receipt)
    output.line(f"request {req['id']}: {inv.name} {outcome} for {req['requested_by']}")
    return outcome


def run(inv: Inventory, output, *, once: bool = False, idle_timeout: float = 0, wait: int = 20, status_every: float = 0) -> int:
    """Handle requests one at a time; stop after one (`once`) or after `idle_timeout` seconds without any (0: never).

    Beside them, take pause requests from the control queue (if the inventory names one) and,
    with `status_every`, publish the environment's status that often for the deployer's page.
    """
    _secret(inv)
    idle_since = time.monotonic()
    handled = 0
    with _beside(inv, output, wait, status_every):
        while True:
            if interrupts.TERMINATED.is_set():  # a SIGTERM whose KeyboardInterrupt was lost in a finalizer
                raise KeyboardInterrupt
            outcome = process_one(inv, output, wait=wait)
            if outcome is not None:
                handled += 1
                idle_since = time.monotonic()
                if once:
                    return handled
            elif idle_timeout and time.monotonic() - idle_since >= idle_timeout:
                output.line(f"no request for {idle_timeout:g}s; stopping")
                return handled


@contextmanager
def _beside(inv: Inventory, output, wait: int, status_every: float):
    """Threads that run beside the request loop: the control queue and the status publisher."""
    stop = threading.Event()

    def guarded(what: str, step, pause: float):
        while not stop.is_set():
            try:
                step()
                stop.wait(pause)
            except Exception as exc:  # noqa: BLE001 - logged, and tried again a little later
                log.warning("%s: %s", what, exc)
                stop.wait(max(pause, 5))

    threads = []
    if inv.queue.control:
        _parts(inv, control=True)[1].url(inv.queue.control)  # a missing control queue stops the worker here
        threads.append(threading.Thread(target=guarded, name="control-queue", daemon=True, args=(
            "control queue", lambda: process_one(inv, output, wait=min(wait, 5), control=True), 0)))
    if status_every:
        store = open_store(inv)
        threads.append(threading.Thread(target=guarded, name="status-publisher", daemon=True, args=(
            "publishing status", lambda: publish.publish_status(inv, store), status_every)))
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
