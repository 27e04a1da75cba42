"""What `fab sandbox.*` runs: bring the fleet up or down, and show it."""

from __future__ import annotations

import json

from sandbox import fleet


def up(hosts: int, personal: str = "", app: str = "git") -> None:
    """Bring up or repair the sandbox with `hosts` application hosts (and personal ones); prints what it did.

    app="container" also runs the app as a podman container on every host (inventories/sandbox-container.yml).
    """
    from rollout.core.personal import check_user

    users = tuple(check_user(u.strip()) for u in personal.split(",") if u.strip())
    fleet.up(hosts=hosts, personal=users, app=app)


def scale(add: int, remove: int) -> None:
    """Add or remove hosts as the Auto Scaling group would (see sandbox.fleet.scale); prints what it did."""
    summary = fleet.scale(add=add, remove=remove)
    for name, old in summary.get("reused_addresses", {}).items():
        print(f"sandbox: {name} reuses {old['address']}, the address of terminated instance(s) {', '.join(old['terminated'])}")
    for name, iid in summary.get("terminated", {}).items():
        print(f"sandbox: terminated {name} ({iid})")


def down() -> None:
    """Remove everything the sandbox made."""
    fleet.down()


def status() -> None:
    """The sandbox's own servers, then `fab status --env=sandbox` if it is up."""
    info = fleet.describe()
    print(json.dumps(info, indent=2, default=str))
    if info.get("moto_listening") and info.get("namespaces"):
        from rollout.cli import commands as cli

        cli.status("sandbox")
