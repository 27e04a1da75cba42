"""Test-side eyes and hands on the sandbox fleet, independent of rollout's own code.

Observers read moto with boto3, HAProxy through its admin socket, versions with curl
from inside the bastion namespace, and checkouts straight from the hosts' files.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import boto3
import yaml

from rollout.adapters.waiting import WaitTimeout, poll

from sandbox import haproxy as sandbox_haproxy, topology as topo

ROOT = Path(__file__).resolve().parents[1]
FAB = str(Path(sys.executable).parent / "fab")
INVENTORY = yaml.safe_load((ROOT / "inventories" / "sandbox.yml").read_text())


ALL = set("Launch Terminate HealthCheck ReplaceUnhealthy AZRebalance AlarmNotification ScheduledActions AddToLoadBalancer".split())


def aws(service: str):
    return boto3.client(service, endpoint_url=topo.MOTO_ENDPOINT, region_name="eu-west-1",
                        aws_access_key_id="sandbox", aws_secret_access_key="sandbox")


def instances() -> dict[str, str]:
    """Instance id -> address of the sandbox hosts, from EC2 directly."""
    res = aws("ec2").describe_instances(Filters=[{"Name": "tag:Deployment", "Values": ["sandbox"]},
                                                 {"Name": "tag:Stack", "Values": ["app"]},
                                                 {"Name": "instance-state-name", "Values": ["running"]}])
    return {i["InstanceId"]: i["PrivateIpAddress"] for r in res["Reservations"] for i in r["Instances"]}


def elb_members() -> dict[str, str]:
    states = aws("elb").describe_instance_health(LoadBalancerName="sandbox-elb")["InstanceStates"]
    return {s["InstanceId"]: s["State"] for s in states}


def tg_members() -> dict[str, str]:
    elbv2 = aws("elbv2")
    arn = elbv2.describe_target_groups(Names=["sandbox-tg"])["TargetGroups"][0]["TargetGroupArn"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}


def haproxy(command: str) -> str:
    """HAProxy's answer to a runtime API command, through the sandbox's admin socket."""
    return sandbox_haproxy.admin(command)


def haproxy_states(backend: str = "app") -> dict[str, str]:
    """Server address -> UP / DOWN / MAINT / DRAIN as HAProxy's runtime API reports it."""
    lines = haproxy(f"show servers state {backend}").splitlines()
    header = next(ln for ln in lines if ln.startswith("#")).lstrip("# ").split()
    out = {}
    for ln in lines:
        if ln and ln[0].isdigit() and len(ln.split()) > 6:
            row = dict(zip(header, ln.split()))
            admin, op = int(row["srv_admin_state"]), int(row["srv_op_state"])
            out[row["srv_addr"]] = "MAINT" if admin & 0x67 else "DRAIN" if admin & 0x18 else ("UP" if op == 2 else "DOWN")
    return out


def suspended() -> set[str]:
    g = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["sandbox-asg"])["AutoScalingGroups"][0]
    return {p["ProcessName"] for p in g["SuspendedProcesses"]}


def state(sk: str, env: str = "sandbox") -> dict | None:
    """An item of rollout's state table (lock, pause, active), read directly."""
    item = aws("dynamodb").get_item(TableName="rollout-state", Key={"pk": {"S": f"env#{env}"}, "sk": {"S": sk}},
                                    ConsistentRead=True).get("Item")
    return item


def served_version(address: str, port: int = topo.APP_PORT) -> str | None:
    """What the app on `address` answers on /version, asked from inside the bastion namespace."""
    assert Path(f"/run/netns/{topo.BASTION_NS}").exists(), "bastion namespace is gone"
    assert address.startswith("198.18.1."), address
    out = subprocess.run(["nsenter", f"--net=/run/netns/{topo.BASTION_NS}", "curl", "-s", "--max-time", "3",
                          f"http://{address}:{int(port)}/version"], capture_output=True, text=True, timeout=10)
    return out.stdout.strip() or None


def checked_out(name: str) -> str:
    host = topo.host_by_name(name)
    return subprocess.run(["git", "-c", "safe.directory=*", "-C", str(host.app_dir), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()


def host_names() -> list[str]:
    return [h.name for h in topo.hosts(len(instances()))]


def snapshot() -> dict:
    """Everything a rollout could change, to compare before and after."""
    return {
        "elb": elb_members(),
        "tg": tg_members(),
        "haproxy": haproxy_states(),
        "suspended": suspended(),
        "checkouts": {n: checked_out(n) for n in host_names()},
        "primaries": {n: topo.host_by_name(n).app_pid_file.read_text().strip() for n in host_names()},
    }


def write_inventory(directory: Path, change=None, name: str = "sandbox", base: dict = INVENTORY) -> Path:
    """A copy of the sandbox inventory (or of `base`), changed by `change(data)`, as DIRECTORY/NAME.yml."""
    data = copy.deepcopy(base)
    if change:
        change(data)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return directory


def fab_env(env: dict | None = None, inventories: Path | None = None) -> dict:
    """The environment `fab` runs with in tests: no Slack or AWS settings leak in from outside."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AWS_", "ROLLOUT_"))}
    # Never let boto3 probe the instance-metadata address from a test: only loopback and the sandbox.
    full_env["AWS_EC2_METADATA_DISABLED"] = "true"
    if inventories is not None:
        full_env["ROLLOUT_INVENTORIES"] = str(inventories)
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    return full_env


def fab(*args: str, inventories: Path | None = None, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run the real `fab` command as an operator would, without a terminal."""
    return subprocess.run([FAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=fab_env(env, inventories), stdin=subprocess.DEVNULL)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll `predicate` until it returns something truthy; return it, or fail the test after `timeout` s."""
    try:
        return poll(predicate, bool, timeout=timeout, interval=interval, max_interval=max(interval, 0.2), what=what)
    except WaitTimeout:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None


def drain_queues(*names: str) -> dict[str, str]:
    """Empty these SQS queues by hand (SQS allows one purge a minute); return name -> url."""
    sqs = aws("sqs")
    urls = {n: sqs.get_queue_url(QueueName=n)["QueueUrl"] for n in names}
    for url in urls.values():
        for _ in range(50):
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return urls


def clear_state(*items: str, env: str = "sandbox") -> None:
    for sk in items:
        aws("dynamodb").delete_item(TableName="rollout-state", Key={"pk": {"S": f"env#{env}"}, "sk": {"S": sk}})


def assert_fleet_serves(sha: str) -> None:
    """Every host has `sha` checked out and serves it, and is in service in every balancer."""
    ids = instances()
    assert {n: checked_out(n) for n in host_names()} == {n: sha for n in host_names()}
    assert {a: served_version(a) for a in ids.values()} == {a: sha for a in ids.values()}
    assert elb_members() == {i: "InService" for i in ids}
    assert tg_members() == {i: "healthy" for i in ids}
    assert haproxy_states() == {a: "UP" for a in ids.values()}


def local_changes(name: str) -> str:
    """`git status --porcelain` of a host's checkout, read as the deploy user."""
    return subprocess.run(["runuser", "-u", topo.DEPLOY_USER, "--", "git", "-C", str(topo.host_by_name(name).app_dir), "status",
                           "--porcelain", "--untracked-files=all"], capture_output=True, text=True, check=True, timeout=30).stdout


def restore_baseline() -> None:
    """Whatever a test or an operator left behind: no pause, no lock, no unfinished run, nothing suspended,
    no local changes in a checkout, all in service."""
    for name in host_names():
        if local_changes(name):
            subprocess.run(["runuser", "-u", topo.DEPLOY_USER, "--", "sh", "-c", "git reset -q --hard && git clean -fdq"],
                           cwd=topo.host_by_name(name).app_dir, check=True, timeout=30)
    clear_state("pause")
    if state("active"):
        done = fab("recover", "--env=sandbox", "--force")
        assert done.returncode == 0, done.stdout + done.stderr
    clear_state("lock")
    if suspended():
        aws("autoscaling").resume_processes(AutoScalingGroupName="sandbox-asg")
    ids = instances()
    if any(s != "UP" for s in haproxy_states().values()) or elb_members() != {i: "InService" for i in ids} \
            or tg_members() != {i: "healthy" for i in ids} or len({checked_out(n) for n in host_names()}) != 1:
        done = fab("deploy", "--env=sandbox", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
