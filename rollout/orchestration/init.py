"""`init`: find an environment in AWS, ask what AWS cannot tell, write its commented inventory, check it."""

from __future__ import annotations

import datetime
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from rollout.adapters import discovery, membership, stacks
from rollout.adapters.aws import Aws
from rollout.config import check as checking
from rollout.config import scaffold
from rollout.config.inventory import ADDRESS_ATTRIBUTES, ENV_NAME
from rollout.core.errors import ConfigError, PreflightError, UsageError


def facts(aws: Aws, where: scaffold.Where) -> scaffold.Facts:
    """What AWS shows about the environment: its running instances, their group(s), balancers and bastion."""
    aws.require_credentials()
    stack = stacks.read(aws, where.stack) if where.stack else None
    if stack is None:
        found = discovery.find_instances(aws, where.tags, where.address)
        groups = sorted({i.group for i in found if i.group})
    else:
        members = discovery.group_members(aws, stack.physical_ids(stacks.AUTOSCALING_GROUP))
        ids = sorted(set(members) | set(stack.physical_ids(stacks.INSTANCE)))
        found = discovery.find_instances(aws, where.tags, where.address, ids=ids) if ids else []
        found = [replace(i, group=members.get(i.instance_id, i.group)) for i in found]
        groups = sorted({i.group for i in found if i.group})
    if not found:
        how = f"in stack {where.stack}" if where.stack else f"with tags {where.tags}"
        raise PreflightError(f"init: no running instance {how} has a {where.address}; check --stack, --tags or --address")
    if where.bastion_host:
        bastion = ""
    else:
        try:
            address = discovery.find_bastion(aws, where.bastion_tags, where.bastion_address)
        except PreflightError as exc:
            raise PreflightError(f"init: {str(exc).split(';')[0]}; fix --bastion-tags or --bastion-address, or give --bastion-host") from None
        bastion = f"the one running instance with these tags, at {address}"
    elbs, tgs, _ = membership.read(aws)
    return scaffold.Facts(instances=tuple((i.instance_id, i.name) for i in found), groups=tuple(groups),
                          balancers=tuple(membership.choose({i.instance_id for i in found}, elbs, tgs)),
                          bastion=bastion, stack_outputs=tuple(sorted(stack.outputs)) if stack else ())


def where_from(env: str, region: Optional[str], endpoint_url: Optional[str], profile: Optional[str], stack: Optional[str],
               tags: Optional[str], address: Optional[str], bastion_tags: Optional[str], bastion_host: Optional[str],
               bastion_address: Optional[str], ask: Optional[Callable[[scaffold.Question], str]]) -> scaffold.Where:
    """The flags about AWS and the fleet, checked; the bastion asked for if it is not given and there is a terminal."""
    if not ENV_NAME.match(env):
        raise UsageError(f"--env={env!r} is not a valid environment name: use lower-case letters, digits, '-' and '_'")
    if not region:
        raise UsageError("init needs --region=REGION (the environment's AWS region, e.g. eu-west-1)")
    if not stack and not tags:
        raise UsageError("init needs --tags=KEY=VALUE,... (the tags every instance of the environment carries) or --stack=NAME")
    for flag, value in (("--address", address), ("--bastion-address", bastion_address)):
        if value and value not in ADDRESS_ATTRIBUTES.__args__:
            raise UsageError(f"{flag}={value!r}: give one of {', '.join(ADDRESS_ATTRIBUTES.__args__)}")
    if not bastion_tags and not bastion_host:
        if ask is None:
            raise UsageError("init needs --bastion-tags=KEY=VALUE,... or --bastion-host=ADDRESS; without a terminal nothing is asked")
        given = ask(scaffold.Question("bastion", "--bastion-tags", "the bastion's tags as KEY=VALUE,... (or its address)")).strip()
        bastion_tags, bastion_host = (given, None) if "=" in given else (None, given or None)
        if not bastion_tags and not bastion_host:
            raise UsageError("no answer for the bastion (--bastion-tags or --bastion-host); run fab init again")
    return scaffold.Where(env=env, region=region, endpoint_url=endpoint_url or None, profile=profile or None,
                          stack=stack or None, tags=scaffold.parse_tags(tags, "--tags"),
                          address=address or "PrivateIpAddress", bastion_tags=scaffold.parse_tags(bastion_tags, "--bastion-tags"),
                          bastion_host=bastion_host or None, bastion_address=bastion_address or "PublicIpAddress")


def write(directory: Path, where: scaffold.Where, found: scaffold.Facts, ans: scaffold.Answers) -> Path:
    """Write the inventory (never over an existing file) and check it offline (`fab check`).

    If the check finds a problem the file is removed again, and ConfigError lists what to fix.
    """
    path = directory / f"{where.env}.yml"
    directory.mkdir(parents=True, exist_ok=True)
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    try:
        with path.open("x") as out:
            out.write(scaffold.render(where, found, ans, today))
    except FileExistsError:
        raise UsageError(f"{path} already exists: choose another --env, or remove the file first") from None
    problems = checking.problems(where.env, directory)
    if problems:
        path.unlink()
        raise ConfigError(f"{path} not written: fab check --env={where.env} would find: " + "; ".join(problems)
                          + " (fix the flag that gave it)")
    return path


def refuse_existing(directory: Path, env: str) -> None:
    """UsageError before anything is asked or read if the environment already has an inventory."""
    if (directory / f"{env}.yml").exists():
        raise UsageError(f"{directory / (env + '.yml')} already exists: choose another --env, or remove the file first")
