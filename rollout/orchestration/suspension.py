"""Auto Scaling processes and alarm actions around a run: suspended once, each change journaled before it
is made, and afterwards exactly what this run (and, for a recovery, the runs it recovers) held is restored."""

from __future__ import annotations

import logging
from typing import Callable, Optional

from rollout.adapters import autoscaling
from rollout.adapters import failpoints
from rollout.core.errors import LockLost, LockUnproven, RolloutError
from rollout.core.vocabulary import Kind

log = logging.getLogger("rollout.runner")


def resume_processes(env, name: str, processes) -> None:
    """Resume `processes` in the Auto Scaling group `name` (the one a journal names, not necessarily the inventory's)."""
    group = env.group if env.group is not None and env.group.name == name else autoscaling.Group(env.aws, name)
    group.resume(tuple(processes))


class Suspension:
    """What one run holds suspended or disabled; `journal(kind, data)` records and `fence()` proves the lock first.

    A recovery (`recovering`, an Assessment) also restores what the runs it recovers left held.
    """

    def __init__(self, env, plan, report, output, journal: Callable[[Kind, dict], None], fence: Callable[[], None],
                 recovering=None):
        self.env, self.plan, self.report, self.out, self.journal, self.fence = env, plan, report, output, journal, fence
        # Group name -> processes to resume, in the group the journal names.
        self.processes: dict[str, tuple[str, ...]] = (
            {recovering.group: recovering.resume} if recovering and recovering.group and recovering.resume else {})
        self.alarms: list[str] = list(recovering.alarms) if recovering else []

    def suspend(self) -> None:
        """Suspend the plan's processes in the group and disable the enabled alarm actions, each journaled first."""
        group, plan = self.env.group, self.plan
        if group is not None:
            # Journaled before the call: if it half-succeeds we still resume what we asked for.
            self.processes[group.name] = tuple(dict.fromkeys(self.processes.get(group.name, ()) + plan.to_suspend))
            self.report.suspended_processes = list(plan.to_suspend)
            self.journal(Kind.SUSPENDED, {"group": group.name, "processes": list(plan.to_suspend)})
            self.fence()
            group.suspend(plan.to_suspend)
            failpoints.reached("after-suspend")
            self.out.line(f"suspended {', '.join(plan.to_suspend) or 'nothing'} on {group.name}"
                          + (f" (already suspended by someone else: {', '.join(sorted(plan.suspended_before))})" if plan.suspended_before else ""))
        if self.env.alarms is not None:
            ours = self.env.alarms.enabled()
            self.alarms = list(dict.fromkeys(self.alarms + ours))
            self.report.alarms_disabled = list(ours)
            self.journal(Kind.ALARMS_DISABLED, {"names": ours})
            self.fence()
            self.env.alarms.disable(ours)
            if self.alarms:
                self.out.line(f"disabled actions of {len(self.alarms)} alarms")

    def restore(self) -> Optional[RolloutError]:
        """Re-enable our alarms and resume our processes; each attempted even if the other fails. The error, if any."""
        failure = None
        env = self.env.inventory.name
        if self.alarms and self.env.alarms is not None:
            try:
                self.fence()
                self.env.alarms.enable(self.alarms)
                self.journal(Kind.ALARMS_ENABLED, {"names": self.alarms})
                self.out.line(f"re-enabled actions of {len(self.alarms)} alarms")
            except (LockLost, LockUnproven):
                raise
            except Exception as exc:  # noqa: BLE001 - reported, and the resume below must still run
                log.error("re-enabling alarms %s failed: %s", self.alarms, exc)
                failure = RolloutError(f"could not re-enable alarm actions ({exc}); run: fab recover --env={env}")
        for name, processes in self.processes.items():
            if not processes:
                continue
            try:
                self.fence()
                resume_processes(self.env, name, processes)
                self.journal(Kind.RESUMED, {"group": name, "processes": list(processes)})
                self.out.line(f"resumed {', '.join(processes)} on {name}")
            except (LockLost, LockUnproven):
                raise
            except Exception as exc:  # noqa: BLE001
                log.error("resuming %s on %s failed: %s", processes, name, exc)
                failure = RolloutError(f"could not resume processes on {name} ({exc}); run: fab recover --env={env}")
        return failure

    def held(self) -> list[str]:
        """What stays suspended or disabled, in words, for a run that stops without restoring."""
        held = [f"{', '.join(p)} suspended on {g}" for g, p in self.processes.items() if p]
        if self.alarms:
            held.append(f"actions of {len(self.alarms)} alarms disabled")
        return held
