from pathlib import Path

import pytest
import yaml

from rollout.adapters.discovery import Instance
from rollout.config import inventory
from rollout.core import personal
from rollout.core.errors import ConfigError, PreflightError, UsageError

BASE = {k: v for k, v in yaml.safe_load((Path(__file__).parents[2] / "inventories" / "sandbox.yml").read_text()).items()
        if k != "personal"}
PATTERN = r"remote-run/(?P<user>[^/]+)/.+"


@pytest.mark.parametrize("branch,user", [("remote-run/ben/my-feature", "ben"), ("remote-run/ana_2/x/y", "ana_2")])
def test_user_comes_from_the_branch(branch, user):
    assert personal.user_from_branch(PATTERN, branch) == user


@pytest.mark.parametrize("branch", [
    "feature/ben/x", "remote-run/ben", "remote-run/Ben/x", "remote-run/b$(id)/x", "remote-run/ben;reboot/x",
    "remote-run/../x", "remote-run/-rf/x", "remote-run/a b/x", "remote-run/" + "a" * 40 + "/x", "remote-run/ben}/x",
])
def test_branches_that_do_not_name_a_plain_user_are_refused(branch):
    with pytest.raises(UsageError):
        personal.user_from_branch(PATTERN, branch)


def test_selector_substitutes_only_the_user():
    assert personal.selector({"Deployment": "dev-{user}", "Stack": "app"}, "ben") == {"Deployment": "dev-ben", "Stack": "app"}


def inst(iid, **tags):
    return Instance(iid, "198.18.1.11", iid, None, tags)


def test_an_instance_a_shared_environment_selects_is_never_deployed_personally():
    shared = {"sandbox": {"Stack": "app", "Deployment": "sandbox"}}
    mine = [inst("i-1", Stack="app", Deployment="dev-ben")]
    personal.refuse_shared(mine, shared, "dev@ben")
    with pytest.raises(PreflightError, match=r"i-2 \(sandbox\)"):
        personal.refuse_shared(mine + [inst("i-2", Stack="app", Deployment="sandbox", Owner="ben")], shared, "dev@ben")


def write(tmp_path, name, data):
    (tmp_path / f"{name}.yml").write_text(yaml.safe_dump(data))


def test_env_at_user_is_that_users_copy_and_shared_filters_include_every_environment(tmp_path):
    dev = {**BASE, "personal": {"tags": {"Stack": "app", "Deployment": "dev-{user}"}}}
    write(tmp_path, "dev", dev)
    write(tmp_path, "sandbox", BASE)
    inv = inventory.load("dev@ben", tmp_path)
    assert inv.name == "dev@ben" and inv.user == "ben"
    assert dict(inv.instances.tags) == {"Stack": "app", "Deployment": "dev-ben"}
    assert set(inventory.shared_selectors(tmp_path)) == {"dev", "sandbox"}
    with pytest.raises(UsageError):
        inventory.load("dev@Ben$", tmp_path)
    with pytest.raises(ConfigError, match="no personal environments"):
        inventory.load("sandbox@ben", tmp_path)


def test_personal_tags_without_user_or_pattern_without_group_are_config_errors(tmp_path):
    write(tmp_path, "dev", {**BASE, "personal": {"tags": {"Deployment": "dev"}}})
    with pytest.raises(ConfigError, match="must contain {user}"):
        inventory.load("dev@ben", tmp_path)
    write(tmp_path, "dev", {**BASE, "personal": {"branch_pattern": "remote-run/.+", "tags": {"Deployment": "dev-{user}"}}})
    with pytest.raises(ConfigError, match="named group"):
        inventory.load("dev@ben", tmp_path)


def test_a_malformed_inventory_blocks_personal_deploys_rather_than_losing_its_protection(tmp_path):
    write(tmp_path, "sandbox", BASE)
    (tmp_path / "broken.yml").write_text("aws: [\n")
    with pytest.raises(ConfigError, match="cannot check personal deploys"):
        inventory.shared_selectors(tmp_path)


def test_an_inventory_cannot_set_the_internal_user(tmp_path):
    write(tmp_path, "x", {**BASE, "user": "ben"})
    with pytest.raises(ConfigError, match="unknown key 'user'"):
        inventory.load("x", tmp_path)


def test_a_personal_copy_shares_no_balancer_group_hook_or_rule(tmp_path):
    dev = {**BASE, "personal": {"tags": {"Stack": "app", "Deployment": "dev-{user}"}}, "post_deploy": ["announce"],
           "alarms": {"prefix": "x"}, "protected": True, "desired_version": {"parameter": "/rollout/dev/version"}}
    write(tmp_path, "dev", dev)
    inv = inventory.load("dev@ana", tmp_path)
    assert inv.load_balancers == [] and inv.autoscaling_group is None and inv.smoke == [] and inv.post_deploy == []
    assert inv.alarms is None and inv.protected is False
    # A branch deploy never says what the shared group's new instances boot.
    assert inventory.load("dev", tmp_path).desired_version is not None and inv.desired_version is None
