"""What each of Fabric's core options (`fab --help`) means for rollout's tasks: pure decisions.

Every core option either does what a Fabric user expects, once, or is refused before
anything happens with one line naming what to use instead. Nothing is silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

# Core options that never reach a task: help, listing, completion, loading, Invoke's own debug log.
PASS_THROUGH = frozenset({
    "complete", "print-completion-script", "help", "list", "list-depth", "list-format", "collection",
    "search-root", "debug", "write-pyc", "no-dedupe", "version", "list-agent-keys",
})

# Core options that feed rollout's SSH connections (read by rollout.adapters.ssh.auth_from_config from Fabric's config).
SSH = frozenset({"identity", "ssh-config", "prompt-for-passphrase"})

# Core options rollout refuses, and what to use instead.
REFUSED = {
    "hide": "--hide: rollout runs no shell commands through run(); for less output use -q/--quiet after the task",
    "echo": "-e/--echo: rollout runs no shell commands through run(); for a detailed log use -v/--verbose after the task",
    "pty": "-p/--pty: rollout runs its remote commands without a terminal; drop -p",
    "warn-only": "-w/--warn-only: rollout judges failed hosts against max_failures in the inventory; drop -w",
    "command-timeout": "-T/--command-timeout: rollout's waits are set in the inventory (health.timeout, drain delays); drop -T",
    "connect-timeout": "-t/--connect-timeout: set ssh.connect_timeout in the inventory; drop -t",
    "config": "-f/--config: rollout's settings live in inventories/ENV.yml (--env=ENV); drop -f",
    "prompt-for-login-password": "--prompt-for-login-password: rollout logs in with a key only (ssh.key, -i or the SSH agent)",
    "prompt-for-sudo-password": "--prompt-for-sudo-password: rollout never runs sudo; drop it",
}

# Core options that are a task option of some tasks: core name -> (task option, what it is called there).
MAPPED = {"hosts": ("hosts", "--hosts"), "dry": ("dry_run", "--dry-run")}
_SHORT = {"hosts": "-H/--hosts", "dry": "-R/--dry"}

KNOWN = PASS_THROUGH | SSH | frozenset(REFUSED) | frozenset(MAPPED)


@dataclass(frozen=True)
class Decision:
    """The outcome: a refusal line, or the values to give each task (by position in the call list)."""

    refusal: Optional[str] = None
    task_values: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def decide(core: dict[str, Any], tasks: list[tuple[str, dict[str, Any], frozenset[str]]], remainder: str = "") -> Decision:
    """Decide what the given core options do for `tasks`.

    `core`: core option name -> value (None or False when not given; -i is a list).
    `tasks`: (task name, the task's own values as parsed, the core options it accepts from MAPPED).
    `remainder`: what came after `--` (Fabric runs it as a shell command on every -H host).
    """
    given = {name: value for name, value in core.items() if value not in (None, False, [], "")}
    if core.get("hosts") == "":
        given["hosts"] = ""
    unknown = sorted(set(given) - KNOWN)
    if unknown:
        return Decision(f"the core option --{unknown[0]} is not known to rollout; drop it (see: fab --help)")
    for name in sorted(set(given) & set(REFUSED)):
        return Decision(REFUSED[name])
    if remainder.strip():
        return Decision("'-- COMMAND' runs an ad-hoc shell command; rollout does not (use ssh -F with the inventory's known_hosts)")
    out = []
    for task_name, values, accepts in tasks:
        mine = dict(values)
        for core_name, (option, flag) in MAPPED.items():
            if core_name not in given:
                continue
            if core_name not in accepts:
                return Decision(f"{_SHORT[core_name]} does not apply to {task_name}: it has no {flag} option (see: fab {task_name} --help)")
            value = given[core_name]
            if core_name == "hosts" and values.get(option) not in (None, "") and values.get(option) != value:
                return Decision(f"hosts given twice (-H {value!r} and --hosts={values[option]!r}): give them once, as {task_name} --hosts=...")
            mine[option] = value
        out.append(mine)
    return Decision(None, tuple(out))
