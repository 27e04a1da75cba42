"""Protected environments and promotion (require_success_in), end to end on the sandbox."""

from __future__ import annotations

import subprocess
import time

import pytest

from sandbox import origin, topology as topo
from tests import fleetctl as f

pytestmark = pytest.mark.fleet


def on_terminal(args: list[str], typed: str, inventories) -> subprocess.CompletedProcess:
    """Run fab on a pseudo-terminal (util-linux `script`), typing `typed` at its prompt."""
    cmd = " ".join([f.FAB, *args])
    return subprocess.run(["script", "-qec", cmd, "/dev/null"], input=typed, capture_output=True, text=True,
                          cwd=f.ROOT, env=f.fab_env(inventories=inventories), timeout=240)


def test_protected_environment_refuses_an_unattended_deploy_without_yes(healthy_fleet, tmp_path):
    before = f.snapshot()
    inv = f.write_inventory(tmp_path / "inv", lambda d: d.update(protected=True))
    done = f.fab("deploy", "--env=sandbox", inventories=inv)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "sandbox is protected: without a terminal, deploy with --yes" in done.stderr
    assert f.snapshot() == before


def test_protected_environment_on_a_terminal_wants_its_name_typed(healthy_fleet, tmp_path):
    before = f.snapshot()
    inv = f.write_inventory(tmp_path / "inv", lambda d: d.update(protected=True))
    # A commit no host runs: a deploy of the version the fleet already serves has nothing to confirm.
    sha = origin.add_commit(topo.ORIGIN, f"protected {time.time_ns()}", branch=f"protected-{time.time_ns()}")
    wrong = on_terminal(["deploy", "--env=sandbox", f"--ref={sha}"], "yes\n", inv)
    assert wrong.returncode == 8 and "Type the environment's name" in wrong.stdout, wrong.stdout
    assert f.snapshot() == before
    right = on_terminal(["deploy", "--env=sandbox", f"--ref={sha}"], "sandbox\n", inv)
    assert right.returncode == 0, right.stdout
    f.assert_fleet_serves(sha)


def test_a_sha_reaches_production_only_after_it_succeeded_in_staging(healthy_fleet, tmp_path):
    inv = tmp_path / "inv"
    f.write_inventory(inv, name="staging")
    f.write_inventory(inv, lambda d: d.update(require_success_in="staging"), name="prod")
    sha = origin.add_commit(topo.ORIGIN, f"promote {time.time_ns()}", branch=f"promote-{time.time_ns()}")
    before = f.snapshot()
    refused = f.fab("deploy", "--env=prod", "--yes", f"--ref={sha}", inventories=inv)
    assert refused.returncode == 8, refused.stdout + refused.stderr
    assert f"{sha[:12]}" in refused.stderr and "no successful rollout in staging" in refused.stderr
    assert f"fab deploy --env=staging --ref={sha}" in refused.stderr
    assert f.snapshot() == before
    assert f.fab("deploy", "--env=staging", "--yes", f"--ref={sha}", inventories=inv).returncode == 0
    promoted = f.fab("deploy", "--env=prod", "--yes", f"--ref={sha}", inventories=inv)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    f.assert_fleet_serves(sha)
