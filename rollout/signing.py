"""Deploy requests signed with a shared secret (HMAC-SHA256), so a worker runs only what it trusts."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

FIELDS = ("id", "env", "ref", "requested_by", "at")


class BadRequest(Exception):
    """The request is malformed, unsigned, or signed with another secret."""


def canonical(body: dict) -> bytes:
    return json.dumps({k: body[k] for k in FIELDS}, sort_keys=True, separators=(",", ":")).encode()


def sign(body: dict, secret: str) -> str:
    return hmac.new(secret.encode(), canonical(body), hashlib.sha256).hexdigest()


def make(env: str, ref: str, requested_by: str, secret: str, request_id: str | None = None) -> dict:
    """A signed request to deploy `ref` to `env`."""
    body = {"id": request_id or uuid.uuid4().hex, "env": env, "ref": ref, "requested_by": requested_by, "at": time.time()}
    return {**body, "signature": sign(body, secret)}


def verify(text: str, secret: str) -> dict:
    """The request in a message body, if it parses and its signature matches; BadRequest otherwise."""
    try:
        body = json.loads(text)
        missing = [k for k in (*FIELDS, "signature") if k not in body]
    except (ValueError, TypeError):
        raise BadRequest("not a JSON deploy request") from None
    if not isinstance(body, dict) or missing:
        raise BadRequest(f"missing fields: {', '.join(missing) if isinstance(body, dict) else 'all'}")
    if not hmac.compare_digest(str(body["signature"]), sign(body, secret)):
        raise BadRequest("bad signature: not signed with this environment's queue secret")
    return body
