"""The SSH policy of ssh.host_keys: aws, with the pins and AWS's answer given (the decision itself is core.hostkeys')."""

import base64

import paramiko
import pytest

from rollout.orchestration.hostkeys import AwsTrust
from rollout.core.errors import HostKeyError
from rollout.core.hostkeys import Server

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICRSW92iNtqI44MjGUcF6cLlWiAByCJmLpFLZHD7xcpC"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINaGWoUPxbeZWBAHwEKAUoB51s+kS0QBPibbwPu32nHk"
H1 = Server("host", "i-1", "web-1", "10.0.1.23")


def presented(key: str) -> paramiko.PKey:
    kind, data = key.split()
    return paramiko.PKey.from_type_string(kind, base64.b64decode(data))


class Pins:
    """Pins as the state table keeps them: a conditional first write; `racer` pins first if set."""

    def __init__(self, held=None, racer=None):
        self.held, self.racer = dict(held or {}), racer

    def get(self, iid):
        return self.held.get(iid, frozenset())

    def pin(self, iid, keys, source):
        if self.racer is not None:
            self.held[iid] = self.racer
        return self.held.setdefault(iid, keys)


def trust(pins, vouched, asked=None):
    def vouch(iid):
        if asked is not None:
            asked.append(iid)
        return frozenset(vouched)

    t = AwsTrust(pins, vouch, "prod")
    t.know([H1])
    return t


@pytest.mark.parametrize("hostname", ["10.0.1.23", "[10.0.1.23]:2222"])
def test_a_new_instance_is_accepted_through_its_console_keys_and_pinned(hostname):
    pins = Pins()
    trust(pins, {ED}).missing_host_key(None, hostname, presented(ED))
    assert pins.get("i-1") == {ED}


def test_a_pinned_instance_does_not_ask_aws_and_a_changed_key_is_refused_by_name():
    asked = []
    t = trust(Pins({"i-1": frozenset({ED})}), {OTHER}, asked)
    t.missing_host_key(None, "10.0.1.23", presented(ED))
    with pytest.raises(HostKeyError, match=r"host web-1 \(i-1, 10.0.1.23\): host key changed"):
        t.missing_host_key(None, "10.0.1.23", presented(OTHER))
    assert asked == []


def test_a_run_that_loses_the_pinning_race_is_judged_by_the_winners_pin():
    pins = Pins(racer=frozenset({OTHER}))
    with pytest.raises(HostKeyError, match="changed against the key pinned"):
        trust(pins, {ED}).missing_host_key(None, "10.0.1.23", presented(ED))


@pytest.mark.parametrize("vouched, words", [({OTHER}, "not vouched for by AWS"), (set(), "vouches for no host key")])
def test_keys_aws_does_not_vouch_for_are_refused_and_nothing_is_pinned(vouched, words):
    pins = Pins()
    with pytest.raises(HostKeyError, match=words):
        trust(pins, vouched).missing_host_key(None, "10.0.1.23", presented(ED))
    assert pins.held == {}


def test_an_address_no_instance_of_the_environment_has_is_refused():
    with pytest.raises(HostKeyError, match="no EC2 instance of environment prod is known at this address"):
        trust(Pins(), {ED}).missing_host_key(None, "10.0.9.9", presented(ED))
