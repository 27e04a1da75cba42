"""An environment as a CloudFormation stack, and environments in two AWS accounts, end to end on the sandbox."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from sandbox import accounts, origin, topology as topo
from sandbox.awsgate import AwsGate
from tests import fleetctl as f

pytestmark = pytest.mark.fleet

STACK_INVENTORY = yaml.safe_load((f.ROOT / "inventories" / "sandbox-stack.yml").read_text())


def write_stack_inventory(directory: Path, change=None) -> Path:
    return f.write_inventory(directory, change, name="sandbox-stack", base=STACK_INVENTORY)


def one_line(done) -> str:
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rollout: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_deploy_through_the_stack_finds_hosts_bastion_and_balancers_from_the_stack(healthy_fleet, tmp_path):
    sha = origin.add_commit(topo.ORIGIN, f"stack {time.time_ns()}", branch=f"stack-{time.time_ns()}")
    plan = f.fab("deploy", "--env=sandbox-stack", f"--ref={sha}", "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "load balancers found from membership: elb sandbox-elb, alb sandbox-tg" in plan.stdout, plan.stdout
    for name in f.host_names():
        assert name in plan.stdout
    # The bastion as the stack's instance resource, and the group as a stack output: the same plan.
    inv = write_stack_inventory(tmp_path / "inv", lambda d: d.update(
        bastion={"resource": "Bastion", "address": "PrivateIpAddress"}, autoscaling_group={"stack_output": "AutoScalingGroup"}))
    by_resource = f.fab("deploy", "--env=sandbox-stack", f"--ref={sha}", "--dry-run", inventories=inv)
    assert by_resource.returncode == 0, by_resource.stdout + by_resource.stderr
    assert "sandbox-asg" in by_resource.stdout and all(n in by_resource.stdout for n in f.host_names())
    before = f.snapshot()
    report = tmp_path / "report.json"
    done = f.fab("deploy", "--env=sandbox-stack", f"--ref={sha}", "--yes", f"--report={report}")
    assert done.returncode == 0, done.stdout + done.stderr
    f.assert_fleet_serves(sha)
    hosts = json.loads(report.read_text())["hosts"]
    assert sorted(h["instance_id"] for h in hosts) == sorted(f.instances())
    for h in hosts:  # each host left and rejoined both balancers found from membership
        steps = [s["step"] for s in h["steps"]]
        assert "deregister" in steps and "register" in steps, steps
    assert f.suspended() == set() and before["suspended"] == set()


@pytest.fixture
def account_b(fleet):
    """The sandbox's second account, with EC2 records for h003 and h004 there."""
    hosts = [h for h in topo.hosts(4) if h.name in ("h003", "h004")]
    return accounts.ensure(hosts)


def staging_in_account_b(external_id: str):
    def change(d):
        d["aws"]["role"] = {"arn": accounts.ROLE_B, "external_id": external_id}
        d["instances"]["tags"] = {"Stack": "app", "Deployment": accounts.B_DEPLOYMENT}
        d["bastion"] = {"host": topo.BASTION_ADDR}
        d["load_balancers"] = []
        for key in ("autoscaling_group", "smoke", "personal", "queue"):
            d.pop(key, None)
    return change


def test_a_sha_is_promoted_across_accounts_with_each_environments_own_credentials(healthy_fleet, account_b, tmp_path):
    with AwsGate(upstream=topo.MOTO_ENDPOINT) as gate:
        inv = tmp_path / "inv"
        f.write_inventory(inv, lambda d: (staging_in_account_b(accounts.EXTERNAL_ID)(d), d["aws"].update(endpoint_url=gate.url)),
                          name="staging")
        f.write_inventory(inv, lambda d: d.update(require_success_in="staging"), name="prod")
        sha = origin.add_commit(topo.ORIGIN, f"accounts {time.time_ns()}", branch=f"accounts-{time.time_ns()}")
        before = f.snapshot()
        refused = f.fab("deploy", "--env=prod", "--yes", f"--ref={sha}", inventories=inv, env={"ROLLOUT_USER": "ci:42"})
        assert refused.returncode == 8 and "no successful rollout in staging" in one_line(refused), refused.stderr
        assert f.snapshot() == before
        staged = f.fab("deploy", "--env=staging", "--yes", f"--ref={sha}", inventories=inv, env={"ROLLOUT_USER": "ci:42"})
        assert staged.returncode == 0, staged.stdout + staged.stderr
        assert {f.checked_out("h003"), f.checked_out("h004")} == {sha}
        assert f.checked_out("h001") != sha
        promoted = f.fab("deploy", "--env=prod", "--yes", f"--ref={sha}", inventories=inv, env={"ROLLOUT_USER": "ci:42"})
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        f.assert_fleet_serves(sha)
        assert gate.assumed and set(gate.assumed) == {(accounts.ROLE_B, "rollout-ci-42")}
    # The staging run is recorded in account B's table only: prod read it there, with staging's role.
    runs_b = accounts.client("dynamodb").query(TableName="rollout-state", KeyConditionExpression="pk = :p",
                                               ExpressionAttributeValues={":p": {"S": "env#staging"}})["Items"]
    runs_a = f.aws("dynamodb").query(TableName="rollout-state", KeyConditionExpression="pk = :p",
                                     ExpressionAttributeValues={":p": {"S": "env#staging"}})["Items"]
    assert any(i["sk"]["S"].startswith("run#") and sha in json.dumps(i) for i in runs_b), runs_b
    assert not any(sha in json.dumps(i) for i in runs_a), runs_a  # other tests deploy an env named staging in account A


def test_stack_and_account_problems_are_refused_with_distinct_codes_and_touch_nothing(fleet, account_b, tmp_path):
    with AwsGate(upstream=topo.MOTO_ENDPOINT, stack_status={"rollout-sandbox": "UPDATE_IN_PROGRESS"}) as gate:
        cases = [
            ("missing stack", write_stack_inventory(tmp_path / "a", lambda d: d.update(stack="no-such-stack")), "sandbox-stack",
             8, ["stack no-such-stack does not exist in eu-west-1"]),
            ("stack updating", write_stack_inventory(tmp_path / "b", lambda d: d["aws"].update(endpoint_url=gate.url)),
             "sandbox-stack", 20, ["stack rollout-sandbox is UPDATE_IN_PROGRESS", "wait until CloudFormation finishes"]),
            ("role denied", f.write_inventory(tmp_path / "c", lambda d: (staging_in_account_b("wrong-id")(d),
                                                                          d["aws"].update(endpoint_url=gate.url))),
             "sandbox", 5, [f"cannot assume role {accounts.ROLE_B} (AccessDenied)", "external_id"]),
        ]
        codes = set()
        for what, inv, env, code, words in cases:
            before = f.snapshot()
            done = f.fab("deploy", f"--env={env}", "--yes", inventories=inv)
            assert done.returncode == code, (what, done.stdout + done.stderr)
            line = one_line(done)
            for w in words:
                assert w in line, (what, line)
            assert f.snapshot() == before, what
            codes.add(done.returncode)
        assert len(codes) == 3


def test_recover_restores_the_fleet_while_the_stack_is_broken(healthy_fleet, tmp_path):
    # A deploy dies mid-batch; then a stack update fails. Deploys are refused (20), but recover,
    # whose job is to put the fleet back, reads the stack all the same.
    with AwsGate(upstream=topo.MOTO_ENDPOINT) as gate:
        inv = write_stack_inventory(tmp_path / "inv", lambda d: d["aws"].update(endpoint_url=gate.url))
        before = f.snapshot()
        # --force: the fleet already runs main, and a deploy leaves converged hosts alone
        crashed = f.fab("deploy", "--env=sandbox-stack", "--yes", "--force", inventories=inv,
                        env={"ROLLOUT_CRASH_AT": "after-deregister"})
        assert crashed.returncode == -9, crashed.stdout + crashed.stderr
        gate.stack_status["rollout-sandbox"] = "UPDATE_ROLLBACK_FAILED"
        refused = f.fab("deploy", "--env=sandbox-stack", "--yes", inventories=inv)
        assert refused.returncode == 20, refused.stdout + refused.stderr
        rec = f.fab("recover", "--env=sandbox-stack", "--force", inventories=inv)
        assert rec.returncode == 0, rec.stdout + rec.stderr
    assert f.snapshot() == before
    assert f.state("lock") is None and f.state("active") is None
