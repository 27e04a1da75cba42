"""The rollout-sandbox AWS profile: dummy keys and the region, in root's ~/.aws files.

Sections are appended as text where absent (the user's comments survive), and removed
again exactly as far as `ensure_profile()` reported adding them.
"""

from __future__ import annotations

import configparser
from pathlib import Path

PROFILE = "rollout-sandbox"
REGION = "eu-west-1"
CREDENTIALS = Path.home() / ".aws" / "credentials"
CONFIG = Path.home() / ".aws" / "config"


def _sections(path: Path) -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(path)
    return set(parser.sections())


def _append_section(path: Path, header: str, body: dict[str, str]) -> bool:
    if header in _sections(path):
        return False
    path.parent.mkdir(mode=0o700, exist_ok=True)
    existing = path.read_text() if path.exists() else ""
    sep = "" if not existing or existing.endswith("\n\n") else ("\n" if existing.endswith("\n") else "\n\n")
    lines = [f"[{header}]"] + [f"{k} = {v}" for k, v in body.items()]
    # appended as text, not rewritten by configparser, so the user's comments survive
    with path.open("a") as f:
        f.write(sep + "\n".join(lines) + "\n")
    path.chmod(0o600)
    return True


def _remove_section(path: Path, header: str) -> None:
    if not path.exists():
        return
    out, skipping = [], False
    for line in path.read_text().splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            skipping = stripped[1:-1].strip() == header
        if not skipping:
            out.append(line)
    path.write_text("".join(out).rstrip("\n") + "\n" if any(s.strip() for s in out) else "")


def ensure_profile() -> dict[str, bool]:
    """Add the rollout-sandbox profile (dummy keys) where absent; returns which file got a section."""
    return {
        "credentials": _append_section(
            CREDENTIALS, PROFILE, {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
        ),
        "config": _append_section(CONFIG, f"profile {PROFILE}", {"region": REGION, "output": "json"}),
    }


def remove_profile(added: dict[str, bool]) -> None:
    """Remove exactly the sections ensure_profile() reported adding."""
    if added.get("credentials"):
        _remove_section(CREDENTIALS, PROFILE)
    if added.get("config"):
        _remove_section(CONFIG, f"profile {PROFILE}")
