"""What the sandbox benchmarks share: zero draining delays, an inventory, timing one real deploy."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import time
from datetime import datetime
from pathlib import Path

import boto3
import yaml

from sandbox import origin, topology as topo

ROOT = Path(__file__).resolve().parents[1]
BASTION_LOG = topo.SSHD_DIR / topo.BASTION_NS / "sshd.log"
ROLL = re.compile(r"roll finished: \d+ worker\(s\) replaced in (\d+) ms")
# rollout's plain output: `2026-11-30T06:05:58.367Z deregister h001, h002 (0.02s)`, printed once the batch is out.
DEREGISTERED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z deregister ", re.M)


def aws(service):
    return boto3.client(service, endpoint_url=topo.MOTO_ENDPOINT, region_name="eu-west-1",
                        aws_access_key_id="sandbox", aws_secret_access_key="sandbox")


def zero_draining() -> None:
    """Draining delays 0 on the ELB and the target group."""
    aws("elb").modify_load_balancer_attributes(
        LoadBalancerName="sandbox-elb",
        LoadBalancerAttributes={"ConnectionDraining": {"Enabled": False, "Timeout": 0}})
    elbv2 = aws("elbv2")
    arn = elbv2.describe_target_groups(Names=["sandbox-tg"])["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}])


def inventory(directory: Path, batch: str = "1") -> Path:
    """The sandbox inventory with HAProxy's drain timeout 0, no Slack, and the given batch."""
    data = yaml.safe_load((ROOT / "inventories" / "sandbox.yml").read_text())
    for lb in data["load_balancers"]:
        if lb["kind"] == "haproxy":
            lb["drain_timeout"] = 0
    data.pop("slack", None)
    data["batch"] = batch
    (directory / "sandbox.yml").write_text(yaml.safe_dump(data))
    return directory


def reload_times(hosts: list, since: dict[str, int]) -> dict[str, float]:
    """Seconds each host's primary took from SIGHUP to all workers replaced, from its own log."""
    out = {}
    for h in hosts:
        found = ROLL.findall((h.data_dir / "log" / "app.log").read_text()[since[h.name]:])
        if not found:
            raise SystemExit(f"{h.name}: no 'roll finished' line in its app log")
        out[h.name] = int(found[-1]) / 1000
    return out


def first_deregistration(stdout: str, started: float) -> float:
    """Seconds from `started` (epoch) to the end of the first batch's deregistration, from rollout's timestamped lines."""
    found = DEREGISTERED.search(stdout)
    if not found:
        raise SystemExit(f"no deregister line in rollout's output:\n{stdout[-2000:]}")
    return datetime.fromisoformat(found.group(1) + "+00:00").timestamp() - started


def compiled() -> None:
    """Bytecode for rollout as an installed package has it (pip compiles at install; an editable
    install where PYTHONDONTWRITEBYTECODE is set would compile every module at each start)."""
    subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "compileall", "-q", "rollout", "fabfile.py"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def deploy(hosts: list, inv: Path, report: Path) -> dict:
    """Deploy a new commit with the real `fab`; return the report plus what was measured around it."""
    compiled()
    sha = origin.add_commit(topo.ORIGIN, f"bench {time.time_ns()}")
    since = {h.name: (h.data_dir / "log" / "app.log").stat().st_size for h in hosts}
    log_before = BASTION_LOG.read_text()
    env = {**os.environ, "ROLLOUT_INVENTORIES": str(inv), "AWS_EC2_METADATA_DISABLED": "true"}
    env.pop("SLACK_BOT_TOKEN", None)
    t, started = time.monotonic(), time.time()
    done = subprocess.run([str(ROOT / ".venv/bin/fab"), "deploy", "--env=sandbox", "--yes", f"--report={report}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1200)
    wall = time.monotonic() - t
    if done.returncode != 0:
        raise SystemExit(f"deploy failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    doc = json.loads(report.read_text())
    assert doc["sha"] == sha
    return {
        "doc": doc,
        "wall": wall,
        "first_deregistration": first_deregistration(done.stdout, started),
        "reloads": reload_times(hosts, since),
        "bastion_connections": BASTION_LOG.read_text()[len(log_before):].count("Accepted publickey for deploy"),
        # ru_maxrss of waited-for children, in KiB on Linux: the controller is the only one.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
