"""The environment's desired version: the record a deploy publishes and a booting instance reads.

One JSON document, written in one PutParameter (so version and run id change together):
{"version": SHA or image digest, "run_id": ..., "ref": ..., "env": ...}.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Optional

from rollout.core.plan import VERSION


@dataclass(frozen=True)
class Desired:
    version: str
    run_id: str
    ref: str
    env: str


def encode(desired: Desired) -> str:
    """The parameter's value."""
    return json.dumps(asdict(desired), sort_keys=True)


def decode(text: Optional[str]) -> Optional[Desired]:
    """The record from a parameter's value; None if there is none or it is not one (never trusted blindly)."""
    try:
        doc = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(doc, dict) or not VERSION.match(str(doc.get("version", ""))):
        return None
    return Desired(**{k: str(doc.get(k, "")) for k in ("version", "run_id", "ref", "env")})


def after_run(result: str, versions: set[str]) -> Optional[str]:
    """The version to publish after a run that ended with `result`, whose hosts were set to `versions`; None: publish nothing.

    Only a run that set every host it planned to one version says what the fleet should run: a
    success (deploy or rollback; hosts that failed within max_failures are then off it, and
    `status` flags them) or a recovery that restored one version. A failed,
    rolled-back, interrupted or paused run leaves the previous record as it was.
    """
    if result not in ("succeeded", "recovered") or len(versions) != 1:
        return None
    (version,) = versions
    return version if VERSION.match(version) else None
