"""Host keys rooted in AWS: what the EC2 console vouches for, and whether a presented key is trusted.

Pure: the console text, the pins and the presented key come in; a verdict goes out.
A key is one OpenSSH public key line without its comment: "ssh-ed25519 AAAA...".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass
from enum import Enum

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
_KEY = re.compile(r"(?:^|\s)((?:ssh|ecdsa|sk)-[a-z0-9@.-]+)\s+([A-Za-z0-9+/]+={0,2})(?=\s|$)")


def parse_key(line: str) -> str | None:
    """'TYPE BASE64' from an OpenSSH public key line (prefix and comment ignored); None if it holds none.

    The base64 must decode to a key blob naming the same type, so noise on a console line is never a key.
    """
    match = _KEY.search(line)
    if not match:
        return None
    kind, data = match.groups()
    try:
        blob = base64.b64decode(data, validate=True)
        (size,) = struct.unpack(">I", blob[:4])
    except (binascii.Error, struct.error, ValueError):
        return None
    if blob[4:4 + size].decode("ascii", "replace") != kind:
        return None
    return f"{kind} {data}"


def console_keys(text: str) -> tuple[str, ...]:
    """The host keys cloud-init printed between BEGIN/END SSH HOST KEY KEYS, in its last complete block.

    The console keeps the latest output of every boot; the last block is the current boot's.
    An unterminated block (the console cut mid-block) counts as no block.
    """
    found: tuple[str, ...] = ()
    block: list[str] | None = None
    for raw in text.replace("\r", "").split("\n"):
        if BEGIN in raw:
            block = []
        elif END in raw:
            if block is not None:
                found = tuple(dict.fromkeys(block))
            block = None
        elif block is not None and (key := parse_key(raw)):
            block.append(key)
    return found


def fingerprint(key: str) -> str:
    """The key's SHA256 fingerprint as ssh-keygen -l shows it: SHA256:base64-without-padding."""
    blob = base64.b64decode(key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class Trust(str, Enum):
    """What to do with a presented host key."""

    PINNED = "pinned"          # equals a key pinned for this instance: accept
    VOUCHED = "vouched"        # no pin yet, and AWS vouches for it: accept and pin AWS's keys
    CHANGED = "changed"        # differs from this instance's pin: refuse (possible interception)
    UNVOUCHED = "unvouched"    # no pin, and AWS vouches for other keys only: refuse
    NO_VOUCHED = "no-vouched"  # no pin, and AWS vouches for no key yet: refuse with the fix

    @property
    def accepted(self) -> bool:
        return self in (Trust.PINNED, Trust.VOUCHED)


def judge(presented: str, pinned: frozenset[str], vouched: frozenset[str]) -> Trust:
    """Whether `presented` is trusted for an instance with these pinned and AWS-vouched keys.

    A pin always wins: a key that changed against it is refused even if AWS now shows it
    (re-pinning a rebuilt instance is the operator's decision: fab keys --replace).
    """
    if pinned:
        return Trust.PINNED if presented in pinned else Trust.CHANGED
    if not vouched:
        return Trust.NO_VOUCHED
    return Trust.VOUCHED if presented in vouched else Trust.UNVOUCHED


@dataclass(frozen=True)
class Server:
    """Who a server is: its role ('bastion' or 'host'), instance id, name and the address connected to."""

    role: str
    instance_id: str
    name: str
    address: str

    @property
    def label(self) -> str:
        return f"{self.role} {self.name or self.instance_id} ({self.instance_id}, {self.address})"


def refusal(server: Server, trust: Trust, presented: str, env: str) -> str:
    """The one line for a refused key: which server, what it presented, why, and the fix."""
    shown = f"presented {presented.split()[0]} {fingerprint(presented)}"
    if trust is Trust.CHANGED:
        return (f"{server.label}: host key changed against the key pinned for {server.instance_id} ({shown}): possible"
                f" interception; nothing was changed. If the instance really was rebuilt under the same id, check its"
                f" console output, then: fab keys --env={env} --replace={server.instance_id}")
    if trust is Trust.UNVOUCHED:
        return (f"{server.label}: host key not vouched for by AWS ({shown}; the instance's console output lists other"
                f" keys): possible interception or a replaced address; nothing was changed. Compare with"
                f" `aws ec2 get-console-output --instance-id {server.instance_id}`")
    return (f"{server.label}: AWS vouches for no host key of {server.instance_id} yet ({shown}; no BEGIN SSH HOST KEY"
            f" KEYS block in its console output); nothing was changed. Wait until the instance has booted (cloud-init prints"
            f" its keys to the console), then retry, or check with: fab keys --env={env}")


class Refresh(str, Enum):
    """What `fab keys` does with one running instance's pin."""

    KEEP = "pinned"                   # pinned, and AWS shows the same keys (or none any more)
    PIN = "pinned now"                # no pin: pin what AWS vouches for
    REPIN = "re-pinned"               # --replace: the operator's word to pin what AWS shows now
    DIFFERS = "pin differs from AWS"  # pinned, AWS shows other keys: kept (fab keys --replace=ID after checking)
    NOTHING = "no key vouched yet"    # no pin and no console keys: the instance has not booted


def refresh(pinned: frozenset[str], vouched: frozenset[str], replace: bool) -> Refresh:
    """The pin action for an instance; `replace` is the operator naming it in --replace."""
    if not vouched:
        return Refresh.KEEP if pinned else Refresh.NOTHING
    if not pinned:
        return Refresh.PIN
    if pinned == vouched:
        return Refresh.KEEP
    return Refresh.REPIN if replace else Refresh.DIFFERS
