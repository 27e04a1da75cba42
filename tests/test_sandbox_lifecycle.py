"""The sandbox's own promises: it repairs a half-up fleet, and `down` leaves nothing behind.

These break the shared fleet on purpose, so conftest runs them after every other test.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest

from sandbox import fleet as sandbox_fleet, haproxy, motoserver, netns, sshd, topology as topo
from tests import fleetctl as f

pytestmark = [pytest.mark.fleet, pytest.mark.lifecycle]


def test_up_repairs_a_half_up_sandbox(fleet):
    # What a stopped session leaves: some processes dead, namespaces and files still there.
    pids = [haproxy.pid(), motoserver.moto_pid(), sshd.pid("rollout-h002"), netns.read_pid(topo.host_by_name("h003").app_pid_file)]
    assert all(pids)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    # SIGKILL is asynchronous: wait until they are really gone.
    f.wait_until(lambda: not any(netns.pid_alive(p) for p in pids), 10, "the killed processes to be gone")
    summary = sandbox_fleet.up(hosts=4, quiet=True)
    assert summary["changes"], "up() found nothing to repair"
    done = f.fab("status", "--env=sandbox", "--json")
    assert done.returncode == 0, done.stderr
    import json

    hosts = json.loads(done.stdout)["hosts"]
    assert len(hosts) == 4 and all(h["ssh"] == "ok" and h["health"] == 200 for h in hosts)
    assert all(set(h["balancers"].values()) <= {"InService", "healthy", "UP"} for h in hosts), hosts


def _ours_running() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,user,args"], capture_output=True, text=True).stdout.splitlines()
    return [ln for ln in out if "rollout-sandbox" in ln or "moto.server" in ln and "5055" in ln
            or (ln.split()[1:2] == [topo.DEPLOY_USER] if len(ln.split()) > 1 else False)]


def test_down_leaves_no_namespace_process_or_file(fleet):
    created = sandbox_fleet.describe()["created"]
    sandbox_fleet.down(quiet=True)
    assert not [ns for ns in netns.ours()]
    assert "rollout-" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert _ours_running() == []
    assert not topo.STATE_DIR.exists() and not topo.SRV_MOUNTPOINT.exists()
    assert not netns.guard_route_present() or not created.get("guard_route")
    assert topo.ROOT_VETH not in subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    if created.get("deploy_user"):
        with pytest.raises(KeyError):
            pwd.getpwnam(topo.DEPLOY_USER)
    credentials = Path.home() / ".aws" / "credentials"
    assert not credentials.exists() or "[rollout-sandbox]" not in credentials.read_text()
    # And it comes back from nothing, for whatever runs after.
    sandbox_fleet.up(hosts=4, quiet=True)
    assert len(f.instances()) == 4
