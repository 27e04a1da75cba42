"""Every AWS action rollout takes is in the IAM policies documented in docs/iam/ (docs/security.md).

The sandbox's moto records every request (sandbox/motoserver.py); rollout's requests carry its user
agent (tests/awsops.py). One test drives each caller (the deploy tasks, enqueue, the worker, the
page) and checks its actions against that caller's policies; the other runs after every other
fleet test of the session (marked session_end; tests/conftest.py orders it) and checks everything rollout did in the
session against all the policies together.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from http.cookiejar import CookieJar

import pytest

from sandbox import awsresources, topology
from tests import awsops, fleetctl as f

pytestmark = pytest.mark.fleet
POLICIES = f.ROOT / "docs" / "iam"
SECRET = {"ROLLOUT_QUEUE_SECRET": "aws-operations-test-secret"}
ALARM = "aws-ops-latency"


def policy(*names: str) -> list[dict]:
    return [json.loads((POLICIES / f"{n}.json").read_text()) for n in names]


def ok(result: subprocess.CompletedProcess, code: int = 0) -> None:
    assert result.returncode == code, result.stdout + result.stderr


def assert_allowed(used: set[str], names: tuple[str, ...], who: str) -> None:
    gaps = awsops.missing(used, policy(*names))
    assert not gaps, f"{who} took {gaps}, which docs/iam/{{{','.join(names)}}}.json do not allow: add them there"


def open_page(inventories) -> tuple[subprocess.Popen, str]:
    ui = subprocess.Popen([f.FAB, "ui", "--env=sandbox", "--port=0"], cwd=f.ROOT, env=f.fab_env(SECRET, inventories),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = ui.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", first)
    assert m, first
    return ui, m.group(1)


def test_each_caller_takes_only_aws_actions_its_documented_policy_allows(healthy_fleet, new_commit, tmp_path):
    rec = awsops.Recording(topology.MOTO_RECORDING)
    cloudwatch = f.aws("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName=ALARM, MetricName="Latency", Namespace="App", Statistic="Average", Period=60,
                                EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
                                ActionsEnabled=True, AlarmActions=["arn:aws:sns:eu-west-1:123456789012:pager"])
    inv = f.write_inventory(tmp_path, lambda d: d.update(alarms={"prefix": "aws-ops-"}))
    try:
        mark = rec.mark()
        for args in (("status",), ("history",), ("pause", "--reason=iam"), ("unpause",), ("setup",)):
            ok(f.fab(*args, "--env=sandbox", inventories=inv))
        ok(f.fab("deploy", "--env=sandbox", f"--ref={new_commit}", "--yes", inventories=inv))
        ok(f.fab("deploy", "--env=sandbox", "--ref=v1", "--yes", inventories=inv, env={"ROLLOUT_CRASH_AT": "after-deregister"}), -9)
        ok(f.fab("recover", "--env=sandbox", "--force", inventories=inv))
        ok(f.fab("rollback", "--env=sandbox", "--to=v1", "--yes", inventories=inv))
        ok(f.fab("unlock", "--env=sandbox", "--force", inventories=inv))
        deploying = rec.actions_since(mark)
        assert {"elasticloadbalancing:DeregisterTargets", "autoscaling:SuspendProcesses", "cloudwatch:DisableAlarmActions",
                "dynamodb:ConditionCheckItem"} <= deploying, deploying  # the recording sees the deploy's changes
        assert_allowed(deploying, ("deploy-role",), "deploy, rollback, recover, status, history, pause, setup")

        f.drain_queues(awsresources.DEPLOY_QUEUE, awsresources.DEAD_LETTER, awsresources.CONTROL_QUEUE)
        mark = rec.mark()
        ok(f.fab("enqueue", "--env=sandbox", f"--ref={new_commit}", inventories=inv, env=SECRET))
        enqueueing = rec.actions_since(mark)
        assert "sqs:SendMessage" in enqueueing, enqueueing
        assert_allowed(enqueueing, ("enqueue",), "fab enqueue")

        mark = rec.mark()
        ok(f.fab("worker", "--env=sandbox", "--once", "--wait=5", "--status-every=1", inventories=inv, env=SECRET))
        working = rec.actions_since(mark)
        assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "elasticloadbalancing:RegisterTargets"} <= working, working
        assert_allowed(working, ("deploy-role", "queue-worker"), "fab worker")

        mark = rec.mark()
        ui, address = open_page(inv)
        try:
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
            with opener.open(address, timeout=20) as page:
                assert page.status == 200 and "sandbox" in page.read().decode()
        finally:
            ui.terminate()
            ui.communicate(timeout=10)
        paging = rec.actions_since(mark)
        assert "dynamodb:GetItem" in paging, paging
        assert_allowed(paging, ("page",), "fab ui")
    finally:
        cloudwatch.delete_alarms(AlarmNames=[ALARM])


@pytest.mark.session_end
def test_every_aws_action_rollout_took_in_this_session_is_in_a_documented_policy(fleet):
    used = awsops.Recording(topology.MOTO_RECORDING).actions_since(0)
    assert {"ec2:DescribeInstances", "dynamodb:Query"} <= used, used
    names = tuple(p.stem for p in sorted(POLICIES.glob("*.json")))
    assert_allowed(used, names, "rollout, across this session's tests,")
