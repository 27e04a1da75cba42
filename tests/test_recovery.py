"""Recovery and locks that survive themselves: killed, signalled, raced, frozen or skewed, under load.

Each test ends by looking at the fleet from outside (tests/fleetctl.py): every instance in
every balancer on the version the original run decided, the group's processes as before,
no lock, no unfinished run, and never more hosts out of HAProxy than the batch size (1),
sampled every 20 ms throughout.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest

from tests import fleetctl as f
from tests.test_failure_safety import load, slow_requests

pytestmark = pytest.mark.fleet


class OutOfService:
    """Samples how many HAProxy servers are not UP, and which (`seen`), every 20 ms, while inside."""

    def __init__(self):
        self.samples: list[int] = []
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            out = {a for a, s in f.haproxy_states().items() if s != "UP"}
            self.samples.append(len(out))
            self.seen |= out
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def most(self) -> int:
        return max(self.samples, default=0)


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_process_left(healthy_fleet):
    """Whatever a failing test left running or frozen is killed (by its own pid) before the fleet is restored."""
    yield
    while _started:
        p = _started.pop()
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)


def fab_bg(*args: str, env: dict | None = None, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    p = subprocess.Popen([*prefix, f.FAB, *args], cwd=f.ROOT, env=f.fab_env(env), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    _started.append(p)
    return p


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def wait_frozen(proc: subprocess.Popen, what: str) -> None:
    f.wait_until(lambda: proc.poll() is None and proc_state(proc.pid) == "T", 60, what)


def crash_deploy(point: str) -> None:
    """A deploy SIGKILLed at `point` (POINT@N: the Nth batch); its run stays open."""
    crashed = f.fab("deploy", "--env=sandbox", "--yes", env={"ROLLOUT_CRASH_AT": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert f.state("active") is not None


def assert_clean(before: dict, version: str, oos: OutOfService, traffic) -> None:
    """The fleet as before the original run, on `version`; nothing left locked or open; capacity kept; no request lost."""
    f.assert_fleet_serves(version)
    assert f.suspended() == before["suspended"]
    assert f.state("lock") is None and f.state("active") is None
    assert len(oos.samples) > 50 and oos.most <= 1, f"at most {oos.most} hosts out of HAProxy at once (batch size 1)"
    result = traffic.result()
    assert result.failures == 0, result.summary()
    print(f"load: {result.requests} requests, {result.failures} failed; most out of service at once: {oos.most}")


@contextmanager
def stranded_by_a_crashed_deploy():
    """Under load and watched: a deploy SIGKILLed in batch 3 (h001, h002 updated, h003 drained out).

    Once the block is done, the fleet must be as before that deploy (see assert_clean).
    """
    before = f.snapshot()
    with load() as traffic, OutOfService() as oos:
        crash_deploy("after-deregister@3")
        yield
    assert_clean(before, before["checkouts"]["h001"], oos, traffic)


def said(output: str) -> str:
    """Output with its line wrapping undone (rich wraps lines at 200 columns without a terminal)."""
    return " ".join(output.split())


def no_traceback(*outputs: str) -> None:
    for text in outputs:
        assert "Traceback" not in text, text


def test_a_recovery_killed_again_and_again_loses_no_host(healthy_fleet, new_commit):
    with stranded_by_a_crashed_deploy():
        # The first recovery restores h003 (out of service: first), then dies with h001 taken out.
        first = f.fab("recover", "--env=sandbox", "--force", env={"ROLLOUT_CRASH_AT": "after-deregister@2"})
        assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
        # The second dies while h001's update runs.
        second = f.fab("recover", "--env=sandbox", "--force", env={"ROLLOUT_CRASH_AT": "updating"})
        assert second.returncode == -signal.SIGKILL, second.stdout + second.stderr
        assert "restored first: h001" in said(second.stdout), second.stdout
        done = f.fab("recover", "--env=sandbox", "--force")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "recoveries interrupted since" in said(done.stdout) and "3 host(s) to restore" in said(done.stdout), done.stdout


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_during_a_recovery_never_turns_it_into_nothing_to_recover(healthy_fleet, new_commit, sig):
    with stranded_by_a_crashed_deploy():
        done = f.fab("recover", "--env=sandbox", "--force", env={"ROLLOUT_SIGNAL_AT": f"updating@2:{sig}"})
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{sig} ignored: a recovery finishes restoring the fleet" in done.stderr


@pytest.mark.parametrize("gap", ["at once", "once the first holds the lock"])
def test_of_two_recovers_exactly_one_acts_and_the_other_changes_nothing(healthy_fleet, new_commit, gap):
    with stranded_by_a_crashed_deploy():
        procs = [fab_bg("recover", "--env=sandbox", "--force")]
        if gap != "at once":
            f.wait_until(lambda: (f.state("lock") or {}).get("ref", {}).get("S", "").startswith("recover "), 30,
                         "the first recovery to hold the lock")
        procs.append(fab_bg("recover", "--env=sandbox", "--force"))
        outs = [p.communicate(timeout=180) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 10], outs
        loser_out, loser_err = next(o for p, o in zip(procs, outs) if p.returncode == 10)
        assert "another rollout holds the lock" in loser_err and "recover " in loser_err, loser_err
        assert "resumed" not in said(loser_out) and "recovering run" not in said(loser_out), loser_out
        no_traceback(*(e for _, e in outs))


def test_recover_racing_a_deploy_that_finishes_never_rolls_it_back(healthy_fleet, new_commit):
    with load() as traffic, OutOfService() as oos, slow_requests(1.5):
        deploy = fab_bg("deploy", "--env=sandbox", "--yes")
        f.wait_until(lambda: f.state("active") is not None and f.state("lock") is not None, 30, "the deploy to run")
        t0 = time.monotonic()
        rec = f.fab("recover", "--env=sandbox")
        took = time.monotonic() - t0
        out, err = deploy.communicate(timeout=180)
    assert deploy.returncode == 0, out + err
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "nothing to recover" in said(rec.stdout), rec.stdout
    announced = re.search(r"watching it for up to (\d+(?:\.\d+)?)s", said(rec.stdout))
    assert announced, rec.stdout
    assert took <= float(announced.group(1)) + 5, (took, rec.stdout)  # + the command's own start and reads
    f.assert_fleet_serves(new_commit)
    assert f.state("lock") is None and f.state("active") is None
    assert oos.most <= 1 and traffic.result().failures == 0, traffic.result().summary()


FREEZE_AT = pytest.mark.parametrize("step", ["draining", "updating", "after-health"], ids=["draining", "reloading", "registering"])


def frozen_deploy(step: str) -> subprocess.Popen:
    """A deploy frozen (SIGSTOP) at `step` of batch 2: h001 updated, h002 out of service."""
    deploy = fab_bg("deploy", "--env=sandbox", "--yes", env={"ROLLOUT_SIGNAL_AT": f"{step}@2:SIGSTOP"})
    wait_frozen(deploy, f"the deploy to freeze at {step} of batch 2")
    return deploy


def resumed_and_lost(deploy: subprocess.Popen) -> str:
    """Resume a frozen run that lost its lock: it must exit 18 having changed nothing more; its stderr."""
    deploy.send_signal(signal.SIGCONT)
    out, err = deploy.communicate(timeout=120)
    assert deploy.returncode == 18, out + err
    assert "lost the deploy lock" in err, err
    no_traceback(err)
    return err


@FREEZE_AT
def test_a_frozen_run_resumed_after_recover_restored_the_fleet_changes_nothing(healthy_fleet, new_commit, step):
    before = f.snapshot()
    with load() as traffic, OutOfService() as oos:
        deploy = frozen_deploy(step)
        # recover (no --force) sees the lock unrenewed for a whole ttl and takes it over.
        rec = f.fab("recover", "--env=sandbox")
        assert rec.returncode == 0, rec.stdout + rec.stderr
        assert "was not renewed for 10s; taking it over" in said(rec.stdout), rec.stdout
        resumed_and_lost(deploy)
    assert_clean(before, before["checkouts"]["h001"], oos, traffic)


def test_a_frozen_run_resumed_while_recover_restores_its_host_changes_nothing(healthy_fleet, new_commit):
    before = f.snapshot()
    with load() as traffic, OutOfService() as oos:
        deploy = frozen_deploy("updating")
        # The recovery is itself frozen while its first batch (h002, out of service) is restored.
        rec = fab_bg("recover", "--env=sandbox", env={"ROLLOUT_SIGNAL_AT": "updating:SIGSTOP"})
        wait_frozen(rec, "the recovery to take over and freeze while restoring h002")
        resumed_and_lost(deploy)
        assert deploy.returncode == 18  # its own code: 10 would say it changed nothing at all
        # The old run acted no more: processes still suspended, h002 still out, the lock the recovery's.
        assert f.suspended() == f.ALL
        assert list(f.haproxy_states().values()).count("UP") == len(f.instances()) - 1
        assert f.state("lock")["ref"]["S"].startswith("recover ")
        rec.send_signal(signal.SIGCONT)
        rout, rerr = rec.communicate(timeout=180)
        assert rec.returncode == 0, rout + rerr
    no_traceback(rerr)
    assert_clean(before, before["checkouts"]["h001"], oos, traffic)


@pytest.mark.parametrize("skewed, offset", [("recover", "+10m"), ("deploy", "-10m")])
def test_a_skewed_clock_never_takes_a_live_lock(healthy_fleet, new_commit, skewed, offset):
    clock = ("faketime", "-f", offset)
    with load() as traffic, OutOfService() as oos, slow_requests(1.5):
        deploy = fab_bg("deploy", "--env=sandbox", "--yes", prefix=clock if skewed == "deploy" else ())
        f.wait_until(lambda: f.state("active") is not None and f.state("lock") is not None, 30, "the deploy to run")
        rec = fab_bg("recover", "--env=sandbox", prefix=clock if skewed == "recover" else ())
        out, err = deploy.communicate(timeout=180)
        rout, rerr = rec.communicate(timeout=180)
    assert deploy.returncode == 0, out + err
    assert rec.returncode in (0, 10), rout + rerr
    assert "recovering run" not in said(rout), rout
    no_traceback(err, rerr)
    f.assert_fleet_serves(new_commit)
    assert f.state("lock") is None and f.state("active") is None
    assert oos.most <= 1 and traffic.result().failures == 0, traffic.result().summary()


@pytest.mark.parametrize("force", [True, False], ids=["dead on this machine, --force", "silent for a ttl"])
def test_a_lock_left_without_a_run_is_released_by_recover_once_its_holder_is_dead(healthy_fleet, force):
    before = f.snapshot()
    # --force: the fleet already runs main, and a deploy leaves converged hosts alone; this one must start a run.
    crashed = f.fab("deploy", "--env=sandbox", "--yes", "--force", env={"ROLLOUT_CRASH_AT": "after-lock"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert f.state("lock") is not None and f.state("active") is None
    refused = f.fab("deploy", "--env=sandbox", "--yes")
    assert refused.returncode == 10, refused.stdout + refused.stderr
    rec = f.fab("recover", "--env=sandbox", *(["--force"] if force else []))
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "released the lock its dead holder left" in said(rec.stdout), rec.stdout
    assert ("is dead on this machine" in said(rec.stdout)) == force, rec.stdout
    assert f.state("lock") is None and f.state("active") is None
    assert f.snapshot() == before
    no_traceback(crashed.stderr, refused.stderr, rec.stderr)


def test_recover_finds_balancers_from_the_journal_when_membership_no_longer_shows_them(healthy_fleet, tmp_path):
    # No load_balancers key: they are found from membership. With the whole fleet in one batch, the
    # crash leaves no instance in the ELB or the target group, so only the journal still names them.
    inv = f.write_inventory(tmp_path / "inv", lambda d: d.pop("load_balancers"))
    before = f.snapshot()
    crashed = f.fab("deploy", "--env=sandbox", "--yes", "--batch=100%", "--force", inventories=inv,  # --force: redo converged hosts
                    env={"ROLLOUT_CRASH_AT": "after-deregister"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert f.elb_members() == {} and f.tg_members() == {}
    rec = f.fab("recover", "--env=sandbox", "--force", inventories=inv)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert f.snapshot() == before
    assert f.state("lock") is None and f.state("active") is None


def test_recover_takes_over_a_lock_left_by_the_previous_rollout_format_without_version(healthy_fleet):
    """A lock item of the previous version (expires_at, no version) that nobody renews is taken over after a ttl."""
    now = time.time()
    f.aws("dynamodb").put_item(TableName="rollout-state", Item={
        "pk": {"S": "env#sandbox"}, "sk": {"S": "lock"}, "run_id": {"S": "r-old-format"}, "who": {"S": "ana@laptop"},
        "host": {"S": "laptop"}, "ref": {"S": "main"}, "since": {"N": str(now)}, "expires_at": {"N": str(now + 60)}})
    try:
        rec = f.fab("recover", "--env=sandbox")
    finally:
        left = f.state("lock")
        f.clear_state("lock")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "was not renewed for 10s; taking it over" in said(rec.stdout), rec.stdout
    assert left is None, left
