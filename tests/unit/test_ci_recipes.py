"""The CI recipes in docs/ci work from an application's own repository and run exactly the commands
docs/ci.md documents; the README's quick start is two commands. (tests/test_packaging.py runs the
workflow's deploy steps against the sandbox.)"""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CI_PAGE = (ROOT / "docs/ci.md").read_text()
INSTALL = 'python3 -m venv .rollout && .rollout/bin/pip install --quiet "$ROLLOUT_SPEC"'


def deploy_commands(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"(\.rollout/bin/fab deploy [^\n'\"]+)", text)]


def workflow_steps() -> dict[str, list[str]]:
    """Job name -> its `run` steps, from docs/ci/github-actions.yml."""
    flow = yaml.safe_load((ROOT / "docs/ci/github-actions.yml").read_text())
    return {name: [s["run"] for s in job["steps"] if "run" in s] for name, job in flow["jobs"].items()}


def jenkins_steps() -> dict[str, list[str]]:
    """Stage name -> its `sh` steps, from docs/ci/Jenkinsfile."""
    text = (ROOT / "docs/ci/Jenkinsfile").read_text()
    stages = re.split(r"stage\('([^']+)'\)", text)[1:]
    return {name: re.findall(r"sh '([^']+)'", body) for name, body in zip(stages[::2], stages[1::2])}


def test_github_workflow_tests_the_app_then_installs_rollout_and_runs_the_documented_deploys():
    flow = yaml.safe_load((ROOT / "docs/ci/github-actions.yml").read_text())
    steps = workflow_steps()
    assert flow["jobs"]["deploy-integration"]["needs"] == "test" == flow["jobs"]["deploy-personal"]["needs"]
    assert flow["env"]["ROLLOUT_SPEC"].startswith("rollout @ ")
    for job in ("deploy-integration", "deploy-personal"):
        assert steps[job][0] == INSTALL and len(steps[job]) == 2 and deploy_commands(steps[job][1]) == [steps[job][1]]
    commands = [steps[j][1] for j in ("deploy-integration", "deploy-personal")]
    assert all(c in CI_PAGE for c in commands) and INSTALL in CI_PAGE, commands
    assert "--env=integration --ref=$COMMIT" in commands[0] and "--env=dev --branch=$BRANCH" in commands[1]


def test_no_recipe_calls_anything_of_rollouts_own_repository():
    for text in ((ROOT / "docs/ci/github-actions.yml").read_text(), (ROOT / "docs/ci/Jenkinsfile").read_text()):
        code = "\n".join(ln.split("#")[0].split("//")[0] for ln in text.splitlines())
        assert not re.search(r"scripts/|\.venv/|sudo", code), code


def test_jenkinsfile_runs_the_same_deploy_steps_as_the_workflow():
    github, jenkins = workflow_steps(), jenkins_steps()
    assert jenkins["deploy integration"] == github["deploy-integration"]
    assert jenkins["deploy personal"] == github["deploy-personal"]
    text = (ROOT / "docs/ci/Jenkinsfile").read_text()
    assert text.index("stage('test')") < text.index("fab deploy")


def test_readme_quick_start_is_two_commands_that_exist():
    block = README.split("## Quick start", 1)[1].split("\n    ", 1)[1].split("\n\n", 1)[0]
    lines = [ln.strip() for ln in ("    " + block).splitlines() if ln.strip()]
    assert lines == ["scripts/sandbox-deploy", "scripts/test"]
    assert all((ROOT / ln).is_file() for ln in lines)
    assert (ROOT / ".ci/run").read_text().strip().endswith("exec scripts/test")


def test_the_ci_page_says_what_to_do_on_every_exit_code():
    from tests.test_exit_codes import documented_table

    section = CI_PAGE.split("act on the exit code:", 1)[1].split("\n\n", 1)[0]
    listed = set()
    for head in re.findall(r"^- ([0-9–, ]+):", section, flags=re.M):
        for part in head.split(","):
            low, _, high = part.strip().partition("–")
            listed |= set(range(int(low), int(high or low) + 1))
    assert listed == set(documented_table()), f"docs/ci.md's exit-code list ({sorted(listed)}) must name every code of docs/tasks.md"


def test_the_readme_summary_names_every_exit_code():
    from tests.test_exit_codes import documented_table

    summary = README.split("Exit codes are a contract for CI:", 1)[1].split("\n\n", 1)[0]
    named = {int(n) for n in re.findall(r"\b(\d+)\b", summary)}
    named |= {c for low, high in re.findall(r"\b(\d+) to (\d+)\b", summary) for c in range(int(low), int(high) + 1)}
    assert named == set(documented_table()), f"the README's exit-code summary must name every code: {sorted(named)}"
