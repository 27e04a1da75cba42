"""AWS failures before a rollout starts are one line and exit 5, never a botocore traceback.

Denials come from a real moto server with IAM enforced (sandbox/motoserver.py), endpoints that
are not AWS from real listeners on loopback. No sandbox fleet is needed: nothing gets as far as SSH.
"""

from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path

import pytest
import yaml

from sandbox.motoserver import MotoServer
from tests import fleetctl as f
from tests.listeners import answering

READS = ["sts:GetCallerIdentity", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"]


def inventory(directory: Path, endpoint: str) -> Path:
    """An environment 'app' whose AWS is `endpoint`; its bastion is a closed loopback port (never reached)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "id").write_text("")
    (directory / "known_hosts").write_text("")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    data = {
        "aws": {"region": "eu-west-1", "endpoint_url": endpoint},
        "instances": {"tags": {"Stack": "app"}},
        "bastion": {"host": "127.0.0.1", "port": closed},
        "ssh": {"user": "deploy", "key": "id", "known_hosts": "known_hosts", "connect_timeout": 2},
        "app": {"repository": str(directory / "origin.git"), "path": "/srv/app", "reload": {"command": "true"}},
        "health": {"port": 14000},
    }
    (directory / "app.yml").write_text(yaml.safe_dump(data))
    return directory


def one_line(done, code: int) -> str:
    """The single `rollout:` line of a command that exited with `code`, and no traceback."""
    out = done.stdout + done.stderr
    assert done.returncode == code, out
    assert "Traceback" not in out, out
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rollout: ")]
    assert len(lines) == 1, out
    return lines[0]


@pytest.fixture(scope="module")
def strict():
    """A moto server enforcing IAM, with the state table and two users: one may not describe
    instances, the other may not create tables."""
    with MotoServer() as aws:
        aws.state_table()
        users = {"no-ec2": aws.user("no-ec2", READS), "no-create": aws.user("no-create", [*READS, "ec2:DescribeInstances"])}
        aws.enforce()
        yield aws, users


@pytest.mark.parametrize("task", ["deploy", "status"])
def test_describe_instances_denied_names_the_action_and_the_principal(strict, tmp_path, task):
    aws, users = strict
    user = users["no-ec2"]
    args = ["--yes"] if task == "deploy" else []
    done = f.fab(task, "--env=app", *args, inventories=inventory(tmp_path, aws.url),
                 env={k: v for k, v in user.items() if k.startswith("AWS_")})
    line = one_line(done, 5)
    assert line == f"rollout: ec2:DescribeInstances denied for {user['ARN']}: add it to the deploy role's policy"


def test_setup_denied_create_table_names_the_action_and_the_principal(strict, tmp_path):
    aws, users = strict
    user = users["no-create"]
    done = f.fab("setup", "--env=app", inventories=inventory(tmp_path, aws.url),
                 env={k: v for k, v in user.items() if k.startswith("AWS_")})
    line = one_line(done, 5)
    assert line == f"rollout: dynamodb:CreateTable denied for {user['ARN']}: add it to the deploy role's policy"


class _WebPage(http.server.BaseHTTPRequestHandler):
    status = 404

    def do_POST(self):
        body = b"<html><body>not here</body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _WelcomePage(_WebPage):
    status = 200


@pytest.fixture
def web_page(request):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize("web_page", [_WebPage, _WelcomePage], indirect=True, ids=["404-page", "200-page"])
@pytest.mark.parametrize("task", ["status", "setup"])
def test_an_endpoint_that_is_a_web_server_is_not_aws(web_page, tmp_path, task):
    done = f.fab(task, "--env=app", inventories=inventory(tmp_path, web_page),
                 env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    line = one_line(done, 5)
    assert line.startswith(f"rollout: {web_page} is not an AWS endpoint") and line.endswith("fix aws.endpoint_url"), line


def test_an_endpoint_that_does_not_speak_http_is_one_line(tmp_path):
    """An SSH server's banner where AWS should be: retried as a dropped connection, then one line."""
    with answering(b"SSH-2.0-OpenSSH_9.2\r\n") as port:
        url = f"http://127.0.0.1:{port}"
        done = f.fab("status", "--env=app", inventories=inventory(tmp_path, url),
                     env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    line = one_line(done, 5)
    assert line.startswith(f"rollout: cannot talk to the AWS endpoint {url} for ec2.DescribeInstances"), line
