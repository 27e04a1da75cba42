"""--continue, --abort and fab drill refuse what they cannot honour, in one line and before anything is read."""

from __future__ import annotations

import pytest
from invoke.exceptions import Exit

from rollout.cli import commands


@pytest.mark.parametrize("kwargs, words", [
    ({"resume": True, "abort": True}, "two answers to a stepped run: give one"),
    ({"resume": True, "ref": "main"}, "--continue acts on the stepped run as it was planned; it takes no --ref"),
    ({"abort": True, "batch": "2"}, "--abort acts on the stepped run as it was planned; it takes no --batch"),
    ({"resume": True, "step": True}, "it takes no --step"),
    ({"abort": True, "dry_run": True}, "it takes no --dry-run"),
])
def test_a_stepped_run_is_answered_as_it_was_planned(kwargs, words):
    with pytest.raises(Exit) as exc:
        commands.deploy("no-such-env", **kwargs)  # refused before the inventory is even read
    assert exc.value.code == 2 and words in exc.value.message and "\n" not in exc.value.message


@pytest.mark.parametrize("kwargs, words", [
    ({"fail_at": "reload"}, "--fail-at='reload': give update or health"),
    ({"alarm": "x", "host": "h001"}, "--alarm drills a rollback alarm; --fail-at and --host drill a host's failure"),
    ({"alarm": "x"}, "--alarm='x' is not one of the rollback_alarms of sandbox (none set)"),
])
def test_a_drill_that_cannot_be_run_is_refused_before_anything(kwargs, words):
    with pytest.raises(Exit) as exc:
        commands.drill("sandbox", yes=True, **kwargs)
    assert exc.value.code == 2 and words in exc.value.message
