"""Container strategy: scripts quote what they carry, parsers judge what hosts print, registry answers."""

from __future__ import annotations

import copy
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from rollout.adapters import registry
from rollout.apps import container as containerapp
from rollout.apps import strategies as apps
from rollout.config import inventory
from rollout.core.errors import ConfigError, PreflightError, RefError

ROOT = Path(__file__).parents[2]
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
HOSTILE = "x'; touch /tmp/pwned-$(id -u) #\"`reboot`"


def spec(**kw) -> containerapp.Spec:
    base = dict(cli="podman", image="reg.example:5000/team/app", registry="reg.example:5000", name="app",
                env={"PASSWORD": HOSTILE, "PLAIN": "$HOME"}, ports=("8080:8080",), volumes=("/dev/log:/dev/log",),
                options=("--restart=unless-stopped",), digest_env="APP_VERSION")
    return containerapp.Spec(**{**base, **kw})


def test_update_script_is_valid_shell_and_carries_env_values_literally(tmp_path):
    script = containerapp.update_script(spec(), D1)
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
    # The env file is a quoted here-document: the shell expands nothing inside it.
    body = script.split("<<'", 1)[1]
    end = body.split("'", 1)[0]
    lines = body.split("\n")[1:]
    assert lines[: lines.index(end)] == [f"PASSWORD={HOSTILE}", "PLAIN=$HOME"]
    assert "--label rollout.digest=" + D1 in script and "-e APP_VERSION=" + D1 in script
    assert "-v /dev/log:/dev/log" in script and "--init" in script and "'--restart=unless-stopped'" not in script
    assert containerapp.COMMAND == "sh -s"  # the script (and its secrets) goes on stdin, never argv


def test_env_values_with_line_breaks_are_refused():
    with pytest.raises(ValueError, match="line break"):
        containerapp.env_lines({"A": "one\ntwo"})


def test_registry_password_reaches_login_on_a_pipe_only():
    script = containerapp.update_script(spec(creds=("bot", "pa ss'word")), D1)
    assert "printf '%s' 'pa ss'\"'\"'word' | podman login --authfile \"$tmp/auth.json\" --username bot --password-stdin" in script
    assert "pull -q --authfile \"$tmp/auth.json\"" in script
    docker = containerapp.update_script(spec(cli="docker", creds=("bot", "pw")), D1)
    assert 'docker --config "$tmp" login' in docker and 'docker --config "$tmp" pull' in docker


def test_parse_update_and_is_new():
    out = f"mark start 1.0\nbefore aaa\nwant sha256:{'c' * 64}\nmark pull 1.5\nmark stop 2.0\nafter bbb {'c' * 64} running\nmark run 2.25\n"
    u = containerapp.parse_update(out)
    assert u.seconds == {"pull": 0.5, "stop": 0.5, "run": 0.25}
    assert containerapp.is_new(u) == (True, "")
    assert not containerapp.is_new(containerapp.parse_update(out.replace("after bbb", "after aaa")))[0]
    assert "expected" in containerapp.is_new(containerapp.parse_update(out.replace(f"after bbb {'c' * 64}", "after bbb dddd")))[1]
    assert "exited" in containerapp.is_new(containerapp.parse_update(out.replace("running", "exited")))[1]
    assert not containerapp.is_new(containerapp.parse_update("mark start 1\n"))[0]


def test_current_digest_prefers_our_label_if_the_image_carries_it():
    image = "reg.example:5000/team/app"
    out = f"container abc running {D2}\nrepodigest {image}@{D1}\nrepodigest {image}@{D2}\nrepodigest other/app@{D1}\n"
    assert containerapp.current_digest(containerapp.parse_running(out), image) == D2
    no_label = f"container abc running <no value>\nrepodigest {image}@{D1}\n"
    assert containerapp.current_digest(containerapp.parse_running(no_label), image) == D1
    lying_label = f"container abc running {D2}\nrepodigest {image}@{D1}\nrepodigest {image}@sha256:{'3' * 64}\n"
    assert containerapp.current_digest(containerapp.parse_running(lying_label), image) is None
    assert containerapp.current_digest(containerapp.parse_running("absent\n"), image) is None


@pytest.mark.parametrize("image,registry_host,repo", [
    ("nginx", "docker.io", "library/nginx"), ("team/app", "docker.io", "team/app"),
    ("123.dkr.ecr.eu-west-1.amazonaws.com/app", "123.dkr.ecr.eu-west-1.amazonaws.com", "app"),
    ("localhost/app", "localhost", "app"), ("198.18.0.10:5000/rollout-app", "198.18.0.10:5000", "rollout-app"),
])
def test_image_names(image, registry_host, repo):
    assert registry.ImageName.parse(image) == registry.ImageName(registry_host, repo)


@pytest.mark.parametrize("ref", ["latest", "v1.2.3", D1, "@" + D1])
def test_valid_refs(ref):
    assert registry.validate_ref(ref) == ref.removeprefix("@")


@pytest.mark.parametrize("ref", ["", "a;b", "-x", "sha256:123", "x" * 129, "a b"])
def test_invalid_refs(ref):
    with pytest.raises(RefError):
        registry.validate_ref(ref)


class Registry:
    """A registry stand-in on loopback: tags in `manifests`, optionally behind a Bearer token."""

    def __init__(self, token: str | None = None):
        self.manifests = {"v1": b'{"schemaVersion":2}'}
        self.token, self.seen = token, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _manifest(self, head: bool):
                outer.seen.append((self.command, self.path, self.headers.get("Authorization")))
                if self.path.startswith("/token"):
                    return self._send(200, json.dumps({"token": outer.token}).encode())
                if outer.token and self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self.send_response(401)
                    host = f"http://127.0.0.1:{self.server.server_address[1]}"
                    self.send_header("WWW-Authenticate", f'Bearer realm="{host}/token",service="reg",scope="repository:app:pull"')
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                tag = self.path.rsplit("/", 1)[1]
                body = outer.manifests.get(tag) or next((b for b in outer.manifests.values() if registry.hashlib.sha256(b).hexdigest() == tag[7:]), None)
                if body is None:
                    return self._send(404, b"{}")
                self._send(200, b"" if head else body, length=len(body))

            def _send(self, status, body, length=None):
                self.send_response(status)
                self.send_header("Content-Length", str(length if length is not None else len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self):
                self._manifest(True)

            def do_GET(self):
                self._manifest(False)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_resolves_a_tag_once_to_the_manifest_digest_even_without_the_header():
    reg = Registry()
    try:
        want = "sha256:" + registry.hashlib.sha256(reg.manifests["v1"]).hexdigest()
        assert registry.resolve("reg.example/app", "v1", url=reg.url) == want
        assert registry.resolve("reg.example/app", want, url=reg.url) == want
        with pytest.raises(RefError, match="not found"):
            registry.resolve("reg.example/app", "v9", url=reg.url)
    finally:
        reg.close()


def test_bearer_token_challenge_is_answered():
    reg = Registry(token="t0k3n")
    try:
        assert registry.resolve("reg.example/app", "v1", url=reg.url).startswith("sha256:")
        assert any(auth == "Bearer t0k3n" for _, _, auth in reg.seen)
    finally:
        reg.close()


def test_a_registry_that_does_not_answer_is_one_preflight_error():
    reg = Registry()
    url = reg.url
    reg.close()
    with pytest.raises(PreflightError, match="does not answer"):
        registry.resolve("reg.example/app", "v1", url=url, timeout=2)


def test_credentials_come_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("REG_CREDS", "bot:s3cret:with:colons")
    assert registry.credentials("REG_CREDS") == ("bot", "s3cret:with:colons")
    monkeypatch.setenv("REG_CREDS", "nocolon")
    with pytest.raises(PreflightError, match=r"\$REG_CREDS"):
        registry.credentials("REG_CREDS")
    assert registry.credentials(None) is None


def _container_inventory() -> dict:
    return yaml.safe_load((ROOT / "inventories" / "sandbox-container.yml").read_text())


def test_container_inventory_and_default_git_kind(tmp_path):
    data = _container_inventory()
    (tmp_path / "c.yml").write_text(yaml.safe_dump(data))
    inv = inventory.load("c", tmp_path)
    assert inv.app.kind == "container" and inv.app.env["APP_SECRET"].from_env == "SANDBOX_APP_SECRET"
    git = yaml.safe_load((ROOT / "inventories" / "sandbox.yml").read_text())
    del git["app"]["kind"]
    (tmp_path / "g.yml").write_text(yaml.safe_dump(git))
    assert inventory.load("g", tmp_path).app.kind == "git"


@pytest.mark.parametrize("change,says", [
    (lambda a: a.update(kind="lambda"), "unknown kind 'lambda'; expected one of git, container"),
    (lambda a: a.update(name="app; rm -rf /"), "app.name"),
    (lambda a: a.update(image="Reg/App"), "app.image"),
    (lambda a: a.update(image="nginx:1.25"), "without a tag"),
    (lambda a: a.update(image="reg.example:5000/app:v2"), "without a tag"),
    (lambda a: a.update(cli="nerdctl"), "app.cli"),
    (lambda a: a.update(extra=1), "unknown key 'app.extra'"),
])
def test_bad_container_settings_are_one_line(tmp_path, change, says):
    data = copy.deepcopy(_container_inventory())
    change(data["app"])
    (tmp_path / "c.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=None) as err:
        inventory.load("c", tmp_path)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_secret_values_are_read_once_and_redacted(monkeypatch, tmp_path):
    (tmp_path / "c.yml").write_text(yaml.safe_dump(_container_inventory()))
    inv = inventory.load("c", tmp_path)
    monkeypatch.delenv("SANDBOX_APP_SECRET", raising=False)
    with pytest.raises(PreflightError, match=r"\$SANDBOX_APP_SECRET, which is not set"):
        apps.strategy(inv)
    monkeypatch.setenv("SANDBOX_APP_SECRET", "hunter2-secret")
    strategy = apps.strategy(inv)
    assert strategy.spec.env["APP_SECRET"] == "hunter2-secret"
    assert strategy.redact("error: hunter2-secret leaked") == "error: *** leaked"
