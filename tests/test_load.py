"""tests.instruments.load: target safety and counting, against a local Python server."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.instruments import load
from tests.instruments.load import LoadGenerator, UnsafeTarget, check_target, run_load


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/reset":
            # SO_LINGER 0 makes close() send a reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            self.close_connection = True
            return
        status = 500 if self.path == "/error" else 200
        self.send_response(status)
        self.send_header("X-Version", "test")
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/", "http://8.8.8.8:80/", "http://example.com/", "https://127.0.0.1/",
    "http://[::2]/", "http://0.0.0.0/", "http://199.18.0.1/", "ftp://127.0.0.1/",
])
def test_refuses_non_local_targets(url):
    with pytest.raises(UnsafeTarget):
        check_target(url)


def test_sandbox_range_needs_the_bastion_netns(monkeypatch):
    monkeypatch.setattr(load, "_bastion_exists", lambda: False)
    with pytest.raises(UnsafeTarget):
        check_target("http://198.18.0.10:14000/health")
    monkeypatch.setattr(load, "_bastion_exists", lambda: True)
    assert check_target("http://198.19.255.1:14000/health") == ("198.19.255.1", 14000, "/health")


def test_accepts_loopback():
    assert check_target("http://127.0.0.2:8080/x?y=1") == ("127.0.0.2", 8080, "/x?y=1")
    assert check_target("http://[::1]/") == ("::1", 80, "/")
    assert check_target("http://localhost:9/") == ("127.0.0.1", 9, "/")


def test_counts_successes_and_versions(server):
    r = run_load(server + "/", 0.5, keepalive_workers=2, fresh_workers=2)
    assert r.requests == r.successes > 0 and r.failures == 0
    assert r.keepalive_requests and r.fresh_requests
    assert r.versions == {"test": r.requests}
    assert r.status_codes == {200: r.requests}


def test_counts_error_statuses_and_resets(server):
    r = run_load(server + "/error", 0.3, keepalive_workers=1, fresh_workers=1)
    assert r.failures == r.requests > 0 and r.status_codes == {500: r.requests}
    r = run_load(server + "/reset", 0.3, keepalive_workers=1, fresh_workers=1)
    assert r.failures == r.requests > 0 and r.successes == 0
    assert r.errors and all(isinstance(t, float) and msg for t, msg in r.errors)


def test_bounded_by_count_and_rate(server):
    t0 = time.monotonic()
    r = run_load(server + "/", 30, max_requests=50)
    assert r.requests == 50 and time.monotonic() - t0 < 10
    r = run_load(server + "/", 1.0, rate=100, keepalive_workers=1, fresh_workers=1)
    assert 70 <= r.requests <= 110, r.summary()


def test_background_stop(server):
    gen = LoadGenerator(server + "/", 30).start()
    time.sleep(0.2)  # let some requests through; stop() is what is under test
    t0 = time.monotonic()
    r = gen.stop()
    assert time.monotonic() - t0 < 6 and r.requests > 0 and r.elapsed < 10
