"""HAProxy runtime API lines, exactly as they are sent, and names that would inject a second command refused."""

import pytest

from rollout.adapters.balancers import haproxy
from rollout.core.errors import PreflightError


def test_show_servers_state():
    assert haproxy.show_servers_state("app-container") == "show servers state app-container"


@pytest.mark.parametrize("state", ["drain", "maint", "ready"])
def test_one_line_sets_every_server_of_the_batch(state):
    assert haproxy.set_servers_state("app", ["h001", "h002.web:1"], state) == (
        f"set server app/h001 state {state}; set server app/h002.web:1 state {state}")


@pytest.mark.parametrize("backend, servers, what", [
    ("app; disable frontend www", ["h001"], "backend"),
    ("app state ready", ["h001"], "backend"),
    ("app", ["h001; shutdown sessions server app/h002"], "server"),
    ("app", ["h 001"], "server"),
    ("", ["h001"], "backend"),
])
def test_a_name_that_would_inject_another_runtime_command_is_refused(backend, servers, what):
    with pytest.raises(PreflightError, match=f"HAProxy {what} .* is not a HAProxy name"):
        haproxy.set_servers_state(backend, servers, "drain")


def test_only_the_three_states_are_sent():
    with pytest.raises(ValueError):
        haproxy.set_servers_state("app", ["h001"], "ready; shutdown")
    with pytest.raises(PreflightError):
        haproxy.show_servers_state("app\n")
