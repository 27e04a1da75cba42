"""The floor: what any rollout built on the required stack pays on this machine, whatever it does itself.

Measures, each the median of --runs:
- the interpreter's start (`python -c pass`);
- importing the required stack in a new process: Fabric (with Invoke and paramiko), boto3,
  tenacity, and the inventory's pydantic and PyYAML;
- making, in a new process, the AWS clients that a deploy to the sandbox with the classic ELB
  needs (ec2, dynamodb, elb, autoscaling);
- one AWS request against the sandbox's AWS (DynamoDB GetItem);
- with rollout's own adapter (strict host keys): the bastion connection, then --hosts host
  connections through it side by side, then one `true` on each, side by side;
- the physical limit (per batch, the slowest host's reload until ready, from the app's own log;
  with batch 1 the summed reload) and rollout's whole command, from real deploys of a fresh
  commit with the classic ELB only, as compare.py runs them (--batch, default 1).

Then adds up, for the same deploy, the least any such tool could take with rollout's safety:
start, imports, clients, discovery (2 requests), the connections, one remote read per host
(refusing before anything changes), the lock, journal and processes (6 requests), and per
batch a journal record, deregister, register and one health read (4 requests), one remote
command and the batch's slowest reload. What it leaves out (JSON parsing beyond the clients, Python's own
work per call, git's fetch, draining and health checks) makes it lower than any real run:
a target below it cannot be met here by any change to rollout.

    .venv/bin/python benchmarks/floor.py [--hosts 8] [--batch 1] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common, compare  # noqa: E402
from sandbox import fleet, topology as topo  # noqa: E402

PYTHON = str(common.ROOT / ".venv/bin/python")
IMPORTS = "import fabric, boto3, tenacity, pydantic, yaml"
CLIENTS = f"""
import time, boto3
{IMPORTS}
t = time.perf_counter()
s = boto3.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
for name in ("ec2", "dynamodb", "elb", "autoscaling"):
    s.client(name, endpoint_url="http://127.0.0.1:1")
print(time.perf_counter() - t)
"""
# Requests no rollout with a lock, a journal and suspended processes can skip (see the docstring).
FIXED_REQUESTS = 2 + 6
PER_BATCH_REQUESTS = 4


def wall(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - t


def median_of(runs: int, fn) -> float:
    return statistics.median(fn() for _ in range(runs))


def aws_request() -> float:
    ddb = common.aws("dynamodb")
    key = {"pk": {"S": "env#floor"}, "sk": {"S": "none"}}
    ddb.get_item(TableName="rollout-state", Key=key)  # connection and client warm
    t = time.perf_counter()
    ddb.get_item(TableName="rollout-state", Key=key)
    return time.perf_counter() - t


def ssh(hosts: list) -> tuple[float, float, float, float]:
    """(bastion, hosts side by side, `true` on each side by side, `true` on one), seconds, with rollout's Fleet."""
    from rollout.adapters.ssh import Fleet

    f = Fleet(bastion=topo.BASTION_ADDR, bastion_port=22, bastion_user="deploy", user="deploy", port=22,
              key=topo.DEPLOY_KEY, known_hosts=topo.KNOWN_HOSTS)
    try:
        t = time.perf_counter()
        f.open_bastion()
        b = time.perf_counter()
        f.connect([h.address for h in hosts])
        c = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            list(pool.map(lambda h: f.run(h.address, "true"), hosts))
        d = time.perf_counter()
        f.run(hosts[0].address, "true")
        return b - t, c - b, d - c, time.perf_counter() - d
    finally:
        f.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--batch", default="1", help="as fab deploy --batch")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    fleet.up(hosts=args.hosts, quiet=True)
    hosts = topo.hosts(args.hosts)
    start = median_of(args.runs, lambda: wall([PYTHON, "-c", "pass"]))
    imports = median_of(args.runs, lambda: wall([PYTHON, "-c", IMPORTS])) - start
    clients = median_of(args.runs, lambda: float(subprocess.run([PYTHON, "-c", CLIENTS], check=True, capture_output=True,
                                                                text=True).stdout))
    request = median_of(max(args.runs, 20), aws_request)
    links = [ssh(hosts) for _ in range(args.runs)]
    bastion, connect, command, one = (statistics.median(x[i] for x in links) for i in range(4))
    with tempfile.TemporaryDirectory() as tmp:
        common.zero_draining()
        inv = compare.elb_only_inventory(Path(tmp))
        data = yaml.safe_load((inv / "sandbox.yml").read_text())
        (inv / "sandbox.yml").write_text(yaml.safe_dump({**data, "batch": args.batch}))
        deploys = [common.deploy(hosts, inv, Path(tmp) / "r.json") for _ in range(args.runs)]
    batches = [limit_of(d) for d in deploys]
    limit = statistics.median(b for _, b in batches)
    count = batches[0][0]
    rollout = statistics.median(d["wall"] for d in deploys)
    first_out = statistics.median(d["first_deregistration"] for d in deploys)
    n = args.hosts
    before = start + imports + clients + 2 * request + bastion + connect + command
    fixed = before + (FIXED_REQUESTS - 2) * request
    floor = fixed + count * (PER_BATCH_REQUESTS * request + one) + limit
    print(f"floor: {n} hosts, --batch={args.batch} ({count} batches), classic ELB, median of {args.runs}"
          f" (each AWS request of {max(args.runs, 20)})")
    for label, value in (("interpreter start", start), ("imports of the required stack", imports),
                         ("AWS clients (ec2, dynamodb, elb, autoscaling)", clients), ("one AWS request", request),
                         ("bastion connection", bastion), (f"{n} host connections, side by side", connect),
                         ("one command on each host, side by side", command), ("one command on one host", one)):
        print(f"  {label:48} {value:7.3f}s")
    print(f"  {'physical limit (slowest reload per batch)':48} {limit:7.3f}s")
    print(f"  {'floor before the first host leaves service':48} {before:7.3f}s   (rollout: {first_out:.3f}s)")
    print(f"  {'floor of the whole command':48} {floor:7.3f}s   (fixed {fixed:.3f}s + per batch"
          f" {PER_BATCH_REQUESTS * request + one:.3f}s + the limit)")
    print(f"  {'rollout, whole command':48} {rollout:7.3f}s   ({rollout - floor:+.3f}s over the floor)")
    print(f"  floor / physical limit {floor / limit:5.2f}   (rollout {rollout / limit:.2f})")
    if count == n:
        print(f"  floor overhead per host {(floor - limit) / n:6.3f}s   (25x below Ansible+Mitogen needs theirs at"
              f" {25 * (floor - limit) / n:.2f}s or more; rollout's is {(rollout - limit) / n:.3f}s)")


def limit_of(deploy: dict) -> tuple[int, float]:
    """(batches, the sum over batches of the slowest host's reload until ready) of one deploy."""
    batch_of = {h["name"]: h["batch"] for h in deploy["doc"]["hosts"]}
    slowest: dict[int, float] = {}
    for name, seconds in deploy["reloads"].items():
        slowest[batch_of[name]] = max(slowest.get(batch_of[name], 0.0), seconds)
    return len(slowest), sum(slowest.values())


if __name__ == "__main__":
    main()
