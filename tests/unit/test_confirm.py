import pytest

from rollout.cli import commands as cli
from rollout.core.errors import UsageError
from rollout.state import journal


class Inv:
    def __init__(self, protected=False, unattended=True):
        self.name, self.protected, self.unattended = "prod", protected, unattended


@pytest.mark.parametrize(
    "protected,unattended,yes,terminal,expected",
    [
        (False, True, False, True, "y/N"),
        (True, True, False, True, "type-name"),
        (False, True, True, True, None),
        (True, True, True, False, None),
        (False, True, False, False, None),  # unattended deploys allowed: CI needs no --yes
    ],
)
def test_how_a_deploy_is_confirmed(protected, unattended, yes, terminal, expected):
    assert cli.confirmation(Inv(protected, unattended), yes, terminal) == expected


@pytest.mark.parametrize("protected,unattended,why", [(True, True, "is protected"), (False, False, "does not allow unattended deploys")])
def test_without_a_terminal_protected_or_attended_environments_need_yes(protected, unattended, why):
    with pytest.raises(UsageError, match=f"prod {why}: without a terminal, deploy with --yes"):
        cli.confirmation(Inv(protected, unattended), yes=False, terminal=False)


def test_promotion_needs_a_successful_rollout_of_that_exact_sha():
    runs = [{"sha": "a" * 40, "result": "failed"}, {"sha": "b" * 40, "result": "succeeded"}]
    assert journal.succeeded_with(runs, "b" * 40)
    assert not journal.succeeded_with(runs, "a" * 40)
    assert not journal.succeeded_with([], "b" * 40)
