"""Throttling proven handled: rollout's AWS adapters through a proxy that throttles every 3rd request.

Runs its own moto server on a free loopback port (never the sandbox's 5055).
"""

import logging

import botocore.exceptions
import pytest

from rollout.adapters.alarms import Alarms
from rollout.adapters.autoscaling import Group
from rollout.adapters.aws import Aws, translate
from rollout.adapters.balancers.alb import TargetGroup
from rollout.adapters.discovery import find_instances
from rollout.core.plan import Host
from sandbox.motoserver import MotoServer
from tests.instruments.throttle import ThrottlingProxy, throttle_answer

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    """A moto server of our own on 127.0.0.1; stopped at the end of the module."""
    with MotoServer(log=tmp_path_factory.mktemp("moto") / "moto.log") as moto:
        yield moto.url


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Dummy credentials only: no profile, no shared config, no instance metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)


def _image(ec2) -> str:
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*-x86_64-gp2"]}])["Images"]
    return sorted(i["ImageId"] for i in images)[0]


def test_adapters_work_through_throttling_and_each_retry_is_logged_and_counted(moto_url, aws_env, caplog):
    caplog.set_level(logging.WARNING, logger="rollout.aws")
    with ThrottlingProxy(upstream=moto_url, every=3) as proxy:
        aws = Aws(REGION, endpoint_url=proxy.url)
        ec2 = aws.client("ec2")
        tags = {"Deployment": "throttle-test"}
        tag_spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        image = _image(ec2)
        for _ in range(7):  # one reservation each: moto pages describe_instances by reservation
            ec2.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1, TagSpecifications=tag_spec)

        filters = [{"Name": "tag:Deployment", "Values": ["throttle-test"]}]
        pages = list(ec2.get_paginator("describe_instances").paginate(Filters=filters, PaginationConfig={"PageSize": 5}))
        assert len(pages) >= 2
        assert sum(len(r["Instances"]) for p in pages for r in p["Reservations"]) == 7
        found = find_instances(aws, tags, "PrivateIpAddress")
        assert len(found) == 7

        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone=f"{REGION}a")
        ec2.create_launch_template(LaunchTemplateName="throttle-lt", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"})
        aws.client("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName="throttle-asg",
            LaunchTemplate={"LaunchTemplateName": "throttle-lt"},
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            AvailabilityZones=[f"{REGION}a"],
        )
        group = Group(aws, "throttle-asg")
        assert group.suspended() == frozenset()
        group.suspend(("AZRebalance",))
        assert group.suspended() == frozenset({"AZRebalance"})

        elbv2 = aws.client("elbv2")
        created = elbv2.create_target_group(Name="throttle-tg", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")
        tg = TargetGroup(aws, "throttle-tg", port=80, poll_interval=1)
        assert tg.arn == created["TargetGroups"][0]["TargetGroupArn"]
        assert [g["TargetGroupName"] for g in elbv2.describe_target_groups(Names=["throttle-tg"])["TargetGroups"]] == ["throttle-tg"]
        hosts = [Host(instance_id=i.instance_id, address=i.address, name=i.name) for i in found[:2]]
        tg.register(hosts)
        tg.deregister(hosts)
        tg.wait_drained(hosts)  # a boto3 waiter, polling through the retrying client

        dynamodb = aws.client("dynamodb")
        dynamodb.create_table(
            TableName="throttle-locks",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        assert "throttle-locks" in dynamodb.list_tables()["TableNames"]

        cloudwatch = aws.client("cloudwatch")
        for name in ("throttle-a", "throttle-b"):
            cloudwatch.put_metric_alarm(
                AlarmName=name, MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Average",
                Period=60, EvaluationPeriods=1, Threshold=90.0, ComparisonOperator="GreaterThanThreshold",
            )
        alarms = Alarms(aws, [], "throttle-")
        assert alarms.enabled() == ["throttle-a", "throttle-b"]
        alarms.disable(["throttle-a", "throttle-b"])
        assert alarms.enabled() == []

    assert proxy.injected > 0
    # every HTTP attempt passed the proxy and was counted once: retried calls count twice
    assert aws.calls == proxy.forwarded + proxy.injected
    retries = [r.getMessage() for r in caplog.records if r.name == "rollout.aws" and r.levelno == logging.WARNING]
    assert len(retries) == proxy.injected
    assert any(m.startswith("retrying ec2.") and "after RequestLimitExceeded" in m for m in retries)
    assert any(m.startswith("retrying autoscaling.") and "after Throttling" in m for m in retries)
    assert any(m.startswith("retrying elbv2.") and "after Throttling" in m for m in retries)
    assert any(m.startswith("retrying dynamodb.") and "after ThrottlingException" in m for m in retries)
    assert any(m.startswith("retrying cloudwatch.") and "after Throttling " in m for m in retries)
    assert all("testing" not in m for m in retries)


def test_every_paginator_page_and_waiter_poll_is_retried(moto_url, aws_env, caplog):
    # every=2 on a sequential client throttles the first attempt of every call after the first
    caplog.set_level(logging.WARNING, logger="rollout.aws")
    sleeps = []
    with ThrottlingProxy(upstream=moto_url, every=2) as proxy:
        ec2 = Aws(REGION, endpoint_url=proxy.url, sleep=sleeps.append).client("ec2")
        image = _image(ec2)
        tag_spec = [{"ResourceType": "instance", "Tags": [{"Key": "Deployment", "Value": "pages-test"}]}]
        ids = [ec2.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1, TagSpecifications=tag_spec)["Instances"][0]["InstanceId"] for _ in range(3)]
        caplog.clear()
        filters = [{"Name": "tag:Deployment", "Values": ["pages-test"]}]
        pages = list(ec2.get_paginator("describe_instances").paginate(Filters=filters, PaginationConfig={"PageSize": 1}))
        ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    assert len(pages) >= 3
    retried = [r.getMessage().split(" after ")[0] for r in caplog.records if r.name == "rollout.aws"]
    assert retried == ["retrying ec2.DescribeInstances"] * (len(pages) + 1)  # each page, then the waiter's poll


def test_a_call_throttled_every_time_gives_up_after_eight_attempts_and_translate_sees_it(moto_url, aws_env):
    sleeps = []
    with ThrottlingProxy(upstream=moto_url, every=1) as proxy:
        aws = Aws(REGION, endpoint_url=proxy.url, sleep=sleeps.append)
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            with translate("describing Auto Scaling groups"):
                aws.client("autoscaling").describe_auto_scaling_groups()
    assert raised.value.response["Error"]["Code"] == "Throttling"
    assert proxy.injected == aws.calls == 8
    assert proxy.forwarded == 0
    assert len(sleeps) == 7


@pytest.mark.parametrize(
    "headers, status, code",
    [
        ({"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/eu-west-1/ec2/aws4_request"}, 503, b"RequestLimitExceeded"),
        ({"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/eu-west-1/elasticloadbalancing/aws4_request"}, 400, b"Throttling"),
        ({"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/eu-west-1/autoscaling/aws4_request"}, 400, b"Throttling"),
        ({"X-Amz-Target": "DynamoDB_20120810.ListTables"}, 400, b"ThrottlingException"),
        ({"X-Amz-Target": "GraniteServiceVersion20100801.DescribeAlarms"}, 400, b"ThrottlingException"),
    ],
)
def test_throttle_answer_speaks_each_services_protocol(headers, status, code):
    got_status, _, body = throttle_answer(headers)
    assert (got_status, code in body) == (status, True)


@pytest.mark.parametrize("upstream", ["http://10.0.0.1:5055", "http://example.com:80", "https://127.0.0.1:5055", "http://127.0.0.1", "http://localhost:5055"])
def test_proxy_refuses_an_upstream_that_is_not_loopback_http_with_a_port(upstream):
    with pytest.raises(ValueError, match="loopback"):
        ThrottlingProxy(upstream=upstream)
