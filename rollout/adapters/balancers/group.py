"""Every load balancer of an environment as one group: each call goes to all of them side by side,
one call per balancer for the whole batch, and returns one result per balancer (Fabric's GroupResult)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional, Sequence


@dataclass(frozen=True)
class BalancerResult:
    """What one balancer did with one call: `error` is None when it worked."""

    balancer: object
    error: Optional[BaseException] = None


class BalancerGroup:
    """The balancers of one run. Members are read once per balancer, at its first deregistration, and
    kept up to date from then on, so a host already out of a balancer is not deregistered again."""

    def __init__(self, balancers: Sequence):
        self.balancers = list(balancers)
        self._members: dict[int, set[str]] = {}

    def deregister(self, hosts) -> list[BalancerResult]:
        """Stop sending new traffic to `hosts` (those a balancer has; a host already out is skipped)."""
        ids = {h.instance_id for h in hosts}

        def one(i: int, lb) -> None:
            if i not in self._members:
                self._members[i] = lb.registered()
            present = [h for h in hosts if h.instance_id in self._members[i]]
            if present:
                lb.deregister(present)
            self._members[i] -= ids

        return self._each(one)

    def drain(self, hosts, cancelled: Callable[[], bool], before_change: Callable[[], None]) -> list[BalancerResult]:
        """Wait until `hosts` have no traffic left in every balancer (each ends early with Cancelled once `cancelled()`)."""
        return self._each(lambda i, lb: lb.wait_drained(hosts, cancelled=cancelled, before_change=before_change))

    def register(self, hosts) -> list[BalancerResult]:
        """Send traffic to `hosts` again in every balancer."""
        ids = {h.instance_id for h in hosts}

        def one(i: int, lb) -> None:
            lb.register(hosts)
            self._members.setdefault(i, set()).update(ids)

        return self._each(one)

    def wait_healthy(self, hosts, timeout: float) -> list[BalancerResult]:
        """Wait until every balancer reports `hosts` healthy, up to `timeout` (each balancer's own bound applies)."""
        return self._each(lambda i, lb: lb.wait_healthy(hosts, timeout))

    def _each(self, one: Callable[[int, object], None]) -> list[BalancerResult]:
        """`one` on every balancer; every balancer's result, in the group's order, whatever the others did."""
        def call(i: int, lb) -> BalancerResult:
            try:
                one(i, lb)
            except Exception as exc:  # noqa: BLE001 - returned as that balancer's result, for the caller to judge
                return BalancerResult(lb, exc)
            return BalancerResult(lb)

        if len(self.balancers) <= 1:
            # No thread for a single balancer: a thread hand-off costs milliseconds per step.
            return [call(i, lb) for i, lb in enumerate(self.balancers)]
        with ThreadPoolExecutor(max_workers=len(self.balancers)) as pool:
            return list(pool.map(call, range(len(self.balancers)), self.balancers))
