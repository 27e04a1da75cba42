"""The command line: the `rollout` program, and the same rules for `fab` when a fabfile uses rollout's tasks.

Built as Fabric documents for distributing a CLI: a Program (Fabric's `Fab`) with a bundled
namespace. Rules on top of Fabric's: an argument error is one line and exit 2 (Invoke says 1,
which rollout reserves for a failed rollout); each core option does what rollout.core.coreopts
decides, before anything runs; `--env` completes with the environment names.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import sys
from typing import Optional

import fabric
import invoke
import paramiko
from fabric.executor import Executor as FabricExecutor
from fabric.main import Fab
from invoke.exceptions import Exit, ParseError

from rollout import __version__
from rollout.adapters.ssh import ssh_config_problem
from rollout.core import coreopts
from rollout.core.errors import UsageError

USAGE = UsageError.exit_code
FREE_TEXT = frozenset({"reason"})  # options whose value is prose, which may start with "-"


def _line(message: str) -> Exit:
    return Exit(f"rollout: {message}", code=USAGE)


class RolloutExecutor(FabricExecutor):
    """Fabric's executor, except that a task never runs once per -H host: -H is a task option."""

    def expand_calls(self, calls, apply_hosts=True):
        return super().expand_calls(calls, apply_hosts=False)


class Rules:
    """Mixed into a Fabric Program: rollout's argument and core-option rules."""

    def parse_core(self, argv):
        try:
            super().parse_core(argv)
        except ParseError as exc:
            raise _line(f"{_plain(str(exc))} (see: {self.binary_name_for_help()} --help)") from None

    def parse_tasks(self):
        try:
            super().parse_tasks()
            after = [max(a.names, key=len) for a in self.core_via_tasks.args.values() if a.got_value and "help" not in a.names]
            if after:
                task = self.tasks[0].name if self.tasks else "the task"
                raise _line(f"--{after[0]} is a core option of {self.binary_name_for_help()}, not an option of {task}:"
                            f" put core options before the task name (see: {self.binary_name_for_help()} {task} --help)")
            for ctx in self.tasks:
                for arg in ctx.args.values():
                    if isinstance(arg.value, str) and arg.value.startswith("-") and arg.name not in FREE_TEXT:
                        raise _line(f"{ctx.name} --{arg.name}={arg.value!r}: that is an option, not a value;"
                                    f" give --{arg.name} a value (see: {self.binary_name_for_help()} {ctx.name} --help)")
        except ParseError as exc:
            where = f"{exc.context.name} --help" if getattr(exc, "context", None) is not None and exc.context.name else "--help"
            raise _line(f"{_plain(str(exc))} (see: {self.binary_name_for_help()} {where})") from None
        except ValueError as exc:  # a value Invoke could not convert
            raise _line(f"{exc} (see: {self.binary_name_for_help()} --help)") from None

    def parse_cleanup(self):
        if self.args.complete.value:
            names = environment_completion(self.core.remainder)
            if names is not None:
                for name in names:
                    print(name)
                raise Exit
        super().parse_cleanup()

    def print_help(self):
        _quiet_if_reader_left(super().print_help)

    def print_task_help(self, name):
        _quiet_if_reader_left(lambda: super(Rules, self).print_task_help(name))

    def list_tasks(self):
        _quiet_if_reader_left(super().list_tasks)

    def print_version(self):
        _quiet_if_reader_left(super().print_version)

    def update_config(self, *args, **kwargs):
        self._apply_core_options()  # before Fabric's update_config, which prompts for secrets
        super().update_config(*args, **kwargs)

    def _apply_core_options(self) -> None:
        core = {max(arg.names, key=len): arg.value for arg in self.core[0].args.values()}
        tasks = []
        for ctx in self.tasks:
            task = self.collection[ctx.name]
            values = {arg.attr_name or arg.name: arg.value for arg in ctx.args.values()}
            tasks.append((ctx.name, values, frozenset(getattr(task, "core_options", ()))))
        decision = coreopts.decide(core, tasks, self.core.remainder)
        if decision.refusal:
            raise _line(decision.refusal)
        for path in core.get("identity") or []:
            if not _is_file(path):
                raise _line(f"-i/--identity: {path} is not a file")
        if core.get("ssh-config") and not _is_file(core["ssh-config"]):
            raise _line(f"-S/--ssh-config: {core['ssh-config']} is not a file")
        if core.get("ssh-config") and (problem := ssh_config_problem(core["ssh-config"])):
            raise _line(f"-S/--ssh-config: {core['ssh-config']}: {problem}; fix that line")
        for ctx, values in zip(self.tasks, decision.task_values):
            for arg in ctx.args.values():
                name = arg.attr_name or arg.name
                if name in values and values[name] != arg.value:
                    arg.value = values[name]
        # Given to the tasks now: Fabric must not also run them once per host, nor set run.dry.
        self.core[0].args.hosts.value = None
        self.core[0].args.dry.value = False

    def binary_name_for_help(self) -> str:
        return getattr(self, "called_as", None) or "fab"


def _quiet_if_reader_left(show) -> None:
    """Run `show` (help, lists); if the reader closed the pipe (`fab deploy --help | head`), exit 0 quietly."""
    try:
        show()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit must not fail too
        raise Exit from None


def _plain(message: str) -> str:
    """Invoke's parse messages as rollout's sentences."""
    text = message.rstrip("!")
    if m := re.fullmatch(r"No idea what (.*) is", text):
        return f"unknown option or task {m.group(1)}"
    if m := re.fullmatch(r"Flag <Argument: (?:(\S+) \((\S+)\)|(\S+))> needed value and was not given one", text):
        name = m.group(2) or m.group(3)
        return f"{'-' if len(name) == 1 else '--'}{name} needs a value"
    return text


def _is_file(path: str) -> bool:
    from pathlib import Path

    return Path(path).expanduser().is_file()


def environment_completion(invocation: str) -> Optional[list[str]]:
    """The environment names, if the word being completed in `invocation` is the value of --env; else None."""
    from rollout.config import inventory

    try:
        tokens = shlex.split(invocation)
    except ValueError:
        return None
    words = tokens + [""] if invocation[-1:].isspace() else tokens
    before = [w for w in words[:-1] if w != "="]  # bash splits --env=x into --env, =, x
    current = words[-1] if words else ""
    if current.startswith("--env="):
        return [f"--env={name}" for name in inventory.known_environments(inventory.inventory_dir())]
    if before and before[-1] == "--env" and current != "--env":
        return inventory.known_environments(inventory.inventory_dir())
    return None


class RolloutProgram(Rules, Fab):
    """`rollout`: `fab` with rollout's tasks built in."""

    def print_version(self):
        print(f"rollout {__version__} (Fabric {fabric.__version__}, Invoke {invoke.__version__}, Paramiko {paramiko.__version__})")


def adopt(frame_limit: int = 40) -> bool:
    """Apply rollout's rules to the `fab` program that is loading the calling fabfile.

    Fabric loads a fabfile from inside Program.load_collection, before it parses the task
    arguments: that program object is found on the call stack and given rollout's rules.
    Returns whether a program was found (not when the fabfile is imported some other way).
    """
    frame = inspect.currentframe()
    for _ in range(frame_limit):
        frame = frame.f_back if frame is not None else None
        if frame is None:
            return False
        program = frame.f_locals.get("self")
        if isinstance(program, invoke.Program) and frame.f_code.co_name == "load_collection":
            if not isinstance(program, Rules):
                program.__class__ = type(f"Rollout{type(program).__name__}", (Rules, type(program)), {})
            program.executor_class = RolloutExecutor
            return True
    return False
