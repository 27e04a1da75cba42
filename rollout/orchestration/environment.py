"""One environment's adapters, built from its inventory: AWS, discovery, SSH, balancers, group, Slack."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cached_property
from typing import Optional

from rollout.adapters import autoscaling
from rollout.adapters import balancers
from rollout.adapters import discovery
from rollout.adapters import membership
from rollout.adapters import stacks
from rollout.adapters.alarms import Alarms
from rollout.orchestration.hostkeys import AwsTrust, vouched_keys
from rollout.adapters.aws import from_config as aws_from_config
from rollout.adapters.slack import Slack
from rollout.adapters.ssh import Fleet
from rollout.apps import strategies as apps
from rollout.config import check
from rollout.config.inventory import Alb, Elb, Inventory, resolve_outputs
from rollout.core.errors import ConfigError, PreflightError
from rollout.core.hostkeys import Server
from rollout.core.plan import Host
from rollout.core.report import who
from rollout.state.pins import Pins
from rollout.state.store import Store


class Environment:
    """Discovers the fleet and holds an adapter per side effect; close() when done."""

    def __init__(self, inventory: Inventory, requester: Optional[str] = None):
        """`requester` is who asked for this run (default: this process's operator, report.who())."""
        self.inventory = inv = inventory
        self.requester = requester if requester is not None else who()
        missing = check.missing_files(inv)
        if missing:
            raise ConfigError(missing[0])
        self.aws = aws_from_config(inv.aws, self.requester)
        self.slack = Slack(inv.slack)
        self.fleet: Optional[Fleet] = None
        self.instances: list[discovery.Instance] = []
        self.hosts: list[Host] = []
        self.balancers = []
        self.group: Optional[autoscaling.Group] = None
        self.alarms: Optional[Alarms] = None
        self.stack: Optional[stacks.Stack] = None
        self.found_balancers: list[tuple[str, str]] = []  # (kind, name) found from membership
        self.trust: Optional[AwsTrust] = None
        self.bastion: Optional[discovery.Instance] = None  # the bastion's instance, when found by tags or resource
        if inv.ssh.host_keys == "aws":
            if inv.bastion.host is not None and inv.ssh.known_hosts is None:
                raise ConfigError(f"ssh.host_keys: aws: a bastion given by 'host' is not known as an instance, so its key"
                                  f" needs ssh.known_hosts (or find it with bastion.tags or bastion.resource);"
                                  f" fix inventories/{inv.name}.yml")
            self.trust = AwsTrust(Pins(Store(self.aws, inv.state.table, inv.name)),
                                  lambda iid: vouched_keys(self.aws, iid), inv.name)

    @cached_property
    def app(self):
        """The app strategy (git or container); reads the app's secrets from this process's environment."""
        return apps.strategy(self.inventory)

    def discover(self, connect: bool = False, known_balancers: tuple[tuple[str, str], ...] = (),
                 restoring: bool = False, ssh: bool = True) -> list[Host]:
        """Find the instances and the bastion; build the adapters that depend on them.

        With `connect`, the bastion connection starts opening while the instances are
        being found; its error, if any, comes from the first use of the fleet. Without
        `ssh` (a dry run that contacts no host) there is no bastion to find and no fleet.
        The first AWS call stands in for a credentials check: its errors say what is wrong.
        `known_balancers` ((kind, name)) join those found from membership when the inventory lists none.
        `restoring` (recover): a stack that is changing or broken is read all the same.
        """
        inv = self.inventory
        self.aws.require_credentials()
        if inv.stack:
            self.stack = stacks.read(self.aws, inv.stack, changing_ok=restoring)
            inv = self.inventory = resolve_outputs(inv, self.stack.outputs)
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            fleet = pool.submit(self._fleet, connect) if ssh else None
            self.instances = self._find_instances()
            if self.trust is not None:
                self.trust.know([Server("host", i.instance_id, i.name, i.address) for i in self.instances])
            if not self.instances:
                where = f"in stack {inv.stack}" + (f" with tags {inv.instances.tags}" if inv.instances.tags else "") if inv.stack \
                    else f"with tags {inv.instances.tags}"
                raise PreflightError(
                    f"no running instance {where} and an {inv.instances.address}; check {'stack' if inv.stack else 'instances.tags'} in inventories/{inv.name}.yml"
                )
            self.fleet = fleet.result() if fleet is not None else None
        except BaseException:
            if fleet is not None:
                fleet.add_done_callback(lambda f: f.exception() is None and f.result().close())
            raise
        finally:
            pool.shutdown(wait=False)
        self.hosts = discovery.as_hosts(self.instances)
        specs = inv.load_balancers
        if specs is None:
            self.found_balancers = self._balancers_from_membership(frozenset(known_balancers))
            specs = [Elb(kind="elb", name=n) if k == "elb" else Alb(kind="alb", target_group=n) for k, n in self.found_balancers]
        self.balancers = balancers.build(specs, self.aws, self.fleet, self.hosts)
        name = autoscaling.group_name(inv.autoscaling_group, [i.group for i in self.instances])
        self.group = autoscaling.Group(self.aws, name) if name else None
        if inv.alarms is not None:
            self.alarms = Alarms(self.aws, inv.alarms.names, inv.alarms.prefix)
        return self.hosts

    def _find_instances(self) -> list[discovery.Instance]:
        """By tag; or the stack's: its Auto Scaling groups' instances and its instance resources but the bastion's."""
        inv = self.inventory
        if self.stack is None or inv.user:  # a personal copy's instances are its owner's, by personal.tags
            return discovery.find_instances(self.aws, inv.instances.tags, inv.instances.address)
        groups = discovery.group_members(self.aws, self.stack.physical_ids(stacks.AUTOSCALING_GROUP))
        bastion = self.stack.physical_id(inv.bastion.resource) if inv.bastion.resource else None
        ids = sorted(set(groups) | {i for i in self.stack.physical_ids(stacks.INSTANCE) if i != bastion})
        found = discovery.find_instances(self.aws, inv.instances.tags, inv.instances.address, ids=ids) if ids else []
        return [replace(i, group=groups.get(i.instance_id, i.group)) for i in found]

    def _balancers_from_membership(self, always: frozenset[tuple[str, str]]) -> list[tuple[str, str]]:
        """(kind, name) of the ELBs and target groups the instances are registered in, the stack's own, and `always`."""
        elbs, tgs, tg_names = membership.read(self.aws)
        if self.stack is not None:
            always |= frozenset([("elb", n) for n in self.stack.physical_ids(stacks.CLASSIC_ELB)]
                               + [("alb", tg_names.get(a, a)) for a in self.stack.physical_ids(stacks.TARGET_GROUP)])
        return membership.choose({i.instance_id for i in self.instances}, elbs, tgs, always)

    def _fleet(self, connect: bool) -> Fleet:
        inv = self.inventory
        if inv.bastion.host:
            bastion, bastion_trust = inv.bastion.host, None
        else:
            found = self.bastion = self._bastion_instance()
            bastion, bastion_trust = found.address, self.trust
            if self.trust is not None:
                self.trust.know([Server("bastion", found.instance_id, found.name or "bastion", found.address)])
        fleet = Fleet(
            bastion=bastion,
            bastion_port=inv.bastion.port,
            bastion_user=inv.bastion.user or inv.ssh.user,
            user=inv.ssh.user,
            port=inv.ssh.port,
            key=inv.ssh.key,
            known_hosts=inv.ssh.known_hosts,
            connect_timeout=inv.ssh.connect_timeout,
            parallel=inv.ssh.parallel,
            trust=self.trust,
            bastion_trust=bastion_trust,
        )
        if connect:
            fleet.open_bastion_early()
        return fleet

    def _bastion_instance(self) -> discovery.Instance:
        inv = self.inventory
        if inv.bastion.resource:
            iid = self.stack.physical_id(inv.bastion.resource)
            if not iid:
                raise PreflightError(f"bastion.resource: stack {inv.stack} has no resource {inv.bastion.resource!r};"
                                     f" fix inventories/{inv.name}.yml")
            return discovery.instance_address(self.aws, iid, inv.bastion.address, f"bastion ({inv.bastion.resource})")
        return discovery.find_bastion(self.aws, inv.bastion.tags, inv.bastion.address)

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.close()
