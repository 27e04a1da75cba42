"""An HTTP proxy in front of a moto server on loopback: the base of sandbox.awsgate and of the tests' throttling proxy.

Requests are forwarded as they came (hop-by-hop headers aside); a subclass changes the
answers by overriding `_answer`. It only ever connects to its upstream, which must be on
loopback.
"""

from __future__ import annotations

import http.client
import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from sandbox import topology as topo

# Hop-by-hop headers are the proxy's own business on each side, not forwarded.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
_UPSTREAM_TIMEOUT = 30.0

Answer = tuple[int, list[tuple[str, str]], bytes]


def loopback_upstream(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL on loopback; ValueError for anything else."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback  # an IP literal: no name lookup to trust
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback or parts.port is None:
        raise ValueError(f"upstream {url!r}: the proxy only forwards to http://127.0.0.1:PORT (loopback, explicit port)")
    return host, parts.port


class MotoProxy:
    """Forward every request to `upstream` and back; use as a context manager.

    `.url` is where to point clients; `.forwarded` counts the requests answered by the upstream.
    """

    def __init__(self, upstream: str = topo.MOTO_ENDPOINT):
        self.upstream = upstream
        self.upstream_host, self.upstream_port = loopback_upstream(upstream)
        self.forwarded = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, method: str, path: str, headers, body: bytes) -> Answer:
        """The answer to one request (status, headers, body): the upstream's, or 502 if it cannot be reached."""
        try:
            return self._forward(method, path, headers, body)
        except OSError as exc:
            return 502, [("Content-Type", "text/plain")], f"upstream unreachable: {exc}".encode()

    def _forward(self, method: str, path: str, headers, body: bytes) -> Answer:
        """Send the request upstream as it came; return the upstream's status, headers and body."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=_UPSTREAM_TIMEOUT)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            with self._lock:
                self.forwarded += 1
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()


def _handler(proxy: MotoProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # botocore keeps connections alive

        def _handle(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, data = proxy._answer(self.command, self.path, self.headers, body)
            self.send_response(status)
            for name, value in headers:
                # send_response already wrote Server and Date; Content-Length is recomputed
                if name.lower() not in _HOP_BY_HOP | {"content-length", "server", "date"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
            pass  # quiet: tests read the proxy's counters instead

    return Handler
