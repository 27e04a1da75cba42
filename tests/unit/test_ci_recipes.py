"""The CI recipes in docs/ci run exactly the commands docs/ci.md documents; the README's quick start is two commands."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CI_PAGE = (ROOT / "docs/ci.md").read_text()


def deploy_commands(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"(\.venv/bin/fab deploy [^\n'\"]+)", text)]


def test_github_workflow_runs_the_tests_then_the_documented_deploy():
    flow = yaml.safe_load((ROOT / "docs/ci/github-actions.yml").read_text())
    runs = [s["run"] for job in flow["jobs"].values() for s in job["steps"] if "run" in s]
    assert "sudo scripts/test" in runs and runs.index("sudo scripts/test") == 0
    assert flow["jobs"]["deploy-integration"]["needs"] == "test" == flow["jobs"]["deploy-personal"]["needs"]
    commands = deploy_commands("\n".join(runs))
    assert len(commands) == 2 and all(c in CI_PAGE for c in commands), commands
    assert any("--branch=" in c for c in commands) and any("--env=integration" in c for c in commands)


def test_jenkinsfile_runs_the_tests_then_the_documented_deploy():
    text = (ROOT / "docs/ci/Jenkinsfile").read_text()
    assert text.index("sh 'scripts/test'") < text.index("fab deploy")
    commands = deploy_commands(text)
    assert len(commands) == 2 and all(c in CI_PAGE for c in commands), commands


def test_readme_quick_start_is_two_commands_that_exist():
    block = README.split("## Quick start", 1)[1].split("\n    ", 1)[1].split("\n\n", 1)[0]
    lines = [ln.strip() for ln in ("    " + block).splitlines() if ln.strip()]
    assert lines == ["scripts/sandbox-deploy", "scripts/test"]
    assert all((ROOT / ln).is_file() for ln in lines)
    assert (ROOT / ".ci/run").read_text().strip().endswith("exec scripts/test")
