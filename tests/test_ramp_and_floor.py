"""Ramped batches, the live capacity floor, reverse-order rollback and zone-by-zone rollouts, on the sandbox.

Each test watches the fleet from outside while rollout runs: HAProxy's server states are
sampled every 20 ms under continuous load through its front end, and the episodes of hosts
out of service (consecutive samples whose sets of hosts not UP overlap) are the batches as
they really happened.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest

from sandbox import haproxy as sandbox_haproxy, origin, topology as topo
from sandbox.awsgate import AwsGate
from tests import fleetctl as f
from tests.test_failure_safety import FAILS_ON_H003, load

pytestmark = pytest.mark.fleet

# The release that cannot start on one host, and load through HAProxy, as the failure-safety tests use them.
FAILS_ON_H004 = FAILS_ON_H003.replace("198.18.1.13", "198.18.1.14").replace("h003", "h004")


@contextmanager
def out_of_service():
    """Samples, every 20 ms, the set of host names HAProxy does not report UP; yields the list of samples."""
    names = {h.address: h.name for h in topo.hosts(len(f.instances()))}
    samples: list[frozenset[str]] = []
    stop = threading.Event()

    def sample():
        deadline = time.monotonic() + 180
        while not stop.is_set() and time.monotonic() < deadline:
            samples.append(frozenset(names[a] for a, s in f.haproxy_states().items() if s != "UP"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        stop.set()
        sampler.join(timeout=10)


def episodes(samples: list[frozenset[str]]) -> list[set[str]]:
    """Hosts out of service, episode by episode: consecutive non-empty samples that overlap are one batch."""
    out: list[set[str]] = []
    last: frozenset[str] = frozenset()
    for s in samples:
        if s and out and s & last:
            out[-1] |= s
        elif s:
            out.append(set(s))
        last = s
    return out


def test_a_ramp_rolls_its_sizes_in_order_and_a_rollback_returns_hosts_in_reverse(healthy_fleet, tmp_path):
    before = f.snapshot()
    old = before["checkouts"]["h001"]
    bad = origin.add_commit(topo.ORIGIN, "fails on h004", worker_patch=lambda text: FAILS_ON_H004 + text,
                            branch=f"bad-{time.time_ns()}")
    report = tmp_path / "report.json"
    # A short health timeout: h004's release never starts, and the test need not wait 20 s to see it.
    inv = f.write_inventory(tmp_path / "inv", lambda d: (d.update(batch=[1, 2]), d["health"].update(timeout=5)))
    with load() as traffic, out_of_service() as samples:
        done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={bad}", f"--report={report}", inventories=inv)
    assert done.returncode == 9, done.stdout + done.stderr
    # Ramp [1, 2], the last size repeating: batches of 1, 2, then the 1 host left; h004 fails and is
    # restored; the updated hosts go back last batch first, with the same batch sizes.
    seen = episodes(samples)
    assert seen == [{"h001"}, {"h002", "h003"}, {"h004"}, {"h002", "h003"}, {"h001"}], seen
    assert max(len(s) for s in samples) == 2, "never more hosts out than the ramp's largest batch"
    doc = json.loads(report.read_text())
    assert {h["name"]: (h["batch"], h["result"]) for h in doc["hosts"]} == {
        "h001": (1, "rolled back"), "h002": (2, "rolled back"), "h003": (2, "rolled back"), "h004": (3, "failed, restored")}
    deregistered = [ln.split("deregister ", 1)[1].split(" (")[0] for ln in done.stdout.splitlines() if "deregister " in ln]
    assert deregistered == ["h001", "h002, h003", "h004", "h003, h002", "h001"], done.stdout
    f.assert_fleet_serves(old)
    result = traffic.result()
    assert result.failures == 0, result.summary()


def test_the_batch_flag_takes_a_ramp(healthy_fleet, new_commit):
    with out_of_service() as samples:
        done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={new_commit}", "--batch=1,50%")
    assert done.returncode == 0, done.stdout + done.stderr
    assert episodes(samples) == [{"h001"}, {"h002", "h003"}, {"h004"}], samples
    f.assert_fleet_serves(new_commit)


@contextmanager
def unhealthy_from_outside(name: str):
    """HAProxy's health checks of `name` go to a closed port, so HAProxy marks it DOWN (as if its app
    stopped answering); afterwards they go to the app again and the server is UP."""
    host = topo.host_by_name(name)
    f.haproxy(f"set server app/{name} check-port 1")
    try:
        f.wait_until(lambda: f.haproxy_states()[host.address] == "DOWN", 10, f"{name} DOWN in HAProxy")
        yield
    finally:
        f.haproxy(f"set server app/{name} check-port {topo.APP_PORT}")
        sandbox_haproxy.wait_up([name])


def test_a_host_made_unhealthy_from_outside_makes_the_floor_refuse_a_batch(healthy_fleet, new_commit, tmp_path):
    inv = f.write_inventory(tmp_path / "inv", lambda d: d.update(min_healthy="75%", min_healthy_wait="1s", batch=1))
    with unhealthy_from_outside("h004"):
        before = f.snapshot()
        shown = f.fab("deploy", "--env=sandbox", f"--ref={new_commit}", "--dry-run", inventories=inv)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "Ramp: 1: batches of 1, 1, 1, 1" in shown.stdout, shown.stdout
        assert "Capacity floor: min_healthy 75% = 3 healthy hosts in every load balancer" in shown.stdout, shown.stdout
        assert "haproxy app 3 healthy now" in shown.stdout and "elb sandbox-elb 4 healthy now" in shown.stdout, shown.stdout
        assert "the first batch would wait now: taking out 1 could leave haproxy app below 3" in shown.stdout, shown.stdout
        assert "Estimated duration: about" in shown.stdout
        with load() as traffic:
            t0 = time.monotonic()
            done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={new_commit}", inventories=inv)
            took = time.monotonic() - t0
        assert done.returncode == 14, done.stdout + done.stderr
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith("rollout: ") and "batch 1 (h001)" in line, line
        assert "haproxy app reports 3 healthy hosts; taking out 1 would leave 2, below min_healthy 3" in line, line
        assert "after waiting 1s" in line, line
        assert took < 60, took
        # Nothing was taken out of service, and everything rollout suspended was resumed.
        assert f.snapshot() == before
        assert f.state("lock") is None and f.state("active") is None
        result = traffic.result()
        assert result.failures == 0, result.summary()
    history = json.loads(f.fab("history", "--env=sandbox", "--json", "--limit=1").stdout)
    assert history[0]["exit_code"] == 14


def test_the_floor_waits_for_a_host_to_recover_then_the_rollout_goes_on(healthy_fleet, new_commit, tmp_path):
    inv = f.write_inventory(tmp_path / "inv", lambda d: d.update(min_healthy=3, min_healthy_wait="60s"))
    with out_of_service() as samples:
        with unhealthy_from_outside("h004"):
            deploy = subprocess.Popen([f.FAB, "deploy", "--env=sandbox", "--yes", f"--ref={new_commit}"], cwd=f.ROOT,
                                      env=f.fab_env(inventories=inv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            try:
                # The run holds the lock and waits before its first batch: nothing is out but h004.
                f.wait_until(lambda: f.state("lock") or deploy.poll() is not None, 60, "the rollout to take its lock")
                assert deploy.poll() is None, "".join(deploy.communicate())
                f.wait_until(lambda: len(samples) > 50, 10, "samples while the batch waits")
                assert set().union(*samples) == {"h004"}, "no batch went out while the floor held it"
            except BaseException:
                deploy.kill()
                raise
        # h004 answers its checks again: the batch goes out, and so do the others.
        out, err = deploy.communicate(timeout=120)
    assert deploy.returncode == 0, out + err
    assert "waiting up to 60s for capacity before taking out h001: haproxy app reports 3 healthy hosts;" in out, out
    assert [s for s in episodes(samples) if s != {"h004"}] == [{"h001"}, {"h002"}, {"h003"}], samples
    f.assert_fleet_serves(new_commit)


def test_a_zone_by_zone_rollout_never_has_two_zones_out_at_once(healthy_fleet, new_commit, tmp_path):
    ids = {addr: iid for iid, addr in f.instances().items()}
    zone = {"h001": "eu-west-1a", "h002": "eu-west-1b", "h003": "eu-west-1a", "h004": "eu-west-1b"}
    placed = {ids[topo.host_by_name(n).address]: z for n, z in zone.items()}
    with AwsGate(upstream=topo.MOTO_ENDPOINT, zones=placed) as gate:
        # 100%: without batch_by every host would go out at once; by zone, each zone's hosts go together.
        inv = f.write_inventory(tmp_path / "inv", lambda d: (d["aws"].update(endpoint_url=gate.url),
                                                             d.update(batch="100%", batch_by="zone")))
        with load() as traffic, out_of_service() as samples:
            done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={new_commit}", inventories=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert episodes(samples) == [{"h001", "h003"}, {"h002", "h004"}], samples
    assert all(len({zone[n] for n in s}) <= 1 for s in samples), "two zones out at once"
    f.assert_fleet_serves(new_commit)
    result = traffic.result()
    assert result.failures == 0, result.summary()
