"""Stack-based inventories: the stack's states, outputs as values, balancers from membership, role sessions."""

from pathlib import Path

import pytest
import yaml

from rollout.adapters import membership
from rollout.adapters import stacks
from rollout.adapters.aws import session_name
from rollout.config import inventory
from rollout.core.errors import ConfigError

BASE = yaml.safe_load((Path(__file__).parents[2] / "inventories" / "sandbox-stack.yml").read_text())


def load(tmp_path, change=lambda d: None):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    change(data)
    (tmp_path / "env.yml").write_text(yaml.safe_dump(data))
    return inventory.load("env", tmp_path)


@pytest.mark.parametrize("status,refused,says", [
    ("CREATE_COMPLETE", False, None),
    ("UPDATE_COMPLETE", False, None),
    ("UPDATE_ROLLBACK_COMPLETE", False, None),  # a failed update put back: the previous template stands
    ("IMPORT_COMPLETE", False, None),
    ("UPDATE_IN_PROGRESS", True, "changing; wait"),
    ("CREATE_IN_PROGRESS", True, "changing; wait"),
    ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", True, "changing; wait"),
    ("UPDATE_ROLLBACK_IN_PROGRESS", True, "changing; wait"),
    ("REVIEW_IN_PROGRESS", True, "changing; wait"),
    ("DELETE_IN_PROGRESS", True, "changing; wait"),
    ("UPDATE_ROLLBACK_FAILED", True, "broken; repair"),
    ("CREATE_FAILED", True, "broken; repair"),
    ("DELETE_FAILED", True, "broken; repair"),
    ("ROLLBACK_COMPLETE", True, "creation failed"),
    ("ROLLBACK_FAILED", True, "broken; repair"),
    ("DELETE_COMPLETE", True, "not a state"),
])
def test_a_changing_or_broken_stack_is_refused_with_its_state_and_what_to_do(status, refused, says):
    why = stacks.refusal("web", status)
    assert (why is not None) == refused
    if refused:
        assert f"stack web is {status}" in why and says in why and "\n" not in why


def test_stack_resources_by_type_and_logical_id():
    s = stacks.Stack("web", "CREATE_COMPLETE", {}, (
        ("Web", "web-asg", stacks.AUTOSCALING_GROUP), ("Bastion", "i-1", stacks.INSTANCE),
        ("Api", "i-2", stacks.INSTANCE), ("Pending", "", stacks.INSTANCE)))
    assert s.physical_ids(stacks.INSTANCE) == ["i-2", "i-1"]  # by logical id; none without a physical id
    assert s.physical_id("Bastion") == "i-1" and s.physical_id("Nope") is None


@pytest.mark.parametrize("ids,elbs,tgs,always,expected", [
    ({"i-1"}, {"a": {"i-1"}, "b": {"i-9"}}, {"t": {"i-1", "i-2"}, "u": set()}, frozenset(), [("elb", "a"), ("alb", "t")]),
    ({"i-1"}, {"a": {"i-9"}}, {}, frozenset(), []),
    ({"i-1"}, {}, {"u": set()}, frozenset({("alb", "u")}), [("alb", "u")]),  # a stack's own, even if empty
    (set(), {"a": set()}, {}, frozenset(), []),
])
def test_balancers_from_membership_are_those_holding_an_instance_plus_the_stacks(ids, elbs, tgs, always, expected):
    assert membership.choose(ids, elbs, tgs, always) == expected


def test_stack_outputs_are_values_resolved_from_the_stack(tmp_path):
    inv = load(tmp_path, lambda d: d.update(load_balancers=[{"kind": "elb", "name": {"stack_output": "ElbName"}}],
                                            autoscaling_group={"stack_output": "Group"}))
    assert inventory.stack_outputs(inv) == ["BastionAddress", "Group", "ElbName"]
    done = inventory.resolve_outputs(inv, {"BastionAddress": "198.18.0.10", "Group": "g", "ElbName": "e"})
    assert (done.bastion.host, done.autoscaling_group, done.load_balancers[0].name) == ("198.18.0.10", "g", "e")
    with pytest.raises(ConfigError, match=r"bastion.host: stack rollout-sandbox has no output 'BastionAddress' \(its outputs: Group\)"):
        inventory.resolve_outputs(inv, {"Group": "g"})


@pytest.mark.parametrize("change,message", [
    (lambda d: (d.pop("stack"), d.pop("instances")), r"give instances.tags \(at least one tag\) or 'stack'"),
    (lambda d: (d.pop("stack"), d.update(instances={"tags": {"a": "b"}})), r"\{stack_output: BastionAddress\} needs 'stack'"),
    (lambda d: d["bastion"].update(host={"stack_output": "no spaces"}), r"'bastion.host"),
    (lambda d: d["bastion"].update(host={"output": "X"}), r"unknown key 'bastion.host.output'; valid keys here: stack_output"),
    (lambda d: d["bastion"].update(resource="Bastion"), r"exactly one of 'host' or 'tags' or 'resource'"),
    (lambda d: d.update(stack="bad name"), r"'stack'"),
    (lambda d: d["aws"].update(role={"arn": "arn:aws:iam::12:role/x"}), r"'aws.role.arn'"),
    (lambda d: d["aws"].update(role={"arn": "arn:aws:iam::123456789012:role/x", "externalid": "e"}), r"unknown key 'aws.role.externalid'"),
])
def test_bad_stack_settings_name_the_key_and_what_to_write(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, change)


def test_a_bastion_can_be_a_stack_resource_and_tags_still_narrow(tmp_path):
    inv = load(tmp_path, lambda d: d.update(bastion={"resource": "Bastion", "address": "PrivateIpAddress"},
                                            instances={"tags": {"Stack": "app"}}))
    assert inv.bastion.resource == "Bastion" and inv.instances.tags == {"Stack": "app"}


def test_no_load_balancers_key_means_found_from_membership_and_an_empty_list_means_none(tmp_path):
    assert load(tmp_path).load_balancers is None
    assert load(tmp_path, lambda d: d.update(load_balancers=[])).load_balancers == []


@pytest.mark.parametrize("who,expected", [
    ("ci:1234", "rollout-ci-1234"),
    ("ben@laptop.example", "rollout-ben@laptop.example"),
    ("ana via queue", "rollout-ana-via-queue"),
    ("x" * 80, "rollout-" + "x" * 56),
])
def test_the_role_session_names_the_requester(who, expected):
    assert session_name(who) == expected


def test_the_example_template_passes_cfn_lint():
    import subprocess
    import sys

    template = Path(__file__).parents[2] / "examples" / "cloudformation" / "sandbox.yml"
    done = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(template)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_personal_deploys_see_a_stack_environments_instances_by_its_tags_and_the_stack_tag(tmp_path):
    load(tmp_path)
    assert inventory.shared_selectors(tmp_path) == {"env": {"Stack": "app", "aws:cloudformation:stack-name": "rollout-sandbox"}}


def _policy(condition=None, effect="Allow", action="sts:AssumeRole"):
    st = {"Effect": effect, "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": action}
    if condition is not None:
        st["Condition"] = {"StringEquals": {"sts:ExternalId": condition}}
    return {"Statement": [st]}


@pytest.mark.parametrize("policy,external_id,allowed", [
    (_policy("abc"), "abc", True),
    (_policy("abc"), "abd", False),
    (_policy("abc"), None, False),
    (_policy(), None, True),
    (_policy(effect="Deny"), None, False),
    (_policy(action=["sts:TagSession"]), None, False),
    (_policy(action=["sts:TagSession", "sts:AssumeRole"]), None, True),
])
def test_the_sandbox_gate_assumes_a_role_only_as_its_trust_policy_allows(policy, external_id, allowed):
    from sandbox.awsgate import trusted

    assert trusted(policy, external_id) is allowed
