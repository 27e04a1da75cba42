"""Orchestrator overhead of one rollout on the sandbox: 8 hosts, batch 1, draining delays 0.

Prints total time, the app's own reload-until-ready time (from the Node primary's log),
overhead per host, time out of service, bastion TCP connections and AWS API calls.

    .venv/bin/python benchmarks/overhead.py [--hosts 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from sandbox import fleet, topology as topo  # noqa: E402


def one_run(hosts: list, inv: Path, report: Path) -> dict:
    m = common.deploy(hosts, inv, report)
    doc, reload = m["doc"], sum(m["reloads"].values())
    oos = [h["out_of_service_seconds"] for h in doc["hosts"]]
    return {
        "wall": m["wall"],
        "total": doc["duration_seconds"],
        "reload": reload,
        "overhead_per_host": (doc["duration_seconds"] - reload) / len(hosts),
        "overhead_per_host_wall": (m["wall"] - reload) / len(hosts),
        "oos_median": statistics.median(oos),
        "oos_max": max(oos),
        "bastion_connections": m["bastion_connections"],
        "aws_calls": doc["aws_calls"],
        "first_out": m["first_deregistration"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    fleet.up(hosts=args.hosts, quiet=True)
    common.zero_draining()
    hosts = topo.hosts(args.hosts)
    with tempfile.TemporaryDirectory() as tmp:
        inv = common.inventory(Path(tmp))
        runs = [one_run(hosts, inv, Path(tmp) / f"report{i}.json") for i in range(args.runs)]
    print(f"rollout overhead: {args.hosts} hosts, batch 1, draining delays 0, {args.runs} runs (median)")
    rows = [
        ("command wall time", "wall", "s"),
        ("rollout total (report)", "total", "s"),
        ("app reload until ready, summed", "reload", "s"),
        ("overhead per host (rollout)", "overhead_per_host", "s"),
        ("overhead per host (wall, incl. preflight)", "overhead_per_host_wall", "s"),
        ("out of service per host, median", "oos_median", "s"),
        ("out of service per host, max", "oos_max", "s"),
        ("time to the first deregistration", "first_out", "s"),
        ("bastion TCP connections", "bastion_connections", ""),
        ("AWS API calls", "aws_calls", ""),
    ]
    for label, key, unit in rows:
        vals = [r[key] for r in runs]
        med = statistics.median(vals)
        shown = f"{med:.3f}{unit}" if unit else f"{med:g}"
        print(f"  {label:<42} {shown:>10}   (runs: {', '.join(f'{v:.3f}' if unit else str(v) for v in vals)})")


if __name__ == "__main__":
    main()
