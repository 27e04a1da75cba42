"""`check`: an environment's configuration checked offline, every problem at once."""

from pathlib import Path

import pytest
import yaml

from rollout.adapters import aws
from rollout.config import check
from rollout.config import inventory
from rollout.core.errors import ConfigError

SANDBOX = (Path(__file__).parents[2] / "inventories" / "sandbox.yml").read_text()


def write(tmp_path, name, text, key=True):
    (tmp_path / f"{name}.yml").write_text(text)
    ssh = tmp_path / "ssh"
    ssh.mkdir(exist_ok=True)
    (ssh / "known_hosts").write_text("")
    if key:
        (ssh / "id").write_text("")
    return tmp_path


def sandbox_like(**changes):
    data = yaml.safe_load(SANDBOX)
    data["ssh"].update(key="ssh/id", known_hosts="ssh/known_hosts")
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return yaml.safe_dump(data)


def test_a_valid_environment_has_no_problems(tmp_path):
    assert check.problems("ok", write(tmp_path, "ok", sandbox_like())) == []


def test_every_problem_is_listed_without_touching_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr("socket.socket.connect", lambda *a: pytest.fail("check made a network connection"))
    directory = write(tmp_path, "bad", sandbox_like(batch="lots", max_failures="plenty"))
    found = check.problems("bad", directory)
    assert len(found) == 2 and "'batch'" in found[0] and "'max_failures'" in found[1]  # in file order


def test_missing_files_unknown_region_and_upstream_are_problems(tmp_path):
    text = sandbox_like(**{"aws.endpoint_url": None, "aws.profile": None, "aws.region": "eu-west-9", "require_success_in": "staging"})
    found = check.problems("bad", write(tmp_path, "bad", text, key=False))
    assert len(found) == 3, found
    assert found[0].startswith(f"ssh.key: {tmp_path / 'ssh' / 'id'} does not exist")
    assert found[1].startswith("aws.region 'eu-west-9' is not an AWS region")
    assert found[2] == f"require_success_in: no inventory for environment 'staging' in {tmp_path}"


def test_an_unknown_environment_is_one_problem(tmp_path):
    assert check.problems("nosuch", tmp_path) == [f"unknown environment 'nosuch': no {tmp_path / 'nosuch.yml'}; known environments: none"]


@pytest.mark.parametrize(
    "region,endpoint,ok",
    [("eu-west-1", None, True), ("us-gov-west-1", None, True), ("cn-north-1", None, True), ("eu-west-9", None, False),
     ("eu-west-9", "http://127.0.0.1:5055", True), ("xx-nowhere-1", None, False)],
)
def test_a_region_must_be_known_unless_the_endpoint_is_given(region, endpoint, ok):
    assert (aws.region_problem(region, endpoint) is None) == ok


def test_the_aws_adapter_refuses_an_unknown_region_before_any_call():
    with pytest.raises(ConfigError, match="aws.region 'eu-west-9' is not an AWS region"):
        aws.Aws("eu-west-9")


def test_personal_copies_load_through_the_same_validation(tmp_path):
    directory = write(tmp_path, "dev", sandbox_like())
    assert inventory.load("dev@ben", directory).instances.tags["Deployment"] == "dev-ben"
