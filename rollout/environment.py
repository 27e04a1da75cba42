"""One environment's adapters, built from its inventory: AWS, discovery, SSH, balancers, group, Slack."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Optional

from rollout import apps, autoscaling, balancers, check, discovery
from rollout.alarms import Alarms
from rollout.aws import Aws
from rollout.errors import ConfigError, PreflightError
from rollout.inventory import Inventory
from rollout.plan import Host
from rollout.slack import Slack
from rollout.ssh import Fleet


class Environment:
    """Discovers the fleet and holds an adapter per side effect; close() when done."""

    def __init__(self, inventory: Inventory):
        self.inventory = inv = inventory
        missing = check.missing_files(inv)
        if missing:
            raise ConfigError(missing[0])
        self.aws = Aws(inv.aws.region, inv.aws.endpoint_url, inv.aws.profile)
        self.slack = Slack(inv.slack)
        self.fleet: Optional[Fleet] = None
        self.instances: list[discovery.Instance] = []
        self.hosts: list[Host] = []
        self.balancers = []
        self.group: Optional[autoscaling.Group] = None
        self.alarms: Optional[Alarms] = None

    @cached_property
    def app(self):
        """The app strategy (git or container); reads the app's secrets from this process's environment."""
        return apps.strategy(self.inventory)

    def discover(self, connect: bool = False) -> list[Host]:
        """Find the instances and the bastion; build the adapters that depend on them.

        With `connect`, the bastion connection starts opening while the instances are
        being found; its error, if any, comes from the first use of the fleet.
        The first AWS call stands in for a credentials check: its errors say what is wrong.
        """
        inv = self.inventory
        self.aws.require_credentials()
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            fleet = pool.submit(self._fleet, connect)
            self.instances = discovery.find_instances(self.aws, inv.instances.tags, inv.instances.address)
            if not self.instances:
                raise PreflightError(
                    f"no running instance with tags {inv.instances.tags} and an {inv.instances.address}; check instances.tags in inventories/{inv.name}.yml"
                )
            self.fleet = fleet.result()
        except BaseException:
            fleet.add_done_callback(lambda f: f.exception() is None and f.result().close())
            raise
        finally:
            pool.shutdown(wait=False)
        self.hosts = discovery.as_hosts(self.instances)
        self.balancers = balancers.build(inv.load_balancers, self.aws, self.fleet, self.hosts)
        name = autoscaling.group_name(inv.autoscaling_group, [i.group for i in self.instances])
        self.group = autoscaling.Group(self.aws, name) if name else None
        if inv.alarms is not None:
            self.alarms = Alarms(self.aws, inv.alarms.names, inv.alarms.prefix)
        return self.hosts

    def _fleet(self, connect: bool) -> Fleet:
        inv = self.inventory
        bastion = inv.bastion.host or discovery.find_bastion(self.aws, inv.bastion.tags, inv.bastion.address)
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
        )
        if connect:
            fleet.open_bastion_early()
        return fleet

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.close()
