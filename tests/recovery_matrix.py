"""The interruption matrix: each interruption at each step of a deploy, its automatic rollback and a recovery.

Run as root under the fleet lock (not part of the suite; about 25 s a case):

    flock /run/lock/rollout-fleet.lock .venv/bin/python -m tests.recovery_matrix [FILTER...]

FILTER keeps the cases whose name contains it (e.g. `recover` or `SIGSTOP`). For each case the
actor runs under load through HAProxy with the fault injected by failpoint at the step (in
batch 2, so that one batch is already done); every run left open is then recovered with
`fab recover`; the fleet is judged from outside. One line per case, then a Markdown table.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from sandbox import fleet as sandbox_fleet, origin, topology as topo
from tests import fleetctl as f
from tests.test_failure_safety import FAILS_ON_H003, load
from tests.test_recovery import OutOfService, proc_state

STEPS = {"draining": "draining", "reloading": "updating", "registering": "after-health"}
INTERRUPTIONS = ("SIGKILL", "SIGTERM", "SIGSTOP")
ACTORS = ("deploy", "rollback", "recover")


def _bg(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([f.FAB, *args], cwd=f.ROOT, env=f.fab_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)


def _fault(interruption: str, point: str) -> dict:
    if interruption == "SIGKILL":
        return {"ROLLOUT_CRASH_AT": point}
    return {"ROLLOUT_SIGNAL_AT": f"{point}:{interruption}"}


def run_case(actor: str, interruption: str, step: str) -> dict:
    f.restore_baseline()
    before = f.snapshot()
    old = before["checkouts"]["h001"]
    ref_args: list[str] = []
    if actor == "rollback":
        # h003 fails: h002 then h001 are rolled back (reverse order), in batches 4 and 5 of the run.
        bad = origin.add_commit(topo.ORIGIN, "matrix: fails on h003", worker_patch=lambda t: FAILS_ON_H003 + t,
                                branch=f"bad-{time.time_ns()}")
        ref_args, point, args = [f"--ref={bad}"], f"{STEPS[step]}@4", ["deploy", "--env=sandbox", "--yes"]
    else:
        new = origin.add_commit(topo.ORIGIN, f"matrix {time.time_ns()}")
        point, args = f"{STEPS[step]}@2", ["deploy", "--env=sandbox", "--yes"]
    codes: list[str] = []
    t0 = time.monotonic()
    with load() as traffic, OutOfService() as oos:
        if actor == "recover":
            crashed = f.fab("deploy", "--env=sandbox", "--yes", env={"ROLLOUT_CRASH_AT": "after-deregister@3"})
            codes.append(f"deploy {crashed.returncode}")
            args = ["recover", "--env=sandbox", "--force"]
        proc = _bg(args + ref_args, _fault(interruption, point))
        if interruption == "SIGSTOP":
            f.wait_until(lambda: proc.poll() is not None or proc_state(proc.pid) == "T", 120, "the freeze")
            if proc.poll() is None:
                taker = f.fab("recover", "--env=sandbox")
                codes.append(f"recover-while-frozen {taker.returncode}")
                proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=240)
        codes.insert(0 if actor != "recover" else 1, f"{actor} {proc.returncode}")
        for _ in range(3):
            if f.state("active") is None:
                break
            again = f.fab("recover", "--env=sandbox", "--force")
            codes.append(f"recover {again.returncode}")
    seconds = time.monotonic() - t0
    ids = f.instances()
    checkouts = {n: f.checked_out(n) for n in f.host_names()}
    served = {n: f.served_version(topo.host_by_name(n).address) for n in f.host_names()}
    in_service = (f.haproxy_states() == {a: "UP" for a in ids.values()} and f.elb_members() == {i: "InService" for i in ids}
                  and f.tg_members() == {i: "healthy" for i in ids})
    one_version = checkouts == served
    if actor == "deploy" and interruption == "SIGTERM":
        # Documented: the batch in hand is finished, updated hosts keep the new version.
        order = [checkouts[n] for n in f.host_names()]
        decided = one_version and set(order) <= {old, new} and order == sorted(order, key=lambda v: v != new)
    else:
        decided = one_version and set(checkouts.values()) == {old}
    clean = f.state("lock") is None and f.state("active") is None and f.suspended() == before["suspended"]
    result = traffic.result()
    return {"case": f"{actor} × {interruption} × {step}", "codes": ", ".join(codes), "restored": in_service,
            "versions": decided, "clean": clean, "max_out": oos.most, "requests": result.requests,
            "failed": result.failures, "seconds": round(seconds, 1)}


def main(filters: list[str]) -> int:
    cases = [(a, i, s) for a in ACTORS for i in INTERRUPTIONS for s in STEPS
             if not filters or any(x in f"{a} {i} {s}" for x in filters)]
    sandbox_fleet.up(hosts=4, quiet=True)
    rows = []
    try:
        for case in cases:
            try:
                row = run_case(*case)
            except Exception as exc:  # noqa: BLE001 - one broken case is a row, not the end of the matrix
                row = {"case": " × ".join(case), "codes": f"ERROR {type(exc).__name__}: {exc}"[:200], "restored": False,
                       "versions": False, "clean": False, "max_out": -1, "requests": 0, "failed": 0, "seconds": 0}
            rows.append(row)
            print(row, flush=True)
    finally:
        f.restore_baseline()
        sandbox_fleet.down(quiet=True)
    yes = {True: "yes", False: "**NO**"}
    print("\n| case | exit codes | fleet restored | versions as decided | lock/journal/processes clean | max out | requests / failed | s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['codes']} | {yes[r['restored']]} | {yes[r['versions']]} | {yes[r['clean']]} | {r['max_out']}"
              f" | {r['requests']} / {r['failed']} | {r['seconds']} |")
    return 0 if all(r["restored"] and r["versions"] and r["clean"] and 0 <= r["max_out"] <= 1 and not r["failed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
