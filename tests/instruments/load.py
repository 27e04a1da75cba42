"""HTTP load generator for zero-downtime checks, limited to loopback and the sandbox range."""

from __future__ import annotations

import http.client
import ipaddress
import os
import select
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SANDBOX_NET = ipaddress.ip_network("198.18.0.0/15")
BASTION_NETNS = "rollout-bastion"
MAX_DURATION = 600.0
MAX_ERROR_SAMPLES = 20


class UnsafeTarget(ValueError):
    """The URL points outside loopback and the sandbox range."""


def _bastion_exists() -> bool:
    if os.path.exists(f"/run/netns/{BASTION_NETNS}"):
        return True
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split()[:1] == [BASTION_NETNS] for line in out.splitlines())


def check_target(url: str) -> tuple[str, int, str]:
    """Return (ip, port, path) of `url`; raise UnsafeTarget unless it is loopback or a live sandbox address."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UnsafeTarget(f"only http://IP:PORT/ URLs are allowed: {url!r}")
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise UnsafeTarget(f"host must be an IP literal (no name lookups): {url!r}") from None
    if ip.is_loopback and (ip.version == 6 or ip in ipaddress.ip_network("127.0.0.0/8")):
        pass
    elif ip.version == 4 and ip in SANDBOX_NET:
        if not _bastion_exists():
            raise UnsafeTarget(f"{ip} is in the sandbox range but netns {BASTION_NETNS} does not exist")
    else:
        raise UnsafeTarget(f"refusing to send load to {ip}: not loopback nor {SANDBOX_NET}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return str(ip), parts.port or 80, path


@dataclass
class LoadResult:
    """What a load run saw. Times are seconds since the run started."""

    url: str
    elapsed: float = 0.0
    requests: int = 0
    successes: int = 0
    failures: int = 0
    keepalive_requests: int = 0
    fresh_requests: int = 0
    reconnects: int = 0  # keep-alive connections the server closed cleanly between requests
    status_codes: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    version_first_seen: dict[str, float] = field(default_factory=dict)
    version_last_seen: dict[str, float] = field(default_factory=dict)
    versions_per_second: dict[int, Counter] = field(default_factory=dict)
    errors: list[tuple[float, str]] = field(default_factory=list)  # a sample, at most MAX_ERROR_SAMPLES

    @property
    def rate(self) -> float:
        """Requests per second over the run."""
        return self.requests / self.elapsed if self.elapsed else 0.0

    def summary(self) -> str:
        """One line for logs and assertion messages."""
        return (
            f"{self.requests} requests in {self.elapsed:.2f} s ({self.rate:.0f}/s; "
            f"{self.keepalive_requests} keep-alive, {self.fresh_requests} fresh, {self.reconnects} clean reconnects): "
            f"{self.successes} ok, {self.failures} failed, status {dict(self.status_codes)}, "
            f"versions {dict(self.versions)}, errors {self.errors[:5]}"
        )


class _Stats:
    """Per-thread tallies, merged at the end so threads share no lock per request."""

    def __init__(self) -> None:
        self.r = LoadResult(url="")

    def record(self, t: float, status: int | None, version: str | None, ok: bool, error: str | None) -> None:
        r = self.r
        r.requests += 1
        if status is not None:
            r.status_codes[status] += 1
        if ok:
            r.successes += 1
        else:
            r.failures += 1
            if len(r.errors) < MAX_ERROR_SAMPLES:
                r.errors.append((round(t, 4), error or f"HTTP {status}"))
        if version:
            r.versions[version] += 1
            r.version_first_seen.setdefault(version, t)
            if t < r.version_first_seen[version]:
                r.version_first_seen[version] = t
            r.version_last_seen[version] = max(t, r.version_last_seen.get(version, t))
            r.versions_per_second.setdefault(int(t), Counter())[version] += 1


def _server_closed(conn: http.client.HTTPConnection) -> bool:
    """True if the server has closed this idle connection (EOF waiting to be read)."""
    sock = conn.sock
    if sock is None:
        return False
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return False  # a reset: let the next request fail and count it


class LoadGenerator:
    """Background GET load on one URL; start(), then stop() or wait(), then result()."""

    def __init__(
        self,
        url: str,
        duration: float,
        rate: int | None = None,
        keepalive_workers: int = 4,
        fresh_workers: int = 4,
        max_requests: int = 200_000,
        timeout: float = 5.0,
        ok_statuses: tuple[int, ...] = (200,),
    ) -> None:
        self.ip, self.port, self.path = check_target(url)
        if not 0 < duration <= MAX_DURATION:
            raise ValueError(f"duration must be in (0, {MAX_DURATION}] s")
        if keepalive_workers + fresh_workers < 1:
            raise ValueError("need at least one worker")
        self.url, self.duration, self.rate = url, duration, rate
        self.max_requests, self.timeout, self.ok_statuses = max_requests, timeout, ok_statuses
        self._kinds = [True] * keepalive_workers + [False] * fresh_workers
        self._stop = threading.Event()
        self._budget = threading.Semaphore(max_requests)
        self._threads: list[threading.Thread] = []
        self._stats: list[_Stats] = []
        self._t0 = 0.0
        self._t_end = 0.0

    def start(self) -> LoadGenerator:
        """Start the worker threads; return self."""
        if self._threads:
            raise RuntimeError("already started")
        self._t0 = time.monotonic()
        per_thread = self.rate / len(self._kinds) if self.rate else None
        for i, keepalive in enumerate(self._kinds):
            st = _Stats()
            self._stats.append(st)
            t = threading.Thread(target=self._run, args=(keepalive, st, per_thread),
                                 name=f"load-{'ka' if keepalive else 'fresh'}-{i}", daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def stop(self) -> LoadResult:
        """Stop early (in-flight requests finish); return the result."""
        self._stop.set()
        return self.wait()

    def wait(self, timeout: float | None = None) -> LoadResult:
        """Wait for the run to end by itself (duration or max_requests); return the result."""
        limit = self.duration + self.timeout + 5 if timeout is None else timeout
        deadline = time.monotonic() + limit
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            self._stop.set()
            raise TimeoutError("load threads did not finish")
        return self.result()

    def elapsed(self) -> float:
        """Seconds since start()."""
        return time.monotonic() - self._t0

    def result(self) -> LoadResult:
        """Merge the threads' tallies (a snapshot if still running)."""
        out = LoadResult(url=self.url)
        running = any(t.is_alive() for t in self._threads)
        out.elapsed = (time.monotonic() if running else self._t_end) - self._t0
        for st in self._stats:
            r = st.r
            for name in ("requests", "successes", "failures", "keepalive_requests", "fresh_requests", "reconnects"):
                setattr(out, name, getattr(out, name) + getattr(r, name))
            out.status_codes.update(r.status_codes)
            out.versions.update(r.versions)
            for v, t in r.version_first_seen.items():
                out.version_first_seen[v] = min(t, out.version_first_seen.get(v, t))
            for v, t in r.version_last_seen.items():
                out.version_last_seen[v] = max(t, out.version_last_seen.get(v, t))
            for s, c in r.versions_per_second.items():
                out.versions_per_second.setdefault(s, Counter()).update(c)
            out.errors.extend(r.errors)
        out.errors = sorted(out.errors)[:MAX_ERROR_SAMPLES]
        return out

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, keepalive: bool, st: _Stats, per_thread_rate: float | None) -> None:
        deadline = self._t0 + self.duration
        interval = 1.0 / per_thread_rate if per_thread_rate else 0.0
        next_at = time.monotonic()
        conn: http.client.HTTPConnection | None = None
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= deadline or not self._budget.acquire(blocking=False):
                    break
                if interval:
                    if next_at > now:
                        time.sleep(min(next_at - now, deadline - now))
                    next_at = max(next_at + interval, time.monotonic() - 1.0)
                if not keepalive or conn is None:
                    conn = http.client.HTTPConnection(self.ip, self.port, timeout=self.timeout)
                elif _server_closed(conn):
                    conn.close()
                    st.r.reconnects += 1
                    conn = http.client.HTTPConnection(self.ip, self.port, timeout=self.timeout)
                t = time.monotonic() - self._t0
                status = version = error = None
                try:
                    conn.request("GET", self.path)
                    resp = conn.getresponse()
                    resp.read()
                    status, version = resp.status, resp.getheader("X-Version")
                    if not keepalive or resp.will_close:
                        conn.close()
                        conn = None
                        if keepalive:
                            st.r.reconnects += 1
                except (OSError, http.client.HTTPException) as e:
                    error = f"{type(e).__name__}: {e}"
                    conn.close()
                    conn = None
                if keepalive:
                    st.r.keepalive_requests += 1
                else:
                    st.r.fresh_requests += 1
                st.record(t, status, version, status in self.ok_statuses, error)
        finally:
            if conn is not None:
                conn.close()
            self._t_end = max(self._t_end, time.monotonic())


def run_load(
    url: str,
    duration: float,
    rate: int | None = None,
    keepalive_workers: int = 4,
    fresh_workers: int = 4,
    max_requests: int = 200_000,
) -> LoadResult:
    """Send GET load to `url` for `duration` seconds (at most `max_requests`); return what was seen."""
    gen = LoadGenerator(url, duration, rate, keepalive_workers, fresh_workers, max_requests)
    return gen.start().wait()
