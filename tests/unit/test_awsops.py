"""Reading IAM actions from moto's request recording, and checking them against docs/iam/'s policies."""

import base64
import json
import re
from functools import cache
from pathlib import Path

import botocore.session
import pytest

from rollout.adapters.aws import USER_AGENT
from rollout.core.awserrors import action_name
from tests import awsops

ROOT = Path(__file__).resolve().parents[2]
UA = f"Boto3/1.35 md/Botocore#1.35 ua/2.0 os/linux Python/3.11 {USER_AGENT}"
AUTH = "AWS4-HMAC-SHA256 Credential=AKID/20261130/eu-west-1/{}/aws4_request, SignedHeaders=host, Signature=x"


def entry(service, body="", target="", ua=UA, encoded=False):
    headers = {"User-Agent": ua, "Authorization": AUTH.format(service)}
    if target:
        headers["X-Amz-Target"] = target
    if encoded:
        body = base64.b64encode(body.encode()).decode()
    return {"headers": headers, "method": "POST", "url": "http://127.0.0.1:5055/", "body": body, "body_encoded": encoded}


@pytest.mark.parametrize("recorded,actions", [
    (entry("ec2", "Action=DescribeInstances&Version=2016-11-15"), {"ec2:DescribeInstances"}),
    (entry("elasticloadbalancing", "Action=DeregisterTargets&TargetGroupArn=x", encoded=True), {"elasticloadbalancing:DeregisterTargets"}),
    (entry("monitoring", "Action=DisableAlarmActions"), {"cloudwatch:DisableAlarmActions"}),
    (entry("dynamodb", "{}", target="DynamoDB_20120810.Query"), {"dynamodb:Query"}),
    (entry("sqs", "{}", target="AmazonSQS.ReceiveMessage"), {"sqs:ReceiveMessage"}),
    (entry("dynamodb", json.dumps({"TransactItems": [{"ConditionCheck": {}}, {"Put": {}}, {"Delete": {}}]}),
           target="DynamoDB_20120810.TransactWriteItems"),
     {"dynamodb:ConditionCheckItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}),
    (entry("sts", "Action=GetCallerIdentity"), set()),                       # needs no permission
    (entry("ec2", "Action=RunInstances", ua="Boto3/1.35 Python/3.11"), set()),  # the sandbox's own setup call
    (entry("ec2", ""), set()),
])
def test_a_recorded_request_needs_the_iam_actions_of_its_operation(recorded, actions):
    assert awsops.actions(recorded) == actions


def test_a_recording_is_read_from_a_mark_and_a_cut_line_is_skipped(tmp_path):
    path = tmp_path / "rec.jsonl"
    path.write_text(json.dumps(entry("ec2", "Action=DescribeInstances")) + "\n")
    rec = awsops.Recording(path)
    mark = rec.mark()
    with path.open("a") as fh:
        fh.write(json.dumps(entry("autoscaling", "Action=SuspendProcesses")) + "\n" + '{"headers": {"User-' + "\n")
    assert rec.actions_since(0) == {"ec2:DescribeInstances", "autoscaling:SuspendProcesses"}
    assert rec.actions_since(mark) == {"autoscaling:SuspendProcesses"}


def test_an_action_no_policy_allows_is_missing():
    policy = {"Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*", "sqs:SendMessage"], "Resource": "*"},
                            {"Effect": "Deny", "Action": "autoscaling:SuspendProcesses", "Resource": "*"}]}
    used = {"ec2:DescribeInstances", "SQS:sendmessage", "autoscaling:SuspendProcesses", "dynamodb:Query"}
    assert awsops.missing(used, [policy]) == ["autoscaling:SuspendProcesses", "dynamodb:Query"]


@cache
def _known_actions() -> set[str]:
    """Every IAM action of the services rollout uses, from botocore's own models (offline)."""
    session = botocore.session.get_session()
    known = {action_name("dynamodb", a) for a in awsops.TRANSACT_ITEM_ACTIONS.values()}
    for service in ("ec2", "elb", "elbv2", "autoscaling", "cloudwatch", "cloudformation", "dynamodb", "sqs", "sts", "ssm"):
        model = session.get_service_model(service)
        known |= {action_name(model.signing_name, op) for op in model.operation_names}
    return known


@pytest.mark.parametrize("path", sorted((ROOT / "docs" / "iam").glob("*.json")), ids=lambda p: p.name)
def test_each_documented_policy_allows_only_real_actions_and_nothing_else(path):
    doc = json.loads(path.read_text())
    assert doc["Version"] == "2012-10-17" and doc["Statement"]
    assert all(st["Effect"] == "Allow" and st["Resource"] for st in doc["Statement"])
    unknown = [a for a in awsops.allowed(doc) if a not in _known_actions()]
    assert not unknown, f"{path.name}: not AWS actions: {unknown}"


@pytest.mark.parametrize("path", sorted((ROOT / "docs" / "iam").glob("*.json")), ids=lambda p: p.name)
def test_each_statement_limits_its_actions_to_resources_of_their_own_service(path):
    for st in json.loads(path.read_text())["Statement"]:
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        services = {a.split(":")[0] for a in actions}
        if resources == ["*"]:
            assert all(a.split(":")[1].startswith(("Describe", "List", "Get")) for a in actions), f"{path.name}: {st['Sid']} changes things on *"
        else:
            assert all(r.split(":")[2] == "iam" and services == {"sts"} or {r.split(":")[2]} == services for r in resources), \
                f"{path.name}: {st['Sid']}: {sorted(services)} actions on {resources}"


def test_the_boot_script_policy_allows_every_aws_call_of_the_boot_script():
    script = (ROOT / "examples" / "boot" / "user-data.sh").read_text()
    calls = re.findall(r"\baws ([a-z0-9]+) ([a-z0-9-]+)", script)
    assert calls, "examples/boot/user-data.sh makes no aws call"
    used = {f"{service}:{''.join(w.capitalize() for w in op.split('-'))}" for service, op in calls}
    assert awsops.missing(used, [json.loads((ROOT / "docs" / "iam" / "boot-script.json").read_text())]) == []
