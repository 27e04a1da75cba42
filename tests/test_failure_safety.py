"""Failure safety, proven by injecting each fault on the sandbox, under load where it makes sense."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from contextlib import contextmanager

import pytest

from rollout.adapters import failpoints
from sandbox import fleet as sandbox_fleet, netns, origin, topology as topo
from tests import fleetctl as f
from tests.instruments.load import LoadGenerator
from tests.instruments.throttle import ThrottlingProxy

pytestmark = pytest.mark.fleet

FRONT = f"http://{topo.BASTION_ADDR}:{topo.HAPROXY_FRONTEND_PORT}"
FAILS_ON_H003 = (
    "if (Object.values(require('os').networkInterfaces()).flat().some((i) => i.address === '198.18.1.13')) {\n"
    "  throw new Error('this release cannot start on h003');\n}\n"
)


@contextmanager
def load():
    """Continuous load through HAProxy; the caller asserts on `.result()` after the block."""
    gen = LoadGenerator(f"{FRONT}/version", duration=120, keepalive_workers=2, fresh_workers=2)
    with gen:
        f.wait_until(lambda: gen.elapsed() >= 0.5, 5, "the load to start")
        yield gen
        time.sleep(0.3)


@contextmanager
def slow_requests(seconds: float = 1.5, limit: float = 120):
    """Keep long requests in flight on every host, so that each batch's drain takes up to `seconds`."""
    stop = threading.Event()

    def loop():
        deadline = time.monotonic() + limit
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{FRONT}/sleep?ms={int(seconds * 1000)}", timeout=30).read()
            except OSError:
                time.sleep(0.1)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(2 * len(f.instances()))]
    for t in threads:
        t.start()
    time.sleep(0.3)
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


def start_deploy(*args: str, env: dict | None = None) -> subprocess.Popen:
    full = f.fab_env(env)
    return subprocess.Popen([f.FAB, "deploy", "--env=sandbox", "--yes", *args], cwd=f.ROOT, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)




def assert_restored(before: dict, version: str) -> None:
    """Every host registered, healthy and on `version`; processes as before; no lock, no unfinished run."""
    f.assert_fleet_serves(version)
    assert f.suspended() == before["suspended"]
    assert f.state("lock") is None and f.state("active") is None


@pytest.mark.parametrize("point", failpoints.POINTS)
def test_kill_9_after_each_step_then_recover_restores_the_fleet(healthy_fleet, new_commit, point):
    before = f.snapshot()
    old = before["checkouts"]["h001"]
    with load() as traffic:
        crashed = f.fab("deploy", "--env=sandbox", "--yes", env={"ROLLOUT_CRASH_AT": point})
        assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
        assert f.state("active") is not None, "the journal must show the run as unfinished"
        refused = f.fab("deploy", "--env=sandbox", "--yes")
        assert refused.returncode in (10, 12) and "fab recover --env=sandbox" in refused.stderr, refused.stderr
        # One point waits for the dead run's lock to expire, as an operator would; the others take over at once.
        args = ["recover", "--env=sandbox"] + ([] if point == "after-update" else ["--force"])
        recovered = f.fab(*args)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert_restored(before, old)
    result = traffic.result()
    assert result.failures == 0, result.summary()


def test_failure_midway_rolls_every_updated_host_back_keeping_capacity(healthy_fleet, tmp_path):
    before = f.snapshot()
    old = before["checkouts"]["h001"]
    bad = origin.add_commit(topo.ORIGIN, "fails on h003", worker_patch=lambda text: FAILS_ON_H003 + text, branch=f"bad-{time.time_ns()}")
    samples: list[int] = []
    stop = threading.Event()

    def sample():
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            samples.append(sum(1 for s in f.haproxy_states().values() if s == "UP"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    report = tmp_path / "report.json"
    with load() as traffic:
        sampler.start()
        done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={bad}", f"--report={report}")
        stop.set()
        sampler.join(timeout=10)
    assert done.returncode == 9, done.stdout + done.stderr
    assert "h003" in done.stderr and "returned to its previous version" in done.stderr
    assert_restored(before, old)
    # Capacity: never more hosts out of service than the batch size (1), failed host included.
    assert len(samples) > 20 and min(samples) >= len(f.instances()) - 1, samples
    doc = json.loads(report.read_text())
    assert doc["result"] == "rolled_back" and doc["exit_code"] == 9
    assert {h["name"]: h["result"] for h in doc["hosts"]} == {
        "h001": "rolled back", "h002": "rolled back", "h003": "failed, restored", "h004": "pending"}
    result = traffic.result()
    assert result.failures == 0, result.summary()
    assert bad in result.versions, "h001 and h002 served the new commit before the rollback"


def test_on_failure_stop_leaves_updated_hosts_and_exits_1(healthy_fleet, tmp_path):
    bad = origin.add_commit(topo.ORIGIN, "fails on h003 again", worker_patch=lambda text: FAILS_ON_H003 + text, branch=f"bad-{time.time_ns()}")
    inv = f.write_inventory(tmp_path / "inv", lambda d: d.update(on_failure="stop"))
    done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={bad}", inventories=inv)
    assert done.returncode == 1, done.stdout + done.stderr
    versions = {n: f.served_version(topo.host_by_name(n).address) for n in f.host_names()}
    assert versions["h001"] == versions["h002"] == bad and versions["h003"] == versions["h004"] != bad
    assert f.haproxy_states() == {a: "UP" for a in f.instances().values()}
    assert f.suspended() == set() and f.state("lock") is None


def test_max_failures_lets_the_rollout_finish_within_its_budget(healthy_fleet, tmp_path):
    bad = origin.add_commit(topo.ORIGIN, "fails on h003, budget 1", worker_patch=lambda text: FAILS_ON_H003 + text, branch=f"bad-{time.time_ns()}")
    inv = f.write_inventory(tmp_path / "inv", lambda d: d.update(max_failures=1))
    done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={bad}", inventories=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    versions = {n: f.served_version(topo.host_by_name(n).address) for n in f.host_names()}
    assert [versions[n] == bad for n in ("h001", "h002", "h003", "h004")] == [True, True, False, True]
    assert f.haproxy_states() == {a: "UP" for a in f.instances().values()}


def test_two_deploys_at_once_exactly_one_runs(healthy_fleet, new_commit):
    procs = [start_deploy(), start_deploy()]
    results = [p.communicate(timeout=180) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 10], results
    loser = next(err for p, (out, err) in zip(procs, results) if p.returncode == 10)
    assert "another rollout holds the lock" in loser and "@" in loser
    f.assert_fleet_serves(new_commit)


def test_pause_stops_after_the_batch_in_hand_and_refuses_new_deploys(healthy_fleet, new_commit):
    before = f.snapshot()
    with load() as traffic, slow_requests():
        proc = start_deploy()
        f.wait_until(lambda: f.suspended() == f.ALL, 30, "the rollout to start")
        paused = f.fab("pause", "--env=sandbox", "--reason=incident 42")
        assert paused.returncode == 0, paused.stderr
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 11, out + err
    assert "paused by" in err and "incident 42" in err
    # Stopped after the batch in hand: every host serving, some on the new commit, the rest untouched.
    ids = f.instances()
    assert f.haproxy_states() == {a: "UP" for a in ids.values()}
    versions = [f.served_version(topo.host_by_name(n).address) for n in f.host_names()]
    assert versions[0] == new_commit and versions[-1] == before["checkouts"]["h004"], versions
    assert f.suspended() == set() and f.state("lock") is None and f.state("active") is None
    refused = f.fab("deploy", "--env=sandbox", "--yes")
    assert refused.returncode == 11 and "incident 42" in refused.stderr and "fab unpause" in refused.stderr
    assert f.fab("unpause", "--env=sandbox").returncode == 0
    result = traffic.result()
    assert result.failures == 0, result.summary()


def test_sigterm_mid_batch_restores_the_batch_and_releases_the_lock(healthy_fleet, new_commit, tmp_path):
    errfile = tmp_path / "stderr"
    with load() as traffic, slow_requests(2), errfile.open("w") as errs:
        proc = subprocess.Popen([f.FAB, "deploy", "--env=sandbox", "--yes"], cwd=f.ROOT, env=f.fab_env(),
                                stdout=subprocess.PIPE, stderr=errs, text=True, stdin=subprocess.DEVNULL)
        f.wait_until(lambda: any(s != "UP" for s in f.haproxy_states().values()), 30, "the first batch to leave service")
        proc.send_signal(signal.SIGTERM)
        # Pending signals of one kind merge: send the second once the first was seen.
        f.wait_until(lambda: "stopping after the batch in hand" in errfile.read_text(), 30, "the first SIGTERM to be handled")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    err = errfile.read_text()
    assert proc.returncode == 130, out + err
    assert "SIGTERM ignored" in err and "interrupted by SIGTERM after batch 1" in err
    ids = f.instances()
    assert f.haproxy_states() == {a: "UP" for a in ids.values()}
    assert f.elb_members() == {i: "InService" for i in ids}
    assert f.suspended() == set() and f.state("lock") is None and f.state("active") is None
    assert traffic.result().failures == 0, traffic.result().summary()


def test_throttling_at_the_aws_endpoint_is_retried_and_logged(healthy_fleet, new_commit, tmp_path):
    with ThrottlingProxy(upstream=topo.MOTO_ENDPOINT, every=4) as proxy:
        inv = f.write_inventory(tmp_path / "inv", lambda d: d["aws"].update(endpoint_url=proxy.url))
        done = f.fab("deploy", "--env=sandbox", "--yes", inventories=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert proxy.injected >= 5
    assert done.stderr.count("retrying ") >= proxy.injected
    f.assert_fleet_serves(new_commit)


def _kill_bastion_sshd() -> int:
    """SIGKILL every sshd in the bastion namespace, listener first, as a crashed bastion would die.

    (A SIGTERM'd listener still accepts what is in its backlog, which a fast reconnect lands in.)
    """
    pids = [p for p in netns.pids_in([topo.BASTION_NS]).get(topo.BASTION_NS, [])
            if open(f"/proc/{p}/comm").read().strip() == "sshd"]
    listener = [p for p in pids if "sshd_config" in open(f"/proc/{p}/cmdline").read()]
    for pid in listener + [p for p in pids if p not in listener]:
        os.kill(pid, signal.SIGKILL)
    return len(pids)


def fault_then_recover(when, what: str, inject) -> None:
    """Deploy under load, `inject` a fault once `when()` holds, and check what must follow.

    The rollout fails with exit 1 and names `fab recover`; AWS being reachable, the processes
    are resumed and the lock released, but the run stays open. Once the sandbox is repaired,
    `recover` returns the fleet to where it was, and no request failed throughout.
    """
    before = f.snapshot()
    old = before["checkouts"]["h001"]
    with load() as traffic:
        with slow_requests(2):
            proc = start_deploy()
            f.wait_until(when, 60, what)
            inject()
            out, err = proc.communicate(timeout=180)
        assert proc.returncode == 1, out + err
        assert "fab recover --env=sandbox" in out + err
        assert f.state("active") is not None, "stranded hosts keep the run open for recover"
        assert f.state("lock") is None and f.suspended() == set()
        sandbox_fleet.up(hosts=len(f.instances()), quiet=True)
        recovered = f.fab("recover", "--env=sandbox")
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert_restored(before, old)
    assert traffic.result().failures == 0, traffic.result().summary()


def test_bastion_killed_mid_rollout_fails_cleanly_and_recover_restores(healthy_fleet, new_commit):
    def crash_bastion():
        assert _kill_bastion_sshd() >= 1

    fault_then_recover(lambda: f.served_version(topo.host_by_name("h001").address) == new_commit,
                       "h001 to be updated", crash_bastion)


def test_history_and_rollback_return_to_the_previous_version(healthy_fleet, tmp_path):
    first = origin.add_commit(topo.ORIGIN, "history one")
    assert f.fab("deploy", "--env=sandbox", "--yes").returncode == 0
    second = origin.add_commit(topo.ORIGIN, "history two")
    assert f.fab("deploy", "--env=sandbox", "--yes").returncode == 0
    shown = f.fab("history", "--env=sandbox", "--json")
    runs = json.loads(shown.stdout)
    assert [r["sha"] for r in runs[:2]] == [second, first] and runs[0]["result"] == "succeeded"
    back = f.fab("rollback", "--env=sandbox", "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    f.assert_fleet_serves(first)
    assert json.loads(f.fab("history", "--env=sandbox", "--json").stdout)[0]["sha"] == first


def test_unlock_needs_force_and_names_the_holder(healthy_fleet):
    # ana's run holds the lock from another machine: unlock cannot tell whether it is dead.
    f.aws("dynamodb").put_item(TableName="rollout-state", Item={
        "pk": {"S": "env#sandbox"}, "sk": {"S": "lock"}, "run_id": {"S": "r-test"}, "who": {"S": "ana@laptop"},
        "host": {"S": "laptop"}, "ref": {"S": "main"}, "since": {"N": str(time.time())}, "expires_at": {"N": str(time.time() + 600)}})
    refused = f.fab("deploy", "--env=sandbox", "--yes")
    assert refused.returncode == 10 and "ana@laptop" in refused.stderr
    assert f.fab("unlock", "--env=sandbox").returncode == 2
    unlock = subprocess.Popen([f.FAB, "unlock", "--env=sandbox", "--force"], cwd=f.ROOT, env=f.fab_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        # ana's run, if alive, may go on using its last proof of the lock for a quarter of the ttl: unlock
        # holds the lock itself meanwhile, so no other run can start until ana's has stopped changing the fleet.
        f.wait_until(lambda: (f.state("lock") or {}).get("run_id", {}).get("S", "").startswith("unlock-"), 15,
                     "unlock to take the lock over")
        meanwhile = f.fab("deploy", "--env=sandbox", "--yes")
        assert meanwhile.returncode == 10 and "unlock --force" in meanwhile.stderr, meanwhile.stderr
        out, err = unlock.communicate(timeout=30)
    finally:
        unlock.kill()
    assert unlock.returncode == 0, err
    assert "ana@laptop" in out and "holding it 5s" in out
    assert f.state("lock") is None


def test_ssh_connection_reset_mid_rollout_is_retried(healthy_fleet, new_commit, tmp_path):
    report = tmp_path / "report.json"
    with load() as traffic:
        with slow_requests(1.5):
            proc = start_deploy(f"--report={report}")
            f.wait_until(lambda: f.served_version(topo.host_by_name("h001").address) == new_commit, 60, "h001 to be updated")
            # Drop the bastion connection (its session processes), leaving the listener up: a reset, not an outage.
            sessions = [p for p in netns.pids_in([topo.BASTION_NS]).get(topo.BASTION_NS, [])
                        if open(f"/proc/{p}/comm").read().strip() == "sshd"
                        and "sshd_config" not in open(f"/proc/{p}/cmdline").read()]
            assert sessions
            for pid in sessions:
                os.kill(pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err
    assert "reconnecting" in err or "retrying" in err, err
    f.assert_fleet_serves(new_commit)
    assert json.loads(report.read_text())["bastion_connections"] == 2
    assert traffic.result().failures == 0, traffic.result().summary()


def test_balancer_failing_mid_batch_keeps_the_run_open_for_recover(healthy_fleet, new_commit):
    # The ELB goes away mid-batch; sandbox.up, inside the helper, brings it back with every instance.
    fault_then_recover(lambda: f.haproxy_states().get(topo.host_by_name("h001").address) in ("DRAIN", "MAINT"),
                       "the first batch to be draining",
                       lambda: f.aws("elb").delete_load_balancer(LoadBalancerName="sandbox-elb"))
