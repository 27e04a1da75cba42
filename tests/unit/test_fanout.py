"""ssh.GroupResult: a fan-out's failures judged together, every failed host named in one error."""

import pytest

from rollout.adapters.ssh import GroupResult
from rollout.core.errors import ConnectError, HostKeyError


def test_nothing_failed_raises_nothing():
    GroupResult(succeeded={"10.0.0.1": "ok"}, failed={}).raise_failed()


def test_one_failed_host_raises_its_own_error_unchanged():
    error = ConnectError("host 10.0.0.2: timed out connecting; check the address and that port 22 is reachable")
    with pytest.raises(ConnectError) as raised:
        GroupResult(succeeded={"10.0.0.1": "ok"}, failed={"10.0.0.2": error}).raise_failed()
    assert raised.value is error


@pytest.mark.parametrize("first, second, kind, code", [
    (ConnectError("host 10.0.0.2: cannot connect"), ConnectError("host 10.0.0.3: cannot connect"), ConnectError, 6),
    (HostKeyError("host 10.0.0.2: host key unknown"), ConnectError("host 10.0.0.3: cannot connect"), HostKeyError, 7),
    # A refused host key (a possible interception) decides the kind wherever it stands.
    (ConnectError("host 10.0.0.2: cannot connect"), HostKeyError("host 10.0.0.3: host key unknown"), HostKeyError, 7),
])
def test_every_failed_host_is_named_in_one_error_a_host_key_refusal_first(first, second, kind, code):
    with pytest.raises(ConnectError) as raised:
        GroupResult(succeeded={}, failed={"10.0.0.2": first, "10.0.0.3": second}).raise_failed()
    assert type(raised.value) is kind and raised.value.exit_code == code
    assert str(raised.value) == f"2 hosts failed: {first}; {second}"
