"""docs/tasks.md documents every task and every option of it (the common --env, -v, -q once, at the top)."""

import re
from pathlib import Path

import pytest

from rollout.cli import tasks

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "tasks.md").read_text()
COMMON = {"env", "verbose", "quiet"}


def section(task: str) -> str:
    """The text under the heading that names `fab TASK`."""
    parts = re.split(r"^## (.*)$", PAGE, flags=re.M)
    found = [body for head, body in zip(parts[1::2], parts[2::2]) if f"`fab {task}`" in head]
    assert found, f"docs/tasks.md has no heading naming `fab {task}`: add a section `## \\`fab {task}\\``"
    return found[0]


@pytest.mark.parametrize("task", tasks.TASKS, ids=lambda t: t.name)
def test_every_option_of_every_task_is_in_its_section(task):
    text = section(task.name)
    missing = [f"--{o}" for o in sorted(a.replace("_", "-") for a in task.help) if o not in COMMON
               and not re.search(rf"--{re.escape(o)}\b", text)]
    assert not missing, f"docs/tasks.md's section on fab {task.name} does not mention {missing}: add them to its option table"


def test_the_common_options_are_documented_once():
    head = PAGE.split("\n## ", 1)[0]
    assert all(o in head for o in ("--env=ENV", "-v/--verbose", "-q/--quiet"))


def test_the_readme_lists_every_task_at_a_glance():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Tasks at a glance", 1)[1].split("\n## ", 1)[0]
    missing = [t.name for t in tasks.TASKS if f"`fab {t.name}`" not in table]
    assert not missing, f"add a row for {missing} to the README's 'Tasks at a glance'"
