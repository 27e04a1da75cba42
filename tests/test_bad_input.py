"""Bad input gets one clear line, a distinct exit code, and touches nothing (checked on the fleet)."""

from __future__ import annotations

import shutil
import subprocess
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


def known_hosts_with_a_changed_host_key(tmp_path):
    """Every host's line carries the bastion's key: the servers' keys do not match."""
    kh = tmp_path / "known_hosts"
    lines = topo.KNOWN_HOSTS.read_text().splitlines()
    bastion_key = next(ln for ln in lines if ln.startswith(topo.BASTION_ADDR + " ")).split(" ", 1)[1]
    kh.write_text("".join((ln if ln.startswith(topo.BASTION_ADDR + " ") else ln.split(" ", 1)[0] + " " + bastion_key) + "\n"
                          for ln in lines if ln.strip()))

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
    ("bad-ramp", ["--batch=1,,50%"], None, 2, ["--batch='1,,50%' is not valid", "or a ramp of them", "(entry 2: '')"]),
    ("unknown-host", ["--hosts=h999"], None, 2, ["no instance of this environment matches h999"]),
    ("unreachable-bastion", [], lambda tmp: bastion_port(2222), 6, ["bastion 198.18.0.10:2222", "cannot connect"]),
    ("unknown-bastion-host-key", [], empty_known_hosts, 7, ["bastion", "host key unknown"]),
    ("unknown-host-host-key", [], known_hosts_without_hosts, 7, ["host 198.18.1.", "host key unknown"]),
    ("changed-host-host-key", [], known_hosts_with_a_changed_host_key, 7, ["host 198.18.1.", "host key does not match"]),
    ("missing-aws-profile", [], lambda tmp: (lambda d: d["aws"].update(profile="no-such-profile")), 5, ["AWS profile 'no-such-profile' not found"]),
    ("unwritable-report", ["--report=/dev/null/r.json"], None, 2, ["--report=/dev/null/r.json cannot be written: /dev/null is not a directory"]),
    ("unwritable-junit", ["--junit=/dev/null/j.xml"], None, 2, ["--junit=/dev/null/j.xml cannot be written"]),
    # Inventory values: refused when the file loads, naming the file, line and key (never a flag).
    ("inventory-batch", [], lambda tmp: (lambda d: d.update(batch="lots")), 3, ["sandbox.yml:", "'batch': give a positive count"]),
    ("inventory-ramp", [], lambda tmp: (lambda d: d.update(batch=[1, "0%"])), 3, ["sandbox.yml:", "'batch'", "(entry 2: '0%')"]),
    ("inventory-floor", [], lambda tmp: (lambda d: d.update(min_healthy="most")), 3,
     ["sandbox.yml:", "'min_healthy': give a count of healthy hosts like 3, or a percentage"]),
    ("inventory-max-failures", [], lambda tmp: (lambda d: d.update(max_failures="plenty")), 3, ["'max_failures': give a count"]),
    ("inventory-every-error", [], lambda tmp: (lambda d: d.update(batch="lots", max_failures="plenty")), 3, ["sandbox.yml: 2 errors:"]),
    ("endpoint-url-without-scheme", [], lambda tmp: (lambda d: d["aws"].update(endpoint_url="127.0.0.1:5055")), 3,
     ["'aws.endpoint_url': expected a URL with its scheme", "(got '127.0.0.1:5055')"]),
    ("region-with-a-path", [], lambda tmp: (lambda d: d["aws"].update(region="eu west 1/../x")), 3, ["'aws.region': expected an AWS region"]),
    ("yaml-boolean-tag", [], lambda tmp: (lambda d: d["instances"]["tags"].update(Enabled=True)), 3,
     ["'instances.tags.Enabled': expected a string, got the boolean true", 'write "true" in quotes']),
    ("unknown-region", [], lambda tmp: (lambda d: (d["aws"].pop("endpoint_url"), d["aws"].update(region="eu-west-9"))), 3,
     ["aws.region 'eu-west-9' is not an AWS region"]),
    ("bastion-not-ssh", [], lambda tmp: bastion_port(8080), 6, ["bastion 198.18.0.10:8080: the server there does not speak SSH"]),
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
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rollout: ")]
    assert len(lines) == 1, done.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert not PWNED.exists()
    assert f.snapshot() == before


def test_preflight_names_every_unreachable_host_in_one_run(fleet, tmp_path):
    """Two hosts whose SSH port (from -S ssh_config) answers nothing: one line names both, exit 6, nothing touched."""
    down = [h for h in topo.hosts(4) if h.name in ("h002", "h003")]
    config = tmp_path / "ssh_config"
    config.write_text(f"Host {' '.join(h.address for h in down)}\n  Port 2222\n")
    before = f.snapshot()
    done = f.fab("-S", str(config), "deploy", "--env=sandbox", "--yes", inventories=f.write_inventory(tmp_path / "inv"))
    assert done.returncode == 6, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rollout: ")]
    assert len(lines) == 1 and "2 hosts failed" in lines[0], done.stderr
    for h in down:
        assert f"host {h.address}:2222" in lines[0], lines[0]
    assert f.snapshot() == before


def test_missing_credentials_are_refused_before_anything(fleet, tmp_path):
    before = f.snapshot()
    inv = f.write_inventory(tmp_path / "inv", lambda d: d["aws"].pop("profile"))
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    done = f.fab("deploy", "--env=sandbox", "--yes", inventories=inv, env=env)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "no AWS credentials found" in done.stderr
    assert f.snapshot() == before


@pytest.mark.parametrize("task", [["rollback", "--to=v1", "--yes"], ["recover"]], ids=["rollback", "recover"])
def test_unwritable_report_paths_refuse_recover_and_rollback_too(fleet, task, tmp_path):
    before = f.snapshot()
    done = f.fab(*task, "--env=sandbox", f"--junit={tmp_path}", "--report=/dev/null/r.json")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rollout: ")]
    assert len(lines) == 1 and "cannot be written" in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert f.snapshot() == before


def test_a_report_that_cannot_be_written_at_the_end_is_a_warning_and_the_exit_code_stays(healthy_fleet, tmp_path):
    """The directory is fine in preflight and replaced by a file while the rollout runs."""
    inv = f.write_inventory(tmp_path / "inv", lambda d: d["health"].update(timeout=4))
    out_dir = tmp_path / "out"
    junit = tmp_path / "junit.xml"
    deploy = subprocess.Popen([f.FAB, "deploy", "--env=sandbox", "--yes", "--ref=broken", f"--report={out_dir}/r.json",
                               f"--junit={junit}"], cwd=f.ROOT, env=f.fab_env(inventories=inv), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        f.wait_until(lambda: f.state("active") or deploy.poll() is not None, timeout=60, what="the rollout to start")
        if deploy.poll() is not None:
            raise AssertionError("the rollout ended before it could be observed running: " + "".join(deploy.communicate()))
        shutil.rmtree(out_dir)
        out_dir.write_text("now a file")
        stdout, stderr = deploy.communicate(timeout=180)
    finally:
        if deploy.poll() is None:
            deploy.kill()
    assert deploy.returncode == 9, stdout + stderr
    assert "Traceback" not in stderr
    warnings = [ln for ln in (stdout + stderr).splitlines() if f"could not write --report={out_dir}/r.json" in ln]
    assert len(warnings) == 1 and "exit 9" in warnings[0], stdout + stderr
    assert junit.read_text().count("<testcase") == 4  # the other file is still written
