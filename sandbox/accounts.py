"""A second AWS account in the sandbox's moto, for environments that live in another account.

moto keeps one set of resources per account and maps credentials to an account by their
access key: the sandbox profile's keys are the default account (123456789012); keys
returned by AssumeRole of `arn:aws:iam::ACCOUNT:role/NAME` belong to ACCOUNT. So the
second account, ACCOUNT_B, is reached by assuming its role ROLE_B (with EXTERNAL_ID;
sandbox.awsgate enforces the trust policy moto itself ignores).

`ensure(hosts)` gives ACCOUNT_B what an environment there needs: the role, rollout's
state table, and EC2 records for `hosts` (the sandbox's own hosts, tagged
Deployment=B_DEPLOYMENT) in a VPC of its own.
"""

from __future__ import annotations

import json

from sandbox import awsresources
from sandbox import topology as topo
from sandbox.awsgate import account_client
from sandbox.awsprofile import REGION

ACCOUNT_B = "222222222222"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/rollout-deployer"
EXTERNAL_ID = "rollout-sandbox-b"
B_DEPLOYMENT = "staging-b"


def client(service: str):
    """A boto3 client in ACCOUNT_B."""
    return account_client(service, ACCOUNT_B, topo.MOTO_ENDPOINT, REGION)


def ensure(hosts: list[topo.Host]) -> dict[str, str]:
    """Create what is missing in ACCOUNT_B; returns instance id by host name there."""
    iam = client("iam")
    name = ROLE_B.rsplit("/", 1)[1]
    if name not in {r["RoleName"] for r in iam.list_roles()["Roles"]}:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]}))
    awsresources.create_state_table(client("dynamodb"))
    ec2 = client("ec2")
    flt = [{"Name": "tag:Deployment", "Values": [B_DEPLOYMENT]}]
    vpcs = ec2.describe_vpcs(Filters=flt)["Vpcs"]
    vpc = vpcs[0]["VpcId"] if vpcs else ec2.create_vpc(CidrBlock=awsresources.VPC_CIDR, TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Deployment", "Value": B_DEPLOYMENT}]}])["Vpc"]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    subnet = subnets[0]["SubnetId"] if subnets else ec2.create_subnet(
        VpcId=vpc, CidrBlock=awsresources.HOSTS_SUBNET, AvailabilityZone=awsresources.AZ)["Subnet"]["SubnetId"]
    live = awsresources.instances(ec2, Deployment=B_DEPLOYMENT)
    image = awsresources.find_image(ec2) if any(h.name not in live for h in hosts) else ""
    ids = {n: i["InstanceId"] for n, i in live.items()}
    for h in hosts:
        if h.name not in ids:
            ids[h.name] = awsresources.launch_instance(ec2, image, subnet, h.address, {"Stack": "app", "Deployment": B_DEPLOYMENT, "Name": h.name})
    return ids
