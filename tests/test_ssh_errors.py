"""A bastion that does not speak SSH: one `rollout:` line and exit 6, no paramiko traceback.

The bastion is a real listener on loopback that answers like a web server; AWS is a moto
server of the test's own on loopback (sandbox/motoserver.py, IAM not enforced). No fleet needed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from sandbox.motoserver import MotoServer
from tests import fleetctl as f
from tests.listeners import answering
from tests.test_aws_errors import one_line

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "admin", "AWS_SECRET_ACCESS_KEY": "admin"}


@pytest.fixture(scope="module")
def aws():
    """One running instance tagged Stack=web, and the state table."""
    with MotoServer() as moto:
        ec2 = moto.client("ec2")
        image = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*-x86_64-gp2"]}])["Images"][0]
        ec2.run_instances(ImageId=image["ImageId"], MinCount=1, MaxCount=1, InstanceType="t3.micro",
                          TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Stack", "Value": "web"}]}])
        moto.state_table()
        yield moto


@pytest.fixture
def not_ssh():
    """A loopback port whose server answers every connection like a web server, then closes."""
    with answering(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        yield port


def inventory(directory: Path, endpoint: str, bastion_port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "id").write_text("")
    (directory / "known_hosts").write_text("")
    repo = directory / "origin"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "v1"],
                   check=True)
    data = {
        "aws": {"region": "eu-west-1", "endpoint_url": endpoint},
        "instances": {"tags": {"Stack": "web"}},
        "bastion": {"host": "127.0.0.1", "port": bastion_port},
        "ssh": {"user": "deploy", "key": "id", "known_hosts": "known_hosts", "connect_timeout": 5},
        "app": {"repository": str(repo), "path": "/srv/app", "reload": {"command": "true"}},
        "health": {"port": 14000},
    }
    (directory / "web.yml").write_text(yaml.safe_dump(data))
    return directory


@pytest.mark.parametrize("task", [["deploy", "--yes"], ["status"], ["status", "--json"]], ids=" ".join)
def test_a_bastion_that_does_not_speak_ssh_is_one_line_and_exit_6(aws, not_ssh, tmp_path, task):
    done = f.fab(task[0], "--env=web", *task[1:], inventories=inventory(tmp_path, aws.url, not_ssh), env=CREDENTIALS)
    line = one_line(done, 6)
    assert line.startswith(f"rollout: bastion 127.0.0.1:{not_ssh}: the server there does not speak SSH"), line
    assert "paramiko" not in done.stderr, done.stderr
    if task == ["status", "--json"]:
        doc = json.loads(done.stdout)
        assert doc["bastion"]["reachable"] is False and doc["bastion"]["error"] == line.removeprefix("rollout: ")
        assert [h["ssh"] for h in doc["hosts"]] == ["unreachable"]


def test_verbose_shows_paramikos_own_log_of_it(aws, not_ssh, tmp_path):
    done = f.fab("status", "--env=web", "-v", inventories=inventory(tmp_path, aws.url, not_ssh), env=CREDENTIALS)
    assert done.returncode == 6, done.stderr
    assert "paramiko.transport" in done.stderr and "does not speak SSH" in done.stderr
