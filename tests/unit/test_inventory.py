from pathlib import Path

import pytest
import yaml

from rollout import inventory
from rollout.errors import ConfigError

BASE = yaml.safe_load((Path(__file__).parents[2] / "inventories" / "sandbox.yml").read_text())


def write(tmp_path, name, data):
    (tmp_path / f"{name}.yml").write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return tmp_path


def test_every_shipped_inventory_is_valid():
    for path in (Path(__file__).parents[2] / "inventories").glob("*.yml"):
        inventory.load(path.stem, path.parent)


def test_unknown_environment_lists_the_known_ones(tmp_path):
    write(tmp_path, "staging", BASE)
    with pytest.raises(ConfigError, match=r"unknown environment 'prod'.*known environments: staging"):
        inventory.load("prod", tmp_path)


@pytest.mark.parametrize("name", ["../etc/passwd", "Prod", "a b", ""])
def test_environment_names_cannot_escape_the_directory(tmp_path, name):
    with pytest.raises(ConfigError, match="not valid"):
        inventory.load(name, tmp_path)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d["app"].update(relaod=1), r"unknown key 'app.relaod'; valid keys here: kind, repository"),
        (lambda d: d.pop("health"), r"missing required key 'health'"),
        (lambda d: d["health"].update(port="http"), r"'health.port': Input should be a valid integer"),
        (lambda d: d["load_balancers"].append({"kind": "nlb"}), r"unknown kind 'nlb'"),
        (lambda d: d["bastion"].update(host="1.2.3.4"), r"exactly one of 'host' or 'tags'"),
    ],
)
def test_malformed_inventory_gives_one_line_naming_file_and_key(tmp_path, change, message):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    change(data)
    write(tmp_path, "bad", data)
    with pytest.raises(ConfigError, match=message) as exc:
        inventory.load("bad", tmp_path)
    assert str(tmp_path / "bad.yml") in str(exc.value) and "\n" not in str(exc.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    write(tmp_path, "bad", "aws:\n  region: [unclosed\n")
    with pytest.raises(ConfigError, match="line"):
        inventory.load("bad", tmp_path)
