"""Discovery and planning for 1,000 instances: `fab deploy --dry-run --no-ssh` against moto.

Runs its own moto server on a free loopback port (the sandbox is not needed, and no
host is contacted), creates 1,000 tagged instances behind a classic ELB and an ALB
target group in an Auto Scaling group, then times the dry run end to end, alternating
with a bare boto3 program (BARE: a new Python process, one paginated describe_instances
with the same filters) against the same server, and prints the difference of each pair.

    .venv/bin/python benchmarks/discovery.py [--instances 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import socket
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

from benchmarks import common  # noqa: E402
from rollout.adapters.waiting import WaitTimeout, poll  # noqa: E402

# A bare boto3 discovery, as a program of its own: the floor for `fab deploy --dry-run --no-ssh`.
BARE = """
import sys, boto3
flt = [{"Name": "tag:Deployment", "Values": ["bulk"]}, {"Name": "tag:Stack", "Values": ["app"]},
       {"Name": "instance-state-name", "Values": ["running"]}]
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="eu-west-1")
print(sum(len(r["Instances"]) for p in ec2.get_paginator("describe_instances").paginate(Filters=flt) for r in p["Reservations"]))
"""
CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_EC2_METADATA_DISABLED": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    try:
        poll(listening, bool, timeout=30, interval=0.1, what="moto listening")
        return proc
    except WaitTimeout:
        proc.kill()
        raise SystemExit(f"moto did not start; see {log}") from None


def populate(endpoint: str, count: int) -> None:
    kw = dict(endpoint_url=endpoint, region_name="eu-west-1", aws_access_key_id="bench", aws_secret_access_key="bench")
    ec2 = boto3.client("ec2", **kw)
    vpc = ec2.create_vpc(CidrBlock="198.19.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="198.19.0.0/20")["Subnet"]["SubnetId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ids = []
    tags = [{"Key": "Stack", "Value": "app"}, {"Key": "Deployment", "Value": "bulk"}]
    for i in range(0, count, 100):
        n = min(100, count - i)
        res = ec2.run_instances(ImageId=image, MinCount=n, MaxCount=n, SubnetId=subnet, InstanceType="t3.micro",
                                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        ids += [inst["InstanceId"] for inst in res["Instances"]]
    elb = boto3.client("elb", **kw)
    elb.create_load_balancer(LoadBalancerName="bulk-elb", Subnets=[subnet],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP", "InstancePort": 14000}])
    for i in range(0, len(ids), 100):
        elb.register_instances_with_load_balancer(LoadBalancerName="bulk-elb", Instances=[{"InstanceId": x} for x in ids[i:i + 100]])
    elbv2 = boto3.client("elbv2", **kw)
    tg = elbv2.create_target_group(Name="bulk-tg", Protocol="HTTP", Port=14000, VpcId=vpc, TargetType="instance")["TargetGroups"][0]
    for i in range(0, len(ids), 100):
        elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": x} for x in ids[i:i + 100]])
    asg = boto3.client("autoscaling", **kw)
    asg.create_launch_configuration(LaunchConfigurationName="bulk-lc", ImageId=image, InstanceType="t3.micro")
    asg.create_auto_scaling_group(AutoScalingGroupName="bulk-asg", LaunchConfigurationName="bulk-lc", MinSize=0,
                                  MaxSize=count + 10, DesiredCapacity=0, VPCZoneIdentifier=subnet)
    for i in range(0, len(ids), 20):
        asg.attach_instances(AutoScalingGroupName="bulk-asg", InstanceIds=ids[i:i + 20])
    boto3.client("dynamodb", **kw).create_table(
        TableName="rollout-state", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])


def make_repo(path: Path) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "--allow-empty", "-m", "x"], check=True, env=env)


def inventory(directory: Path, endpoint: str, repo: Path) -> None:
    key = directory / "id"
    key.write_text("")
    data = {
        "aws": {"region": "eu-west-1", "endpoint_url": endpoint},
        "instances": {"tags": {"Stack": "app", "Deployment": "bulk"}},
        "bastion": {"host": "198.18.0.10"},
        "ssh": {"user": "deploy", "key": str(key), "known_hosts": str(key)},
        "load_balancers": [{"kind": "elb", "name": "bulk-elb"}, {"kind": "alb", "target_group": "bulk-tg"}],
        "autoscaling_group": "bulk-asg",
        "batch": "10%",
        "app": {"repository": str(repo), "path": "/srv/app", "reload": {"signal": "HUP", "pid_file": "/srv/app.pid"}},
        "health": {"port": 14000},
    }
    (directory / "bulk.yml").write_text(yaml.safe_dump(data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port = free_port()
        moto = start_moto(port, tmp / "moto.log")
        try:
            endpoint = f"http://127.0.0.1:{port}"
            t = time.monotonic()
            populate(endpoint, args.instances)
            print(f"created {args.instances} instances, ELB, target group, ASG in moto: {time.monotonic() - t:.1f}s")
            make_repo(tmp / "repo")
            inventory(tmp, endpoint, tmp / "repo")
            env = {**os.environ, **CREDS, "ROLLOUT_INVENTORIES": str(tmp)}
            common.compiled()
            times, bare = [], []

            def timed(argv: list[str]) -> tuple[float, str]:
                t = time.monotonic()
                done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
                took = time.monotonic() - t
                if done.returncode != 0:
                    raise SystemExit(f"{argv[:3]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
                return took, done.stdout

            for run in range(args.runs):  # alternating, each going first in turn
                for which in (("fab", "bare") if run % 2 == 0 else ("bare", "fab")):
                    if which == "fab":
                        took, out = timed([str(ROOT / ".venv/bin/fab"), "deploy", "--env=bulk", "--dry-run", "--no-ssh"])
                        assert f"to {args.instances} hosts" in out, out[:500]
                        times.append(took)
                    else:
                        took, out = timed([sys.executable, "-c", BARE, endpoint])
                        assert out.strip() == str(args.instances), out
                        bare.append(took)
        finally:
            moto.kill()
    diffs = [a - b for a, b in zip(times, bare)]
    print(f"discovery and planning, {args.instances} instances, whole commands, {args.runs} alternating pairs:")
    print(f"  fab deploy --dry-run --no-ssh   median {statistics.median(times):6.2f}s   runs: {', '.join(f'{x:.2f}' for x in times)}")
    print(f"  bare boto3 describe_instances   median {statistics.median(bare):6.2f}s   runs: {', '.join(f'{x:.2f}' for x in bare)}")
    print(f"  rollout - bare, per pair        median {statistics.median(diffs):6.2f}s   pairs: {', '.join(f'{x:+.2f}' for x in diffs)}"
          "   target: <= 0.6 s")


if __name__ == "__main__":
    main()
