"""Smoke checks against a real HTTP server on loopback."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from rollout.adapters import smoke
from rollout.core.errors import DeployFailed


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status = 503 if self.path == "/down" else 200
        body = b"ok version abc" if status == 200 else b"down"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def check(url, status=200, body=None, timeout=5.0):
    return SimpleNamespace(url=url, status=status, body=body, timeout=timeout)


def test_checks_that_answer_as_expected_pass_and_say_so(url):
    said = []
    smoke.check([check(url + "/health"), check(url + "/health", body="version abc")], said.append)
    assert said == [f"smoke {url}/health ok (200)"] * 2


@pytest.mark.parametrize("path, status, body, message", [
    ("/down", 200, None, "got 503, expected 200"),
    ("/health", 200, "version xyz", "got 200, expected 200 with body containing 'version xyz'"),
    ("/health", 204, None, "got 200, expected 204"),
])
def test_a_check_that_answers_otherwise_fails_the_deploy(url, path, status, body, message):
    with pytest.raises(DeployFailed, match=message):
        smoke.check([check(url + path, status, body)], lambda _: None)


def test_a_check_nobody_answers_names_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(DeployFailed, match=rf"smoke check http://127.0.0.1:{port}/health: no answer"):
            smoke.check([check(f"http://127.0.0.1:{port}/health")], lambda _: None)


def test_the_first_failing_check_stops_the_rest(url):
    said = []
    with pytest.raises(DeployFailed):
        smoke.check([check(url + "/down"), check(url + "/health")], said.append)
    assert said == []
