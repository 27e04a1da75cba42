"""Output: a live per-host view on a terminal, plain timestamped lines otherwise (CI)."""

from __future__ import annotations

import sys
import threading
from datetime import datetime, timezone

from rich.console import Console
from rich.live import Live
from rich.table import Table


class Output:
    """Where rollout tells the operator what it is doing."""

    def __init__(self, console: Console | None = None, live: bool | None = None):
        self.console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 200)
        self.live_enabled = self.console.is_terminal if live is None else live
        self._lock = threading.Lock()
        self._hosts: dict[str, tuple[str, str]] = {}
        self._live: Live | None = None

    # -- lines ---------------------------------------------------------------
    def line(self, message: str) -> None:
        """One event; timestamped when not on a terminal."""
        with self._lock:
            if self.live_enabled:
                self.console.print(message)
            else:
                stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
                print(f"{stamp} {message}", file=self.console.file, flush=True)

    def warn(self, message: str) -> None:
        self.line(f"WARNING {message}" if not self.live_enabled else f"[yellow]warning[/] {message}")

    # -- per-host live table ------------------------------------------------
    def batch_started(self, index: int, phase: str, hosts) -> None:
        self.line(f"batch {index} ({phase}): {', '.join(h.label for h in hosts)}")
        if self.live_enabled:
            with self._lock:
                self._hosts = {h.label: ("waiting", "") for h in hosts}
                self._live = Live(self._table(), console=self.console, refresh_per_second=8, transient=True)
                self._live.start()

    def host_step(self, host, step: str, state: str, seconds: float | None = None, detail: str = "") -> None:
        took = f" {seconds:.2f}s" if seconds is not None else ""
        extra = f" ({detail})" if detail else ""
        if self.live_enabled and self._live is not None:
            with self._lock:
                self._hosts[host.label] = (step, state + took + extra)
                self._live.update(self._table())
            if state in ("failed",):
                self.console.print(f"[red]{host.label}: {step} failed{extra}[/]")
        elif state != "started":
            self.line(f"{host.label} {step} {state}{took}{extra}")

    def batch_finished(self) -> None:
        if self._live is not None:
            with self._lock:
                self._live.stop()
                self._live = None

    def _table(self) -> Table:
        t = Table(box=None, show_header=True, header_style="bold")
        t.add_column("host")
        t.add_column("step")
        t.add_column("state")
        for label, (step, state) in self._hosts.items():
            t.add_row(label, step, state)
        return t

    # -- summary -------------------------------------------------------------
    def summary(self, report) -> None:
        rows = report.summary_rows()
        if self.live_enabled:
            t = Table(title=report.headline())
            for col in ("host", "old", "new", "out of service", "result"):
                t.add_column(col)
            for r in rows:
                t.add_row(*r)
            self.console.print(t)
        else:
            self.line(report.headline())
            for r in rows:
                self.line("  " + "  ".join(r))
