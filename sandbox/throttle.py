"""An HTTP proxy in front of moto that answers every Nth request with an AWS throttling error.

End-to-end tests point rollout's Aws(endpoint_url=proxy.url) at it to prove that
throttling is retried. It only ever connects to its upstream, which must be on
loopback.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Hop-by-hop headers are the proxy's own business on each side, not forwarded.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
_SIGV4_SERVICE = re.compile(r"Credential=[^/]*/[^/]*/[^/]*/([^/]*)/")
_UPSTREAM_TIMEOUT = 30.0

_EC2_XML = (
    b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>x</RequestID></Response>"
)
_QUERY_XML = (
    b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
    b"</Error><RequestId>x</RequestId></ErrorResponse>"
)
_DYNAMODB_JSON = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}'
_QUERY_COMPATIBLE_JSON = b'{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate exceeded"}'


def throttle_answer(headers) -> tuple[int, list[tuple[str, str]], bytes]:
    """The throttling error (status, headers, body) the real service would send for this request."""
    target = headers.get("X-Amz-Target") or ""
    if target.startswith("DynamoDB_"):
        return 400, [("Content-Type", "application/x-amz-json-1.0")], _DYNAMODB_JSON
    if target:
        # A former query service speaking JSON (CloudWatch, in current botocore): the
        # x-amzn-query-error header carries its query-era code, Throttling.
        json_headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-query-error", "Throttling;Sender")]
        return 400, json_headers, _QUERY_COMPATIBLE_JSON
    match = _SIGV4_SERVICE.search(headers.get("Authorization", ""))
    if match and match.group(1) == "ec2":
        return 503, [("Content-Type", "text/xml")], _EC2_XML
    return 400, [("Content-Type", "text/xml")], _QUERY_XML


def loopback_upstream(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL on loopback; ValueError for anything else."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback  # an IP literal: no name lookup to trust
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback or parts.port is None:
        raise ValueError(f"upstream {url!r}: the throttling proxy only forwards to http://127.0.0.1:PORT (loopback, explicit port)")
    return host, parts.port


class ThrottlingProxy:
    """Forward requests to `upstream`, answering every `every`-th one with a throttling error.

    Use as a context manager; `.url` is where to point clients, `.injected` and
    `.forwarded` count the throttled and forwarded requests.
    """

    def __init__(self, upstream: str = "http://127.0.0.1:5055", every: int = 3):
        if every < 1:
            raise ValueError(f"every={every}: must be 1 or more")
        self.upstream_host, self.upstream_port = loopback_upstream(upstream)
        self.every = every
        self.injected = 0
        self.forwarded = 0
        self._seen = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "ThrottlingProxy":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _should_throttle(self) -> bool:
        with self._lock:
            self._seen += 1
            throttle = self._seen % self.every == 0
            if throttle:
                self.injected += 1
            return throttle

    def _answer(self, method: str, path: str, headers, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The answer to one request: a throttling error, or the upstream's answer."""
        if self._should_throttle():
            status, out, data = throttle_answer(headers)
            return status, out + [("x-amzn-RequestId", "x")], data
        try:
            return self._forward(method, path, headers, body)
        except OSError as exc:
            return 502, [("Content-Type", "text/plain")], f"upstream unreachable: {exc}".encode()

    def _forward(self, method: str, path: str, headers, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
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


def _handler(proxy: ThrottlingProxy) -> type[BaseHTTPRequestHandler]:
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
            pass  # quiet: tests read .injected and .forwarded instead

    return Handler
