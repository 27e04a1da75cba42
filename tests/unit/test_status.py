"""status.collect: each host's SSH state says why it failed, a refused host key apart from an unreachable host."""

from types import SimpleNamespace

from rollout.adapters.ssh import GroupResult
from rollout.core.errors import ConnectError, HostKeyError
from rollout.core.plan import Host
from rollout.orchestration import status

HOSTS = [Host("i-1", "10.0.0.1", "h1"), Host("i-2", "10.0.0.2", "h2"), Host("i-3", "10.0.0.3", "h3")]
REFUSED = HostKeyError("host 10.0.0.2:22: key changed against its pin for i-2 (possible interception)")
DOWN = ConnectError("host 10.0.0.3:22: timed out connecting")


def env(bastion_error=None):
    def open_bastion():
        if bastion_error:
            raise bastion_error

    def each(addresses, fn):
        failed = {"10.0.0.2": REFUSED, "10.0.0.3": DOWN}
        return GroupResult(succeeded={a: status.health.Observation(200, "a" * 40) for a in addresses if a not in failed},
                           failed={a: e for a, e in failed.items() if a in addresses})

    fleet = SimpleNamespace(open_bastion=open_bastion, each=each, bastion=SimpleNamespace(host="10.0.0.254"))
    inv = SimpleNamespace(name="prod", health=None, desired_version=None)
    return SimpleNamespace(inventory=inv, discover=lambda: HOSTS, fleet=fleet, balancers=[], aws=None, group=None)


def test_each_hosts_ssh_state_names_a_refused_key_apart_from_an_unreachable_host():
    doc = status.collect(env())
    assert [(h["ssh"], h.get("ssh_error")) for h in doc["hosts"]] == [
        ("ok", None), ("host key refused", str(REFUSED)), ("unreachable", str(DOWN))]


def test_with_the_bastion_down_every_host_is_unreachable_without_a_reason_of_its_own():
    doc = status.collect(env(bastion_error=ConnectError("bastion 10.0.0.254:22: refused")))
    assert [h["ssh"] for h in doc["hosts"]] == ["unreachable"] * 3 and not any("ssh_error" in h for h in doc["hosts"])
