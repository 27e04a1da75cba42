"""Smoke checks: the inventory's `smoke` URLs fetched over HTTP from the controller after the last batch."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Callable, Sequence

from rollout.core.errors import DeployFailed


def check(checks: Sequence, say: Callable[[str], None]) -> None:
    """Fetch each check's `url`; DeployFailed at the first whose status (and `body`, if given) is not as expected."""
    for c in checks:
        try:
            with urllib.request.urlopen(c.url, timeout=c.timeout) as resp:
                status, body = resp.status, resp.read(65536).decode(errors="replace")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, ""
        except OSError as exc:
            raise DeployFailed(f"smoke check {c.url}: no answer ({exc}); every host was updated") from None
        if status != c.status or (c.body and c.body not in body):
            raise DeployFailed(f"smoke check {c.url}: got {status}, expected {c.status}"
                               + (f" with body containing {c.body!r}" if c.body else ""))
        say(f"smoke {c.url} ok ({status})")
