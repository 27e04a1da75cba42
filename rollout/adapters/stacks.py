"""CloudFormation: an environment's stack, its state, outputs and resources (read only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from botocore.exceptions import ClientError

from rollout.adapters.aws import Aws, translate
from rollout.core.errors import PreflightError, StackNotReady

AUTOSCALING_GROUP = "AWS::AutoScaling::AutoScalingGroup"
INSTANCE = "AWS::EC2::Instance"
CLASSIC_ELB = "AWS::ElasticLoadBalancing::LoadBalancer"
TARGET_GROUP = "AWS::ElasticLoadBalancingV2::TargetGroup"


@dataclass(frozen=True)
class Stack:
    name: str
    status: str
    outputs: dict[str, str]
    resources: tuple[tuple[str, str, str], ...]  # (logical id, physical id, type)

    def physical_ids(self, resource_type: str) -> list[str]:
        """Physical ids of the stack's resources of one type, in logical-id order."""
        return [p for _, p, t in sorted(self.resources) if t == resource_type and p]

    def physical_id(self, logical_id: str) -> Optional[str]:
        return next((p for lid, p, _ in self.resources if lid == logical_id), None)


def refusal(name: str, status: str) -> Optional[str]:
    """Why a stack in `status` must not be deployed to, with what to do; None if it is stable."""
    if status.endswith("_IN_PROGRESS"):
        return (f"stack {name} is {status}: it is changing; wait until CloudFormation finishes"
                f" (aws cloudformation describe-stacks --stack-name {name}), then deploy again")
    if status.endswith("_FAILED"):
        return (f"stack {name} is {status}: it is broken; repair it in CloudFormation"
                " (e.g. continue-update-rollback, or fix and update the stack), then deploy again")
    if status.startswith("ROLLBACK_"):
        return (f"stack {name} is {status}: its creation failed and was rolled back; delete and create it again,"
                " then deploy")
    if not status.endswith("_COMPLETE") or status == "DELETE_COMPLETE":
        return f"stack {name} is {status}, not a state rollout deploys to; bring it to *_COMPLETE, then deploy again"
    return None


def read(aws: Aws, name: str, changing_ok: bool = False) -> Stack:
    """The stack's state, outputs and resources: describe_stacks, then list_stack_resources (paginated).

    Raises PreflightError if it does not exist, StackNotReady if it is changing or broken
    (unless `changing_ok`: a recovery must put the fleet back whatever the stack is doing).
    """
    cfn = aws.client("cloudformation")
    with translate(f"reading stack {name}"):
        try:
            found = cfn.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ValidationError" and "does not exist" in str(exc):
                found = []
            else:
                raise
        if not found:
            raise PreflightError(f"stack {name} does not exist in {aws.region}; fix 'stack' in the inventory,"
                                 " or create the stack (and check the environment's account: aws.profile, aws.role)")
        stack = found[0]
        why = refusal(name, stack["StackStatus"])
        if why and not changing_ok:
            raise StackNotReady(why)
        resources = tuple(
            (r["LogicalResourceId"], r.get("PhysicalResourceId", ""), r["ResourceType"])
            for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name)
            for r in page["StackResourceSummaries"]
        )
    outputs = {o["OutputKey"]: str(o.get("OutputValue", "")) for o in stack.get("Outputs", [])}
    return Stack(name=name, status=stack["StackStatus"], outputs=outputs, resources=resources)
