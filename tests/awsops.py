"""The IAM actions rollout's own AWS calls need, read from the sandbox moto's request recording.

sandbox/motoserver.py starts moto with its recorder on (sandbox.topology.MOTO_RECORDING, one JSON
object a line: headers, method, url, body). rollout's clients name themselves in the user agent
(rollout.adapters.aws.USER_AGENT), so the sandbox's own setup calls and the tests' direct reads are left out.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
from pathlib import Path
from urllib.parse import parse_qs

from rollout.adapters.aws import USER_AGENT
from rollout.core.awserrors import action_name

# Actions AWS authorizes without any policy.
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}
# DynamoDB authorizes a TransactWriteItems call by the action of each item in it.
TRANSACT_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
_SERVICE = re.compile(r"Credential=[^/]+/[0-9]{8}/[^/]+/([^/]+)/aws4_request")


def _header(headers: dict, name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")


def _body(entry: dict) -> str:
    body = entry.get("body") or ""
    return base64.b64decode(body).decode("utf-8", "replace") if entry.get("body_encoded") else body


def actions(entry: dict) -> set[str]:
    """The IAM actions one recorded request needs ({} if rollout did not make it, or it needs none)."""
    headers = entry.get("headers", {})
    if USER_AGENT not in _header(headers, "User-Agent"):
        return set()
    service = _SERVICE.search(_header(headers, "Authorization"))
    if not service:
        return set()
    target = _header(headers, "X-Amz-Target")
    if target:
        operation = target.rsplit(".", 1)[-1]
    else:
        operation = (parse_qs(_body(entry)).get("Action") or [""])[0]
    if not operation:
        return set()
    if (service.group(1), operation) == ("dynamodb", "TransactWriteItems"):
        items = json.loads(_body(entry)).get("TransactItems", [])
        found = {action_name("dynamodb", TRANSACT_ITEM_ACTIONS[kind]) for item in items for kind in item}
    else:
        found = {action_name(service.group(1), operation)}
    return found - NEEDS_NO_PERMISSION


class Recording:
    """The recording file, read from a mark onwards (a mark is a byte offset)."""

    def __init__(self, path: Path):
        self.path = path

    def mark(self) -> int:
        assert self.path.is_file(), f"{self.path} is missing: moto was not started by this sandbox (run fab sandbox.down, then up)"
        return self.path.stat().st_size

    def requests_since(self, mark: int = 0) -> list[set[str]]:
        """The IAM actions each of rollout's requests since `mark` needed, in order. A line cut by a concurrent write is skipped."""
        with self.path.open("rb") as fh:
            fh.seek(mark)
            lines = fh.read().splitlines()
        out: list[set[str]] = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if needed := actions(entry):
                out.append(needed)
        return out

    def actions_since(self, mark: int = 0) -> set[str]:
        """Every IAM action rollout's requests since `mark` needed."""
        return set().union(*self.requests_since(mark))


def allowed(policy: dict) -> list[str]:
    """The action patterns a policy document allows."""
    patterns: list[str] = []
    for st in policy["Statement"]:
        if st.get("Effect") == "Allow":
            patterns += [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
    return patterns


def missing(used: set[str], policies: list[dict]) -> list[str]:
    """The actions in `used` that none of `policies` allows (IAM matches actions case-insensitively)."""
    patterns = [p.lower() for doc in policies for p in allowed(doc)]
    return sorted(a for a in used if not any(fnmatch.fnmatchcase(a.lower(), p) for p in patterns))
