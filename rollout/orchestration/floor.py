"""The live capacity floor, carried out: before a batch, read what every balancer reports healthy
now, and wait while taking the batch out would leave one below `min_healthy`."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from rollout.adapters.balancers import healthy
from rollout.core import capacity
from rollout.adapters.waiting import Cancelled, WaitTimeout, poll


def hold(balancers: Sequence, batch: Sequence, floor: capacity.Floor, *, say: Callable[[str], None],
         cancelled: Callable[[], bool] = lambda: False, sleep=None) -> Optional[str]:
    """None as soon as taking `batch` out keeps every balancer at `floor.hosts` healthy hosts or more;
    otherwise why not, once `floor.wait` seconds of reading again have not changed that.

    Each reading is one read per balancer (never per host). Raises waiting.Cancelled if
    `cancelled()` turns true while waiting.
    """
    ids = [h.instance_id for h in batch]

    def reading() -> Optional[str]:
        return capacity.refusal(ids, {f"{lb.kind} {lb.name}": healthy(lb) for lb in balancers}, floor.hosts)

    why = reading()
    if why is None:
        return None
    say(f"waiting up to {floor.wait:g}s for capacity before taking out {', '.join(h.name or h.instance_id for h in batch)}: {why}")
    try:
        poll(reading, lambda r: r is None, timeout=floor.wait, interval=0.5, max_interval=5.0, cancelled=cancelled,
             within=True, what="capacity floor", **({"sleep": sleep} if sleep else {}))
    except Cancelled:
        raise
    except WaitTimeout as exc:
        return exc.last or why
    return None
