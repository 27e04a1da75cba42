"""The gates between batches, watched for the runner: rollback alarms, bakes, and the new version seen through the front end.

The decisions are rollout.core.gates'; this module only asks the adapters and waits.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from rollout.adapters.alarmstates import RollbackAlarms
from rollout.adapters.frontend import FrontEnd
from rollout.core import gates
from rollout.core.gates import PASS, Answer, Verdict
from rollout.core.errors import PreflightError
from rollout.adapters.waiting import Cancelled, WaitTimeout, poll

#: Seconds between reads of the alarms during a bake: the first after 1 s, then every 2 s at most.
ALARM_POLL = (1.0, 2.0)


class Gates:
    """The gates of one rollout. `alarms` and `front` are None when the inventory sets no rollback alarms or no `verify`."""

    def __init__(self, inv, alarms: Optional[RollbackAlarms], front: Optional[FrontEnd], sleep: Callable[[float], None] = time.sleep):
        self.inv = inv
        self.alarms = alarms
        self.front = front
        self.sleep = sleep

    @classmethod
    def of(cls, env) -> "Gates":
        """The gates an environment's inventory sets, on its AWS session and bastion."""
        inv = env.inventory
        alarms = RollbackAlarms(env.aws, inv.rollback_alarms) if inv.rollback_alarms else None
        front = None
        if inv.verify is not None:
            via = (lambda host, port: env.fleet.bastion_channel(host, port)) if inv.verify.via == "bastion" else None
            front = FrontEnd(inv.verify.url, timeout=min(5.0, inv.verify.timeout), bastion_channel=via)
        return cls(inv, alarms, front)

    @property
    def watched(self) -> bool:
        return self.alarms is not None

    def check_configured(self) -> None:
        """Preflight: every rollback alarm exists and none is in ALARM yet (PreflightError saying which); changes nothing."""
        if self.alarms is None:
            return
        states = self.alarms.states()
        missing = gates.missing_alarms(self.alarms.names, states)
        if missing:
            raise PreflightError(f"rollback_alarms: CloudWatch has no alarm {', '.join(missing)} in {self.inv.aws.region};"
                                 f" create it or remove it from inventories/{self.inv.name}.yml")
        verdict = gates.alarms_verdict(self.alarms.names, states)
        if verdict.tripped:
            raise PreflightError(f"{verdict.reason} before the rollout started; nothing was changed: deploy once it is OK")

    def check(self) -> Verdict:
        """The rollback alarms now: tripped if one is in ALARM (or was deleted)."""
        if self.alarms is None:
            return PASS
        return gates.alarms_verdict(self.alarms.names, self.alarms.states())

    def bake(self, seconds: float, cancelled: Callable[[], bool] = lambda: False) -> Verdict:
        """Wait `seconds` while reading the alarms; tripped as soon as one fires. A cancelled bake ends early, untripped."""
        if seconds <= 0:
            return self.check()
        try:
            return poll(self.check, lambda v: v.tripped, timeout=seconds, what="bake", interval=ALARM_POLL[0],
                        max_interval=ALARM_POLL[1], sleep=self.sleep, cancelled=cancelled, within=True)
        except Cancelled:
            return PASS
        except WaitTimeout as exc:
            return exc.last if isinstance(exc.last, Verdict) else PASS

    def verify(self, version: str, cancelled: Callable[[], bool] = lambda: False) -> Verdict:
        """Ask the front end until it answers `version` once, for up to verify.timeout; tripped with why if it never does."""
        if self.front is None:
            return PASS
        answers: list[Answer] = []

        def ask() -> Verdict:
            answers.append(self.front.get())
            return gates.front_end_verdict(answers[-50:], version, self.inv.verify.status)

        try:
            return poll(ask, lambda v: not v.tripped, timeout=self.inv.verify.timeout, what="front end", interval=0.05,
                        max_interval=1.0, sleep=self.sleep, cancelled=cancelled)
        except WaitTimeout as exc:
            why = exc.last.reason if isinstance(exc.last, Verdict) else "no answer"
            return Verdict(True, f"the front end {self.front.url} did not serve {version[:12]} within"
                                 f" {self.inv.verify.timeout:g}s: {why}")
