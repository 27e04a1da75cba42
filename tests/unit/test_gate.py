"""rollout.adapters.gate: what a command held behind the batch gate is sent, and when."""

import threading

import pytest

from rollout.adapters.gate import Gate, GatedStdin, hold, wait_open


def test_a_command_with_its_own_stdin_is_sent_as_it_is():
    assert hold("sh -s", "echo hi\n") == ("sh -s", "echo hi\n")


def test_a_command_without_stdin_first_waits_for_a_go_line():
    assert hold("kill -HUP 12", None) == ('read -r go && [ "$go" = go ] && kill -HUP 12', "go\n")


@pytest.mark.parametrize(
    "action, check, sent",
    [
        ("open", None, "script"),
        ("open", lambda: True, "script"),
        ("open", lambda: False, ""),  # the lock was lost as the gate opened: nothing is sent
        ("cancel", None, ""),
        ("cancel", lambda: True, ""),
    ],
)
def test_the_script_is_sent_once_and_only_through_an_open_gate_whose_check_holds(action, check, sent):
    gate = Gate(check=check)
    getattr(gate, action)()
    stdin = GatedStdin("script", gate)
    assert (stdin.read(), stdin.read()) == (sent, "")
    assert gate.cancelled is (action == "cancel")
    assert (gate.opened_at is not None) is (action == "open")


def test_cancel_after_open_changes_nothing():
    gate = Gate()
    gate.open()
    gate.cancel()
    assert not gate.cancelled and GatedStdin("script", gate).read() == "script"


def test_the_runner_waits_while_the_gate_is_shut_and_gives_up_once_the_command_ended():
    gate, finished = Gate(), threading.Event()
    finished.set()
    assert wait_open(GatedStdin("script", gate), finished) is False
    assert wait_open("not gated", threading.Event()) is True
    opener = threading.Timer(0.05, gate.open)
    opener.start()
    assert wait_open(GatedStdin("script", gate), threading.Event()) is True
    opener.join()
