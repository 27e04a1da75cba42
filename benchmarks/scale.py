"""Scale: a rollout over 100 sandbox hosts at 10% batches, against its physical limit.

Prints the command's wall time and the rollout phase (rollout's own report, from the
lock to the end), each against the physical limit (per batch, the slowest host's
reload-until-ready from the app's own log, plus configured draining delays, which
are 0 here), the time from pressing Enter to the first batch being out of the
balancers, AWS API calls (with the same rollout on fewer hosts, to show they grow with
batches, not hosts), bastion TCP connections and the controller's peak RSS.

    .venv/bin/python benchmarks/scale.py [--hosts 100] [--batch 10%]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from sandbox import fleet, topology as topo  # noqa: E402


def measure(count: int, batch: str, tmp: Path) -> dict:
    fleet.up(hosts=count, quiet=True)
    common.zero_draining()
    hosts = topo.hosts(count)
    m = common.deploy(hosts, common.inventory(tmp, batch), tmp / f"report-{count}.json")
    doc = m["doc"]
    by_batch = defaultdict(list)
    names = {h["name"]: h for h in doc["hosts"]}
    for name, seconds in m["reloads"].items():
        by_batch[names[name]["batch"]].append(seconds)
    limit = sum(max(v) for v in by_batch.values())
    return {"hosts": count, "batches": len(by_batch), "total": doc["duration_seconds"], "wall": m["wall"],
            "limit": limit, "first_out": m["first_deregistration"], "aws_calls": doc["aws_calls"], "bastion": m["bastion_connections"], "rss": m["peak_rss_mb"],
            "oos_max": max(h["out_of_service_seconds"] for h in doc["hosts"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--batch", default="10%")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = measure(max(10, args.hosts // 5), args.batch, Path(tmp))
        big = measure(args.hosts, args.batch, Path(tmp))
    print(f"scale: {big['hosts']} hosts at --batch={args.batch} ({big['batches']} batches), draining delays 0")
    print(f"  command wall time                 {big['wall']:8.2f}s")
    print(f"  rollout phase (report)            {big['total']:8.2f}s")
    print(f"  physical limit                    {big['limit']:8.2f}s   (per batch: slowest reload until ready)")
    print(f"  ratio wall / limit                {big['wall'] / big['limit']:8.2f}    target <= 1.4")
    print(f"  ratio rollout phase / limit       {big['total'] / big['limit']:8.2f}    target <= 1.15")
    print(f"  time to the first deregistration  {big['first_out']:8.2f}s   (from the command's start to batch 1 out)")
    print(f"  longest time out of service       {big['oos_max']:8.2f}s")
    print(f"  AWS API calls                     {big['aws_calls']:8d}    ({small['aws_calls']} for {small['hosts']} hosts in {small['batches']} batches)")
    print(f"  bastion TCP connections           {big['bastion']:8d}    target 1")
    print(f"  controller peak RSS               {big['rss']:8.1f} MB target < 150 MB")


if __name__ == "__main__":
    main()
