"""Inventories: one YAML file per environment, parsed once into frozen, validated objects."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from urllib.parse import urlsplit

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, FiniteFloat, PlainSerializer, PlainValidator,
                      ValidationError, WithJsonSchema, field_validator, model_validator)
from pydantic.json_schema import SkipJsonSchema

from rollout.adapters import refs
from rollout.config import yamlsource
from rollout.core import sizes
from rollout.core.errors import ConfigError, InventoryError, RefError
from rollout.core.sizes import Size

STACK_TAG = "aws:cloudformation:stack-name"  # CloudFormation tags the instances it launches with it
ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ADDRESS_ATTRIBUTES = Literal["PrivateIpAddress", "PublicIpAddress", "PrivateDnsName", "PublicDnsName"]


# --- value types: each inventory value is typed here, once, with a message saying what to write ---

def _no_bool(value):
    """Numbers refuse booleans (YAML reads an unquoted yes as true, which pydantic would take for 1)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    return value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")
_UNIT = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_HINT = "expected seconds: a number, or with a unit like 500ms, 30s, 5m, 1h"


def _duration(value):
    """Seconds from a number or a string with a unit ('30s', '5m')."""
    value = _no_bool(value)
    if isinstance(value, str):
        m = _DURATION.fullmatch(value.strip())
        if not m:
            raise ValueError(DURATION_HINT)
        return float(m.group(1)) * _UNIT[m.group(2)]
    return value


def _whole_seconds(value):
    seconds = _duration(value)
    if isinstance(seconds, float) and not seconds.is_integer():
        raise ValueError("expected a whole number of seconds")
    return int(seconds) if isinstance(seconds, float) else seconds


_DURATION_PATTERN = r"^\d+(\.\d+)?\s*(ms|s|m|h)?$"
_JSON_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "le": "maximum"}


def _seconds(kind=float, **bounds):
    """A duration in seconds (`kind` float or int) within `bounds` (gt, ge, le), in the file as 30, 30s, 5m..."""
    number = {"type": "number" if kind is float else "integer", **{_JSON_BOUNDS[k]: v for k, v in bounds.items()}}
    schema = {"anyOf": [number, {"type": "string", "pattern": _DURATION_PATTERN}]}
    base = FiniteFloat if kind is float else int
    return Annotated[base, Field(**bounds), BeforeValidator(_duration if kind is float else _whole_seconds), WithJsonSchema(schema)]


def _int(**bounds):
    """An integer within `bounds` (ge, le); booleans refused."""
    return Annotated[int, Field(**bounds), BeforeValidator(_no_bool)]


Port = _int(ge=1, le=65535)
Status = _int(ge=100, le=599)


def _matching(pattern: str, what: str):
    """A string type that must match `pattern`, refused with `what` it should be."""
    rx = re.compile(pattern)

    def check(value: str) -> str:
        if not rx.match(value):
            raise ValueError(f"expected {what}")
        return value

    return Annotated[str, AfterValidator(check), WithJsonSchema({"type": "string", "pattern": pattern})]


Text = Annotated[str, Field(min_length=1)]
EnvVar = _matching(r"^[A-Za-z_][A-Za-z0-9_]*$", "an environment variable name (letters, digits, _)")
EnvName = _matching(ENV_NAME.pattern, "an environment name (lower-case letters, digits, - and _)")
UrlPath = _matching(r"^/\S*$", "a URL path starting with /, without spaces")
Region = _matching(r"^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$", "an AWS region name like eu-west-1")
TableName = _matching(r"^[A-Za-z0-9_.-]{3,255}$", "a DynamoDB table name: 3-255 letters, digits, _ . -")
QueueName = _matching(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$", "an SQS queue name: up to 80 letters, digits, _ -")
GroupName = _matching(r"^[^\x00-\x1f]{1,255}$", "an Auto Scaling group name (1-255 characters)")


def _url(value: str) -> str:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise ValueError("expected a URL whose port is a number from 1 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError("expected a URL with its scheme, like https://host or http://127.0.0.1:5055")
    return value


Url = Annotated[str, AfterValidator(_url), WithJsonSchema({"type": "string", "format": "uri", "pattern": "^https?://"})]


def _git_ref(value: str) -> str:
    try:
        return refs.validate(value)
    except RefError as exc:
        raise ValueError(str(exc)) from None


GitRef = Annotated[str, AfterValidator(_git_ref), WithJsonSchema({"type": "string", "pattern": refs.REF_PATTERN})]
Tags = dict[Text, str]

_SIZE_JSON = r"^[0-9]+%?$"
BatchRamp = Annotated[sizes.Ramp, PlainValidator(sizes.ramp),
                     PlainSerializer(lambda r: str(r[0]) if len(r) == 1 else [str(s) for s in r]), WithJsonSchema(
    {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": _SIZE_JSON},
               {"type": "array", "minItems": 1, "maxItems": sizes.MAX_RAMP,
                "items": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": _SIZE_JSON}]}}],
     "description": "hosts per batch: a count (2), a percentage of the selected hosts (25%), or a ramp of them in order"
                    " ([1, 10%, 50%]), the last one repeating"})]
Floor = Annotated[Size, PlainValidator(sizes.floor), PlainSerializer(str), WithJsonSchema(
    {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": _SIZE_JSON}],
     "description": "healthy hosts every balancer keeps: a count (3) or a percentage of the environment's hosts (75%)"})]
FailureBudget = Annotated[Size, PlainValidator(sizes.failures), PlainSerializer(str), WithJsonSchema(
    {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": _SIZE_JSON}],
     "description": "hosts that may fail: a count (0) or a percentage of the selected hosts (10%)"})]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(Model):
    """An IAM role to assume for this environment (another account's, typically)."""

    arn: _matching(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$",
                   "an IAM role ARN like arn:aws:iam::123456789012:role/NAME")
    external_id: Optional[_matching(r"^[A-Za-z0-9+=,.@:/_-]{2,1224}$", "an external id: 2-1224 letters, digits, +=,.@:/_-")] = None
    duration: _seconds(int, ge=900, le=43200) = 3600


class Aws(Model):
    region: Region
    endpoint_url: Optional[Url] = None
    profile: Optional[Text] = None
    role: Optional[Role] = None


class StackOutput(Model):
    """An inventory value read from an output of the environment's stack (`{stack_output: KEY}`)."""

    stack_output: _matching(r"^[A-Za-z0-9]{1,255}$", "an output key (letters and digits)")


def _or_output(kind):
    """`kind`, or `{stack_output: KEY}`: the value of an output of the environment's stack.

    A mapping is read as a stack output and anything else as `kind`, so an error is about one of them only.
    """
    return Annotated[Union[Annotated[kind, Tag("value")], Annotated[StackOutput, Tag("{stack_output}")]],
                     Discriminator(lambda v: "{stack_output}" if isinstance(v, (dict, StackOutput)) else "value")]


StackName = _matching(r"^[A-Za-z][A-Za-z0-9-]{0,127}$", "a CloudFormation stack name: a letter, then letters, digits and -")
LogicalId = _matching(r"^[A-Za-z0-9]{1,255}$", "a logical id of the stack's template (letters and digits)")


SsmParameterName = _matching(r"^/[A-Za-z0-9_.\-/]{1,1010}$", "an SSM parameter path like /rollout/production/version")


class DesiredVersion(Model):
    parameter: SsmParameterName


class Instances(Model):
    tags: Tags = {}
    address: ADDRESS_ATTRIBUTES = "PrivateIpAddress"


class Bastion(Model):
    host: Optional[_or_output(Text)] = None
    tags: Optional[Tags] = None
    resource: Optional[LogicalId] = None
    address: ADDRESS_ATTRIBUTES = "PublicIpAddress"
    port: Port = 22
    user: Optional[Text] = None

    @model_validator(mode="after")
    def _one_way_to_find_it(self):
        if sum(x is not None for x in (self.host, self.tags, self.resource)) != 1:
            raise ValueError("give exactly one of 'host' or 'tags'" + (" or 'resource'" if self.resource else ""))
        return self


class Ssh(Model):
    user: Text
    key: Path
    known_hosts: Optional[Path] = None
    host_keys: Literal["known_hosts", "aws"] = "known_hosts"
    port: Port = 22
    connect_timeout: _seconds(gt=0) = 10
    parallel: _int(ge=1, le=256) = 16

    @model_validator(mode="after")
    def _keys_from_somewhere(self):
        if self.host_keys == "known_hosts" and self.known_hosts is None:
            raise ValueError("give 'known_hosts' (a file of the servers' host keys), or 'host_keys: aws' to trust the"
                             " keys each instance's EC2 console output shows")
        return self

    @field_validator("key", "known_hosts", mode="before")
    @classmethod
    def _a_path(cls, path):
        if isinstance(path, str) and "\0" in path:
            raise ValueError("a path cannot contain a NUL byte (\\0)")
        return path


class Elb(Model):
    kind: Literal["elb"]
    name: _or_output(Text)


class Alb(Model):
    kind: Literal["alb"]
    target_group: _or_output(Text)
    port: Optional[Port] = None


class Haproxy(Model):
    kind: Literal["haproxy"]
    backend: Text
    runtime_api: Text
    via: Literal["bastion", "local"] = "bastion"
    drain_timeout: _seconds(ge=0) = 30
    healthy_timeout: _seconds(gt=0) = 60


LoadBalancer = Annotated[Union[Elb, Alb, Haproxy], Field(discriminator="kind")]


class Reload(Model):
    signal: Optional[Literal["HUP", "USR2", "USR1"]] = None
    pid_file: Optional[Text] = None
    command: Optional[Text] = None

    @model_validator(mode="after")
    def _signal_or_command(self):
        if (self.pid_file is None) == (self.command is None):
            raise ValueError("give either 'pid_file' (with 'signal') or 'command'")
        if self.pid_file is not None and self.signal is None:
            raise ValueError("'pid_file' needs 'signal' (HUP for a Node cluster primary)")
        return self


class GitApp(Model):
    kind: Literal["git"] = "git"
    repository: Text
    branch: GitRef = "main"
    path: Text
    install: Optional[Text] = None
    reload: Reload
    workers: Optional[_int(ge=1)] = None
    discard_local_changes: bool = False


class FromEnv(Model):
    """A value read from the controller's environment when the rollout starts (never printed)."""

    from_env: EnvVar


class Registry(Model):
    """How the controller reaches the image's registry to resolve tags (and hosts to pull, with credentials)."""

    url: Optional[Url] = None
    insecure: bool = False
    credentials_env: Optional[EnvVar] = None
    timeout: _seconds(gt=0) = 10


_IMAGE = re.compile(r"^([A-Za-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


class ContainerApp(Model):
    kind: Literal["container"]
    image: str
    tag: str = Field("latest", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    name: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    cli: Literal["docker", "podman"] = "docker"
    env: dict[EnvVar, Union[str, int, float, bool, FromEnv]] = {}
    env_file: Optional[Text] = None
    ports: list[Annotated[str, Field(pattern=r"^[0-9A-Za-z.:\[\]/-]+$")]] = []
    volumes: list[Text] = []
    options: list[str] = []
    stop_timeout: _seconds(int, ge=0, le=3600) = 10
    init: bool = True
    digest_env: Optional[EnvVar] = "APP_VERSION"
    registry: Registry = Registry()

    @field_validator("image")
    @classmethod
    def _no_tag_in_image(cls, image: str) -> str:
        last = image.rsplit("/", 1)[-1]
        if ":" in last or "@" in last:
            raise ValueError("give the repository without a tag or digest (put the tag in app.tag, or pass --ref)")
        if not _IMAGE.match(image):
            raise ValueError("not an image repository: lower-case letters, digits and . _ - in each /-separated part,"
                             " optionally after a registry host[:port]/")
        return image


def _default_app_kind(value):
    if isinstance(value, dict) and "kind" not in value:
        return {**value, "kind": "git"}
    return value


App = Annotated[Union[GitApp, ContainerApp], Field(discriminator="kind"), BeforeValidator(_default_app_kind)]


class Health(Model):
    port: Port
    path: UrlPath = "/health"
    status: Status = 200
    version_path: Optional[UrlPath] = "/version"
    timeout: _seconds(gt=0) = 60
    interval: _seconds(gt=0) = 0.05


class Smoke(Model):
    url: Url
    status: Status = 200
    body: Optional[str] = None
    timeout: _seconds(gt=0) = 10


class Alarms(Model):
    names: list[Text] = []
    prefix: Optional[Text] = None


class Verify(Model):
    """The new version seen through the balancer's front end after each batch."""

    url: Url
    via: Literal["controller", "bastion"] = "controller"
    status: Status = 200
    timeout: _seconds(gt=0) = 30

    @model_validator(mode="after")
    def _plain_through_bastion(self):
        if self.via == "bastion" and self.url.startswith("https:"):
            raise ValueError("verify.via: bastion reaches the front end over plain HTTP: give an http:// URL, or via: controller")
        return self


class Slack(Model):
    channel: Text
    token_env: EnvVar = "SLACK_BOT_TOKEN"
    api_url: Optional[Url] = None


class Personal(Model):
    branch_pattern: str = r"remote-run/(?P<user>[^/]+)/.+"
    tags: Tags = Field(min_length=1)
    load_balancers: list[LoadBalancer] = []
    autoscaling_group: Optional[GroupName] = None

    @field_validator("branch_pattern")
    @classmethod
    def _names_the_user(cls, pattern: str) -> str:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if "user" not in rx.groupindex:
            raise ValueError("needs a named group (?P<user>...)")
        return pattern

    @field_validator("tags")
    @classmethod
    def _per_user(cls, tags: dict[str, str]) -> dict[str, str]:
        if not any("{user}" in v for v in tags.values()):
            raise ValueError("must contain {user} in a value, or every user would share the same instances")
        return tags


class Queue(Model):
    name: QueueName
    dead_letter: QueueName
    secret_env: EnvVar = "ROLLOUT_QUEUE_SECRET"
    control: Optional[QueueName] = None
    visibility_timeout: _seconds(int, ge=5, le=43200) = 900
    max_age: _seconds(gt=0) = 3600


class State(Model):
    table: TableName = "rollout-state"
    lock_ttl: _seconds(ge=10) = 60


class Inventory(Model):
    """One environment: where its hosts are, how to reach them, how to update them."""

    name: SkipJsonSchema[str] = ""
    aws: Aws
    instances: Instances = Instances()
    bastion: Bastion
    ssh: Ssh
    load_balancers: Optional[list[LoadBalancer]] = None  # None: found from membership (rollout.adapters.membership)
    autoscaling_group: Optional[_or_output(GroupName)] = None
    stack: Optional[StackName] = None
    app: App
    health: Health
    batch: BatchRamp = Field((Size(1),), json_schema_extra={"default": 1})
    max_failures: FailureBudget = Field(Size(0), json_schema_extra={"default": 0})
    on_failure: Literal["rollback", "stop"] = "rollback"
    min_healthy: Optional[Floor] = None
    min_healthy_wait: _seconds(ge=0) = 300
    batch_by: Literal["host", "zone"] = "host"
    protected: bool = False
    unattended: bool = True
    require_success_in: Optional[EnvName] = None
    personal: Optional[Personal] = None
    queue: Optional[Queue] = None
    user: SkipJsonSchema[Optional[str]] = None
    state: State = State()
    smoke: list[Smoke] = []
    post_deploy: list[Text] = []
    alarms: Optional[Alarms] = None
    bake: _seconds(ge=0, le=86400) = 0
    bake_after: Literal["first", "each"] = "first"
    rollback_alarms: list[Text] = []
    verify: Optional[Verify] = None
    slack: Optional[Slack] = None
    desired_version: Optional[DesiredVersion] = None

    @model_validator(mode="after")
    def _stack_or_tags(self):
        if self.stack is None:
            if not self.instances.tags:
                raise ValueError("give instances.tags (at least one tag) or 'stack' to find the instances")
            if self.bastion.resource is not None:
                raise ValueError("bastion.resource names a resource of the stack: it needs 'stack'")
            used = stack_outputs(self)
            if used:
                raise ValueError(f"{{stack_output: {used[0]}}} needs 'stack' (the stack whose outputs to read)")
        return self


def _text_fields(inv: "Inventory") -> list[tuple[str, object]]:
    """(key, value) of every inventory value that may be a stack output."""
    out = [("bastion.host", inv.bastion.host), ("autoscaling_group", inv.autoscaling_group)]
    for i, lb in enumerate(inv.load_balancers or []):
        if lb.kind in ("elb", "alb"):
            out.append((f"load_balancers.{i}", lb.name if lb.kind == "elb" else lb.target_group))
    return out


def stack_outputs(inv: "Inventory") -> list[str]:
    """Output keys the inventory refers to with `{stack_output: KEY}`."""
    return [v.stack_output for _, v in _text_fields(inv) if isinstance(v, StackOutput)]


def resolve_outputs(inv: "Inventory", outputs: dict[str, str]) -> "Inventory":
    """The inventory with every `{stack_output: KEY}` replaced by the output's value.

    Raises ConfigError naming the key and the outputs the stack has, if one is missing.
    """
    def value(key: str, v):
        if not isinstance(v, StackOutput):
            return v
        if v.stack_output not in outputs:
            have = ", ".join(sorted(outputs)) or "none"
            raise ConfigError(f"{key}: stack {inv.stack} has no output {v.stack_output!r} (its outputs: {have});"
                              f" fix inventories/{inv.name}.yml or add the output to the template")
        return outputs[v.stack_output]

    bastion = inv.bastion.model_copy(update={"host": value("bastion.host", inv.bastion.host)})
    lbs = None
    if inv.load_balancers is not None:
        lbs = []
        for i, lb in enumerate(inv.load_balancers):
            if lb.kind == "elb":
                lb = lb.model_copy(update={"name": value(f"load_balancers.{i}.name", lb.name)})
            elif lb.kind == "alb":
                lb = lb.model_copy(update={"target_group": value(f"load_balancers.{i}.target_group", lb.target_group)})
            lbs.append(lb)
    return inv.model_copy(update={"bastion": bastion, "load_balancers": lbs,
                                  "autoscaling_group": value("autoscaling_group", inv.autoscaling_group)})


def json_schema() -> str:
    """The JSON Schema of an inventory file, generated from the models (docs/inventory.schema.json holds it)."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Inventory.model_json_schema()}
    schema["title"] = "rollout inventory"
    schema["description"] = "One environment of rollout: inventories/ENV.yml. Generated by scripts/inventory-schema."
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def inventory_dir() -> Path:
    """The directory holding the inventories: $ROLLOUT_INVENTORIES, else ./inventories."""
    return Path(os.environ.get("ROLLOUT_INVENTORIES") or "inventories")


def known_environments(directory: Path) -> list[str]:
    """Names of the environments that have an inventory file in `directory`."""
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yml"))


def load(env: str, directory: Optional[Path] = None) -> Inventory:
    """Read and validate inventories/ENV.yml.

    Raises ConfigError: one line for an unknown environment or a file that is not YAML;
    an InventoryError listing every invalid value (each with its key and line) otherwise.
    `ENV@USER` is USER's personal copy of ENV (see rollout.core.personal).
    """
    directory = directory or inventory_dir()
    if "@" in (env or ""):
        base, _, user = env.partition("@")
        return personal_copy(load(base, directory), user)
    if not ENV_NAME.match(env or ""):
        raise ConfigError(f"environment name {env!r} is not valid: use lower-case letters, digits, '-' and '_'")
    path = directory / f"{env}.yml"
    if not path.is_file():
        known = ", ".join(known_environments(directory)) or "none"
        raise ConfigError(f"unknown environment {env!r}: no {path}; known environments: {known}")
    try:
        data, source = yamlsource.read(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
    inv, problems = validate(env, data, source)
    if problems:
        raise InventoryError(str(path), [f"{path}:{line}: {text}" if line else f"{path}: {text}" for line, text in problems])
    return _resolve_paths(inv, path.parent)


def validate(env: str, data: dict, source: yamlsource.Source) -> tuple[Optional[Inventory], list[tuple[Optional[int], str]]]:
    """The inventory of `env` from its parsed file, and every problem found as (line, message), in file order."""
    problems = []
    for internal in ("name", "user"):
        if internal in data:
            problems.append((source.line((internal,)), f"unknown key '{internal}'; valid keys here: {', '.join(_valid_keys(()))}"))
    data = {k: v for k, v in data.items() if k not in ("name", "user")}
    for where, line, first in source.duplicate_keys():
        problems.append((line, f"'{'.'.join(map(str, where))}' is given twice (first on line {first}); keep one"))
    flagged = set()
    for where, node in source.scalars():
        trap = yamlsource.pitfall(node)
        if trap:
            flagged.add(id(node))
            problems.append((node.start_mark.line + 1, f"'{'.'.join(map(str, where))}': {trap}"))
    inv = None
    try:
        inv = Inventory.model_validate({**data, "name": env})
    except ValidationError as exc:
        said = set()
        for err in exc.errors():
            if err["type"] == "invalid_key" or err["loc"][-1:] == ("[key]",):
                problems.append(_key_problem(err, source))
                continue
            path = _key_path(err["loc"])
            node = source.node(path)
            if path in said or id(node) in flagged:
                continue
            said.add(path)
            problems.append((source.line(path), describe_error(err, yamlsource.hint(node))))
    problems.sort(key=lambda p: p[0] or 0)
    return (None if problems else inv), problems


def personal_copy(inv: Inventory, user: str) -> Inventory:
    """USER's copy of a personal-capable environment: its instances are selected by personal.tags."""
    from rollout.core import personal

    if inv.personal is None:
        raise ConfigError(f"{inv.name} has no personal environments (no 'personal' section in its inventory)")
    tags = personal.selector(inv.personal.tags, user)
    # Nothing shared carries over: not the balancers (the host would join shared traffic), nor
    # the group, smoke checks, alarms (paging or rollback), the front end, release hooks, promotion rules, nor the desired version that
    # the shared group's new instances boot.
    return inv.model_copy(update={
        "name": f"{inv.name}@{user}", "user": user, "instances": inv.instances.model_copy(update={"tags": tags}),
        "load_balancers": inv.personal.load_balancers, "autoscaling_group": inv.personal.autoscaling_group,
        "smoke": [], "alarms": None, "post_deploy": [], "require_success_in": None, "protected": False,
        "desired_version": None,
        "rollback_alarms": [], "verify": None,
    })


def shared_selectors(directory: Optional[Path] = None) -> dict[str, dict[str, str]]:
    """Instance tag filters of every environment in the directory (personal copies excluded).

    An inventory that does not load makes this fail: its instances could not be protected.
    """
    directory = directory or inventory_dir()
    out = {}
    for name in known_environments(directory):
        try:
            inv = load(name, directory)
            out[name] = {**inv.instances.tags, STACK_TAG: inv.stack} if inv.stack else dict(inv.instances.tags)
        except ConfigError as exc:
            raise ConfigError(f"cannot check personal deploys against every shared environment: {exc}") from None
    return out


def describe_error(err: dict, hint: str = "") -> str:
    """One line naming the key and what is expected, from a pydantic error; `hint` says how YAML read the value."""
    key = ".".join(map(str, _key_path(err["loc"]))) or "(top level)"
    if not err["loc"] and err["type"] == "value_error":
        return err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        valid = ", ".join(_valid_keys(err["loc"][:-1]))
        return f"unknown key '{key}'; valid keys here: {valid}"
    if err["type"] == "missing":
        return f"missing required key '{key}'"
    if err["type"] == "union_tag_invalid":
        kinds = "git, container" if key == "app" else "elb, alb, haproxy"
        return f"'{key}': unknown kind {err['input'].get('kind')!r}; expected one of {kinds}"
    if err["type"] == "union_tag_not_found":
        return f"'{key}': each load balancer needs 'kind' (elb, alb or haproxy)"
    value = err.get("input")
    if err["type"] == "string_type":
        got = "nothing" if value is None else f"the boolean {str(value).lower()}" if isinstance(value, bool) else repr(value)
        return f"'{key}': expected a string, got {got}" + (f"; {hint}" if hint else "")
    msg = err["msg"].removeprefix("Value error, ")
    return f"'{key}': {msg} (got {value!r})" + (f"; {hint}" if hint and isinstance(value, bool) else "")


def _key_problem(err: dict, source: yamlsource.Source) -> tuple[Optional[int], str]:
    """(line, message) for a key that is not text (YAML read `no:` as false, `1:` as a number)."""
    where = _key_path(err["loc"][:-1] if err["type"] == "invalid_key" else err["loc"][:-2])
    node = source.key(where, err["input"])
    value = err["input"]
    got = f"the boolean {str(value).lower()}" if isinstance(value, bool) else repr(value)
    hint = yamlsource.hint(node)
    line = node.start_mark.line + 1 if node is not None else source.line(where)
    return line, f"'{'.'.join(map(str, where)) or '(top level)'}': a key must be text, got {got}" + (f"; {hint}" if hint else "")


_TAGGED = {"elb": Elb, "alb": Alb, "haproxy": Haproxy, "git": GitApp, "container": ContainerApp}
_TYPE_LABELS = {"str", "int", "float", "bool", "FromEnv", "value", "{stack_output}", "[key]"}


def _key_path(loc) -> tuple:
    """The keys and indices as the user wrote them: without pydantic's union tags and type labels."""
    return tuple(p for p in loc if not _is_union_tag(p) and p not in _TYPE_LABELS and not str(p).startswith("function-"))


def _is_union_tag(part) -> bool:
    return part in _TAGGED


def _valid_keys(loc) -> list[str]:
    model = Inventory
    for part in loc:
        if isinstance(part, int):
            continue
        if _is_union_tag(part):
            model = _TAGGED[part]
            continue
        field = model.model_fields.get(part)
        if field is None:
            break
        model = _model_of(field.annotation) or model
    return [k for k in model.model_fields if model is not Inventory or k not in ("name", "user")]


def _model_of(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found:
            return found
    return None


def _resolve_paths(inv: Inventory, base: Path) -> Inventory:
    def fix(p: Path) -> Path:
        p = Path(os.path.expandvars(str(p))).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    known = fix(inv.ssh.known_hosts) if inv.ssh.known_hosts is not None else None
    ssh = inv.ssh.model_copy(update={"key": fix(inv.ssh.key), "known_hosts": known})
    return inv.model_copy(update={"ssh": ssh})
