"""Deploy requests signed with a shared secret (HMAC-SHA256), so a worker runs only what it trusts.

`verify` reads any message body without raising anything but BadRequest: the size is
bounded before parsing, every field's type is checked, and the signed time must be
within `max_age` in the past and at most CLOCK_TOLERANCE in the future.
A request may name an action (rollout.core.actions) and a reason; one without is a deploy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
import uuid

from rollout.core.actions import CONTROL, Action

FIELDS = ("id", "env", "ref", "requested_by", "at")
# Signed when present: a request made before they existed has neither and still verifies,
# and removing or adding one breaks the signature.
OPTIONAL = ("action", "reason")
# A signed request is about 250 bytes; anything much larger is not one, and is refused unparsed.
MAX_BODY = 4096
# Seconds a request may be dated ahead of the worker's clock (the enqueuer's clock runs fast).
CLOCK_TOLERANCE = 300
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_REASON = re.compile(r"^[^\x00-\x1f\x7f]{0,500}$")


class BadRequest(Exception):
    """The request is malformed, unsigned, signed with another secret, or too old."""


def canonical(body: dict) -> bytes:
    signed = {k: body[k] for k in FIELDS} | {k: body[k] for k in OPTIONAL if k in body}
    return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


def sign(body: dict, secret: str) -> str:
    return hmac.new(secret.encode(), canonical(body), hashlib.sha256).hexdigest()


def make(env: str, ref: str, requested_by: str, secret: str, request_id: str | None = None,
         action: Action = Action.DEPLOY, reason: str | None = None) -> dict:
    """A signed request to deploy `ref` to `env` (or to roll back to it; or to pause or unpause `env`, with `ref` "")."""
    body = {"id": request_id or uuid.uuid4().hex, "env": env, "ref": ref, "requested_by": requested_by, "at": time.time()}
    if action is not Action.DEPLOY:
        body["action"] = action.value
    if reason is not None:
        body["reason"] = reason
    return {**body, "signature": sign(body, secret)}


def _finite(at: float) -> bool:
    """True if `at` is a finite float (a JSON integer too large for one is not)."""
    try:
        return math.isfinite(at)
    except OverflowError:
        return False


def verify(text, secret: str, *, max_age: float, now: float | None = None) -> dict:
    """The request in a message body if it is well formed, signed with `secret` and recent; BadRequest otherwise.

    `now` is the worker's clock (default time.time()); a request older than `max_age` seconds,
    or dated more than CLOCK_TOLERANCE seconds ahead, is refused.
    """
    body = _parse(text)
    if not hmac.compare_digest(body["signature"], sign(body, secret)):
        raise BadRequest("bad signature: not signed with this environment's queue secret")
    age = (time.time() if now is None else now) - body["at"]
    if age > max_age:
        raise BadRequest(f"request is {age:.0f}s old, over queue.max_age ({max_age:g}s): enqueue it again")
    if age < -CLOCK_TOLERANCE:
        raise BadRequest(f"request is dated {-age:.0f}s ahead of this worker's clock (tolerance {CLOCK_TOLERANCE}s):"
                         " check the enqueuer's clock")
    return body


def _parse(text) -> dict:
    """The body's fields, each of the expected type; BadRequest for anything else."""
    if not isinstance(text, str):
        raise BadRequest(f"body is {type(text).__name__}, not text")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY:
        raise BadRequest(f"body of {size} bytes is over the {MAX_BODY}-byte bound of a deploy request")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest("not a JSON deploy request") from None
    if not isinstance(body, dict):
        raise BadRequest(f"not a JSON object but a {type(body).__name__}")
    expected = (*FIELDS, "signature")
    missing = [k for k in expected if k not in body]
    extra = sorted(k for k in body if k not in expected and k not in OPTIONAL)
    if missing or extra:
        raise BadRequest("; ".join(filter(None, [missing and f"missing fields: {', '.join(missing)}",
                                                 extra and f"unexpected fields: {', '.join(extra)[:200]}"])))
    for key in ("id", "env", "ref", "requested_by", "signature"):
        if not isinstance(body[key], str):
            raise BadRequest(f"field {key!r} is a {type(body[key]).__name__}, not a string")
    at = body["at"]
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not _finite(at):
        raise BadRequest(f"field 'at' is not a time in seconds: {str(at)[:40]!r}")
    if not REQUEST_ID.match(body["id"]):
        raise BadRequest("field 'id' is not a request id (letters, digits, . _ : -, at most 128)")
    if not _SIGNATURE.match(body["signature"]):
        raise BadRequest("field 'signature' is not 64 hex digits")
    if "action" in body and (not isinstance(body["action"], str) or body["action"] not in {a.value for a in Action}):
        raise BadRequest(f"unknown action {str(body['action'])[:40]!r}; known: {', '.join(a.value for a in Action)}")
    if "reason" in body and not (isinstance(body["reason"], str) and _REASON.match(body["reason"])):
        raise BadRequest("field 'reason' is not text of at most 500 characters without control characters")
    control = body.get("action") in CONTROL
    for key in ("env", "ref", "requested_by"):
        if not (_PRINTABLE.match(body[key]) or (key == "ref" and control and body[key] == "")):
            raise BadRequest(f"field {key!r} is empty, longer than 200 characters or has control characters")
    return body
