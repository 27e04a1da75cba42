"""One rollout per environment: a lease taken atomically, renewed while held, judged stale by the waiter alone.

No decision here compares a time written by one machine with another machine's clock. The
holder rewrites the item's `version` (a random token) at every renewal; a waiter takes the
lease over only after seeing the same version for a whole `ttl` on its own monotonic clock
(the approach of AWS's DynamoDB lock client), with a write conditional on that version.
Every change a run makes is preceded by `fence()`: a proof that the run still holds the lease,
made by a write conditional on it, or reused from one of our writes that rewrote the version
(acquire, a renewal) and started less than `ttl`/4 ago on a clock that counts suspend. A waiter
sees that version only after the write took effect, then waits a whole ttl, so the change is
safe even against a waiter whose clock runs up to 4x fast. A run that lost the lease raises
LockLost and changes nothing more.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Optional

from rollout.adapters.waiting import WaitTimeout, poll
from rollout.core.errors import LockHeld, LockLost, LockUnproven
from rollout.state.store import Conflict, Store

log = logging.getLogger("rollout.lock")


def describe(item: dict) -> str:
    """The holder in words; `since` is the holder's own clock, shown, never compared."""
    since = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(item.get("since", 0)))
    return (f"{item.get('who')} on {item.get('host')} (pid {int(item.get('pid', 0)) or '?'}, run {item.get('run_id')},"
            f" ref {item.get('ref')}, since {since} by its clock)")


@dataclass(frozen=True)
class Process:
    """Where a controller runs, precisely enough to tell from the same machine whether it is still alive."""

    host: str
    boot: str
    pid: int
    start: str


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def proc_state(pid: int) -> Optional[tuple[str, str]]:
    """(state letter, start time in ticks) of process `pid` from /proc, None if there is none."""
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    return fields[0], fields[19]


def this_process() -> Process:
    state = proc_state(os.getpid())
    return Process(socket.gethostname(), _boot_id(), os.getpid(), state[1] if state else "")


def holder_state(item: dict, me: Process, read: Callable[[int], Optional[tuple[str, str]]] = proc_state) -> str:
    """"dead", "running" or "stopped" when the holder ran on this machine since its boot; else "unknown"."""
    if not me.boot or item.get("host") != me.host or item.get("boot") != me.boot or not item.get("pid"):
        return "unknown"
    seen = read(int(item["pid"]))
    if seen is None or seen[1] != item.get("start") or seen[0] in ("Z", "X"):
        return "dead"
    return "stopped" if seen[0] in ("T", "t") else "running"


UNVERSIONED = "unversioned"


def renewal_token(item: dict) -> str:
    """What changes each time the holder renews: `version`, else the old format's `expires_at`, else a constant."""
    if item.get("version"):
        return str(item["version"])
    if item.get("expires_at") is not None:
        return f"expires_at={item['expires_at']!r}"
    return UNVERSIONED


class Staleness:
    """A waiter's judgement of a lease: stale once one version was seen unchanged for `ttl` seconds of its own clock."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self.version: Optional[str] = None
        self.since = 0.0

    def see(self, version: Optional[str], now: float) -> bool:
        """Record an observation at monotonic time `now`; True if the lease is stale."""
        if version != self.version:
            self.version, self.since = version, now
            return False
        return version is not None and now - self.since >= self.ttl


def suspend_aware_clock(clock_module=time) -> Optional[Callable[[], float]]:
    """CLOCK_BOOTTIME (Linux: monotonic, and counts time the machine was suspended), None where there is none."""
    boottime = getattr(clock_module, "CLOCK_BOOTTIME", None)
    if boottime is None:
        return None
    try:
        clock_module.clock_gettime(boottime)
    except OSError:
        return None
    return lambda: clock_module.clock_gettime(boottime)


BOOT_CLOCK = suspend_aware_clock()


class Lock:
    """The environment's lease, held by one run id and renewed by a heartbeat thread.

    `clock` times proofs (CLOCK_BOOTTIME by default); a fence reuses a proof for `reuse` seconds,
    ttl/4 by default, or never (0) where no clock counting suspend exists and none is given.
    """

    def __init__(self, store: Store, run_id: str, who: str, ref: str, ttl: float = 60,
                 clock: Optional[Callable[[], float]] = None, reuse: Optional[float] = None):
        self.store = store
        self.run_id = run_id
        self.who = who
        self.ref = ref
        self.ttl = ttl
        self.lost: Optional[str] = None
        self.clock = clock or BOOT_CLOCK or time.monotonic
        self.reuse = reuse if reuse is not None else (ttl / 4 if clock or BOOT_CLOCK else 0.0)
        self._proof: Optional[float] = None  # start, on `clock`, of our latest write that rewrote the version
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._me = this_process()

    def _proved(self, started: float) -> None:
        """Record a write of ours that rewrote the version and started at `started`."""
        with self._guard:
            if not self._stop.is_set() and (self._proof is None or started > self._proof):  # none once released
                self._proof = started

    def _recent(self, now: float) -> bool:
        """Whether a proof started less than `reuse` seconds before `now`."""
        with self._guard:
            return self._proof is not None and 0 <= now - self._proof < self.reuse

    def _item(self) -> dict:
        me = self._me
        return {"run_id": self.run_id, "who": self.who, "host": me.host, "boot": me.boot, "pid": me.pid, "start": me.start,
                "ref": self.ref, "since": time.time(), "ttl": self.ttl, "version": uuid.uuid4().hex}

    def acquire(self, take_over: Optional[dict] = None, hint: str = "wait for it, or if it is dead: fab unlock --env=ENV --force",
                exclusive: bool = False) -> None:
        """Take the lease if free or already ours, or, with `take_over` (the item seen stale), if unchanged since.

        With `exclusive`, only if free: two processes acting for one run id (continuing a stepped
        run) never both hold it. LockHeld, naming the holder and ending with `hint`, if someone else holds it.
        """
        cond, params = "attribute_not_exists(pk) OR run_id = :run", {"run": self.run_id}
        if exclusive:
            cond, params = "attribute_not_exists(pk)", {}
        if take_over is not None:
            params["old"] = take_over.get("run_id", "")
            if take_over.get("version"):
                cond += " OR (run_id = :old AND version = :seen)"
                params["seen"] = take_over["version"]
            elif take_over.get("expires_at") is not None:  # written by a rollout before leases had a version
                cond += " OR (run_id = :old AND attribute_not_exists(version) AND expires_at = :seen)"
                params["seen"] = take_over["expires_at"]
            else:
                cond += " OR (run_id = :old AND attribute_not_exists(version) AND attribute_not_exists(expires_at))"
        item, started = self._item(), self.clock()
        try:
            self.store.put("lock", item, condition=cond, params=params or None)
        except Conflict as exc:
            if not exc.item or exc.item.get("version") != item["version"]:  # else: a retried put that had succeeded
                holder = describe(exc.item) if exc.item else "someone (the lock changed while we looked)"
                raise LockHeld(f"another rollout holds the lock: {holder}; {hint}") from None
        self._proved(started)
        self._thread = threading.Thread(target=self._heartbeat, name="lock-heartbeat", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        """Rewrite the version if the lease is still ours (a proof, timed on the lock's clock); LockLost otherwise."""
        if self.lost:
            raise LockLost.to(self.lost)
        started = self.clock()
        try:
            self.store.update("lock", {"version": uuid.uuid4().hex}, condition="run_id = :run", params={"run": self.run_id})
        except Conflict as exc:
            self.lost = describe(exc.item) if exc.item else "nobody (it was removed)"
            log.error("lost the deploy lock; it is now held by %s; changing nothing more", self.lost)
            raise LockLost.to(self.lost) from None
        self._proved(started)

    def fence(self, attempts: int = 3) -> None:
        """Before a change: prove the lease is still ours; LockLost if it is known lost (`lost` set),
        LockUnproven if the proof could not be made (the store did not answer in time).

        A proof started less than `reuse` seconds ago is reused without a call; otherwise the
        lease is renewed (a conditional write). Nobody can take the lease over sooner than a
        ttl after our write took effect, so the proof holds for the change that follows at
        once; a proof that took half a ttl (this process was frozen meanwhile) is made again.
        """
        clock = self.clock
        if self.lost:
            raise LockLost.to(self.lost)
        if self._recent(clock()):
            return
        for _ in range(attempts):
            started = clock()
            try:
                self.renew()
            except LockLost:
                raise
            except Exception as exc:  # noqa: BLE001 - unable to prove we hold it: change nothing more, but it is not lost
                raise LockUnproven(f"could not confirm that this run still holds the deploy lock ({exc})") from None
            if clock() - started < self.ttl / 2:
                return
        raise LockUnproven(f"could not prove within {self.ttl / 2:g}s that this run still holds the deploy lock")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except LockLost:
                return
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried at the next beat
                log.warning("could not renew the deploy lock: %s", exc)

    def abandon(self) -> None:
        """Stop renewing, leaving the lock item as it is (a waiter takes it over once it has gone a ttl unrenewed)."""
        self._stop.set()
        with self._guard:
            self._proof = None
        if self._thread:
            self._thread.join(timeout=5)

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still ours."""
        self.abandon()
        try:
            self.store.delete("lock", condition="run_id = :run", params={"run": self.run_id})
        except Conflict:
            log.warning("the deploy lock was no longer ours at release")


def acquire_for_recovery(lock: Lock, *, force: bool, say: Callable[[str], None], wait: Optional[float] = None,
                         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Take the lease for a recovery: at once if free; from a holder seen dead on this machine with `force`;
    otherwise once the holder has not renewed it for a whole ttl, watched for at most `wait` seconds
    (2 ttl by default). LockHeld if the holder is alive or someone else got it first.
    """
    item = lock.store.get("lock")
    hint = "it got there first; nothing was changed here"
    if item is None:
        return lock.acquire(hint=hint)
    state = holder_state(item, lock._me)
    if force and state == "dead":
        say(f"the lock holder, {describe(item)}, is dead on this machine; taking its lock over")
        return lock.acquire(take_over=item, hint=hint)
    if force and state == "running":
        raise LockHeld(f"another rollout holds the lock and is running: {describe(item)}; --force only breaks the lock of a"
                       f" dead controller. Wait for it, or stop it first; nothing was changed here")
    if force and state == "unknown":
        say(f"{describe(item)} ran on another machine, so --force cannot tell whether it is dead")
    take_over_if_stale(lock, item, say=say, wait=wait, clock=clock, sleep=sleep, hint=hint)


def take_over_if_stale(lock: Lock, item: dict, *, say: Callable[[str], None], wait: Optional[float] = None,
                       clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                       hint: str = "it got there first; nothing was changed here", exclusive: bool = False) -> None:
    """Watch the holder of `item` for at most `wait` seconds (2 ttl by default) and take the lease over once
    it has not renewed it for a whole ttl on this machine's clock; LockHeld if it is alive or someone else
    got there first. With `exclusive`, never shares it with a process holding it under the same run id.
    """
    wait = 2 * lock.ttl + 1 if wait is None else wait
    say(f"{describe(item)} holds the lock; watching it for up to {wait:g}s: it is taken over if not renewed for {lock.ttl:g}s")
    judge = Staleness(lock.ttl)
    judge.see(renewal_token(item), clock())
    seen: list[Optional[dict]] = [item]

    def look() -> bool:
        seen[0] = lock.store.get("lock")
        return seen[0] is None or judge.see(renewal_token(seen[0]), clock())

    try:
        poll(look, bool, timeout=wait, interval=0.5, max_interval=0.5, sleep=sleep, what="watching the lock", within=True)
    except WaitTimeout:
        raise LockHeld(f"another rollout holds the lock and renewed it while we watched ({wait:g}s): {describe(seen[0] or item)};"
                       f" it is alive. Wait for it, or stop it first") from None
    if seen[0] is None:
        return lock.acquire(hint=hint, exclusive=exclusive)
    say(f"the lock of run {seen[0].get('run_id')} was not renewed for {lock.ttl:g}s; taking it over")
    return lock.acquire(take_over=seen[0], hint=hint, exclusive=exclusive)


BREAKER = "unlock-"  # run id prefix of the lease `force_unlock` holds while a holder that may be alive stops


def force_unlock(store: Store, *, ttl: float, who: str, say: Callable[[str], None] = lambda _: None,
                 sleep: Callable[[float], None] = time.sleep, attempts: int = 5) -> Optional[dict]:
    """Remove the lock whoever holds it; return what it held (None if nothing was held).

    A run seen dead on this machine loses it at once. Any other holder may be alive and go on
    using its last proof for up to a quarter of its ttl: its lease is taken over by this
    command's own (so its next renewal fails and it changes nothing more), held for half
    that ttl (or `ttl`'s, if longer), then removed; until then nobody else can take it.
    """
    me = this_process()
    for _ in range(attempts):
        item = store.get("lock")
        if item is None:
            return None
        if holder_state(item, me) == "dead" and not str(item.get("run_id", "")).startswith(BREAKER):
            try:
                store.delete("lock", condition="run_id = :run", params={"run": item.get("run_id", "")})
            except Conflict:
                continue  # taken or renewed meanwhile: look again
            return item
        wait = max(float(item.get("ttl") or 0), ttl) / 2
        breaker = Lock(store, f"{BREAKER}{uuid.uuid4().hex[:8]}", who, "unlock --force", ttl=wait * 2)
        try:
            breaker.acquire(take_over=item, hint="it changed while we looked")
        except LockHeld:
            continue  # renewed meanwhile: look again
        try:
            say(f"took over the lock of {describe(item)}; holding it {wait:g}s, so that if it is still running it stops"
                f" changing the fleet before anyone else can take the lock")
            sleep(wait)
        except BaseException:
            # Interrupted: the lock stays this command's until it goes unrenewed for a ttl (or another unlock
            # holds it off again), never free sooner than the holder may still be changing the fleet.
            breaker.abandon()
            raise
        breaker.release()
        return item
    raise LockHeld(f"the lock changed {attempts} times while we tried to remove it: its holder is alive and renewing it;"
                   " stop it first")


def holder(store: Store) -> Optional[dict]:
    """The lock item, whoever holds it: only its holder's silence, watched for a ttl, can say it is stale."""
    return store.get("lock")
