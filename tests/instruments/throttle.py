"""An HTTP proxy in front of moto that answers every Nth request with an AWS throttling error.

End-to-end tests point rollout's Aws(endpoint_url=proxy.url) at it to prove that
throttling is retried. It only ever connects to its upstream, which must be on
loopback (sandbox.motoproxy).
"""

from __future__ import annotations

import re

from sandbox.motoproxy import Answer, MotoProxy

_SIGV4_SERVICE = re.compile(r"Credential=[^/]*/[^/]*/[^/]*/([^/]*)/")

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


def throttle_answer(headers) -> Answer:
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


class ThrottlingProxy(MotoProxy):
    """Forward requests to `upstream`, answering every `every`-th one with a throttling error.

    Use as a context manager; `.url` is where to point clients, `.injected` and
    `.forwarded` count the throttled and forwarded requests.
    """

    def __init__(self, upstream: str = "http://127.0.0.1:5055", every: int = 3):
        if every < 1:
            raise ValueError(f"every={every}: must be 1 or more")
        super().__init__(upstream)
        self.every = every
        self.injected = 0
        self._seen = 0

    def _should_throttle(self) -> bool:
        with self._lock:
            self._seen += 1
            throttle = self._seen % self.every == 0
            if throttle:
                self.injected += 1
            return throttle

    def _answer(self, method: str, path: str, headers, body: bytes) -> Answer:
        """The answer to one request: a throttling error, or the upstream's answer."""
        if self._should_throttle():
            status, out, data = throttle_answer(headers)
            return status, out + [("x-amzn-RequestId", "x")], data
        return super()._answer(method, path, headers, body)
