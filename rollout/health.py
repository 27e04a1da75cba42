"""Health checks over the SSH connection itself: HTTP through a channel to the host's own port."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Observation:
    """What one health probe saw."""

    status: Optional[int]
    version: Optional[str]
    error: str = ""


def http_get(channel, path: str, timeout: float) -> tuple[int, str]:
    """GET `path` over an open socket-like channel; return (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", timeout=timeout)
    channel.settimeout(timeout)
    conn.sock = channel
    try:
        conn.request("GET", path, headers={"Connection": "close", "User-Agent": "rollout"})
        resp = conn.getresponse()
        return resp.status, resp.read(65536).decode(errors="replace")
    finally:
        conn.close()


def probe(open_channel, health, timeout: float = 5.0) -> Observation:
    """One probe: the health path's status, and the version path's body if it answers 200."""
    try:
        status, _ = http_get(open_channel(), health.path, timeout)
        version = None
        if health.version_path:
            vstatus, body = http_get(open_channel(), health.version_path, timeout)
            version = body.strip() if vstatus == 200 else None
        return Observation(status=status, version=version)
    except Exception as exc:  # noqa: BLE001 - every failure is an observation, judged by the caller
        return Observation(status=None, version=None, error=f"{type(exc).__name__}: {exc}")


def judge(obs: Observation, health, sha: str) -> tuple[bool, str]:
    """Whether an observation shows the host healthy on `sha`; with the reason if not."""
    if obs.status is None:
        return False, f"no answer on port {health.port} ({obs.error})"
    if obs.status != health.status:
        return False, f"{health.path} answered {obs.status}, expected {health.status}"
    if health.version_path and obs.version != sha:
        return False, f"{health.version_path} answers {short(obs.version)}, expected {short(sha)}"
    return True, ""


def short(version: Optional[str]) -> str:
    """A version for people: 12 hex digits of a commit SHA or of an image digest."""
    return version.removeprefix("sha256:")[:12] if version else "nothing"
