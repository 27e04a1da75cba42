"""Bad input gets one clear line, a distinct exit code, and touches nothing (checked on the fleet)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import topology as topo
from tests import fleetctl as f

pytestmark = pytest.mark.fleet

PWNED = Path("/tmp/rollout-test-pwned")


def empty_known_hosts(tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text("")

    def change(d):
        d["ssh"]["known_hosts"] = str(kh)
    return change


def known_hosts_without_hosts(tmp_path):
    """Only the bastion's key is known: the hosts' keys are unknown."""
    kh = tmp_path / "known_hosts"
    kh.write_text("".join(ln for ln in topo.KNOWN_HOSTS.read_text().splitlines(True) if ln.startswith(topo.BASTION_ADDR + " ")))

    def change(d):
        d["ssh"]["known_hosts"] = str(kh)
    return change


def bastion_port(port):
    def change(d):
        d["bastion"] = {"host": topo.BASTION_ADDR, "port": port}
    return change


CASES = [
    # id, fab arguments, inventory change, exit code, words the one line must contain
    ("unknown-env", ["--env=nosuch"], None, 3, ["unknown environment 'nosuch'", "known environments", "sandbox"]),
    ("malformed-inventory", [], lambda tmp: (lambda d: d["health"].update(prot=1)), 3, ["unknown key 'health.prot'", "valid keys"]),
    ("unknown-ref", ["--ref=no-such-branch"], None, 4, ["ref 'no-such-branch' not found"]),
    ("unknown-sha", ["--ref=" + "0" * 40], None, 4, ["cannot fetch"]),
    ("shell-metacharacters-in-ref", [f"--ref=main;touch {PWNED}"], None, 4, ["not a valid branch, tag or commit SHA"]),
    ("command-substitution-in-ref", [f"--ref=$(touch {PWNED})"], None, 4, ["not a valid"]),
    ("bad-batch", ["--batch=0"], None, 2, ["--batch='0' is not valid"]),
    ("unknown-host", ["--hosts=h999"], None, 2, ["no instance of this environment matches h999"]),
    ("unreachable-bastion", [], lambda tmp: bastion_port(2222), 6, ["bastion 198.18.0.10:2222", "cannot connect"]),
    ("unknown-bastion-host-key", [], empty_known_hosts, 7, ["bastion", "host key unknown"]),
    ("unknown-host-host-key", [], known_hosts_without_hosts, 7, ["host 198.18.1.", "host key unknown"]),
    ("missing-aws-profile", [], lambda tmp: (lambda d: d["aws"].update(profile="no-such-profile")), 5, ["AWS profile 'no-such-profile' not found"]),
]


@pytest.mark.parametrize("args,change,code,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly_and_touches_nothing(fleet, tmp_path, args, change, code, words):
    PWNED.unlink(missing_ok=True)
    before = f.snapshot()
    inv = f.write_inventory(tmp_path / "inv", change(tmp_path) if change else None)
    if not any(a.startswith("--env") for a in args):
        args = ["--env=sandbox", *args]
    done = f.fab("deploy", "--yes", *args, inventories=inv)
    assert done.returncode == code, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rollout: ")]
    assert len(lines) == 1, done.stderr
    for w in words:
        assert w in lines[0]
    assert not PWNED.exists()
    assert f.snapshot() == before


def test_missing_credentials_are_refused_before_anything(fleet, tmp_path):
    before = f.snapshot()
    inv = f.write_inventory(tmp_path / "inv", lambda d: d["aws"].pop("profile"))
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    done = f.fab("deploy", "--env=sandbox", "--yes", inventories=inv, env=env)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "no AWS credentials found" in done.stderr
    assert f.snapshot() == before
