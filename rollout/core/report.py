"""What happened in a rollout: per-host steps with timings, the result, as JSON and as a table."""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from rollout.core.vocabulary import HostResult, Result


def now_iso(t: Optional[float] = None) -> str:
    return datetime.fromtimestamp(t if t is not None else time.time(), timezone.utc).isoformat(timespec="milliseconds")


def who() -> str:
    """The operator: $ROLLOUT_USER, else user@host."""
    return os.environ.get("ROLLOUT_USER") or f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass
class StepRecord:
    step: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class HostRecord:
    instance_id: str
    name: str
    address: str
    batch: int
    old_version: Optional[str] = None
    new_version: Optional[str] = None
    result: str = HostResult.PENDING
    error: str = ""
    out_of_service_seconds: Optional[float] = None
    steps: list[StepRecord] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)


@dataclass
class Report:
    env: str
    ref: str
    sha: str
    run_id: str = ""
    who: str = field(default_factory=who)
    started: str = field(default_factory=now_iso)
    ended: Optional[str] = None
    result: str = Result.RUNNING
    exit_code: Optional[int] = None
    error: str = ""
    batches: int = 0
    hosts: list[HostRecord] = field(default_factory=list)
    suspended_processes: list[str] = field(default_factory=list)
    alarms_disabled: list[str] = field(default_factory=list)
    aws_calls: int = 0
    bastion_connections: int = 0
    duration_seconds: Optional[float] = None
    drill: Optional[dict] = None  # `fab drill`'s findings (rollout.orchestration.drill)

    def host(self, instance_id: str) -> HostRecord:
        return next(h for h in self.hosts if h.instance_id == instance_id)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    def write(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(path)

    def summary_rows(self) -> list[tuple[str, str, str, str, str]]:
        """(host, old version, new version, time out of service, result) per host."""
        rows = []
        for h in self.hosts:
            oos = f"{h.out_of_service_seconds:.2f}s" if h.out_of_service_seconds is not None else "-"
            result = h.result + (f": {h.error}" if h.error else "")
            rows.append((h.name or h.instance_id, short(h.old_version), short(h.new_version), oos, result))
        return rows

    def headline(self) -> str:
        done = sum(1 for h in self.hosts if h.result == HostResult.UPDATED)
        return f"{self.env}: {self.result} — {short(self.sha)} ({self.ref}) on {done}/{len(self.hosts)} hosts by {self.who}"


def short(version: Optional[str], missing: str = "-") -> str:
    """A version for people: 12 hex digits of a commit SHA or of an image digest; `missing` when there is none."""
    return version.removeprefix("sha256:")[:12] if version else missing


def tail(text: str, lines: int = 3) -> str:
    """The last lines of a command's output, on one line."""
    return " | ".join((text or "").strip().splitlines()[-lines:]) or "no output"
