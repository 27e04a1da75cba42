"""The files a rollout's report is written to: JSON (--report) and JUnit XML (--junit), checked before anything runs."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rollout.core import junit
from rollout.core.errors import UsageError
from rollout.core.report import Report


def unwritable(path: Path) -> Optional[str]:
    """Why `path` cannot be written as a file (None if it can): its directory is made if missing and probed."""
    path = Path(path)
    if path.is_dir():
        return "it is a directory"
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
        if path.exists() and not os.access(path, os.W_OK):
            return "the file is not writable"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@dataclass(frozen=True)
class ReportFiles:
    """Where to write a rollout's report: JSON (--report) and JUnit XML (--junit)."""

    json: Optional[Path] = None
    junit: Optional[Path] = None

    def paths(self) -> list[tuple[str, Path]]:
        return [(flag, p) for flag, p in (("--report", self.json), ("--junit", self.junit)) if p]

    def check(self) -> None:
        """UsageError unless every path can be written now (checked by creating and removing a file beside it)."""
        for flag, path in self.paths():
            why = unwritable(path)
            if why:
                raise UsageError(f"{flag}={path} cannot be written: {why}; give a file path in a writable directory")

    def write(self, report: Report, warn) -> None:
        """Write each file; a file that cannot be written is one `warn` line, and the others are still written."""
        for flag, path in self.paths():
            try:
                report.write(path) if flag == "--report" else junit.write(report, path)
            except OSError as exc:
                warn(f"could not write {flag}={path}: {exc.strerror or exc}; the rollout's result stands (exit {report.exit_code})")

    @classmethod
    def of(cls, json_path: Optional[str], junit_path: Optional[str]) -> "ReportFiles":
        return cls(Path(json_path) if json_path else None, Path(junit_path) if junit_path else None)
