"""Auto Scaling as it really behaves, end to end on the sandbox: new instances, reused addresses, reruns.

inventories/sandbox-ec2.yml is the sandbox fleet with `ssh.host_keys: aws` (no known_hosts file:
keys come from each instance's console output, which moto answers through sandbox/awsgate.py)
and the desired version published to SSM. `fab sandbox.scale` launches hosts as the group would:
new instances with new keys, booted through examples/boot/user-data.sh, never written to
known_hosts.
"""

from __future__ import annotations

import json
import time

import pytest

from sandbox import console, fleet as sandbox_fleet, netns, origin, sshd, topology as topo
from tests import fleetctl as f
from tests.test_recovery import OutOfService

pytestmark = pytest.mark.fleet
ENV = "--env=sandbox-ec2"
PARAMETER = "/rollout/sandbox/version"


@pytest.fixture
def ec2_fleet(healthy_fleet):
    """The 4-host sandbox, no desired version published yet; afterwards back to 4 hosts, whatever was added."""
    ssm = f.aws("ssm")
    try:
        ssm.delete_parameter(Name=PARAMETER)
    except ssm.exceptions.ParameterNotFound:
        pass
    yield
    sandbox_fleet.up(hosts=4, quiet=True)


def ok(done, code: int = 0) -> str:
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout + done.stderr


def ids_by_name() -> dict[str, str]:
    by_address = {a: i for i, a in f.instances().items()}
    return {h: by_address[topo.host_by_name(h).address] for h in f.host_names()}


def pin(instance_id: str) -> set[str]:
    item = f.state(f"hostkey#{instance_id}", env="sandbox-ec2")
    return set(json.loads(item["data"]["S"])["keys"]) if item else set()


def host_key(name: str) -> str:
    return " ".join((topo.SSHD_DIR / topo.host_by_name(name).ns / "ssh_host_ed25519_key.pub").read_text().split()[:2])


def new_host_key(name: str) -> str:
    """Restart the host's sshd with a new host key (the console is not told); the new key."""
    host = topo.host_by_name(name)
    netns.kill_pids([sshd.pid(host.ns)])
    for key in (topo.SSHD_DIR / host.ns).glob("ssh_host_*"):
        key.unlink()
    sshd.ensure(host.ns, host.data_dir)
    return host_key(name)


def desired() -> dict:
    return json.loads(f.aws("ssm").get_parameter(Name=PARAMETER)["Parameter"]["Value"])


def test_hosts_added_after_a_deploy_boot_the_deployed_version_and_the_next_deploy_reaches_them(ec2_fleet, new_commit, tmp_path):
    report = tmp_path / "report.json"
    ok(f.fab("deploy", ENV, "--yes", f"--report={report}"))
    assert desired() == {"version": new_commit, "run_id": json.loads(report.read_text())["run_id"], "ref": "main",
                         "env": "sandbox-ec2"}

    said = ok(f.fab("sandbox.scale", "--add=2"))
    assert "booted through user-data.sh" in said and new_commit in said, said
    new = {"h005": topo.host_by_name("h005").address, "h006": topo.host_by_name("h006").address}
    assert set(new.values()) <= set(f.instances().values())
    for name, address in new.items():
        assert f.checked_out(name) == new_commit and f.served_version(address) == new_commit
        assert address not in topo.KNOWN_HOSTS.read_text()  # nobody wrote their keys anywhere
    shown = f.fab("status", ENV, "--json")
    ok(shown)
    status = json.loads(shown.stdout)
    assert status["desired"]["version"] == new_commit
    assert not [h["name"] for h in status["hosts"] if h["differs_from_desired"]]

    # The hand-kept known_hosts refuses them, as it should; AWS's word reaches them with no manual step.
    refused = f.fab("deploy", "--env=sandbox", "--dry-run")
    assert refused.returncode == 7 and "198.18.1.15" in refused.stderr, refused.stdout + refused.stderr
    second = origin.add_commit(topo.ORIGIN, f"after scale-out {time.time_ns()}")
    ok(f.fab("deploy", ENV, "--yes"))
    f.assert_fleet_serves(second)
    ids = ids_by_name()
    for name in new:
        assert pin(ids[name]) == {host_key(name)}
    assert desired()["version"] == second


def test_a_replaced_instance_at_a_reused_address_is_accepted_only_through_the_keys_aws_vouches_for(ec2_fleet, new_commit):
    ok(f.fab("sandbox.scale", "--add=1"))
    ok(f.fab("keys", ENV))  # pins every instance from its console, connecting to none
    old_id, old_key = ids_by_name()["h005"], host_key("h005")
    assert pin(old_id) == {old_key}

    ok(f.fab("sandbox.scale", "--remove=1"))
    said = ok(f.fab("sandbox.scale", "--add=1"))
    assert "h005 reuses 198.18.1.15, the address of terminated instance(s)" in said and old_id in said, said
    new_id, new_key = ids_by_name()["h005"], host_key("h005")
    assert new_id != old_id and new_key != old_key
    ok(f.fab("deploy", ENV, "--dry-run"))  # accepted through its own console output, never through the old pin
    assert pin(new_id) == {new_key} and pin(old_id) == {old_key}

    # An impostor at that address: sshd there now presents a key that AWS does not vouch for.
    impostor = new_host_key("h005")
    before = f.snapshot()
    changed = f.fab("deploy", ENV, "--yes")
    assert changed.returncode == 7, changed.stdout + changed.stderr
    assert f"h005 ({new_id}, 198.18.1.15): host key changed against the key pinned for {new_id}" in changed.stderr

    # Rebuilt under the same id (its console now shows the new key): the pin still wins until the operator re-pins.
    console.boot(new_id, topo.SSHD_DIR / topo.host_by_name("h005").ns, "h005")
    differs = f.fab("keys", ENV)
    assert differs.returncode == 7 and f"--replace={new_id}" in differs.stderr, differs.stdout + differs.stderr
    assert "re-pinned" in ok(f.fab("keys", ENV, f"--replace={new_id}")) and pin(new_id) == {impostor}
    ok(f.fab("deploy", ENV, "--dry-run"))

    # No pin, and a key the console does not show.
    new_host_key("h005")
    f.clear_state(f"hostkey#{new_id}", env="sandbox-ec2")
    unvouched = f.fab("deploy", ENV, "--yes")
    assert unvouched.returncode == 7 and "host key not vouched for by AWS" in unvouched.stderr, unvouched.stderr
    assert f.snapshot() == before and pin(new_id) == set()
    assert "Traceback" not in changed.stderr + differs.stderr + unvouched.stderr


def test_sigterm_mid_rollout_then_deploy_again_takes_only_the_remaining_hosts_out(ec2_fleet, new_commit, tmp_path):
    stopped = f.fab("deploy", ENV, "--yes", env={"ROLLOUT_SIGNAL_AT": "updating@2:SIGTERM"})
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    done = {n for n in f.host_names() if f.checked_out(n) == new_commit}
    assert done == {"h001", "h002"}
    report = tmp_path / "report.json"
    with OutOfService() as out:
        said = ok(f.fab("deploy", ENV, "--yes", f"--report={report}"))
    assert "2 host(s) already serve the target in every balancer, left as they are" in said, said
    assert len(out.samples) > 10 and out.seen == {topo.host_by_name("h003").address, topo.host_by_name("h004").address}
    assert [h["name"] for h in json.loads(report.read_text())["hosts"]] == ["h003", "h004"]
    f.assert_fleet_serves(new_commit)
    assert desired()["version"] == new_commit

    # Nothing left to do; a desired version lost meanwhile (as when a run stopped after its last host) is put back.
    f.aws("ssm").delete_parameter(Name=PARAMETER)
    again = ok(f.fab("deploy", ENV, "--yes"))
    assert "nothing to do" in again and f.state("lock", env="sandbox-ec2") is None
    assert desired()["version"] == new_commit
    # A deploy limited to some hosts does not change what the environment should run; status shows the odd one.
    ok(f.fab("deploy", ENV, "--yes", "--ref=v1", "--hosts=h001"))
    assert desired()["version"] == new_commit
    shown = f.fab("status", ENV, "--json")
    ok(shown)
    assert [h["name"] for h in json.loads(shown.stdout)["hosts"] if h["differs_from_desired"]] == ["h001"]
    redo = tmp_path / "redo.json"
    ok(f.fab("deploy", ENV, "--yes", "--force", f"--report={redo}"))
    assert len(json.loads(redo.read_text())["hosts"]) == 4
