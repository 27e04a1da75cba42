"""EC2 discovery: the environment's instances and its bastion, found by tag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rollout.adapters.aws import Aws, translate
from rollout.core.errors import PreflightError
from rollout.core.plan import Host


@dataclass(frozen=True)
class Instance:
    instance_id: str
    address: str
    name: str
    group: str | None
    tags: dict
    zone: str = ""


def tag_filters(tags: dict[str, str]) -> list[dict]:
    """EC2 filters selecting running instances carrying every tag."""
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]
    return filters + [{"Name": "instance-state-name", "Values": ["running"]}]


def parse_instances(reservations: list[dict], address_attribute: str) -> list[Instance]:
    """Instances from describe_instances reservations; those without the address are skipped."""
    found = []
    for res in reservations:
        for inst in res.get("Instances", []):
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            address = inst.get(address_attribute)
            if not address:
                continue
            found.append(
                Instance(
                    instance_id=inst["InstanceId"],
                    address=address,
                    name=tags.get("Name", ""),
                    group=tags.get("aws:autoscaling:groupName"),
                    tags=tags,
                    zone=inst.get("Placement", {}).get("AvailabilityZone", ""),
                )
            )
    return sorted(found, key=lambda i: (i.name, i.instance_id))


def find_instances(aws: Aws, tags: dict[str, str], address_attribute: str, ids: Optional[list[str]] = None) -> list[Instance]:
    """Running instances carrying every tag, with their SSH address; with `ids`, only those among them."""
    paginator = aws.client("ec2").get_paginator("describe_instances")
    # A filter takes at most 200 values: the ids go 200 at a time.
    filters = [tag_filters(tags)] if ids is None else [
        [{"Name": "instance-id", "Values": ids[start:start + 200]}] + tag_filters(tags) for start in range(0, len(ids), 200)]
    with translate("discovering instances" if ids is None else "discovering the stack's instances"):
        reservations = [r for flt in filters for page in paginator.paginate(Filters=flt) for r in page["Reservations"]]
    return parse_instances(reservations, address_attribute)


def find_bastion(aws: Aws, tags: dict[str, str], address_attribute: str) -> Instance:
    """The single bastion instance; error if none or several match."""
    found = find_instances(aws, tags, address_attribute)
    if len(found) != 1:
        what = "no running instance" if not found else f"{len(found)} instances ({', '.join(i.instance_id for i in found)})"
        raise PreflightError(f"bastion: {what} with tags {tags} and an {address_attribute}; fix bastion.tags in the inventory")
    return found[0]


def as_hosts(instances: list[Instance]) -> list[Host]:
    """Planner hosts from discovered instances."""
    return [Host(instance_id=i.instance_id, address=i.address, name=i.name, zone=i.zone) for i in instances]


def group_members(aws: Aws, groups: list[str]) -> dict[str, str]:
    """Instance id -> Auto Scaling group name, for the instances of `groups` (one paginated read)."""
    out: dict[str, str] = {}
    paginator = aws.client("autoscaling").get_paginator("describe_auto_scaling_groups")
    with translate("reading the stack's Auto Scaling groups"):
        for start in range(0, len(groups), 50):  # AutoScalingGroupNames takes at most 50 names
            for page in paginator.paginate(AutoScalingGroupNames=groups[start:start + 50]):
                for g in page["AutoScalingGroups"]:
                    out.update({i["InstanceId"]: g["AutoScalingGroupName"] for i in g.get("Instances", [])})
    return out


def instance_address(aws: Aws, instance_id: str, address_attribute: str, what: str) -> Instance:
    """One running instance with its address (the stack's bastion resource); PreflightError if it has none."""
    found = find_instances(aws, {}, address_attribute, ids=[instance_id])
    if not found:
        raise PreflightError(f"{what}: instance {instance_id} is not running or has no {address_attribute}")
    return found[0]
