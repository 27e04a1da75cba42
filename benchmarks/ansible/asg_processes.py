"""Suspend or resume Auto Scaling processes, the way rollout does (run by the playbook on the controller).

amazon.aws.autoscaling_group can set `suspend_processes`, but it is a desired-state module
for the whole group: every run also calls UpdateAutoScalingGroup with its own defaults
(health check grace period, cooldown, termination policies), disables metrics collection
and resumes any process not in its list. rollout suspends only the listed processes that
are not already suspended and later resumes exactly those, so this does the same with boto3.

    python asg_processes.py suspend GROUP PROCESS...   # prints the JSON list it suspended
    python asg_processes.py resume GROUP PROCESS...
"""

import json
import sys

import boto3


def main() -> None:
    action, group, processes = sys.argv[1], sys.argv[2], sys.argv[3:]
    asg = boto3.client("autoscaling")  # region, endpoint and credentials from the environment
    if action == "suspend":
        found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
        if not found:
            sys.exit(f"Auto Scaling group {group} not found")
        already = {p["ProcessName"] for p in found[0]["SuspendedProcesses"]}
        processes = [p for p in processes if p not in already]
        if processes:
            asg.suspend_processes(AutoScalingGroupName=group, ScalingProcesses=processes)
    elif action == "resume":
        if processes:
            asg.resume_processes(AutoScalingGroupName=group, ScalingProcesses=processes)
    else:
        sys.exit(f"unknown action {action!r}")
    print(json.dumps(processes))


if __name__ == "__main__":
    main()
