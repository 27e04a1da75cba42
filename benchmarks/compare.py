"""Side by side on the sandbox: rollout against the same rolling deploy in Ansible, plain and with Mitogen.

The Ansible playbook (benchmarks/ansible) runs twice per round: with Ansible's own linear
strategy, and with Mitogen's (mitogen_linear), the configuration Ansible users pick for speed.

Each deploys a fresh commit to the same hosts, one host at a time, with the classic ELB as the
only balancer (rollout gets an inventory variant without the ALB and HAProxy), draining delays
0 and Auto Scaling suspended for the run. Runs go in rounds of one run per tool, each round in a
rotated order (ABC, BCA, CAB, ...). After every run each host must serve the new SHA (asked from inside the bastion
namespace) and have it checked out, every instance must be InService in the ELB again, and the
Auto Scaling group's suspended processes must be what they were before.

Prints, as medians: command wall time, the app's own reload-until-ready time summed over the
hosts (from each Node primary's log), overhead per host ((wall - reload) / hosts), bastion TCP
connections (bastion sshd log), AWS API requests (moto's request log) and the controller's peak
RSS (largest single process), and rollout's own report figures.

The Ansible side runs from benchmarks/.venv-ansible, which this creates on first run
(python3 -m venv + pip install of ANSIBLE_PACKAGES): a benchmark dependency only. The Mitogen
runs use the same playbook, ansible.cfg and ssh_config, with ANSIBLE_STRATEGY=mitogen_linear.

    .venv/bin/python benchmarks/compare.py [--rounds 3] [--hosts 8]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from sandbox import fleet, origin, topology as topo  # noqa: E402

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv-ansible"
PLAYBOOK_DIR = BENCH / "ansible"
CONTROL_DIR = Path.home() / ".ansible" / "cp" / "rollout-bench"  # ansible.cfg and ansible/ssh_config use it
AWS_REQUEST = re.compile(r'\] "(?:GET|POST|PUT|DELETE|HEAD|PATCH) ')
ASG = "sandbox-asg"
# Ansible 12 is ansible-core 2.19, which Mitogen 0.3.54 supports; pinned so figures compare across runs.
ANSIBLE_PACKAGES = ("ansible==12.3.0", "mitogen==0.3.54", "boto3", "botocore")
TOOLS = ("rollout", "ansible", "mitogen")
ELB = "sandbox-elb"


# --- setup ----------------------------------------------------------------------------------

def ensure_venv() -> None:
    """benchmarks/.venv-ansible with ANSIBLE_PACKAGES from PyPI, created (or completed) once."""
    if (VENV / "bin" / "ansible-playbook").exists() and mitogen_strategies().is_dir():
        return
    print(f"installing {' '.join(ANSIBLE_PACKAGES)} in {VENV}...", flush=True)
    if not (VENV / "bin" / "pip").exists():
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True, timeout=300)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *ANSIBLE_PACKAGES], check=True, timeout=1800)


def mitogen_strategies() -> Path:
    """Mitogen's Ansible strategy plugins inside benchmarks/.venv-ansible."""
    found = sorted(VENV.glob("lib/python3*/site-packages/ansible_mitogen/plugins/strategy"))
    return found[0] if found else VENV / "ansible_mitogen-not-installed"


def elb_only_inventory(directory: Path) -> Path:
    """benchmarks.common.inventory's sandbox inventory (batch 1, no Slack) with only the classic ELB."""
    common.inventory(directory)
    path = directory / "sandbox.yml"
    data = yaml.safe_load(path.read_text())
    data["load_balancers"] = [lb for lb in data["load_balancers"] if lb["kind"] == "elb"]
    assert [lb.get("name") for lb in data["load_balancers"]] == [ELB], data["load_balancers"]
    path.write_text(yaml.safe_dump(data))
    return directory


# --- what is measured around either tool -------------------------------------------------------

def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def new_text(path: Path, since: int) -> str:
    with path.open("rb") as f:
        f.seek(since)
        return f.read().decode(errors="replace")


def served_version(address: str) -> str | None:
    """What the app on `address` answers on /version, asked from inside the bastion namespace."""
    assert address.startswith("198.18.1."), address
    out = subprocess.run(["nsenter", f"--net=/run/netns/{topo.BASTION_NS}", "curl", "-s", "--max-time", "3",
                          f"http://{address}:{topo.APP_PORT}/version"], capture_output=True, text=True, timeout=10, check=False)
    return out.stdout.strip() or None


def checked_out(host) -> str:
    return subprocess.run(["git", "-c", "safe.directory=*", "-C", str(host.app_dir), "rev-parse", "HEAD"],
                          capture_output=True, text=True, timeout=10, check=False).stdout.strip()


def suspended() -> set[str]:
    group = common.aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])["AutoScalingGroups"][0]
    return {p["ProcessName"] for p in group["SuspendedProcesses"]}


def elb_states() -> dict[str, str]:
    return {s["InstanceId"]: s["State"]
            for s in common.aws("elb").describe_instance_health(LoadBalancerName=ELB)["InstanceStates"]}


def verify(tool: str, hosts: list, sha: str, suspended_before: set[str], elb_before: dict[str, str]) -> None:
    """Every host serves and has checked out `sha`; the ELB and the Auto Scaling group are as before."""
    wrong = {}
    for h in hosts:
        served, head = served_version(h.address), checked_out(h)
        if served != sha or head != sha:
            wrong[h.name] = f"serves {served}, checked out {head}"
    if wrong:
        raise SystemExit(f"{tool}: hosts not on {sha}: {wrong}")
    if (elb := elb_states()) != elb_before:
        raise SystemExit(f"{tool}: ELB states {elb}, before the run {elb_before}")
    if (now := suspended()) != suspended_before:
        raise SystemExit(f"{tool}: suspended processes {sorted(now)}, before the run {sorted(suspended_before)}")


def close_masters() -> None:
    """Stop the Ansible side's persistent SSH masters, so every Ansible run starts cold like rollout."""
    if not CONTROL_DIR.exists():
        return
    for sock in sorted(CONTROL_DIR.iterdir())[:200]:
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "rollout-bench"],
                       capture_output=True, timeout=10, check=False)
        sock.unlink(missing_ok=True)


# --- one run of each ---------------------------------------------------------------------------

def _rollout_child(hosts: list, inv: Path, report: Path) -> dict:
    # A fresh process per run: RUSAGE_CHILDREN then covers this run's `fab` only, not the
    # ansible-playbook runs before it.
    m = common.deploy(hosts, inv, report)
    return {"sha": m["doc"]["sha"], "wall": m["wall"], "reloads": m["reloads"],
            "bastion_connections": m["bastion_connections"], "peak_rss_mb": m["peak_rss_mb"],
            "report_total": m["doc"]["duration_seconds"], "report_aws_calls": m["doc"]["aws_calls"],
            "first_out": m["first_deregistration"]}


def run_rollout(hosts: list, inv: Path, report: Path) -> dict:
    before_susp, before_elb = suspended(), elb_states()
    moto_since = log_size(topo.MOTO_LOG)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        m = pool.apply(_rollout_child, (hosts, inv, report))
    m["aws_requests"] = len(AWS_REQUEST.findall(new_text(topo.MOTO_LOG, moto_since)))
    verify("rollout", hosts, m["sha"], before_susp, before_elb)
    return m


def run_ansible(hosts: list, log: Path, mitogen: bool = False) -> dict:
    tool = "mitogen" if mitogen else "ansible"
    sha = origin.add_commit(topo.ORIGIN, f"bench {tool} {time.time_ns()}")
    before_susp, before_elb = suspended(), elb_states()
    close_masters()
    CONTROL_DIR.mkdir(parents=True, exist_ok=True)
    since = {h.name: log_size(h.data_dir / "log" / "app.log") for h in hosts}
    bastion_since, moto_since = log_size(common.BASTION_LOG), log_size(topo.MOTO_LOG)
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true", "ANSIBLE_CONFIG": str(PLAYBOOK_DIR / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(k, None)  # the playbook uses the rollout-sandbox profile; keys too would be refused
    if mitogen:
        # ansible-playbook refuses an unknown strategy, so a run that succeeds ran on Mitogen.
        env.update(ANSIBLE_STRATEGY_PLUGINS=str(mitogen_strategies()), ANSIBLE_STRATEGY="mitogen_linear")
    with log.open("w") as out:
        t = time.monotonic()
        proc = subprocess.Popen([str(VENV / "bin" / "ansible-playbook"), "deploy.yml", "-e", f"sha={sha}"],
                                cwd=PLAYBOOK_DIR, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            raise
        wall = time.monotonic() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
    close_masters()
    if proc.returncode != 0:
        raise SystemExit(f"{tool}: ansible-playbook failed ({proc.returncode}), log {log}:\n{log.read_text()[-4000:]}")
    verify(tool, hosts, sha, before_susp, before_elb)
    return {
        "sha": sha,
        "wall": wall,
        "reloads": common.reload_times(hosts, since),
        "bastion_connections": new_text(common.BASTION_LOG, bastion_since).count("Accepted publickey for deploy"),
        "aws_requests": len(AWS_REQUEST.findall(new_text(topo.MOTO_LOG, moto_since))),
        # ru_maxrss of ansible-playbook and the descendants it waited for (KiB on Linux)
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def summarize(runs: list[dict], hosts: int) -> dict:
    for r in runs:
        r["reload"] = sum(r["reloads"].values())
        r["overhead_per_host"] = (r["wall"] - r["reload"]) / hosts
    keys = ("wall", "reload", "overhead_per_host", "bastion_connections", "aws_requests", "peak_rss_mb")
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", "--pairs", dest="rounds", type=int, default=3, help="timed runs of each tool")
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, among {', '.join(TOOLS)}")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed first run of each tool")
    args = ap.parse_args()
    tools = tuple(t for t in TOOLS if t in args.tools.split(","))
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if "rollout" not in tools or set(args.tools.split(",")) - set(TOOLS):
        ap.error(f"--tools: rollout and any of {', '.join(TOOLS[1:])}")
    if len(tools) > 1:
        ensure_venv()
    fleet.up(hosts=args.hosts, quiet=True)
    hosts = topo.hosts(args.hosts)
    results: dict[str, list[dict]] = {t: [] for t in tools}
    with tempfile.TemporaryDirectory(prefix="rollout-compare-") as tmp:
        tmp = Path(tmp)
        inv = elb_only_inventory(tmp)
        n = 0

        def one(tool: str) -> dict:
            nonlocal n
            n += 1
            common.zero_draining()
            if tool == "rollout":
                return run_rollout(hosts, inv, tmp / f"report{n}.json")
            return run_ansible(hosts, tmp / f"{tool}{n}.log", mitogen=tool == "mitogen")

        if not args.no_warmup:
            for tool in tools:
                m = one(tool)
                print(f"  warm-up  {tool:<8} {m['wall']:7.2f}s  (not counted)", flush=True)
        for round_ in range(args.rounds):
            k = round_ % len(tools)
            for tool in tools[k:] + tools[:k]:  # rotated: each tool goes first, second, ... in turn
                m = one(tool)
                results[tool].append(m)
                print(f"  round {round_ + 1} {tool:<8} {m['wall']:7.2f}s  all {args.hosts} hosts serve {m['sha'][:12]}",
                      flush=True)

    s = {t: summarize(results[t], args.hosts) for t in tools}
    r = s["rollout"]
    print(f"\ncompare: {args.hosts} hosts, one at a time, classic ELB only, draining delays 0, "
          f"{args.rounds} rounds (median)")
    others = tools[1:]
    print(f"  {'':<36} " + " ".join(f"{t:>10}" for t in tools) + " " + " ".join(f"{t + '/rollout':>16}" for t in others))
    rows = [
        ("total (command wall time), s", "wall", "{:.2f}"),
        ("app reload until ready, summed, s", "reload", "{:.2f}"),
        ("overhead per host, s", "overhead_per_host", "{:.3f}"),
        ("bastion TCP connections", "bastion_connections", "{:g}"),
        ("AWS API requests (moto log)", "aws_requests", "{:g}"),
        ("controller peak RSS, MB", "peak_rss_mb", "{:.1f}"),
    ]
    for label, key, fmt in rows:
        ratios = [f"{s[t][key] / r[key]:.2f}" if r[key] else "-" for t in others]
        print(f"  {label:<36} " + " ".join(f"{fmt.format(s[t][key]):>10}" for t in tools)
              + " " + " ".join(f"{x:>16}" for x in ratios))
    rr = results["rollout"]
    print(f"  rollout: whole command / app's summed reload {r['wall'] / r['reload']:.2f} (target <= 2.5);"
          f" its own report: total {statistics.median(x['report_total'] for x in rr):.2f}s"
          f" (from its start, without process start), AWS calls {statistics.median(x['report_aws_calls'] for x in rr):g},"
          f" first host out of the ELB {statistics.median(x['first_out'] for x in rr):.2f}s after the command started")
    targets = {"ansible": 30, "mitogen": 25}
    for t in others:
        ratio = s[t]["overhead_per_host"] / r["overhead_per_host"]
        print(f"  overhead per host, {t} / rollout: {ratio:.1f} (target >= {targets[t]})")
    for tool in tools:
        walls = ", ".join(f"{x['wall']:.2f}" for x in results[tool])
        print(f"  {tool} wall times, s: {walls}")


if __name__ == "__main__":
    main()
