"""Gates that roll back, bakes, the front end, and stepped runs, end to end on the sandbox under load through HAProxy.

The rollback alarm is a real CloudWatch alarm of the sandbox's AWS, forced to ALARM by the
test with SetAlarmState, as an operator's test of an alarm would. Each test looks at the
fleet from outside: HAProxy's servers sampled every 20 ms, versions served, the state table.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from sandbox import topology as topo
from tests import fleetctl as f
from tests.test_failure_safety import load
from tests.test_recovery import OutOfService

pytestmark = pytest.mark.fleet

FRONT = f"http://{topo.BASTION_ADDR}:{topo.HAPROXY_FRONTEND_PORT}"


def alarm(name: str) -> str:
    """A CloudWatch alarm in the sandbox's AWS, in state OK."""
    cw = f.aws("cloudwatch")
    cw.put_metric_alarm(AlarmName=name, MetricName="HTTPCode_Backend_5XX", Namespace="AWS/ELB", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test starts")
    return name


def gated(directory, name: str, **more):
    """An inventory with `name` as rollback alarm, a bake after the canary, and the front end checked through HAProxy."""
    keys = {"rollback_alarms": [name], "bake": "20s", "bake_after": "first", "verify": {"url": f"{FRONT}/version", "timeout": 10},
            **more}
    return f.write_inventory(directory, lambda d: d.update(keys))


def addresses(*names: str) -> set[str]:
    return {topo.host_by_name(n).address for n in names}


def test_a_canary_that_trips_a_rollback_alarm_rolls_back_alone_with_no_failed_request(healthy_fleet, new_commit, tmp_path):
    name = alarm(f"sandbox-canary-{time.time_ns()}")
    inv = gated(tmp_path / "inv", name)
    before = f.snapshot()
    report = tmp_path / "report.json"
    with load() as traffic, OutOfService() as touched:
        proc = subprocess.Popen([f.FAB, "deploy", "--env=sandbox", "--yes", f"--report={report}"], cwd=f.ROOT,
                                env=f.fab_env(inventories=inv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)
        try:
            # The canary serves the new version through HAProxy, and the bake is on: the alarm fires.
            f.wait_until(lambda: new_commit in traffic.result().versions, 60, "the canary to answer through HAProxy")
            f.aws("cloudwatch").set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test: canary errors")
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    result = traffic.result()
    assert proc.returncode == 9, out + err
    assert f"rollback alarm {name} in ALARM after batch 1" in " ".join(err.split()), err
    assert f"front end {FRONT}/version serves" in out, out   # seen through the balancer before the bake
    assert "baking 20s after batch 1" in out, out
    assert result.failures == 0, result.summary()
    f.assert_fleet_serves(before["checkouts"]["h001"])
    assert len(touched.samples) > 50 and touched.seen == addresses("h001"), touched.seen
    doc = json.loads(report.read_text())
    assert doc["result"] == "rolled_back"
    assert {h["name"]: h["result"] for h in doc["hosts"]} == {"h001": "rolled back", "h002": "pending", "h003": "pending",
                                                             "h004": "pending"}
    assert f.state("active") is None and f.state("lock") is None and f.suspended() == before["suspended"]
    print(f"load: {result.requests} requests, {result.failures} failed; servers ever out: {sorted(touched.seen)}")


def test_an_alarm_already_firing_refuses_the_rollout_and_a_missing_one_is_named(healthy_fleet, tmp_path):
    name = alarm(f"sandbox-firing-{time.time_ns()}")
    f.aws("cloudwatch").set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    before = f.snapshot()
    done = f.fab("deploy", "--env=sandbox", "--yes", inventories=gated(tmp_path / "a", name))
    assert done.returncode == 8 and f"rollback alarm {name} in ALARM before the rollout started" in done.stderr, done.stderr
    done = f.fab("deploy", "--env=sandbox", "--yes", inventories=gated(tmp_path / "b", name + "-nope"))
    assert done.returncode == 8 and f"CloudWatch has no alarm {name}-nope" in done.stderr, done.stderr
    assert f.snapshot() == before


@pytest.mark.slow  # about 35 s: eight commands, three of them rollouts
def test_step_then_continue_from_another_process_and_abort_rolls_back(healthy_fleet, new_commit, tmp_path):
    name = alarm(f"sandbox-step-{time.time_ns()}")
    inv = gated(tmp_path / "inv", name, bake="1s")
    old = f.snapshot()["checkouts"]["h001"]
    with load() as traffic:
        stepped = f.fab("deploy", "--env=sandbox", "--yes", "--step", inventories=inv)
        assert stepped.returncode == 15, stepped.stdout + stepped.stderr
        assert "fab deploy --continue --env=sandbox" in " ".join(stepped.stderr.split())
        assert {n: f.checked_out(n) for n in f.host_names()} == {"h001": new_commit, "h002": old, "h003": old, "h004": old}
        # Waiting: no lock held, nothing suspended, every host serving; the run is kept in the journal.
        assert f.state("lock") is None and f.suspended() == set() and set(f.haproxy_states().values()) == {"UP"}
        refused = f.fab("deploy", "--env=sandbox", "--yes", inventories=inv)
        assert refused.returncode == 12 and "--continue" in refused.stderr, refused.stderr
        status = json.loads(f.fab("status", "--env=sandbox", "--json", inventories=inv).stdout)
        assert status["state"]["stepped"]["after_batch"] == 1 and status["state"]["stepped"]["done"] == 1, status["state"]
        assert status["state"]["lock"] is None and status["state"]["unfinished_run"] == status["state"]["stepped"]["run_id"]
        left = f.fab("recover", "--env=sandbox", inventories=inv)
        assert left.returncode == 0 and "nothing to recover" in left.stdout, left.stdout + left.stderr
        # Another process, as from another machine: only the journal carries the run.
        went_on = f.fab("deploy", "--env=sandbox", "--continue", inventories=inv)
        assert went_on.returncode == 0, went_on.stdout + went_on.stderr
        f.assert_fleet_serves(new_commit)
        # Again to v1, then abort: the canary goes back to new_commit.
        again = f.fab("deploy", "--env=sandbox", "--yes", "--step", "--ref=v1", inventories=inv)
        assert again.returncode == 15, again.stdout + again.stderr
        aborted = f.fab("deploy", "--env=sandbox", "--abort", inventories=inv)
        assert aborted.returncode == 0, aborted.stdout + aborted.stderr
        nothing = f.fab("deploy", "--env=sandbox", "--continue", inventories=inv)
        assert nothing.returncode == 2 and "nothing to continue" in nothing.stderr, nothing.stderr
    f.assert_fleet_serves(new_commit)
    assert f.state("active") is None and f.state("lock") is None
    history = json.loads(f.fab("history", "--env=sandbox", "--json", "--limit=2", inventories=inv).stdout)
    assert [h["ref"].split()[0] for h in history] == ["abort", "main"] and history[1]["result"] == "succeeded"
    result = traffic.result()
    assert result.failures == 0, result.summary()


def test_a_stepped_run_whose_controller_died_holding_its_lock_is_continued_once_its_lease_is_stale(healthy_fleet,
                                                                                                    new_commit):
    # Killed after journaling its step, before releasing its lock: the lease stays, unrenewed.
    died = f.fab("deploy", "--env=sandbox", "--yes", "--step", env={"ROLLOUT_CRASH_AT": "after-step"})
    assert died.returncode == -9, died.stdout + died.stderr
    left = f.state("lock")
    assert left is not None and f.suspended() == set() and set(f.haproxy_states().values()) == {"UP"}
    went_on = f.fab("deploy", "--env=sandbox", "--continue")
    assert went_on.returncode == 0, went_on.stdout + went_on.stderr
    said = " ".join(went_on.stdout.split())
    assert f"the lock of run {left['run_id']['S']} was not renewed for" in said and "taking it over" in said, said
    f.assert_fleet_serves(new_commit)
    assert f.state("lock") is None and f.state("active") is None


def test_a_front_end_that_does_not_serve_the_new_version_rolls_the_canary_back(healthy_fleet, new_commit, tmp_path):
    before = f.snapshot()
    # /health answers through HAProxy, but never the new commit: the gate must not take it as the version.
    inv = f.write_inventory(tmp_path / "inv", lambda d: d.update(verify={"url": f"{FRONT}/health", "timeout": "2s"}))
    done = f.fab("deploy", "--env=sandbox", "--yes", inventories=inv)
    assert done.returncode == 9, done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    assert f"the front end {FRONT}/health did not serve {new_commit[:12]} within 2s" in said, said
    f.assert_fleet_serves(before["checkouts"]["h001"])


@pytest.mark.parametrize("how", ["default", "update", "alarm"])
def test_a_drill_passes_on_the_sandbox_and_reports_its_timings(healthy_fleet, tmp_path, how):
    name = alarm(f"sandbox-drill-{time.time_ns()}")
    # The alarm drill asks the front end through the bastion (verify.via: bastion), the host drill from here.
    inv = gated(tmp_path / "inv", name, bake="0s",
                verify={"url": f"{FRONT}/version", "timeout": 10, "via": "bastion" if how == "alarm" else "controller"})
    before = f.snapshot()
    report = tmp_path / "drill.json"
    # default: the first host of batch 2 (h002) fails its health check; update: h003 fails before anything runs on it.
    args = {"default": [], "update": ["--fail-at=update", "--host=h003"], "alarm": [f"--alarm={name}"]}[how]
    with load() as traffic, OutOfService() as oos:
        done = f.fab("drill", "--env=sandbox", "--yes", f"--report={report}", *args, inventories=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "drill passed" in done.stdout, done.stdout
    findings = json.loads(report.read_text())["drill"]
    assert findings["passed"] and findings["problems"] == []
    s = findings["seconds"]
    assert 0 < s["to_fault"] < s["total"] and s["fault_to_rollback"] >= 0 and 0 < s["rollback"] < s["total"], s
    assert findings["lowest_in_service"] == 3 and findings["floor"] == 3
    # Seen from outside: every host back on its version and in service, never more than one out, no request lost.
    f.assert_fleet_serves(before["checkouts"]["h001"])
    assert len(oos.samples) > 50 and oos.most <= 1, oos.most
    result = traffic.result()
    assert result.failures == 0, result.summary()
    assert f.aws("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] == "OK"  # put back
    print(f"drill ({how}): {s}; load: {result.requests} requests, {result.failures} failed")
