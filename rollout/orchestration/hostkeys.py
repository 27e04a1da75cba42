"""Host keys that AWS vouches for: each instance's EC2 console output and its pin in the state table, and the SSH policy that trusts only them.

With `ssh.host_keys: aws`, every connection (bastion and hosts) is judged by
rollout.core.hostkeys.judge against the instance's pin, else against the keys cloud-init
printed to its console; nothing is ever trusted on first use.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import paramiko

from rollout.adapters.aws import Aws, translate
from rollout.core.hostkeys import Server, Trust, console_keys, fingerprint, judge, refusal
from rollout.core.errors import HostKeyError
from rollout.state.pins import Pins

log = logging.getLogger("rollout.hostkeys")
SOURCE = "ec2 console"


def vouched_keys(aws: Aws, instance_id: str) -> frozenset[str]:
    """The host keys in the instance's console output (GetConsoleOutput); empty if it shows none yet."""
    with translate(f"reading the console output of {instance_id}"):
        text = aws.client("ec2").get_console_output(InstanceId=instance_id).get("Output") or ""
    return frozenset(console_keys(text))  # botocore has already decoded the base64


class AwsTrust(paramiko.MissingHostKeyPolicy):
    """paramiko's policy for servers that are EC2 instances: accept a pinned key, or one AWS vouches for (then pin it).

    `servers` maps each address connected to (as paramiko names it: ADDRESS or [ADDRESS]:PORT is
    accepted) to the instance there; it is filled once discovery has found them (know()).
    """

    def __init__(self, pins: Pins, vouch: Callable[[str], frozenset[str]], env: str):
        self.pins, self.vouch, self.env = pins, vouch, env
        self._servers: dict[str, Server] = {}
        self._lock = threading.Lock()

    def know(self, servers: list[Server]) -> None:
        """Map these servers' addresses to their instances (the latest discovery wins)."""
        with self._lock:
            self._servers.update({s.address: s for s in servers})

    def server(self, hostname: str) -> Server:
        address = hostname[1:].rsplit("]:", 1)[0] if hostname.startswith("[") else hostname
        with self._lock:
            found = self._servers.get(address)
        if found is None:
            raise HostKeyError(f"{address}: no EC2 instance of environment {self.env} is known at this address, so AWS"
                               f" vouches for no key there; check the inventory's instances and bastion")
        return found

    def missing_host_key(self, client, hostname, key) -> None:
        server = self.server(hostname)
        presented = f"{key.get_name()} {key.get_base64()}"
        pinned = self.pins.get(server.instance_id)
        vouched = frozenset() if pinned else self.vouch(server.instance_id)
        trust = judge(presented, pinned, vouched)
        if trust is Trust.VOUCHED:
            held = self.pins.pin(server.instance_id, vouched, SOURCE)
            trust = judge(presented, held, vouched)  # another run may have pinned first: its pin decides
            if trust.accepted:
                log.info("%s: pinned the host keys AWS vouches for (%s)", server.label,
                            ", ".join(fingerprint(k) for k in sorted(held)))
        if not trust.accepted:
            raise HostKeyError(refusal(server, trust, presented, self.env))
