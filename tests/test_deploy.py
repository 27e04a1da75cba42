"""The rolling deploy, end to end on the sandbox: real sshd, Node cluster, moto, HAProxy."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from xml.etree import ElementTree

import pytest

from sandbox import topology as topo
from tests import awsops
from tests import fleetctl as f
from tests.fleetctl import ALL, assert_fleet_serves
from tests.instruments.load import LoadGenerator
from tests.slackstub import SlackStub

pytestmark = pytest.mark.fleet




def only_balancer(kind):
    def change(data):
        data["load_balancers"] = [lb for lb in data["load_balancers"] if lb["kind"] == kind]
    return change


@pytest.mark.parametrize("kind", ["elb", "alb", "haproxy"])
def test_deploy_through_each_balancer_kind_updates_every_host(kind, healthy_fleet, new_commit, tmp_path):
    asg = f.aws("autoscaling")
    asg.suspend_processes(AutoScalingGroupName="sandbox-asg", ScalingProcesses=["AZRebalance"])
    try:
        inv = f.write_inventory(tmp_path / "inv", only_balancer(kind))
        report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
        done = f.fab("deploy", "--env=sandbox", "--yes", f"--report={report}", f"--junit={junit}", inventories=inv)
        assert done.returncode == 0, done.stdout + done.stderr
        assert_fleet_serves(new_commit)
        suite = ElementTree.fromstring(junit.read_text())
        assert suite.get("tests") == str(len(f.instances())) and suite.get("failures") == "0"
        # Someone else's suspension stays; everything we suspended is resumed.
        assert f.suspended() == {"AZRebalance"}
        doc = json.loads(report.read_text())
        assert doc["result"] == "succeeded" and doc["sha"] == new_commit
        assert {h["result"] for h in doc["hosts"]} == {"updated"} and len(doc["hosts"]) == len(f.instances())
        assert all(h["new_version"] == new_commit and h["out_of_service_seconds"] > 0 for h in doc["hosts"])
        assert doc["suspended_processes"] and "AZRebalance" not in doc["suspended_processes"]
        assert doc["bastion_connections"] == 1
    finally:
        asg.resume_processes(AutoScalingGroupName="sandbox-asg", ScalingProcesses=["AZRebalance"])


def test_batches_by_percentage_keep_capacity_and_deploy_everything(healthy_fleet, new_commit, tmp_path):
    done = f.fab("deploy", "--env=sandbox", "--yes", "--batch=50%")
    assert done.returncode == 0, done.stdout + done.stderr
    batches = [ln.split(": ", 1)[1] for ln in done.stdout.splitlines() if " batch " in ln and "(deploy):" in ln]
    assert len(batches) == 2 and all(len(b.split(", ")) == 2 for b in batches), done.stdout
    # Without a terminal: plain lines, each with a UTC timestamp, no live view, no prompt.
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", ln) for ln in done.stdout.splitlines()), done.stdout
    assert "\x1b[" not in done.stdout and "[y/N]" not in done.stdout
    assert_fleet_serves(new_commit)


def test_zero_downtime_under_load_through_haproxy(healthy_fleet, new_commit):
    url = f"http://{topo.BASTION_ADDR}:{topo.HAPROXY_FRONTEND_PORT}/version"
    with LoadGenerator(url, duration=60, keepalive_workers=4, fresh_workers=4) as load:
        f.wait_until(lambda: load.elapsed() >= 1.0, 5, "the load to start")
        done = f.fab("deploy", "--env=sandbox", "--yes")
        time.sleep(0.5)
    result = load.result()
    assert done.returncode == 0, done.stdout + done.stderr
    assert result.failures == 0, result.summary()
    assert result.rate >= 500, result.summary()
    assert result.keepalive_requests > 0 and result.fresh_requests > 0, result.summary()
    assert new_commit in result.versions and len(result.versions) == 2, result.summary()
    assert_fleet_serves(new_commit)


def test_commit_whose_app_does_not_start_stops_at_the_first_batch_and_restores_the_host(healthy_fleet, tmp_path):
    before = f.snapshot()
    good = before["checkouts"]["h001"]
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    # A short health timeout: the broken commit's workers never listen, so the rollout waits all of it.
    inv = f.write_inventory(tmp_path / "inv", lambda d: d["health"].update(timeout=5))
    done = f.fab("deploy", "--env=sandbox", "--yes", "--ref=broken", f"--report={report}", f"--junit={junit}", inventories=inv)
    assert done.returncode == 9, done.stdout + done.stderr
    cases = {c.get("name"): c for c in ElementTree.fromstring(junit.read_text()).iter("testcase")}
    assert cases["h001"].find("failure") is not None and cases["h002"].find("skipped") is not None
    err = done.stderr.strip().splitlines()[-1]
    assert "h001" in err and "health" in err and "returned to its previous version" in err
    # The failed host went back to its previous version and into service; the others were never touched.
    assert_fleet_serves(good)
    assert {n: topo.host_by_name(n).app_pid_file.read_text().strip() for n in ("h002", "h003", "h004")} == \
        {n: before["primaries"][n] for n in ("h002", "h003", "h004")}
    assert f.suspended() == before["suspended"] == set()
    doc = json.loads(report.read_text())
    assert doc["result"] == "rolled_back" and doc["exit_code"] == 9
    assert [h["result"] for h in doc["hosts"]] == ["failed, restored", "pending", "pending", "pending"]
    assert "health" in doc["hosts"][0]["error"]


def test_dry_run_prints_the_plan_and_changes_nothing(healthy_fleet, new_commit):
    before = f.snapshot()
    done = f.fab("deploy", "--env=sandbox", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    for expected in ("Instances, in order", "Batches", "Load balancers", "sandbox-elb", "sandbox-tg", "Estimated duration",
                     "sandbox-asg", new_commit, "Dry run: nothing was changed"):
        assert expected in done.stdout
    assert f.snapshot() == before
    # Without SSH the plan comes from AWS alone: the bastion is neither looked up nor connected to.
    sshd_log, recording = topo.SSHD_DIR / topo.BASTION_NS / "sshd.log", awsops.Recording(topo.MOTO_RECORDING)
    since, mark = sshd_log.stat().st_size, recording.mark()
    aws_only = f.fab("deploy", "--env=sandbox", "--dry-run", "--no-ssh")
    assert aws_only.returncode == 0, aws_only.stdout + aws_only.stderr
    assert "sandbox-elb" in aws_only.stdout and "Dry run: nothing was changed" in aws_only.stdout
    assert "Accepted publickey" not in sshd_log.read_text()[since:]
    assert [r for r in recording.requests_since(mark) if "ec2:DescribeInstances" in r] == [{"ec2:DescribeInstances"}]
    assert f.snapshot() == before


def test_interrupt_mid_rollout_restores_processes_and_exits_130(healthy_fleet, new_commit):
    proc = subprocess.Popen([f.FAB, "deploy", "--env=sandbox", "--yes"], cwd=f.ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        f.wait_until(lambda: f.suspended() == ALL or proc.poll() is not None, 60, "the rollout to suspend the processes")
        assert f.suspended() == ALL, "the rollout never suspended the processes"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "interrupted by SIGINT" in err
    assert f.suspended() == set()
    # The fleet is consistent: every host in service, each on the old or the new commit.
    ids = f.instances()
    assert f.elb_members() == {i: "InService" for i in ids}
    assert f.haproxy_states() == {a: "UP" for a in ids.values()}
    versions = {a: f.served_version(a) for a in ids.values()}
    assert new_commit in versions.values() and len(set(versions.values())) == 2, versions
    assert f.state("lock") is None and f.state("active") is None


def test_status_json_describes_every_instance(fleet):
    done = f.fab("status", "--env=sandbox", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    ids = f.instances()
    assert {h["instance_id"]: h["address"] for h in doc["hosts"]} == ids
    for h in doc["hosts"]:
        assert h["ssh"] == "ok" and h["health"] == 200 and h["version"] == f.served_version(h["address"])
        assert set(h["balancers"]) == {"elb:sandbox-elb", "alb:sandbox-tg", "haproxy:app"}
    assert doc["autoscaling_group"] == {"name": "sandbox-asg", "suspended_processes": sorted(f.suspended())}


def test_slack_hears_start_progress_and_end_without_the_token(healthy_fleet, new_commit, tmp_path):
    token = "xoxb-secret-token-never-printed"
    with SlackStub() as slack:
        inv = f.write_inventory(tmp_path / "inv", lambda d: d["slack"].update(api_url=slack.url))
        done = f.fab("deploy", "--env=sandbox", "--yes", inventories=inv, env={"SLACK_BOT_TOKEN": token})
    assert done.returncode == 0, done.stdout + done.stderr
    methods = [c["method"] for c in slack.calls]
    assert methods[0] == "chat.postMessage" and "chat.update" in methods and methods[-1] == "chat.postMessage"
    assert "deploying" in slack.texts()[0] and new_commit[:12] in slack.texts()[0]
    # Progress: the start message is updated as batches complete (each update may supersede a queued one).
    progress = [c["body"].get("text", "") for c in slack.calls if c["method"] == "chat.update" and "batch" in c["body"].get("text", "")]
    assert progress and all(t.startswith(slack.texts()[0]) for t in progress), slack.texts()
    assert all(re.search(r"batch (\d) of 4 done: \1 of 4 hosts updated$", t) for t in progress), progress
    assert "succeeded" in slack.texts()[-1]
    assert all(c["auth"] == f"Bearer {token}" for c in slack.calls)
    assert token not in done.stdout + done.stderr
    assert all(token not in c["raw"] for c in slack.calls)


def test_slack_failure_never_fails_the_deploy(healthy_fleet, new_commit, tmp_path):
    with SlackStub(fail=True) as slack:
        inv = f.write_inventory(tmp_path / "inv", lambda d: d["slack"].update(api_url=slack.url))
        done = f.fab("deploy", "--env=sandbox", "--yes", inventories=inv, env={"SLACK_BOT_TOKEN": "xoxb-x"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert slack.calls and "channel_not_found" in done.stderr
    assert_fleet_serves(new_commit)


def test_no_slack_token_means_no_slack_calls(healthy_fleet, new_commit, tmp_path):
    with SlackStub() as slack:
        inv = f.write_inventory(tmp_path / "inv", lambda d: d["slack"].update(api_url=slack.url))
        done = f.fab("deploy", "--env=sandbox", "--yes", inventories=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert slack.calls == []


def _alarm(name: str, enabled: bool) -> None:
    f.aws("cloudwatch").put_metric_alarm(
        AlarmName=name, ActionsEnabled=enabled, MetricName="HTTPCode_Backend_5XX", Namespace="AWS/ELB",
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
        AlarmActions=["arn:aws:sns:eu-west-1:123456789012:pager"])


def _actions_enabled(prefix: str) -> dict[str, bool]:
    alarms = f.aws("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    return {a["AlarmName"]: a["ActionsEnabled"] for a in alarms}


def test_alarm_actions_are_silenced_during_the_rollout_and_restored_exactly(healthy_fleet, new_commit, tmp_path):
    prefix = f"sandbox-{time.time_ns()}-"
    _alarm(prefix + "5xx", True)
    _alarm(prefix + "latency", False)  # someone else's decision: stays disabled
    seen: list[dict] = []
    inv = f.write_inventory(tmp_path / "inv", lambda d: d.update(alarms={"prefix": prefix}))
    report = tmp_path / "report.json"
    proc = subprocess.Popen([f.FAB, "deploy", "--env=sandbox", "--yes", f"--report={report}"], cwd=f.ROOT,
                            env=f.fab_env(inventories=inv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        seen.append(_actions_enabled(prefix))
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert {prefix + "5xx": False, prefix + "latency": False} in seen, "actions were never silenced during the rollout"
    assert _actions_enabled(prefix) == {prefix + "5xx": True, prefix + "latency": False}
    assert json.loads(report.read_text())["alarms_disabled"] == [prefix + "5xx"]


def test_post_deploy_commands_get_the_sha_and_a_failing_one_only_warns(healthy_fleet, new_commit, tmp_path):
    marker = tmp_path / "released"
    inv = f.write_inventory(tmp_path / "inv", lambda d: d.update(post_deploy=[
        f'echo "$DEPLOY_ENV $DEPLOY_SHA $DEPLOY_REF" > {marker}', "exit 3"]))
    done = f.fab("deploy", "--env=sandbox", "--yes", inventories=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert marker.read_text().split() == ["sandbox", new_commit, "main"]
    assert "post-deploy `exit 3` exited 3" in done.stdout
