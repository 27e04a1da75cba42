"""The `rollout` console command: Fabric's program with rollout's rules (rollout.cli.program) and tasks (rollout.cli.tasks)."""

from __future__ import annotations

import sys
from typing import Optional

import fabric

from rollout import __version__
from rollout.cli.program import RolloutExecutor, RolloutProgram
from rollout.cli.tasks import namespace


def make_program() -> RolloutProgram:
    return RolloutProgram(name="rollout", binary="rollout", binary_names=["rollout"], version=__version__, namespace=namespace(),
                          executor_class=RolloutExecutor, config_class=fabric.Config)


def main(argv: Optional[list[str]] = None) -> None:
    """The `rollout` console command."""
    make_program().run(argv if argv is not None else sys.argv)
