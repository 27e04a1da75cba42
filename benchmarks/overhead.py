"""Orchestrator overhead of one rollout on the sandbox: 8 hosts, batch 1, draining delays 0.

Prints total time, the app's own reload-until-ready time (from the Node primary's log),
overhead per host, time out of service, bastion TCP connections and AWS API calls.

    .venv/bin/python benchmarks/overhead.py [--hosts 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import fleet, origin, topology as topo  # noqa: E402

BASTION_LOG = topo.SSHD_DIR / topo.BASTION_NS / "sshd.log"
ROLL = re.compile(r"roll finished: \d+ worker\(s\) replaced in (\d+) ms")


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


def inventory(directory: Path) -> Path:
    data = yaml.safe_load((ROOT / "inventories" / "sandbox.yml").read_text())
    for lb in data["load_balancers"]:
        if lb["kind"] == "haproxy":
            lb["drain_timeout"] = 0
    data.pop("slack", None)
    (directory / "sandbox.yml").write_text(yaml.safe_dump(data))
    return directory


def roll_times(hosts: list, since: dict[str, int]) -> list[float]:
    """Seconds each host's primary took from SIGHUP to all workers replaced, from its log."""
    out = []
    for h in hosts:
        log = (h.data_dir / "log" / "app.log").read_text()[since[h.name]:]
        found = ROLL.findall(log)
        if not found:
            raise SystemExit(f"{h.name}: no 'roll finished' line in its app log")
        out.append(int(found[-1]) / 1000)
    return out


def accepted(text: str) -> int:
    return text.count("Accepted publickey for deploy")


def one_run(hosts: list, inv: Path, report: Path) -> dict:
    sha = origin.add_commit(topo.ORIGIN, f"bench {time.time_ns()}")
    since = {h.name: (h.data_dir / "log" / "app.log").stat().st_size for h in hosts}
    log_before = BASTION_LOG.read_text()
    env = {**os.environ, "ROLLOUT_INVENTORIES": str(inv), "AWS_EC2_METADATA_DISABLED": "true"}
    env.pop("SLACK_BOT_TOKEN", None)
    t = time.monotonic()
    done = subprocess.run([str(ROOT / ".venv/bin/fab"), "deploy", "--env=sandbox", "--yes", f"--report={report}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    wall = time.monotonic() - t
    if done.returncode != 0:
        raise SystemExit(f"deploy failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    doc = json.loads(report.read_text())
    assert doc["sha"] == sha
    reloads = roll_times(hosts, since)
    oos = [h["out_of_service_seconds"] for h in doc["hosts"]]
    total = doc["duration_seconds"]
    return {
        "wall": wall,
        "total": total,
        "reload": sum(reloads),
        "overhead_per_host": (total - sum(reloads)) / len(hosts),
        "oos_median": statistics.median(oos),
        "oos_max": max(oos),
        "bastion_connections": accepted(BASTION_LOG.read_text()[len(log_before):]),
        "aws_calls": doc["aws_calls"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    fleet.up(hosts=args.hosts, quiet=True)
    zero_draining()
    hosts = topo.hosts(args.hosts)
    with tempfile.TemporaryDirectory() as tmp:
        inv = inventory(Path(tmp))
        runs = [one_run(hosts, inv, Path(tmp) / f"report{i}.json") for i in range(args.runs)]
    print(f"rollout overhead: {args.hosts} hosts, batch 1, draining delays 0, {args.runs} runs (median)")
    rows = [
        ("command wall time", "wall", "s"),
        ("rollout total (report)", "total", "s"),
        ("app reload until ready, summed", "reload", "s"),
        ("overhead per host", "overhead_per_host", "s"),
        ("out of service per host, median", "oos_median", "s"),
        ("out of service per host, max", "oos_max", "s"),
        ("bastion TCP connections", "bastion_connections", ""),
        ("AWS API calls", "aws_calls", ""),
    ]
    for label, key, unit in rows:
        vals = [r[key] for r in runs]
        med = statistics.median(vals)
        shown = f"{med:.3f}{unit}" if unit else f"{med:g}"
        print(f"  {label:<34} {shown:>10}   (runs: {', '.join(f'{v:.3f}' if unit else str(v) for v in vals)})")


if __name__ == "__main__":
    main()
