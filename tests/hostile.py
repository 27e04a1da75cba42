"""Hostile deploy-queue message bodies, shared by the unit table and the fleet test.

Each entry: (id, body, words of the reason the worker must give). Add rows freely.
"""

from __future__ import annotations

import json

from rollout.core import signing

SECRET = "queue-secret-for-tests"


def signed(env: str = "sandbox", ref: str = "main", secret: str = SECRET, at: float | None = None, **changes) -> dict:
    """A well-signed request, optionally dated `at` and with fields changed (then signed again)."""
    req = signing.make(env, ref, "ci:tests", secret)
    if at is not None:
        req["at"] = at
    req.update(changes)
    req["signature"] = signing.sign(req, secret)
    return req


def bodies(now: float, env: str = "sandbox") -> list[tuple[str, str, list[str]]]:
    base = signed(env, at=now)
    return [
        ("deeply-nested", "[" * 60000 + "]" * 60000, ["over the 4096-byte bound"]),
        ("nested-under-the-bound", "[" * 2000 + "]" * 2000, ["not a JSON deploy request"]),
        ("huge", "x" * (250 * 1024), ["over the 4096-byte bound"]),
        ("not-json", "deploy main please", ["not a JSON deploy request"]),
        ("empty", " ", ["not a JSON deploy request"]),
        # Binary as far as SQS lets it through (it refuses most control characters itself).
        ("binary", "\u0089PNG\r\n\t\u00ff\ufffd\U0001f4a5\x7f", ["not a JSON deploy request"]),
        ("json-list", json.dumps([base]), ["not a JSON object but a list"]),
        ("json-string", json.dumps("main"), ["not a JSON object but a str"]),
        ("missing-fields", json.dumps({"env": env, "ref": "main"}), ["missing fields: id, requested_by, at, signature"]),
        ("extra-field", json.dumps({**base, "hosts": "all"}), ["unexpected fields: hosts"]),
        ("ref-not-a-string", json.dumps({**base, "ref": ["main"]}), ["field 'ref' is a list"]),
        ("at-not-a-number", json.dumps({**base, "at": "yesterday"}), ["field 'at' is not a time"]),
        ("at-a-bool", json.dumps({**base, "at": True}), ["field 'at' is not a time"]),
        ("at-huge-integer", json.dumps({**base, "at": 10 ** 500}), ["field 'at' is not a time"]),
        ("at-nan", json.dumps({**base, "at": float("nan")}), ["field 'at' is not a time"]),
        ("id-with-slash", json.dumps(signed(env, at=now, id="../../lock")), ["field 'id' is not a request id"]),
        ("signature-not-hex", json.dumps({**base, "signature": "é" * 64}), ["field 'signature' is not 64 hex digits"]),
        ("who-with-newline", json.dumps(signed(env, at=now, requested_by="ci\nrollout: fake")), ["control characters"]),
        ("forged", json.dumps({**base, "signature": "0" * 64}), ["bad signature"]),
        ("other-secret", json.dumps(signed(env, at=now, secret="another")), ["bad signature"]),
        ("other-env", json.dumps(signed("production", at=now)), ["request for 'production'"]),
        ("bad-ref", json.dumps(signed(env, at=now, ref="main;reboot")), ["not a valid branch"]),
        ("too-old", json.dumps(signed(env, at=now - 7200)), ["old, over queue.max_age"]),
        ("from-the-future", json.dumps(signed(env, at=now + 3600)), ["ahead of this worker's clock"]),
    ]
