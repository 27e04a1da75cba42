"""`check`: an environment's configuration checked offline, every problem at once (no AWS call, no SSH)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rollout.adapters import aws
from rollout.config import inventory
from rollout.config.inventory import Inventory
from rollout.core.errors import ConfigError, InventoryError


def missing_files(inv: Inventory) -> list[str]:
    """The SSH files the inventory names that are not readable files, each as one line."""
    return [f"{what}: {path} does not exist; fix the path in inventories/{inv.name}.yml"
            for what, path in (("ssh.key", inv.ssh.key), ("ssh.known_hosts", inv.ssh.known_hosts))
            if path is not None and not path.is_file()]


def problems(env: str, directory: Optional[Path] = None) -> list[str]:
    """Every problem found in `env`'s configuration without the network; [] if it is ready to use.

    Checks the inventory's values (all of them, with file and line), the files it names,
    the AWS region, and the environment named by require_success_in.
    """
    directory = directory or inventory.inventory_dir()
    try:
        inv = inventory.load(env, directory)
    except InventoryError as exc:
        return list(exc.problems)
    except ConfigError as exc:
        return [str(exc)]
    found = missing_files(inv)
    region = aws.region_problem(inv.aws.region, inv.aws.endpoint_url)
    if region:
        found.append(region)
    if inv.require_success_in and inv.require_success_in not in inventory.known_environments(directory):
        found.append(f"require_success_in: no inventory for environment {inv.require_success_in!r} in {directory}")
    return found
