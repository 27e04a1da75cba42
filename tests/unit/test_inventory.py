import json
from pathlib import Path

import pytest
import yaml

from rollout.config import inventory
from rollout.core.errors import ConfigError
from rollout.core.sizes import Size

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


def _text(tmp_path, name, edit):
    """The sandbox inventory's text with `edit` (old, new) pairs applied, written as NAME.yml."""
    text = (Path(__file__).parents[2] / "inventories" / "sandbox.yml").read_text()
    for old, new in edit:
        assert old in text, old
        text = text.replace(old, new, 1)
    return write(tmp_path, name, text)


@pytest.mark.parametrize(
    "edit,message",
    [
        ([("max_failures: 0", "max_failures: plenty")], r":\d+: 'max_failures': give a count like 0 or 2, or a percentage like 10% \(got 'plenty'\)"),
        ([("max_failures: 0", "batch: lots")], r":\d+: 'batch': give a positive count"),
        ([("max_failures: 0", "batch: 0")], r"'batch': give a positive count"),
        ([("max_failures: 0", "batch: 150%")], r"'batch': give a positive count"),
        ([("max_failures: 0", "batch: yes")], r"'batch': give a positive count .*got True"),
        ([("endpoint_url: http://127.0.0.1:5055", "endpoint_url: 127.0.0.1:5055")], r"'aws.endpoint_url': expected a URL with its scheme"),
        ([("endpoint_url: http://127.0.0.1:5055", "endpoint_url: http://127.0.0.1:99999")], r"'aws.endpoint_url': expected a URL whose port"),
        ([("region: eu-west-1", 'region: "eu west 1/../x"')], r"'aws.region': expected an AWS region name like eu-west-1"),
        ([("    Deployment: sandbox\n  address", "    Deployment: sandbox\n    Enabled: yes\n  address")],
         r"'instances.tags.Enabled': expected a string, got the boolean true; YAML 1.1 reads an unquoted yes as a boolean; write \"yes\" in quotes"),
        ([("    Deployment: sandbox\n  address", "    Deployment: sandbox\n    Mode: 0755\n  address")],
         r"'instances.tags.Mode': 0755 is read by YAML 1.1 as the octal number 493; write 755 for the decimal number, or \"0755\""),
        ([("  port: 14000", "  port: 014000")], r"'health.port': 014000 is read by YAML 1.1 as the octal number 6144"),
        ([("  visibility_timeout: 10", "  visibility_timeout: 1:30")], r"'queue.visibility_timeout': 1:30 is read by YAML 1.1 as the base-60 number 90"),
        ([("  timeout: 20", "  timeout: .inf")], r"'health.timeout': Input should be a finite number"),
        ([("  timeout: 20", "  timeout: soon")], r"'health.timeout': expected seconds: a number, or with a unit like 500ms"),
        ([("  timeout: 20", "  timeout: yes")], r"'health.timeout': expected a number, got the boolean true"),
        ([("  path: /health\n", "  path: health\n")], r"'health.path': expected a URL path starting with /"),
        ([("  - url: http://198.18.0.10:8080/health", "  - url: 198.18.0.10:8080/health")], r"'smoke.0.url': expected a URL with its scheme"),
        ([("  table: rollout-state", "  table: ab")], r"'state.table': expected a DynamoDB table name"),
        ([("  branch: main", "  branch: main..x")], r"'app.branch': ref 'main..x' is not a valid branch"),
        ([("  channel: \"#deploys\"", "  channel: \"#deploys\"\n  token_env: SLACK TOKEN")], r"'slack.token_env': expected an environment variable name"),
        ([('  branch_pattern: "remote-run/(?P<user>[^/]+)/.+"', '  branch_pattern: "remote-run/.+"')], r"'personal.branch_pattern': needs a named group"),
        ([('    Deployment: "dev-{user}"', '    Deployment: "dev"')], r"'personal.tags': must contain \{user\}"),
        ([("    Deployment: sandbox\n  address", "    Deployment: sandbox\n    no: x\n  address")],
         r":12: 'instances.tags': a key must be text, got the boolean false; YAML 1.1 reads an unquoted no as a boolean; write \"no\" in quotes"),
        ([("max_failures: 0", "max_failures: 0\noff: 1")], r"'\(top level\)': a key must be text, got the boolean false; .*write \"off\""),
        ([("  key: /var/tmp/rollout-sandbox/ssh/id_ed25519", '  key: "/var/tmp/id\\0x"')], r":\d+: 'ssh.key': .*NUL byte"),
        ([("  known_hosts: /var/tmp/rollout-sandbox/ssh/known_hosts", '  known_hosts: "/var/tmp/kh\\0"')], r":\d+: 'ssh.known_hosts': .*NUL byte"),
        ([("max_failures: 0", "max_failures: 0\nmax_failures: 2")], r":\d+: 'max_failures' is given twice \(first on line \d+\); keep one"),
    ],
)
def test_each_bad_value_is_refused_when_the_inventory_loads_naming_key_file_and_line(tmp_path, edit, message):
    _text(tmp_path, "bad", edit)
    with pytest.raises(ConfigError, match=message) as exc:
        inventory.load("bad", tmp_path)
    assert str(exc.value).startswith(f"{tmp_path / 'bad.yml'}:")
    assert "--batch" not in str(exc.value) and "\n" not in str(exc.value)


def test_every_error_is_reported_in_one_pass_in_file_order(tmp_path):
    _text(tmp_path, "bad", [("region: eu-west-1", "region: eu west 1"), ("max_failures: 0", "max_failures: plenty\nbatch: lots"),
                             ("  port: 14000", "  port: http"), ("  lock_ttl: 10", "  lock_ttl: 1")])
    with pytest.raises(inventory.InventoryError) as exc:
        inventory.load("bad", tmp_path)
    keys = ["'aws.region'", "'max_failures'", "'batch'", "'state.lock_ttl'", "'health.port'"]
    problems = exc.value.problems
    assert len(problems) == len(keys), problems
    for problem, key in zip(problems, keys):
        assert problem.startswith(f"{tmp_path / 'bad.yml'}:") and key in problem, problems
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)
    text = (tmp_path / "bad.yml").read_text().splitlines()
    assert text[lines[0] - 1].strip() == "region: eu west 1"
    assert str(exc.value).splitlines()[0] == f"{tmp_path / 'bad.yml'}: 5 errors:"


def test_values_are_typed_once_when_loaded(tmp_path):
    _text(tmp_path, "typed", [("max_failures: 0", "max_failures: 10%\nbatch: 25%"), ("  timeout: 20", "  timeout: 2m"),
                              ("  lock_ttl: 10", "  lock_ttl: 90s"), ("  visibility_timeout: 10", "  visibility_timeout: 15m")])
    inv = inventory.load("typed", tmp_path)
    assert inv.batch == (Size(25, percent=True),) and inv.max_failures == Size(10, percent=True)
    assert (inv.batch[0].of(8), inv.max_failures.of(25)) == (2, 2)
    assert (inv.health.timeout, inv.state.lock_ttl, inv.queue.visibility_timeout) == (120.0, 90.0, 900)
    plain = inventory.load("sandbox", Path(__file__).parents[2] / "inventories")
    assert (plain.batch, plain.max_failures) == ((Size(1),), Size(0))
    assert (plain.min_healthy, plain.min_healthy_wait, plain.batch_by) == (None, 300, "host")


def test_internal_keys_are_unknown_keys(tmp_path):
    _text(tmp_path, "bad", [("max_failures: 0", "max_failures: 0\nname: other")])
    with pytest.raises(ConfigError, match=r"bad.yml:\d+: unknown key 'name'; valid keys here: aws, instances"):
        inventory.load("bad", tmp_path)


def test_the_committed_json_schema_is_current():
    """If this fails, run scripts/inventory-schema and commit docs/inventory.schema.json."""
    committed = (Path(__file__).parents[2] / "docs" / "inventory.schema.json").read_text()
    assert committed == inventory.json_schema()


def test_the_json_schema_accepts_every_shipped_inventory_and_refuses_bad_values():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(inventory.json_schema())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in (Path(__file__).parents[2] / "inventories").glob("*.yml"):
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert not errors, (path, errors[0].message)
    bad = {**BASE, "batch": "lots", "aws": {**BASE["aws"], "endpoint_url": "127.0.0.1:5055"}, "health": {**BASE["health"], "port": 0}}
    assert len(list(validator.iter_errors(bad))) == 3


def test_a_value_given_twice_is_blamed_where_yaml_takes_it_from_the_last(tmp_path):
    _text(tmp_path, "bad", [("max_failures: 0", "max_failures: 0\nmax_failures: plenty")])
    with pytest.raises(inventory.InventoryError) as exc:
        inventory.load("bad", tmp_path)
    last = 1 + (tmp_path / "bad.yml").read_text().splitlines().index("max_failures: plenty")
    assert [p.split(":")[1] for p in exc.value.problems] == [str(last), str(last)]
    assert "given twice" in exc.value.problems[0] and "(got 'plenty')" in exc.value.problems[1]


def test_a_ramp_a_floor_and_zones_are_typed_once_when_loaded(tmp_path):
    _text(tmp_path, "ramped", [("max_failures: 0", "max_failures: 0\nbatch: [1, 10%, 50%]\nmin_healthy: 75%\n"
                                                   "min_healthy_wait: 2m\nbatch_by: zone")])
    inv = inventory.load("ramped", tmp_path)
    assert inv.batch == (Size(1), Size(10, percent=True), Size(50, percent=True))
    assert (inv.min_healthy, inv.min_healthy_wait, inv.batch_by) == (Size(75, percent=True), 120.0, "zone")


@pytest.mark.parametrize("line,message", [
    ("batch: []", "'batch': give a positive count like 2 or a percentage like 25%, or a ramp of them in order like [1, 10%, 50%]; the list is empty"),
    ("batch: [1, 0]", "'batch': give a positive count like 2 or a percentage like 25%, or a ramp of them in order like [1, 10%, 50%] (entry 2: 0)"),
    ("min_healthy: most", "'min_healthy': give a count of healthy hosts like 3, or a percentage of the environment's hosts like 75%"),
    ("min_healthy: 120%", "'min_healthy': give a count of healthy hosts like 3"),
    ("min_healthy_wait: soon", "'min_healthy_wait': expected seconds"),
    ("batch_by: rack", "'batch_by'"),
])
def test_a_bad_ramp_floor_or_batch_by_names_the_key(tmp_path, line, message):
    _text(tmp_path, "bad", [("max_failures: 0", f"max_failures: 0\n{line}")])
    with pytest.raises(ConfigError) as exc:
        inventory.load("bad", tmp_path)
    assert message in str(exc.value), str(exc.value)
