"""Health checks over the SSH connection itself: HTTP through a channel to the host's own port."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Optional

from rollout.core.report import short


@dataclass(frozen=True)
class Observation:
    """What one health probe saw."""

    status: Optional[int]
    version: Optional[str]
    error: str = ""


class ChannelHTTP(http.client.HTTPConnection):
    """HTTP/1.1 over SSH channels: (re)connecting opens a channel, never a socket from here."""

    def __init__(self, open_channel, timeout: float):
        super().__init__("127.0.0.1", timeout=timeout)
        self._open_channel = open_channel

    def connect(self) -> None:
        self.sock = self._open_channel()
        self.sock.settimeout(self.timeout)

    def get(self, path: str) -> tuple[int, str]:
        """GET `path`; (status, body). The connection is kept for the next request when the server allows."""
        self.request("GET", path, headers={"User-Agent": "rollout"})
        resp = self.getresponse()
        body = resp.read(65536).decode(errors="replace")
        if not resp.isclosed():
            self.close()  # a body over 64 KiB: do not read the rest, start the next request afresh
        return resp.status, body


def probe(open_channel, health, timeout: float = 5.0) -> Observation:
    """One probe: the health path's status, and the version path's body if it answers 200.

    Both requests share one channel (keep-alive): every channel opened is a round trip through the bastion.
    """
    conn = ChannelHTTP(open_channel, timeout)
    try:
        status, _ = conn.get(health.path)
        version = None
        if health.version_path:
            vstatus, body = conn.get(health.version_path)
            version = body.strip() if vstatus == 200 else None
        return Observation(status=status, version=version)
    except Exception as exc:  # noqa: BLE001 - every failure is an observation, judged by the caller
        return Observation(status=None, version=None, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def judge(obs: Observation, health, sha: str) -> tuple[bool, str]:
    """Whether an observation shows the host healthy on `sha`; with the reason if not."""
    if obs.status is None:
        return False, f"no answer on port {health.port} ({obs.error})"
    if obs.status != health.status:
        return False, f"{health.path} answered {obs.status}, expected {health.status}"
    if health.version_path and obs.version != sha:
        return False, f"{health.version_path} answers {short(obs.version, 'nothing')}, expected {short(sha)}"
    return True, ""
