"""The Auto Scaling group: read which processes are suspended, suspend ours, resume exactly ours."""

from __future__ import annotations

from typing import Optional

from rollout.adapters.aws import Aws, translate
from rollout.core.errors import PreflightError


class Group:
    def __init__(self, aws: Aws, name: str):
        self.name = name
        self.client = aws.client("autoscaling")

    def suspended(self) -> frozenset[str]:
        """Names of the processes currently suspended."""
        with translate(f"describing Auto Scaling group {self.name}"):
            groups = self.client.describe_auto_scaling_groups(AutoScalingGroupNames=[self.name])["AutoScalingGroups"]
        if not groups:
            raise PreflightError(f"Auto Scaling group {self.name!r} not found; fix autoscaling_group in the inventory")
        return frozenset(p["ProcessName"] for p in groups[0].get("SuspendedProcesses", []))

    def suspend(self, processes: tuple[str, ...]) -> None:
        # An empty list would mean "all processes" to the API: never send one.
        if processes:
            with translate(f"suspending processes of {self.name}"):
                self.client.suspend_processes(AutoScalingGroupName=self.name, ScalingProcesses=list(processes))

    def resume(self, processes: tuple[str, ...]) -> None:
        # An empty list would resume every process, including other people's suspensions.
        if processes:
            with translate(f"resuming processes of {self.name}"):
                self.client.resume_processes(AutoScalingGroupName=self.name, ScalingProcesses=list(processes))


def group_name(configured: Optional[str], instance_groups: list[Optional[str]]) -> Optional[str]:
    """The configured group, else the one named by every instance's aws:autoscaling:groupName tag."""
    if configured:
        return configured
    names = {g for g in instance_groups if g}
    if len(names) > 1:
        raise PreflightError(f"instances belong to several Auto Scaling groups ({', '.join(sorted(names))}); set autoscaling_group in the inventory")
    return names.pop() if names else None

