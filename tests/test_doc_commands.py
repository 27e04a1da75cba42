"""The docs' commands, run as written on the sandbox (tests/doc_commands.py lists them and why others are not).

The docs' environments (production, integration) are copies of the sandbox's inventory; their
tags v2.3.0 and v2.2.1 are made on the sandbox's origin for the test. An `ssh` line, which the docs
show as a login, runs `true` on the host.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from sandbox import origin, topology as topo
from tests import doc_commands as d, fleetctl as f

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
TAGS = {"v2.3.0": "v2", "v2.2.1": "v1"}


@pytest.fixture
def doc_environments(healthy_fleet, tmp_path):
    """ROLLOUT_INVENTORIES with sandbox, production and integration (all the sandbox); the docs' tags on the origin."""
    inv = tmp_path / "inventories"
    for name in ("sandbox", "production", "integration"):
        f.write_inventory(inv, name=name)
    for tag, target in TAGS.items():
        origin.git("tag", "-f", tag, f"{target}^{{commit}}", cwd=topo.ORIGIN)
    try:
        yield inv
    finally:
        origin.git("tag", "-d", *TAGS, cwd=topo.ORIGIN)


def test_the_docs_commands_run_as_written_on_the_sandbox(doc_environments, new_commit, tmp_path):
    env = f.fab_env({"COMMIT": new_commit, "SHA": new_commit}, doc_environments)
    env["PATH"] = f"{os.path.dirname(f.FAB)}:{env['PATH']}"
    try:
        for command, code in d.RUN_HERE:
            line = command + " true" if command.startswith("ssh ") else command
            done = subprocess.run(["bash", "-c", line], cwd=f.ROOT, env=env, capture_output=True, text=True, timeout=240,
                                  stdin=subprocess.DEVNULL)
            assert done.returncode == code, f"{command}: exit {done.returncode}, expected {code}\n{done.stdout}{done.stderr}"
    finally:  # the --report files the docs' commands write
        for name in ("report.json", "rollback.json", "recover.json"):
            (f.ROOT / name).unlink(missing_ok=True)
