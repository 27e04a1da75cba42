"""`init`: a commented inventory written from what AWS shows (Facts) and what the user answers (Answers).

Pure: the questions, their flags, and the rendering of the YAML text. What AWS shows is read by
rollout.orchestration.init; what is asked is asked there, or given as flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import yaml

from rollout.core.errors import UsageError


STACK_OUTPUT = "stack_output:"  # --bastion-host=stack_output:KEY: the stack's output KEY


@dataclass(frozen=True)
class Question:
    """One value the user gives: the Answers field, its flag, the prompt's words, and its default."""

    name: str
    flag: str
    what: str
    default: Optional[str] = None


QUESTIONS = (
    Question("ssh_user", "--ssh-user", "SSH user on the hosts and the bastion"),
    Question("ssh_key", "--ssh-key", "private key file for the bastion and the hosts"),
    Question("known_hosts", "--known-hosts", "known_hosts file holding the bastion's and every host's key"),
    Question("repository", "--repository", "the app's git repository, as `git ls-remote` reaches it from here"),
    Question("path", "--path", "the app's git checkout on every host"),
    Question("pid_file", "--pid-file", "the app's primary pid file on the hosts (empty: give a reload command instead)"),
    Question("reload_command", "--reload-command", "the command that reloads the app on a host"),
    Question("health_port", "--health-port", "the port on each host's 127.0.0.1 that answers /health and /version"),
)


@dataclass(frozen=True)
class Answers:
    ssh_user: str
    ssh_key: str
    known_hosts: str
    repository: str
    path: str
    health_port: int
    pid_file: Optional[str] = None
    reload_command: Optional[str] = None
    signal: str = "HUP"
    branch: str = "main"


@dataclass(frozen=True)
class Facts:
    """What AWS showed: the instances (id, name), their group(s), the balancers they are in, the bastion."""

    instances: tuple[tuple[str, str], ...]
    groups: tuple[str, ...] = ()
    balancers: tuple[tuple[str, str], ...] = ()  # (kind, name): ("elb", NAME) or ("alb", TARGET GROUP)
    bastion: str = ""  # "i-... at ADDRESS", or the host given
    stack_outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Where:
    """How the environment is found: the flags about AWS and the fleet."""

    env: str
    region: str
    endpoint_url: Optional[str] = None
    profile: Optional[str] = None
    stack: Optional[str] = None
    tags: dict = field(default_factory=dict)
    address: str = "PrivateIpAddress"
    bastion_tags: dict = field(default_factory=dict)
    bastion_host: Optional[str] = None
    bastion_address: str = "PublicIpAddress"


def parse_tags(value: Optional[str], flag: str) -> dict[str, str]:
    """`K=V,K2=V2` as a mapping; UsageError naming the flag if it is not of that form."""
    if not value:
        return {}
    tags = {}
    for part in value.split(","):
        key, eq, val = part.partition("=")
        if not eq or not key.strip() or not val.strip():
            raise UsageError(f"{flag}={value!r}: give tags as KEY=VALUE,KEY=VALUE (e.g. {flag}=Stack=app,Deployment=production)")
        tags[key.strip()] = val.strip()
    return tags


def answers(given: dict[str, Optional[str]], ask: Optional[Callable[[Question], str]]) -> Answers:
    """Answers from the flags given, asking (with `ask`, if there is a terminal) for each one missing.

    Without `ask`, a missing value is a UsageError naming its flag. A reload is a pid file (with
    --signal) or --reload-command, not both.
    """
    values = {k: v for k, v in given.items() if v not in (None, "")}
    for q in QUESTIONS:
        if q.name in values or (q.name == "reload_command" and values.get("pid_file")):
            continue
        if q.name == "pid_file" and values.get("reload_command"):
            continue
        if ask is None:
            if q.name == "pid_file":
                continue  # asked for as --reload-command below, naming both
            if q.name == "reload_command":
                raise UsageError("init needs --pid-file=PATH (with --signal, default HUP) or --reload-command=CMD;"
                                 " without a terminal nothing is asked")
            raise UsageError(f"init needs {q.flag}=VALUE ({q.what}); without a terminal nothing is asked")
        answer = ask(q).strip()
        if answer:
            values[q.name] = answer
        elif q.name != "pid_file":
            raise UsageError(f"no answer for {q.flag} ({q.what}); run fab init again")
    if values.get("pid_file") and values.get("reload_command"):
        raise UsageError("give --pid-file or --reload-command, not both")
    port = values.get("health_port", "")
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise UsageError(f"--health-port={port!r} is not a port: give a number from 1 to 65535")
    signal = values.get("signal") or "HUP"
    if signal not in ("HUP", "USR1", "USR2"):
        raise UsageError(f"--signal={signal!r}: give HUP, USR1 or USR2")
    return Answers(ssh_user=values["ssh_user"], ssh_key=values["ssh_key"], known_hosts=values["known_hosts"],
                   repository=values["repository"], path=values["path"], health_port=int(port),
                   pid_file=values.get("pid_file"), reload_command=values.get("reload_command"), signal=signal,
                   branch=values.get("branch") or "main")


def _v(value) -> str:
    """A YAML scalar or flow mapping, quoted where YAML needs it."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip().removesuffix("\n...").strip()


def _line(text: str, comment: str = "") -> str:
    return f"{text:<40} # {comment}" if comment else text


def render(where: Where, facts: Facts, ans: Answers, today: str) -> str:
    """The commented inventory text for `where`, from `facts` and `ans`."""
    hosts = ", ".join(f"{name or '-'} {iid}" for iid, name in facts.instances[:5]) + (" ..." if len(facts.instances) > 5 else "")
    out = [f"# inventories/{where.env}.yml, written by `fab init --env={where.env}` on {today}, from what AWS",
           "# showed and what you answered. Every key: docs/inventory.md. Check it offline: fab check --env=" + where.env,
           "aws:", f"  region: {_v(where.region)}"]
    if where.endpoint_url:
        out.append(f"  endpoint_url: {_v(where.endpoint_url)}")
    if where.profile:
        out.append(_line(f"  profile: {_v(where.profile)}", "credentials: this shared-config profile"))
    else:
        out.append("  # profile: NAME                         # else the standard credential chain")
    if where.stack:
        out.append(_line(f"stack: {_v(where.stack)}", "the environment's instances are this stack's"))
    out.append("instances:")
    if where.tags:
        out.append(_line(f"  tags: {_v(where.tags)}", f"found: {len(facts.instances)} running ({hosts})"))
    else:
        out.append(f"  # tags: {{Tier: web}}                     # optional with a stack; found: {len(facts.instances)} running ({hosts})")
    out.append(_line(f"  address: {where.address}", "the instance attribute rollout connects to"))
    out.append("bastion:")
    if where.bastion_host:
        output = where.bastion_host.removeprefix(STACK_OUTPUT)
        host = {"stack_output": output} if output != where.bastion_host else where.bastion_host
        out.append(_line(f"  host: {_v(host)}", facts.bastion or "the bastion's address"))
    else:
        out.append(_line(f"  tags: {_v(where.bastion_tags)}", f"found: {facts.bastion}"))
        out.append(f"  address: {where.bastion_address}")
    out += ["ssh:", f"  user: {_v(ans.ssh_user)}", f"  key: {_v(ans.ssh_key)}",
            _line(f"  known_hosts: {_v(ans.known_hosts)}", "checked strictly: docs/security.md#host-keys")]
    if facts.balancers:
        out.append(_line("load_balancers:", "found: the balancers these instances are registered in"))
        for kind, name in facts.balancers:
            out.append(f"  - {{kind: elb, name: {_v(name)}}}" if kind == "elb" else f"  - {{kind: alb, target_group: {_v(name)}}}")
    else:
        out.append(_line("load_balancers: []", "found: none of the instances is in an ELB or a target group"))
    out.append("  # - {kind: haproxy, backend: app, runtime_api: 127.0.0.1:9999, via: bastion}   # HAProxy is never found: list it")
    if len(facts.groups) == 1:
        out.append(_line(f"autoscaling_group: {_v(facts.groups[0])}", "found: the instances' Auto Scaling group"))
    elif facts.groups:
        out.append(f"# autoscaling_group: NAME                # the instances belong to several groups: {', '.join(facts.groups)}")
    else:
        out.append("# autoscaling_group: NAME                # found: the instances are in no Auto Scaling group")
    out += ["app:", _line(f"  repository: {_v(ans.repository)}", "refs are resolved here with git ls-remote"),
            f"  branch: {_v(ans.branch)}",
            _line(f"  path: {_v(ans.path)}", "a checkout on every host whose origin the host can fetch")]
    if ans.pid_file:
        out.append(_line(f"  reload: {{signal: {ans.signal}, pid_file: {_v(ans.pid_file)}}}", "the primary replaces its workers"))
    else:
        out.append(f"  reload: {{command: {_v(ans.reload_command)}}}")
    out += ["  # install: npm ci --omit=dev              # run in path after checkout, with DEPLOY_SHA set",
            "health:", _line(f"  port: {ans.health_port}", "on each host's 127.0.0.1, reached through SSH"),
            "  path: /health",
            _line("  version_path: /version", "must answer the deployed 40-character SHA"),
            _line("batch: 1", "hosts out of service at once: a count, or a percentage like 25%"),
            _line("max_failures: 0", "hosts that may fail (each put back) before the rollout stops"),
            "# slack: {channel: \"#deploys\"}            # the token comes from $SLACK_BOT_TOKEN"]
    if facts.stack_outputs:
        out.append(f"# the stack's outputs, usable as {{stack_output: KEY}}: {', '.join(facts.stack_outputs)}")
    return "\n".join(out) + "\n"
