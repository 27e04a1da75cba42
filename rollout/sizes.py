"""Sizes: a number of hosts given as a count (2) or a percentage of the hosts selected (25%).

`batch` and `max_failures` are sizes, typed once where they are read (the inventory, the
`--batch` flag) and turned into a host count only when the number of hosts is known.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Union

from rollout.errors import UsageError

_SIZE = re.compile(r"(\d{1,9})(%?)")


@dataclass(frozen=True)
class Size:
    """A count of hosts, or (percent=True) a percentage of them."""

    value: int
    percent: bool = False

    def of(self, total: int) -> int:
        """Hosts this size stands for among `total`: the count, or the percentage rounded down."""
        return math.floor(total * self.value / 100) if self.percent else self.value

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


BATCH_HINT = "give a positive count like 2 or a percentage like 25%"
FAILURES_HINT = "give a count like 0 or 2, or a percentage like 10%"


def parse(value: Union[str, int, Size], *, positive: bool, hint: str) -> Size:
    """A Size from 3, '3' or '25%'; ValueError(hint) for anything else (booleans, floats, 0 when `positive`, over 100%)."""
    if isinstance(value, Size):
        text = str(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(hint)
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(hint)
    size = Size(int(m.group(1)), bool(m.group(2)))
    if (positive and size.value == 0) or (size.percent and size.value > 100):
        raise ValueError(hint)
    return size


def batch(value: Union[str, int, Size]) -> Size:
    """A batch size: a positive count, or a percentage from 1% to 100%."""
    return parse(value, positive=True, hint=BATCH_HINT)


def failures(value: Union[str, int, Size]) -> Size:
    """A failure budget: a count from 0, or a percentage from 0% to 100%."""
    return parse(value, positive=False, hint=FAILURES_HINT)


def batch_hosts(size: Size, total: int) -> int:
    """Hosts per batch among `total`: the size, at least 1 and at most `total`."""
    return max(1, min(size.of(total), max(total, 1)))


def batch_flag(text: Optional[str]) -> Optional[Size]:
    """The `--batch` flag as a Size (None when not given); UsageError naming the flag otherwise."""
    if text is None:
        return None
    try:
        return batch(text)
    except ValueError as exc:
        raise UsageError(f"--batch={str(text).strip()!r} is not valid: {exc}") from None
