"""`init`'s pure half: the answers from flags or questions, and the commented inventory it renders."""

import pytest

from rollout.config import inventory, scaffold, yamlsource
from rollout.core.errors import UsageError

GIVEN = {"ssh_user": "deploy", "ssh_key": "~/.ssh/k", "known_hosts": "known_hosts/prod", "repository": "git@h:o/app.git",
         "path": "/srv/app", "pid_file": "/srv/app/app.pid", "reload_command": None, "health_port": "14000"}


@pytest.mark.parametrize("change,words", [
    ({"ssh_user": None}, "init needs --ssh-user=VALUE"),
    ({"health_port": ""}, "init needs --health-port=VALUE"),
    ({"pid_file": None}, "init needs --pid-file=PATH (with --signal, default HUP) or --reload-command=CMD"),
    ({"reload_command": "systemctl reload app"}, "give --pid-file or --reload-command, not both"),
    ({"health_port": "0"}, "--health-port='0' is not a port"),
    ({"health_port": "80a"}, "--health-port='80a' is not a port"),
    ({"signal": "KILL"}, "--signal='KILL': give HUP, USR1 or USR2"),
])
def test_a_missing_or_bad_value_without_a_terminal_is_refused_naming_its_flag(change, words):
    with pytest.raises(UsageError) as exc:
        scaffold.answers({**GIVEN, **change}, ask=None)
    assert str(exc.value).startswith(words)


def test_flags_give_the_answers_and_a_reload_is_a_pid_file_or_a_command():
    a = scaffold.answers(GIVEN, ask=None)
    assert (a.ssh_user, a.health_port, a.pid_file, a.reload_command, a.signal, a.branch) == ("deploy", 14000, "/srv/app/app.pid", None, "HUP", "main")
    b = scaffold.answers({**GIVEN, "pid_file": None, "reload_command": "sudo systemctl reload app"}, ask=None)
    assert (b.pid_file, b.reload_command) == (None, "sudo systemctl reload app")


def test_on_a_terminal_each_missing_value_is_asked_once_and_an_empty_pid_file_asks_for_a_command():
    asked = []
    replies = {"ssh_user": "ana", "pid_file": "", "reload_command": "./reload", "health_port": "8080"}

    def ask(q):
        asked.append(q.name)
        return replies[q.name]

    a = scaffold.answers({**GIVEN, "ssh_user": None, "pid_file": None, "health_port": None}, ask)
    assert asked == ["ssh_user", "pid_file", "reload_command", "health_port"]
    assert (a.ssh_user, a.pid_file, a.reload_command, a.health_port) == ("ana", None, "./reload", 8080)
    with pytest.raises(UsageError, match="no answer for --ssh-user"):
        scaffold.answers({**GIVEN, "ssh_user": None}, lambda q: " ")


@pytest.mark.parametrize("value,tags", [
    ("Stack=app,Deployment=production", {"Stack": "app", "Deployment": "production"}),
    (" Role = bastion ", {"Role": "bastion"}),
    (None, {}),
])
def test_tags_are_key_value_pairs(value, tags):
    assert scaffold.parse_tags(value, "--tags") == tags


@pytest.mark.parametrize("value", ["Stack", "Stack=", "=app", "a=b,,c=d"])
def test_malformed_tags_are_refused_naming_the_flag(value):
    with pytest.raises(UsageError, match="--tags=.*give tags as KEY=VALUE"):
        scaffold.parse_tags(value, "--tags")


WHERE = scaffold.Where(env="prod", region="eu-west-1", tags={"Stack": "app", "Enabled": "yes"},
                       bastion_tags={"Role": "bastion"}, profile="deploy")
FACTS = scaffold.Facts(instances=(("i-1", "web-1"), ("i-2", "")), groups=("app-asg",),
                       balancers=(("elb", "app-elb"), ("alb", "app-tg")), bastion="the one running instance, at 10.0.0.1")


def load(text: str):
    data, source = yamlsource.read(text)
    inv, problems = inventory.validate("prod", data, source)
    assert not problems, problems
    return inv


@pytest.mark.parametrize("where,facts,answers,expect", [
    (WHERE, FACTS, scaffold.answers(GIVEN, None),
     {"groups": "app-asg", "balancers": [("elb", "app-elb"), ("alb", "app-tg")], "bastion": None, "reload": ("HUP", "/srv/app/app.pid", None)}),
    (scaffold.Where(env="prod", region="eu-west-1", stack="web-prod", bastion_host="stack_output:BastionAddress"),
     scaffold.Facts(instances=(("i-1", "a"),), stack_outputs=("BastionAddress",)),
     scaffold.answers({**GIVEN, "pid_file": None, "reload_command": "kill -HUP $(cat run/app.pid) # yes: no"}, None),
     {"groups": None, "balancers": [], "bastion": "BastionAddress", "reload": (None, None, "kill -HUP $(cat run/app.pid) # yes: no")}),
    (WHERE, scaffold.Facts(instances=(("i-1", "a"),), groups=("a", "b")), scaffold.answers({**GIVEN, "path": "yes"}, None),
     {"groups": None, "balancers": [], "bastion": None, "reload": ("HUP", "/srv/app/app.pid", None)}),
])
def test_the_rendered_inventory_is_valid_and_holds_what_was_found_and_answered(where, facts, answers, expect):
    text = scaffold.render(where, facts, answers, "2026-11-30")
    inv = load(text)
    assert inv.aws.region == "eu-west-1" and inv.ssh.user == "deploy" and inv.health.port == 14000
    assert inv.instances.tags == where.tags and inv.app.path == answers.path and inv.stack == where.stack
    assert inv.autoscaling_group == expect["groups"]
    assert [(lb.kind, getattr(lb, "name", None) or lb.target_group) for lb in inv.load_balancers] == expect["balancers"]
    assert (inv.bastion.host.stack_output if expect["bastion"] else inv.bastion.tags) == (expect["bastion"] or where.bastion_tags)
    assert (inv.app.reload.signal, inv.app.reload.pid_file, inv.app.reload.command) == expect["reload"]
    assert text.count("\n#") + text.count(" # ") >= 12  # commented: where each value came from, what else can go there
    if len(facts.groups) > 1:
        assert "several groups: a, b" in text
