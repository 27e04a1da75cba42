"""A drill's decisions as data: which version it redeploys, which host fails, whether the safety net held."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Mapping, Optional, Sequence


class FaultStep(StrEnum):
    """Where a drill makes its host fail: the update itself (nothing runs), or the health check after it."""

    UPDATE = "update"
    HEALTH = "health"


def one_version(versions: Mapping[str, Optional[str]]) -> tuple[Optional[str], str]:
    """(the version every host runs, "") or (None, why not): a drill redeploys the one version the fleet runs."""
    seen = {v for v in versions.values()}
    if None in seen:
        unknown = sorted(h for h, v in versions.items() if v is None)
        return None, f"the version of {', '.join(unknown)} cannot be read"
    if len(seen) != 1:
        by = {}
        for h, v in sorted(versions.items()):
            by.setdefault(v, []).append(h)
        return None, "hosts run different versions: " + "; ".join(f"{(v or '')[:12]} on {', '.join(hs)}" for v, hs in by.items())
    return next(iter(seen)), ""


def failing_host(batches: Sequence[Sequence[str]], wanted: Optional[str] = None) -> Optional[str]:
    """The host a drill fails: `wanted` if it is planned (None if not), else the first of the second batch, so the
    rollback of a whole batch is rehearsed too; the first host when there is one batch."""
    hosts = [h for b in batches for h in b]
    if wanted is not None:
        return wanted if wanted in hosts else None
    if len(batches) > 1:
        return batches[1][0]
    return hosts[0] if hosts else None


@dataclass(frozen=True)
class Observed:
    """What a drill saw once its run ended."""

    expected: Mapping[str, str]          # host -> the version it ran before the drill
    seen: Mapping[str, Optional[str]]    # host -> the version it runs now
    out_of_service: Sequence[str]        # hosts some balancer does not send traffic to now
    exit_code: int                       # the drill run's own
    serving_before: int                  # hosts in service when the drill started
    most_out: int                        # most hosts the run had out of the balancers at once
    floor: int                           # the capacity the rollout promises to keep


def problems(o: Observed) -> list[str]:
    """Why the safety net did not hold, one line each; empty when the drill passed."""
    out = []
    if o.exit_code != 9:
        out.append(f"the run ended with exit {o.exit_code}, not 9 (rolled back)")
    wrong = sorted(h for h, v in o.expected.items() if o.seen.get(h) != v)
    if wrong:
        out.append(f"not back on their version: {', '.join(wrong)}")
    if o.out_of_service:
        out.append(f"out of service after the drill: {', '.join(sorted(o.out_of_service))}")
    lowest = o.serving_before - o.most_out
    if lowest < o.floor:
        out.append(f"capacity fell to {lowest} hosts in service, below the floor of {o.floor}")
    return out
