"""`keys`: show each server's pinned host keys against what AWS vouches for, and refresh the pins."""

from __future__ import annotations

from typing import Optional

from rollout.orchestration.hostkeys import SOURCE, vouched_keys
from rollout.core.hostkeys import Refresh, Server, fingerprint, refresh
from rollout.orchestration.environment import Environment
from rollout.core.errors import HostKeyError, UsageError
from rollout.config.inventory import Inventory


def keys(inv: Inventory, say, replace: Optional[str] = None) -> list[dict]:
    """Compare every pin of the environment with the instance's console keys; pin what is unpinned, drop stale pins.

    `replace` (comma-separated instance ids) re-pins those instances with what AWS shows now: the
    operator's word that they were rebuilt. Changes no server. Returns one row per server; raises
    HostKeyError (exit 7) if a pin still differs from what AWS shows.
    """
    if inv.ssh.host_keys != "aws":
        raise UsageError(f"fab keys works with ssh.host_keys: aws; {inv.name} checks keys against {inv.ssh.known_hosts}")
    wanted = {i.strip() for i in (replace or "").split(",") if i.strip()}
    env = Environment(inv)
    try:
        env.discover()
        servers = ([Server("bastion", env.bastion.instance_id, env.bastion.name or "bastion", env.bastion.address)]
                   if env.bastion else []) + [Server("host", i.instance_id, i.name, i.address) for i in env.instances]
        unknown = wanted - {s.instance_id for s in servers}
        if unknown:
            raise UsageError(f"--replace: {', '.join(sorted(unknown))} is not a running instance of {inv.name}"
                             f" (its bastion or hosts)")
        pins = env.trust.pins
        held = pins.all()
        rows = []
        for s in servers:
            pinned = held.get(s.instance_id, {}).get("keys", frozenset())
            vouched = vouched_keys(env.aws, s.instance_id)
            action = refresh(pinned, vouched, s.instance_id in wanted)
            if action is Refresh.PIN:
                pinned = pins.pin(s.instance_id, vouched, SOURCE)
            elif action is Refresh.REPIN:
                pins.replace(s.instance_id, vouched, SOURCE)
                pinned = vouched
            shown = ", ".join(f"{k.split()[0]} {fingerprint(k)}" for k in sorted(pinned or vouched)) or "-"
            say(f"{s.label}: {action.value}: {shown}")
            rows.append({"instance_id": s.instance_id, "role": s.role, "name": s.name, "address": s.address,
                         "action": action.value, "pinned": sorted(pinned), "vouched": sorted(vouched)})
        for stale in sorted(set(held) - {s.instance_id for s in servers}):
            pins.drop(stale)
            say(f"{stale}: no longer running; its pin was dropped")
    finally:
        env.close()
    differ = [r["instance_id"] for r in rows if r["action"] == Refresh.DIFFERS.value]
    if differ:
        raise HostKeyError(f"the pinned keys of {', '.join(differ)} differ from what AWS shows now: until you re-pin them,"
                           f" deploys refuse these servers. If they really were rebuilt under the same id, check their"
                           f" console output, then: fab keys --env={inv.name} --replace={','.join(differ)}")
    return rows
