"""Sizes: a number of hosts given as a count (2) or a percentage of the hosts selected (25%).

`batch` and `max_failures` are sizes, typed once where they are read (the inventory, the
`--batch` flag) and turned into a host count only when the number of hosts is known. `batch`
may also be a ramp, a list of sizes taken in order with the last one repeating.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Union

from rollout.core.errors import UsageError

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


FLOOR_HINT = "give a count of healthy hosts like 3, or a percentage of the environment's hosts like 75%"


def floor(value: Union[str, int, Size]) -> Size:
    """A capacity floor (`min_healthy`): a count from 0, or a percentage from 0% to 100%."""
    return parse(value, positive=False, hint=FLOOR_HINT)


def batch_hosts(size: Size, total: int) -> int:
    """Hosts per batch among `total`: the size, at least 1 and at most `total`."""
    return max(1, min(size.of(total), max(total, 1)))


RAMP_HINT = f"{BATCH_HINT}, or a ramp of them in order like [1, 10%, 50%]"
MAX_RAMP = 100

#: Batch sizes in order, the last repeating (Ansible's `serial` list); one size is a ramp of one.
Ramp = tuple[Size, ...]


def ramp(value: Union[str, int, Size, list, tuple]) -> Ramp:
    """A ramp from one batch size (3, '25%') or a list of them ([1, '10%', '50%']); ValueError(RAMP_HINT) otherwise."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or len(items) > MAX_RAMP:
        raise ValueError(RAMP_HINT if items else f"{RAMP_HINT}; the list is empty")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(batch(item))
        except ValueError:
            where = f" (entry {i + 1}: {item!r})" if len(items) > 1 or isinstance(value, (list, tuple)) else ""
            raise ValueError(RAMP_HINT + where) from None
    return tuple(out)


def ramp_text(sizes: Ramp) -> str:
    """A ramp as the flag takes it: '2', or '1,10%,50%'."""
    return ",".join(str(s) for s in sizes)


def ramp_flag(text: Optional[str]) -> Optional[Ramp]:
    """The `--batch` flag (`2`, `25%` or `1,10%,50%`) as a Ramp (None when not given); UsageError naming the flag otherwise."""
    if text is None:
        return None
    try:
        return ramp([part for part in str(text).split(",")] if "," in str(text) else str(text))
    except ValueError as exc:
        raise UsageError(f"--batch={str(text).strip()!r} is not valid: {exc}") from None


def batch_flag(text: Optional[str]) -> Optional[Size]:
    """The `--batch` flag as a Size (None when not given); UsageError naming the flag otherwise."""
    if text is None:
        return None
    try:
        return batch(text)
    except ValueError as exc:
        raise UsageError(f"--batch={str(text).strip()!r} is not valid: {exc}") from None
