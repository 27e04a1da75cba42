"""Every command in the docs' code blocks is run by a test against the sandbox, or marked as not runnable here with the reason."""

import ast

import pytest

from tests import doc_commands as d


def test_the_docs_show_commands():
    assert len(d.commands()) >= 50


def test_every_command_in_the_docs_is_run_by_a_test_or_marked_not_runnable_here():
    listed = [c for c, _ in d.RUN_HERE] + list(d.ELSEWHERE) + list(d.NOT_HERE)
    assert len(listed) == len(set(listed)), "a command is listed twice in tests/doc_commands.py"
    shown = d.commands()
    unlisted = [f"{page}: {c}" for c, page in shown.items() if c not in listed]
    assert not unlisted, ("these commands of the docs are neither run by a test nor marked; add each to tests/doc_commands.py"
                          " (RUN_HERE if it runs as written on the sandbox, ELSEWHERE with the test that runs it, or"
                          " NOT_HERE with the reason):\n" + "\n".join(unlisted))
    stale = [c for c in listed if c not in shown]
    assert not stale, f"tests/doc_commands.py lists commands the docs no longer show: {stale}"


@pytest.mark.parametrize("command", sorted(d.ELSEWHERE))
def test_a_command_run_elsewhere_names_a_fleet_test_that_exists(command):
    path, name = d.ELSEWHERE[command].split("::")
    tree = ast.parse((d.ROOT / path).read_text())
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    assert func is not None, f"{d.ELSEWHERE[command]} does not exist"
    assert "pytest.mark.fleet" in ast.unparse(tree), f"{path} is not a fleet test"


@pytest.mark.parametrize("command", sorted(d.NOT_HERE))
def test_a_command_not_runnable_here_says_why(command):
    assert len(d.NOT_HERE[command]) >= 15


@pytest.mark.parametrize("text,found", [
    ("Run:\n\n    fab a --x=1   # why\n    fab b \\\n        --y=2\n\nprose", ["fab a --x=1", "fab b --y=2"]),
    ("```bash\nfab c --reason=\"a # b\"\n```\n```yaml\nkey: v\n```", ['fab c --reason="a # b"']),
    ("- item\n\n    # only a comment\n", []),
])
def test_commands_are_read_from_indented_and_shell_fenced_blocks(tmp_path, monkeypatch, text, found):
    page = tmp_path / "p.md"
    page.write_text(text)
    monkeypatch.setattr(d, "PAGES", [page])
    monkeypatch.setattr(d, "ROOT", tmp_path)
    assert list(d.commands()) == found
