"""`fab init` on the sandbox: an inventory written from what AWS shows and the flags given, that then deploys."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from sandbox import topology as topo
from tests import fleetctl as f

pytestmark = pytest.mark.fleet

AWS = ["--region=eu-west-1", "--endpoint-url=http://127.0.0.1:5055", "--profile=rollout-sandbox"]
ANSWERS = [f"--ssh-user=deploy", f"--ssh-key={topo.STATE_DIR}/ssh/id_ed25519", f"--known-hosts={topo.STATE_DIR}/ssh/known_hosts",
           f"--repository={topo.ORIGIN}", f"--path={topo.APP_DIR}", f"--pid-file={topo.APP_PID_FILE}", "--health-port=14000"]
BY_TAGS = ["--tags=Stack=app,Deployment=sandbox", "--bastion-tags=Role=bastion,Deployment=sandbox", "--bastion-address=PrivateIpAddress"]


def test_init_writes_an_inventory_from_the_fleet_that_checks_plans_and_deploys(healthy_fleet, tmp_path):
    inv = tmp_path / "inventories"
    done = f.fab("init", "--env=found", *AWS, *BY_TAGS, *ANSWERS, inventories=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "found: wrote" in done.stdout and "fab check: inventory valid" in done.stdout
    text = (inv / "found.yml").read_text()
    data = yaml.safe_load(text)
    assert data["autoscaling_group"] == "sandbox-asg"
    assert data["load_balancers"] == [{"kind": "elb", "name": "sandbox-elb"}, {"kind": "alb", "target_group": "sandbox-tg"}]
    assert f"found: {len(f.instances())} running" in text and "HAProxy is never found" in text
    assert f.fab("check", "--env=found", inventories=inv).returncode == 0
    planned = f.fab("deploy", "--env=found", "--ref=v1", "--dry-run", inventories=inv)
    assert planned.returncode == 0 and all(h.name in planned.stdout for h in topo.hosts(len(f.instances()))), planned.stdout + planned.stderr
    deployed = f.fab("deploy", "--env=found", "--ref=v2", "--yes", inventories=inv)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    again = f.fab("init", "--env=found", *AWS, *BY_TAGS, *ANSWERS, inventories=inv)
    assert again.returncode == 2 and again.stderr.startswith("rollout: ") and "already exists" in again.stderr
    assert (inv / "found.yml").read_text() == text


def test_init_finds_a_stack_environment_and_its_outputs(fleet, tmp_path):
    """As inventories/sandbox-stack.yml: the stack's instances narrowed by a tag (its bastion is a stack resource too)."""
    inv = tmp_path / "inventories"
    done = f.fab("init", "--env=stacked", *AWS, "--stack=rollout-sandbox", "--tags=Stack=app", "--bastion-host=stack_output:BastionAddress",
                 *ANSWERS, inventories=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    data = yaml.safe_load((inv / "stacked.yml").read_text())
    assert data["stack"] == "rollout-sandbox" and data["bastion"] == {"host": {"stack_output": "BastionAddress"}}
    assert data["autoscaling_group"] == "sandbox-asg" and {"kind": "elb", "name": "sandbox-elb"} in data["load_balancers"]
    assert f.fab("deploy", "--env=stacked", "--ref=v1", "--dry-run", inventories=inv).returncode == 0


@pytest.mark.parametrize("args,code,words", [
    ([*AWS, "--tags=Stack=nothing-here", *BY_TAGS[1:], *ANSWERS], 8, "init: no running instance with tags {'Stack': 'nothing-here'}"),
    ([*AWS, *BY_TAGS[:1], "--bastion-tags=Role=nobody", *ANSWERS], 8, "init: bastion: no running instance with tags"),
    ([*AWS, *BY_TAGS, *ANSWERS[1:]], 2, "init needs --ssh-user=VALUE"),
    ([*AWS, *BY_TAGS, *ANSWERS[:-1], "--health-port=http"], 2, "--health-port='http' is not a port"),
    ([*AWS, *BY_TAGS, *ANSWERS[:1], "--ssh-key=/nonexistent/key", *ANSWERS[2:]], 3, "not written: fab check --env=bad would find: ssh.key: /nonexistent/key does not exist"),
])
def test_bad_init_input_is_one_line_with_its_code(fleet, tmp_path, args, code, words):
    inv = tmp_path / "inventories"
    done = f.fab("init", "--env=bad", *args, inventories=inv)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code and len(lines) == 1 and lines[0].startswith("rollout: ") and words in lines[0], done.stderr
    assert not (inv / "bad.yml").exists()


def test_on_a_terminal_init_asks_for_what_aws_cannot_tell(fleet, tmp_path):
    inv = tmp_path / "inventories"
    replies = ["Role=bastion,Deployment=sandbox", "deploy", f"{topo.STATE_DIR}/ssh/id_ed25519", f"{topo.STATE_DIR}/ssh/known_hosts",
               str(topo.ORIGIN), str(topo.APP_DIR), "", f"kill -HUP $(cat {topo.APP_PID_FILE})", "14000"]
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([f.FAB, "init", "--env=asked", *AWS, "--tags=Stack=app,Deployment=sandbox", "--bastion-address=PrivateIpAddress"],
                                cwd=f.ROOT, env=f.fab_env(None, inv), stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.write(master, ("\n".join(replies) + "\n").encode())
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, out + err
    for words in ("bastion's tags", "SSH user", "pid file", "reload command", "port on each host"):
        assert words in out, out
    data = yaml.safe_load((inv / "asked.yml").read_text())
    assert data["bastion"]["tags"] == {"Role": "bastion", "Deployment": "sandbox"} and data["ssh"]["user"] == "deploy"
    assert data["app"]["reload"] == {"command": f"kill -HUP $(cat {topo.APP_PID_FILE})"} and data["health"]["port"] == 14000
