"""The sandbox fleet's AWS resources in moto (topology.MOTO_ENDPOINT): network, bastion, hosts, balancers, group, table, queues.

Address allocation: moto hands out addresses for instances launched without an
explicit one (an Auto Scaling scale-out does that: moto does not enforce
suspended processes) sequentially from the bottom of the subnet, skipping
addresses of explicit subnet CIDR reservations. The hosts subnet 198.18.1.0/24
therefore carries an *explicit* reservation of 198.18.1.0/25, which holds every
host address (.11-.110); moto allocates from 198.18.1.128 upward, so a
scale-out can never take a host's address (moto answers HTTP 500 to a
duplicate PrivateIpAddress). Verified with moto 5.2.5.

The VPC, subnets, bastion, classic ELB, ALB with its target group and listener, launch
template and Auto Scaling group are created through moto's CloudFormation, from the
template a team would use (examples/cloudformation/sandbox.yml, stack STACK). What
moto's CloudFormation leaves out is applied here with the plain APIs, once, right after
the stack is created (`_after_stack`): the subnet CIDR reservation (no such resource
type in moto), the ELB's ConnectionDrainingPolicy and the target group's
TargetGroupAttributes (both ignored by moto 5.2.5). The hosts are not template
resources: their number changes in place (`sandbox.up --hosts=N`), each needs the fixed
address of its namespace, and a template has no loops; they are launched here and
attached to the stack's group and balancers, like instances the group would launch.

Auto Scaling group tags are not propagated: instances it launches are not
tagged Stack=app, so they are not discovered as deploy targets.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from sandbox import topology as topo
from sandbox.awsprofile import REGION

AZ = "eu-west-1a"

VPC_CIDR = "198.18.0.0/16"
BASTION_SUBNET = "198.18.0.0/24"
HOSTS_SUBNET = "198.18.1.0/24"
HOSTS_RESERVED = "198.18.1.0/25"  # explicit reservation: moto never auto-assigns from it
ELB = "sandbox-elb"
STATE_TABLE = "rollout-state"
DEPLOY_QUEUE = "rollout-sandbox-deploys"
DEAD_LETTER = "rollout-sandbox-deploys-dead"
CONTROL_QUEUE = "rollout-sandbox-control"
ALB = "sandbox-alb"
TARGET_GROUP = "sandbox-tg"
ASG = "sandbox-asg"
LAUNCH_TEMPLATE = "sandbox-lt"
INSTANCE_TYPE = "t3.micro"
TAGS = {"Deployment": "sandbox"}
STACK = "rollout-sandbox"
TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "cloudformation" / "sandbox.yml"


@cache
def _session():
    import boto3

    return boto3.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=REGION)


@cache
def client(service: str):
    """boto3 client for moto (explicit dummy keys, so it works without the profile too)."""
    return _session().client(service, endpoint_url=topo.MOTO_ENDPOINT)


def _tags(**extra: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in {**TAGS, **extra}.items()]


def _find_one(items: list[dict], what: str) -> dict | None:
    if len(items) > 1:
        raise RuntimeError(f"moto holds {len(items)} {what}; expected one: run sandbox.fleet.down() and up()")
    return items[0] if items else None


def _ensure_vpc(ec2) -> tuple[str, str, str]:
    flt = [{"Name": "tag:Deployment", "Values": ["sandbox"]}]
    vpc = _find_one(ec2.describe_vpcs(Filters=flt)["Vpcs"], "sandbox VPCs")
    if vpc:
        vpc_id = vpc["VpcId"]
    else:
        vpc_id = ec2.create_vpc(
            CidrBlock=VPC_CIDR, TagSpecifications=[{"ResourceType": "vpc", "Tags": _tags(Name="sandbox")}]
        )["Vpc"]["VpcId"]
    subnets = {s["CidrBlock"]: s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]}
    for cidr, name in ((BASTION_SUBNET, "bastion"), (HOSTS_SUBNET, "hosts")):
        if cidr not in subnets:
            subnets[cidr] = ec2.create_subnet(
                VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=AZ,
                TagSpecifications=[{"ResourceType": "subnet", "Tags": _tags(Name=name)}],
            )["Subnet"]["SubnetId"]
            if cidr == HOSTS_SUBNET:
                ec2.create_subnet_cidr_reservation(
                    SubnetId=subnets[cidr], Cidr=HOSTS_RESERVED, ReservationType="explicit",
                    Description="rollout sandbox host addresses",
                )
    return vpc_id, subnets[BASTION_SUBNET], subnets[HOSTS_SUBNET]


def find_image(ec2) -> str:
    """An Amazon Linux 2 AMI from moto's catalogue (filtered: the whole catalogue takes seconds)."""
    flt = [{"Name": "name", "Values": ["amzn2-ami-hvm-*-x86_64-gp2"]}]
    images = ec2.describe_images(Owners=["amazon"], Filters=flt)["Images"] or ec2.describe_images(Owners=["amazon"])["Images"]
    return sorted(i["ImageId"] for i in images)[0]


def instances(ec2, states: tuple[str, ...] = ("pending", "running"), **tags: str) -> dict[str, dict]:
    """Instances in `states` (live by default) carrying all `tags`, by Name tag."""
    flt = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
    flt.append({"Name": "instance-state-name", "Values": list(states)})
    found = {}
    for page in ec2.get_paginator("describe_instances").paginate(Filters=flt):
        for res in page["Reservations"]:
            for inst in res["Instances"]:
                name = next((t["Value"] for t in inst.get("Tags", []) if t["Key"] == "Name"), inst["InstanceId"])
                found[name] = inst
    return found


def launch_instance(ec2, image: str, subnet: str, address: str, tags: dict[str, str]) -> str:
    return ec2.run_instances(
        ImageId=image, InstanceType=INSTANCE_TYPE, MinCount=1, MaxCount=1, SubnetId=subnet,
        PrivateIpAddress=address,
        TagSpecifications=[{"ResourceType": "instance", "Tags": _tags(**tags)}],
    )["Instances"][0]["InstanceId"]


def ensure(hosts: list[topo.Host], personal: dict[str, topo.Host] | None = None) -> dict:
    """Create or repair the sandbox's AWS resources for `hosts`; returns ids and a list of changes."""
    ec2, changes = client("ec2"), []
    image = cache(lambda: find_image(ec2))
    _ensure_stack(image, len(hosts), changes)
    vpc_id, bastion_subnet, hosts_subnet = _ensure_vpc(ec2)

    bastion = instances(ec2, Role="bastion", Deployment="sandbox").get("bastion")
    if bastion:
        bastion_id = bastion["InstanceId"]
    else:
        bastion_id = launch_instance(ec2, image(), bastion_subnet, topo.BASTION_ADDR, {"Role": "bastion", "Name": "bastion"})
        changes.append(f"launched bastion {bastion_id}")

    _stop_unwanted_personal(ec2, personal or {}, changes)
    existing = instances(ec2, Stack="app", Deployment="sandbox")
    wanted = {h.name: h for h in hosts}
    extra = [inst["InstanceId"] for name, inst in existing.items() if name not in wanted]
    # moto keeps a stopped instance's address: a host that comes back after a shrink (or changes
    # between shared and personal) reclaims its stopped instance instead of launching another.
    restart = {h.name: iid for h in hosts if h.name not in existing
               and (iid := _reclaim(ec2, h, {"Deployment": "sandbox"}, drop=("Owner",)))}
    if restart:
        existing |= {name: {"InstanceId": iid} for name, iid in restart.items()}
        changes.append(f"restarted {len(restart)} stopped host instances")
    missing = [h for h in hosts if h.name not in existing]
    ami = image() if missing else ""
    with ThreadPoolExecutor(max_workers=8) as pool:
        launched = dict(zip(
            [h.name for h in missing],
            pool.map(lambda h: launch_instance(ec2, ami, hosts_subnet, h.address,
                                       {"Stack": "app", "Release": "1", "Name": h.name}), missing),
        ))
    if launched:
        changes.append(f"launched {len(launched)} host instances")
    ids = {name: existing[name]["InstanceId"] for name in wanted if name in existing} | launched
    host_ids = [ids[h.name] for h in hosts]

    _ensure_elb(hosts_subnet, host_ids, extra, changes)
    _ensure_alb(vpc_id, hosts_subnet, host_ids, extra, changes)
    _ensure_asg(ec2, image, hosts_subnet, host_ids, extra, changes)
    if extra:
        ec2.stop_instances(InstanceIds=extra)
        changes.append(f"stopped {len(extra)} surplus host instances")
    _ensure_state_table(changes)
    _ensure_queues(changes)
    ids |= _ensure_personal(ec2, image, hosts_subnet, personal or {}, changes)
    return {"vpc_id": vpc_id, "bastion_instance_id": bastion_id, "instance_ids": ids, "changes": changes}


def _ensure_stack(image, hosts: int, changes: list[str]) -> None:
    """Create the stack STACK from TEMPLATE unless it exists (the resources it holds are repaired below)."""
    cfn = client("cloudformation")
    if any(s["StackName"] == STACK for s in cfn.list_stacks(StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE"])["StackSummaries"]):
        return
    cfn.create_stack(StackName=STACK, TemplateBody=TEMPLATE.read_text(), Parameters=[
        {"ParameterKey": "ImageId", "ParameterValue": image()},
        {"ParameterKey": "InstanceType", "ParameterValue": INSTANCE_TYPE},
        {"ParameterKey": "AvailabilityZone", "ParameterValue": AZ},
        {"ParameterKey": "AppPort", "ParameterValue": str(topo.APP_PORT)},
        {"ParameterKey": "MaxSize", "ParameterValue": str(max(2 * hosts, hosts + 10))},
    ])
    client("cloudformation").get_waiter("stack_create_complete").wait(StackName=STACK, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    _after_stack(cfn)
    changes.append(f"created stack {STACK} from {TEMPLATE.name}")


def _after_stack(cfn) -> None:
    """What moto's CloudFormation does not apply from the template (see the module's docstring)."""
    res = {r["LogicalResourceId"]: r["PhysicalResourceId"]
           for r in cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]}
    client("ec2").create_subnet_cidr_reservation(
        SubnetId=res["HostsSubnet"], Cidr=HOSTS_RESERVED, ReservationType="explicit", Description="rollout sandbox host addresses")
    client("elb").modify_load_balancer_attributes(LoadBalancerName=res["ClassicElb"], LoadBalancerAttributes={
        "ConnectionDraining": {"Enabled": True, "Timeout": 5}})
    client("elbv2").modify_target_group_attributes(TargetGroupArn=res["TargetGroup"], Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "5"}])


def _reclaim(ec2, host: topo.Host, tags: dict[str, str], drop: tuple[str, ...] = ()) -> str | None:
    """Restart the stopped instance named after `host`, retagged with `tags`; its id, or None."""
    stopped = instances(ec2, states=("stopping", "stopped"), Stack="app").get(host.name)
    if not stopped:
        return None
    iid = stopped["InstanceId"]
    ec2.create_tags(Resources=[iid], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    if drop:
        ec2.delete_tags(Resources=[iid], Tags=[{"Key": k} for k in drop])
    ec2.start_instances(InstanceIds=[iid])
    return iid


def _ensure_personal(ec2, image, subnet: str, personal: dict[str, topo.Host], changes: list[str]) -> dict[str, str]:
    """One instance per developer, tagged Deployment=dev-USER and Owner=USER, in no balancer or group."""
    ids = {}
    running = instances(ec2, Stack="app")
    for user, host in personal.items():
        tags = {"Stack": "app", "Deployment": f"dev-{user}", "Owner": user, "Name": host.name}
        live = running.get(host.name)
        if live and {t["Key"]: t["Value"] for t in live.get("Tags", [])}.get("Deployment") == tags["Deployment"]:
            ids[host.name] = live["InstanceId"]
            continue
        if iid := _reclaim(ec2, host, tags):
            changes.append(f"restarted {host.name} for {user}")
        else:
            iid = launch_instance(ec2, image(), subnet, host.address, tags)
            changes.append(f"launched {host.name} for {user} (Deployment=dev-{user})")
        ids[host.name] = iid
    return ids


def _stop_unwanted_personal(ec2, personal: dict[str, topo.Host], changes: list[str]) -> None:
    """Stop personal instances that no developer (or another host) wants now, before hosts are reassigned."""
    keep = {h.name: f"dev-{user}" for user, h in personal.items()}
    surplus = []
    for name, inst in instances(ec2, Stack="app").items():
        deployment = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}.get("Deployment", "")
        if deployment.startswith("dev-") and keep.get(name) != deployment:
            surplus.append(inst["InstanceId"])
    if surplus:
        ec2.stop_instances(InstanceIds=surplus)
        changes.append(f"stopped {len(surplus)} personal instances no longer wanted")


def _ensure_queues(changes: list[str]) -> None:
    """The deploy queue (for `fab enqueue` / `fab worker`), its dead-letter queue, and the control queue."""
    sqs = client("sqs")
    have = {u.rsplit("/", 1)[-1] for u in sqs.list_queues().get("QueueUrls", [])}
    if DEAD_LETTER not in have:
        sqs.create_queue(QueueName=DEAD_LETTER)
        changes.append(f"created SQS queue {DEAD_LETTER}")
    if DEPLOY_QUEUE not in have:
        dlq_arn = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=DEAD_LETTER)["QueueUrl"],
                                           AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.create_queue(QueueName=DEPLOY_QUEUE, Attributes={
            "VisibilityTimeout": "10",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        })
        changes.append(f"created SQS queue {DEPLOY_QUEUE} (dead letters to {DEAD_LETTER})")
    if CONTROL_QUEUE not in have:
        sqs.create_queue(QueueName=CONTROL_QUEUE, Attributes={"VisibilityTimeout": "10"})
        changes.append(f"created SQS queue {CONTROL_QUEUE} (pause and unpause requests)")


def _ensure_state_table(changes: list[str]) -> None:
    """The DynamoDB table rollout keeps its lock, journal and history in."""
    if create_state_table(client("dynamodb")):
        changes.append(f"created DynamoDB table {STATE_TABLE}")


def create_state_table(ddb, name: str = STATE_TABLE) -> bool:
    """Create rollout's state table `name` through the DynamoDB client `ddb` unless it exists; True if created.

    Made as `fab setup` makes it (string keys pk and sk, on demand), but without rollout's code.
    """
    if name in ddb.list_tables()["TableNames"]:
        return False
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return True


def _ensure_elb(subnet: str, ids: list[str], extra: list[str], changes: list[str]) -> None:
    elb = client("elb")
    names = [d["LoadBalancerName"] for d in elb.describe_load_balancers()["LoadBalancerDescriptions"]]
    if ELB not in names:
        elb.create_load_balancer(
            LoadBalancerName=ELB, Subnets=[subnet],
            Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP",
                        "InstancePort": topo.APP_PORT}],
            Tags=_tags(),
        )
        elb.configure_health_check(LoadBalancerName=ELB, HealthCheck={
            "Target": f"HTTP:{topo.APP_PORT}/health", "Interval": 5, "Timeout": 2,
            "HealthyThreshold": 2, "UnhealthyThreshold": 2,
        })
        elb.modify_load_balancer_attributes(LoadBalancerName=ELB, LoadBalancerAttributes={
            "ConnectionDraining": {"Enabled": True, "Timeout": 5},
        })
        changes.append(f"created classic ELB {ELB}")
    desc = elb.describe_load_balancers(LoadBalancerNames=[ELB])["LoadBalancerDescriptions"][0]
    registered = {i["InstanceId"] for i in desc["Instances"]}
    if add := [i for i in ids if i not in registered]:
        elb.register_instances_with_load_balancer(LoadBalancerName=ELB, Instances=[{"InstanceId": i} for i in add])
        changes.append(f"registered {len(add)} instances with {ELB}")
    if drop := [i for i in extra if i in registered]:
        elb.deregister_instances_from_load_balancer(LoadBalancerName=ELB, Instances=[{"InstanceId": i} for i in drop])


def _ensure_alb(vpc_id: str, subnet: str, ids: list[str], extra: list[str], changes: list[str]) -> None:
    elbv2 = client("elbv2")
    if not any(lb["LoadBalancerName"] == ALB for lb in elbv2.describe_load_balancers()["LoadBalancers"]):
        elbv2.create_load_balancer(Name=ALB, Subnets=[subnet], Type="application", Scheme="internal", Tags=_tags())
        changes.append(f"created ALB {ALB}")
    lb_arn = elbv2.describe_load_balancers(Names=[ALB])["LoadBalancers"][0]["LoadBalancerArn"]
    groups = [g for g in elbv2.describe_target_groups()["TargetGroups"] if g["TargetGroupName"] == TARGET_GROUP]
    if groups:
        tg_arn = groups[0]["TargetGroupArn"]
    else:
        tg_arn = elbv2.create_target_group(
            Name=TARGET_GROUP, Protocol="HTTP", Port=topo.APP_PORT, VpcId=vpc_id, TargetType="instance",
            HealthCheckProtocol="HTTP", HealthCheckPath="/health", HealthCheckIntervalSeconds=5,
            HealthyThresholdCount=2, UnhealthyThresholdCount=2, Tags=_tags(),
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "5"},
        ])
        elbv2.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80,
                              DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}])
        changes.append(f"created target group {TARGET_GROUP}")
    health = elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
    registered = {t["Target"]["Id"] for t in health}
    if add := [i for i in ids if i not in registered]:
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": i, "Port": topo.APP_PORT} for i in add])
        changes.append(f"registered {len(add)} targets with {TARGET_GROUP}")
    if drop := [i for i in extra if i in registered]:
        elbv2.deregister_targets(TargetGroupArn=tg_arn, Targets=[{"Id": i, "Port": topo.APP_PORT} for i in drop])


def _ensure_asg(ec2, image, subnet: str, ids: list[str], extra: list[str], changes: list[str]) -> None:
    asg = client("autoscaling")
    templates = ec2.describe_launch_templates()["LaunchTemplates"]
    if not any(t["LaunchTemplateName"] == LAUNCH_TEMPLATE for t in templates):
        ec2.create_launch_template(LaunchTemplateName=LAUNCH_TEMPLATE,
                                   LaunchTemplateData={"ImageId": image(), "InstanceType": INSTANCE_TYPE})
    max_size = max(2 * len(ids), len(ids) + 10)  # room for scale-out tests
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])["AutoScalingGroups"]
    if not groups:
        asg.create_auto_scaling_group(
            AutoScalingGroupName=ASG, LaunchTemplate={"LaunchTemplateName": LAUNCH_TEMPLATE, "Version": "$Latest"},
            MinSize=0, MaxSize=max_size, DesiredCapacity=0, VPCZoneIdentifier=subnet,
            Tags=[{"Key": "Deployment", "Value": "sandbox", "PropagateAtLaunch": False}],
        )
        changes.append(f"created Auto Scaling group {ASG}")
        members = set()
    else:
        members = {i["InstanceId"] for i in groups[0]["Instances"]}
        if groups[0]["MaxSize"] < max_size:
            asg.update_auto_scaling_group(AutoScalingGroupName=ASG, MaxSize=max_size)
    if drop := [i for i in extra if i in members]:
        asg.detach_instances(AutoScalingGroupName=ASG, InstanceIds=drop, ShouldDecrementDesiredCapacity=True)
    add = [i for i in ids if i not in members]
    for start in range(0, len(add), 20):  # AttachInstances takes at most 20 ids
        asg.attach_instances(AutoScalingGroupName=ASG, InstanceIds=add[start:start + 20])
    if add:
        changes.append(f"attached {len(add)} instances to {ASG}")


def discover(**tags: str) -> dict[str, str]:
    """PrivateIpAddress of live instances carrying `tags`, by Name tag (what rollout's discovery sees)."""
    return {name: inst["PrivateIpAddress"] for name, inst in instances(client("ec2"), **tags).items()}



def terminate(names: list[str]) -> dict[str, str]:
    """Terminate the host instances named `names` that are not terminated yet; name -> instance id.

    Their addresses become free for the next instances (sandbox/awsgate.py frees them as EC2 does).
    """
    ec2 = client("ec2")
    found = instances(ec2, states=("pending", "running", "stopping", "stopped"), Stack="app")
    ids = {n: found[n]["InstanceId"] for n in names if n in found}
    if ids:
        ec2.terminate_instances(InstanceIds=list(ids.values()))
    return ids


def terminated_at(addresses: list[str]) -> dict[str, list[str]]:
    """Address -> ids of the terminated host instances that had it (the addresses EC2 hands out again)."""
    found: dict[str, list[str]] = {}
    flt = [{"Name": "tag:Stack", "Values": ["app"]}, {"Name": "instance-state-name", "Values": ["terminated"]}]
    for page in client("ec2").get_paginator("describe_instances").paginate(Filters=flt):
        for inst in (i for res in page["Reservations"] for i in res["Instances"]):
            if inst.get("PrivateIpAddress") in addresses:
                found.setdefault(inst["PrivateIpAddress"], []).append(inst["InstanceId"])
    return found
