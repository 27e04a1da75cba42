"""Per-developer branch deploys into personal environments, end to end on the sandbox."""

from __future__ import annotations

import json
import time

import pytest

from sandbox import fleet as sandbox_fleet, origin, topology as topo
from tests import fleetctl as f

pytestmark = pytest.mark.fleet


@pytest.fixture
def personal(healthy_fleet):
    """ben and ana each get a host of their own (tagged Deployment=dev-USER); removed afterwards."""
    hosts = sandbox_fleet.up(hosts=4, personal=("ben", "ana"), quiet=True)["personal"]
    yield {user: topo.host_by_name(name) for user, name in hosts.items()}
    sandbox_fleet.up(hosts=4, quiet=True)


def branch_commit(user: str) -> tuple[str, str]:
    branch = f"remote-run/{user}/feature-{time.time_ns()}"
    return branch, origin.add_commit(topo.ORIGIN, f"{user}'s work", branch=branch)


def test_a_branch_deploy_updates_only_its_developers_host(personal):
    shared_before = f.snapshot()
    ana_before = f.served_version(personal["ana"].address)
    branch, sha = branch_commit("ben")
    done = f.fab("deploy", "--env=sandbox", f"--branch={branch}", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f.served_version(personal["ben"].address) == sha
    assert f.served_version(personal["ana"].address) == ana_before
    assert f.snapshot() == shared_before  # no shared host, balancer or process touched
    status = json.loads(f.fab("status", "--env=sandbox@ben", "--json").stdout)
    assert [(h["name"], h["version"]) for h in status["hosts"]] == [(personal["ben"].name, sha)]
    runs = json.loads(f.fab("history", "--env=sandbox@ben", "--json").stdout)
    assert runs[0]["sha"] == sha and runs[0]["ref"] == branch and runs[0]["result"] == "succeeded"


@pytest.mark.parametrize("branch,code,words", [
    ("feature/ben/x", 2, "does not match this environment's personal branch pattern"),
    ("remote-run/Ben/x", 2, "is not a plain identifier"),
    ("remote-run/b$(touch /tmp/rollout-pwned)/x", 2, "is not a plain identifier"),
    ("remote-run/ben;reboot/x", 2, "is not a plain identifier"),
    ("remote-run/zoe/x", 8, "no running instance with tags"),
])
def test_branches_that_name_no_plain_user_or_no_instances_are_refused(personal, branch, code, words):
    before = f.snapshot()
    ben_before = f.served_version(personal["ben"].address)
    done = f.fab("deploy", "--env=sandbox", f"--branch={branch}", "--yes")
    assert done.returncode == code, done.stdout + done.stderr
    assert words in done.stderr
    assert f.snapshot() == before and f.served_version(personal["ben"].address) == ben_before


def test_a_personal_selector_can_never_reach_a_shared_environment(personal, tmp_path):
    # A careless inventory whose personal tags are just {user}: the user "sandbox" would select the shared fleet.
    inv = f.write_inventory(tmp_path / "inv", lambda d: d["personal"].update(tags={"Stack": "app", "Deployment": "{user}"}))
    before = f.snapshot()
    done = f.fab("deploy", "--env=sandbox", "--branch=remote-run/sandbox/x", "--yes", inventories=inv)
    assert done.returncode == 8, done.stdout + done.stderr
    assert "would deploy to instances of shared environments" in done.stderr
    assert f.snapshot() == before
