"""Inventories: one YAML file per environment, parsed once into frozen, validated objects."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from rollout.errors import ConfigError

ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ADDRESS_ATTRIBUTES = Literal["PrivateIpAddress", "PublicIpAddress", "PrivateDnsName", "PublicDnsName"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Aws(Model):
    region: str
    endpoint_url: Optional[str] = None
    profile: Optional[str] = None


class Instances(Model):
    tags: dict[str, str] = Field(min_length=1)
    address: ADDRESS_ATTRIBUTES = "PrivateIpAddress"


class Bastion(Model):
    host: Optional[str] = None
    tags: Optional[dict[str, str]] = None
    address: ADDRESS_ATTRIBUTES = "PublicIpAddress"
    port: int = 22
    user: Optional[str] = None

    @model_validator(mode="after")
    def _one_way_to_find_it(self):
        if (self.host is None) == (self.tags is None):
            raise ValueError("give exactly one of 'host' or 'tags'")
        return self


class Ssh(Model):
    user: str
    key: Path
    known_hosts: Path
    port: int = 22
    connect_timeout: float = Field(10, gt=0)
    parallel: int = Field(16, ge=1, le=256)


class Elb(Model):
    kind: Literal["elb"]
    name: str


class Alb(Model):
    kind: Literal["alb"]
    target_group: str
    port: Optional[int] = None


class Haproxy(Model):
    kind: Literal["haproxy"]
    backend: str
    runtime_api: str
    via: Literal["bastion", "local"] = "bastion"
    drain_timeout: float = Field(30, ge=0)
    healthy_timeout: float = Field(60, gt=0)


LoadBalancer = Annotated[Union[Elb, Alb, Haproxy], Field(discriminator="kind")]


class Reload(Model):
    signal: Optional[Literal["HUP", "USR2", "USR1"]] = None
    pid_file: Optional[str] = None
    command: Optional[str] = None

    @model_validator(mode="after")
    def _signal_or_command(self):
        if (self.pid_file is None) == (self.command is None):
            raise ValueError("give either 'pid_file' (with 'signal') or 'command'")
        if self.pid_file is not None and self.signal is None:
            raise ValueError("'pid_file' needs 'signal' (HUP for a Node cluster primary)")
        return self


class GitApp(Model):
    kind: Literal["git"] = "git"
    repository: str
    branch: str = "main"
    path: str
    install: Optional[str] = None
    reload: Reload
    workers: Optional[int] = Field(None, ge=1)


class FromEnv(Model):
    """A value read from the controller's environment when the rollout starts (never printed)."""

    from_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Registry(Model):
    """How the controller reaches the image's registry to resolve tags (and hosts to pull, with credentials)."""

    url: Optional[str] = Field(None, pattern=r"^https?://[^\s/]+(/.*)?$")
    insecure: bool = False
    credentials_env: Optional[str] = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout: float = Field(10, gt=0)


_IMAGE = re.compile(r"^([A-Za-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


class ContainerApp(Model):
    kind: Literal["container"]
    image: str
    tag: str = Field("latest", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    name: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    cli: Literal["docker", "podman"] = "docker"
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Union[str, int, float, bool, FromEnv]] = {}
    env_file: Optional[str] = None
    ports: list[Annotated[str, Field(pattern=r"^[0-9A-Za-z.:\[\]/-]+$")]] = []
    volumes: list[str] = []
    options: list[str] = []
    stop_timeout: int = Field(10, ge=0, le=3600)
    init: bool = True
    digest_env: Optional[str] = Field("APP_VERSION", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
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
    port: int = Field(gt=0, lt=65536)
    path: str = "/health"
    status: int = 200
    version_path: Optional[str] = "/version"
    timeout: float = Field(60, gt=0)
    interval: float = Field(0.05, gt=0)


class Smoke(Model):
    url: str
    status: int = 200
    body: Optional[str] = None
    timeout: float = Field(10, gt=0)


class Alarms(Model):
    names: list[str] = []
    prefix: Optional[str] = None


class Slack(Model):
    channel: str
    token_env: str = "SLACK_BOT_TOKEN"
    api_url: Optional[str] = None


class Personal(Model):
    branch_pattern: str = r"remote-run/(?P<user>[^/]+)/.+"
    tags: dict[str, str] = Field(min_length=1)
    load_balancers: list[LoadBalancer] = []
    autoscaling_group: Optional[str] = None


class Queue(Model):
    name: str
    dead_letter: str
    secret_env: str = "ROLLOUT_QUEUE_SECRET"
    visibility_timeout: int = Field(900, ge=5, le=43200)


class State(Model):
    table: str = "rollout-state"
    lock_ttl: float = Field(60, ge=10)


class Inventory(Model):
    """One environment: where its hosts are, how to reach them, how to update them."""

    name: str = ""
    aws: Aws
    instances: Instances
    bastion: Bastion
    ssh: Ssh
    load_balancers: list[LoadBalancer] = []
    autoscaling_group: Optional[str] = None
    app: App
    health: Health
    batch: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)] = "1"
    max_failures: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)] = "0"
    on_failure: Literal["rollback", "stop"] = "rollback"
    protected: bool = False
    unattended: bool = True
    require_success_in: Optional[str] = None
    personal: Optional[Personal] = None
    queue: Optional[Queue] = None
    user: Optional[str] = None
    state: State = State()
    smoke: list[Smoke] = []
    post_deploy: list[str] = []
    alarms: Optional[Alarms] = None
    slack: Optional[Slack] = None


def inventory_dir() -> Path:
    """The directory holding the inventories: $ROLLOUT_INVENTORIES, else ./inventories."""
    return Path(os.environ.get("ROLLOUT_INVENTORIES") or "inventories")


def known_environments(directory: Path) -> list[str]:
    """Names of the environments that have an inventory file in `directory`."""
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yml"))


def load(env: str, directory: Optional[Path] = None) -> Inventory:
    """Read and validate inventories/ENV.yml; raise ConfigError with one actionable line.

    `ENV@USER` is USER's personal copy of ENV (see rollout.personal).
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
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
    for internal in ("name", "user"):
        if internal in data:
            raise ConfigError(f"{path}: unknown key '{internal}'; valid keys here: {', '.join(_valid_keys(()))}")
    data = {**data, "name": env}
    try:
        inv = Inventory.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_error(exc.errors()[0])}") from None
    return _resolve_paths(inv, path.parent)


def personal_copy(inv: Inventory, user: str) -> Inventory:
    """USER's copy of a personal-capable environment: its instances are selected by personal.tags."""
    from rollout import personal

    if inv.personal is None:
        raise ConfigError(f"{inv.name} has no personal environments (no 'personal' section in its inventory)")
    personal.validate_config(inv.personal.branch_pattern, inv.personal.tags)
    tags = personal.selector(inv.personal.tags, user)
    # Nothing shared carries over: not the balancers (the host would join shared traffic), nor
    # the group, smoke checks, alarms, release hooks or promotion rules.
    return inv.model_copy(update={
        "name": f"{inv.name}@{user}", "user": user, "instances": inv.instances.model_copy(update={"tags": tags}),
        "load_balancers": inv.personal.load_balancers, "autoscaling_group": inv.personal.autoscaling_group,
        "smoke": [], "alarms": None, "post_deploy": [], "require_success_in": None, "protected": False,
    })


def shared_selectors(directory: Optional[Path] = None) -> dict[str, dict[str, str]]:
    """Instance tag filters of every environment in the directory (personal copies excluded).

    An inventory that does not load makes this fail: its instances could not be protected.
    """
    directory = directory or inventory_dir()
    out = {}
    for name in known_environments(directory):
        try:
            out[name] = dict(load(name, directory).instances.tags)
        except ConfigError as exc:
            raise ConfigError(f"cannot check personal deploys against every shared environment: {exc}") from None
    return out


def describe_error(err: dict) -> str:
    """One line naming the key and what is expected, from a pydantic error."""
    loc = [str(p) for p in err["loc"] if not _is_union_tag(p)]
    key = ".".join(loc) or "(top level)"
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
    msg = err["msg"].removeprefix("Value error, ")
    return f"'{key}': {msg} (got {err.get('input')!r})"


_TAGGED = {"elb": Elb, "alb": Alb, "haproxy": Haproxy, "git": GitApp, "container": ContainerApp}


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

    ssh = inv.ssh.model_copy(update={"key": fix(inv.ssh.key), "known_hosts": fix(inv.ssh.known_hosts)})
    return inv.model_copy(update={"ssh": ssh})
