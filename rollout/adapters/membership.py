"""Load balancers found from membership: the classic ELBs and target groups the instances are registered in.

Reads are per balancer, never per host: describe_load_balancers (it lists each ELB's
instances) and describe_target_groups, then describe_target_health once per target group.
"""

from __future__ import annotations

from rollout.adapters.aws import Aws, translate


def choose(instance_ids: set[str], elbs: dict[str, set[str]], target_groups: dict[str, set[str]],
           always: frozenset[tuple[str, str]] = frozenset()) -> list[tuple[str, str]]:
    """(kind, name) of every balancer holding one of the instances, plus those in `always`; ELBs first, by name."""
    found = {("elb", n) for n, members in elbs.items() if members & instance_ids}
    found |= {("alb", n) for n, members in target_groups.items() if members & instance_ids}
    return sorted(found | set(always), key=lambda kn: (kn[0] != "elb", kn[1]))


def read(aws: Aws) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, str]]:
    """(ELB name -> instance ids, target group name -> instance ids, target group ARN -> name), for the region."""
    with translate("finding the load balancers the instances are registered in"):
        elbs = {d["LoadBalancerName"]: {i["InstanceId"] for i in d.get("Instances", [])}
                for page in aws.client("elb").get_paginator("describe_load_balancers").paginate()
                for d in page["LoadBalancerDescriptions"]}
        elbv2 = aws.client("elbv2")
        groups = [g for page in elbv2.get_paginator("describe_target_groups").paginate() for g in page["TargetGroups"]]
        tgs = {g["TargetGroupName"]: {d["Target"]["Id"] for d in
                                      elbv2.describe_target_health(TargetGroupArn=g["TargetGroupArn"])["TargetHealthDescriptions"]}
               for g in groups if g.get("TargetType", "instance") == "instance"}
    return elbs, tgs, {g["TargetGroupArn"]: g["TargetGroupName"] for g in groups}
