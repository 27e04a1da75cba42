"""Every command in the docs' code blocks, and how it is proven: run here as written, run by another test, or not runnable here.

tests/unit/test_doc_commands.py checks that this file names every command of README.md, docs/*.md
and benchmarks/README.md, and nothing else; tests/test_doc_commands.py runs RUN_HERE as written on
the sandbox, under the docs' environment names (copies of the sandbox inventory), in this order.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# (command as the docs show it, the exit code it must give); run in this order, with $COMMIT and $SHA set.
RUN_HERE: list[tuple[str, int]] = [
    ("fab check --env=production", 0),
    ("fab setup --env=production", 0),
    ("fab status --env=production", 0),
    ("fab status --env=production --json", 0),
    (".venv/bin/fab status --env=sandbox", 0),
    ("fab sandbox.status", 0),
    ("fab deploy --env=production --dry-run", 0),
    ("fab deploy --env=production", 0),
    ("fab deploy --env=production --ref=v2.3.0", 0),
    ("fab deploy --env=production --ref=v2.3.0 --batch=25%", 0),
    ("fab deploy --env=production --ref=v2.3.0 --batch=1", 0),
    ("fab rollback --env=production", 0),
    ("fab rollback --env=production --to=v2.2.1 --batch=25% --yes --report=rollback.json", 0),
    ("fab recover --env=production", 0),
    ("fab recover --env=production --force --report=recover.json", 0),
    ("fab history --env=production", 0),
    ("fab history --env=production --limit=5 --json", 0),
    ('fab pause --env=production --reason="incident 42"', 0),
    ("fab unpause --env=production", 0),
    ("fab unlock --env=production --force", 0),
    ("fab deploy --env=integration", 0),
    ("fab deploy --env=integration --ref=$COMMIT --yes --report=report.json", 0),
    (".venv/bin/fab deploy --env=sandbox --ref=broken --yes", 9),
    ("fab deploy --env=sandbox --ref=broken --yes", 9),
    ("fab history --env=sandbox", 0),
    ("fab pause --env=sandbox --reason=try", 0),
    ("fab unpause --env=sandbox", 0),
    ("ssh -F /var/tmp/rollout-sandbox/ssh/ssh_config 198.18.1.11", 0),
    ("ssh -F /var/tmp/rollout-sandbox/ssh/ssh_config 198.18.0.10", 0),
]

# command -> the test (path::function) that runs it: as written, with the sandbox's names, or through the
# function behind it (sandbox.fleet.up and down are what fab sandbox.up and sandbox.down call).
ELSEWHERE: dict[str, str] = {
    "fab keys --env=production":
        "tests/test_autoscaling.py::test_a_replaced_instance_at_a_reused_address_is_accepted_only_through_the_keys_aws_vouches_for",
    "fab keys --env=production --replace=i-0abc123":
        "tests/test_autoscaling.py::test_a_replaced_instance_at_a_reused_address_is_accepted_only_through_the_keys_aws_vouches_for",
    "fab sandbox.up": "tests/test_sandbox_lifecycle.py::test_up_repairs_a_half_up_sandbox",
    "fab sandbox.down": "tests/test_sandbox_lifecycle.py::test_down_leaves_no_namespace_process_or_file",
    ".venv/bin/fab sandbox.down": "tests/test_sandbox_lifecycle.py::test_down_leaves_no_namespace_process_or_file",
    'python3 -m venv .rollout && .rollout/bin/pip install --quiet "$ROLLOUT_SPEC"':
        "tests/test_packaging.py::test_the_ci_recipes_deploy_steps_run_as_written_from_an_application_repository",
    ".rollout/bin/fab deploy --env=integration --ref=$COMMIT --yes --report=report.json --junit=junit.xml":
        "tests/test_packaging.py::test_the_ci_recipes_deploy_steps_run_as_written_from_an_application_repository",
    ".rollout/bin/fab deploy --env=dev --branch=$BRANCH --yes --report=report.json --junit=junit.xml":
        "tests/test_packaging.py::test_the_ci_recipes_deploy_steps_run_as_written_from_an_application_repository",
    "fab deploy --env=dev --branch=remote-run/ben/my-feature --yes": "tests/test_personal_deploys.py::test_a_branch_deploy_updates_only_its_developers_host",
    "fab status --env=dev@ben": "tests/test_personal_deploys.py::test_a_branch_deploy_updates_only_its_developers_host",
    "fab history --env=dev@ben": "tests/test_personal_deploys.py::test_a_branch_deploy_updates_only_its_developers_host",
    "fab enqueue --env=integration --ref=$COMMIT --wait":
        "tests/test_queue.py::test_a_queued_request_is_deployed_by_the_worker_and_the_enqueuer_gets_the_result",
    "fab worker --env=integration": "tests/test_queue.py::test_one_worker_dead_letters_every_hostile_body_and_then_deploys_the_valid_request",
    "fab sandbox.up --app=container": "tests/test_containers.py::test_new_digest_under_load_zero_failures_and_fab_rollback_restarts_the_kept_image",
    "export SANDBOX_APP_SECRET=anything": "tests/test_containers.py::test_secret_env_reaches_the_container_but_never_output_report_or_slack",
    "fab deploy --env=sandbox-container --ref=v2 --yes":
        "tests/test_containers.py::test_new_digest_under_load_zero_failures_and_fab_rollback_restarts_the_kept_image",
    "fab deploy --env=sandbox-container --ref=broken --yes":
        "tests/test_containers.py::test_image_whose_app_does_not_start_returns_the_host_to_the_previous_digest",
    "fab init --env=production --region=eu-west-1 --tags=Stack=app,Deployment=production --bastion-tags=Role=bastion":
        "tests/test_init.py::test_init_writes_an_inventory_from_the_fleet_that_checks_plans_and_deploys",
    "fab init --env=production --region=eu-west-1 --stack=web-production --bastion-host=stack_output:BastionAddress"
    " --ssh-user=deploy --ssh-key=~/.ssh/deploy_ed25519 --known-hosts=known_hosts/production"
    " --repository=git@github.com:example/app.git --path=/srv/app --pid-file=/srv/app/run/app.pid --health-port=14000":
        "tests/test_init.py::test_init_finds_a_stack_environment_and_its_outputs",
    "fab deploy --env=production --ref=v2.4.0 --step": "tests/test_gates_and_steps.py::test_step_then_continue_from_another_process_and_abort_rolls_back",
    "fab deploy --env=production --continue": "tests/test_gates_and_steps.py::test_step_then_continue_from_another_process_and_abort_rolls_back",
    "fab deploy --env=production --abort": "tests/test_gates_and_steps.py::test_step_then_continue_from_another_process_and_abort_rolls_back",
    "fab drill --env=staging": "tests/test_gates_and_steps.py::test_a_drill_passes_on_the_sandbox_and_reports_its_timings",
    "fab drill --env=production --fail-at=update --host=web-07 --report=drill.json":
        "tests/test_gates_and_steps.py::test_a_drill_passes_on_the_sandbox_and_reports_its_timings",
    "fab drill --env=production --alarm=app-production-rollback-5xx":
        "tests/test_gates_and_steps.py::test_a_drill_passes_on_the_sandbox_and_reports_its_timings",
}

_SYNOPSIS = "a synopsis ([...] marks optional parts), not a command"
# command -> why it cannot run here as written.
NOT_HERE: dict[str, str] = {
    "scripts/sandbox-deploy": "brings the shared sandbox up and leaves it up; its steps (sandbox.up, a deploy, status) run in the tests",
    "fab sandbox.up --hosts=12": "resizes the shared sandbox (the tests keep 4 hosts); the benchmarks resize it (benchmarks/README.md)",
    "scripts/test": "runs the whole suite itself (CI runs it: .ci/run)",
    "scripts/test -- tests/unit -q": "runs the suite itself",
    ".venv/bin/pytest tests/unit": "runs the suite itself",
    "python3 -m venv ~/.rollout && ~/.rollout/bin/pip install 'rollout @ git+https://REPO_URL@v0.1.0'":
        "REPO_URL is where you host rollout; tests/test_packaging.py installs the built wheel the same way",
    "fab deploy --env=production --ref=$SHA --hosts=i-0abc123,web-07 --dry-run": "names instances of your fleet (i-0abc123, web-07)",
    "export API_DATABASE_URL=... REGISTRY_AUTH=\"AWS:$(aws ecr get-login-password)\"": "needs Amazon ECR",
    "fab deploy --env=production --ref=v2.4.1": "deploys an ECR image; the sandbox's registry runs the same in tests/test_containers.py",
    "fab deploy --env=production --ref=sha256:3f1c...": "an abbreviated digest of your registry",
    "ssh-keyscan -t ed25519 10.0.1.23 > key.tmp": "an address of your network",
    "ssh-keygen -lf key.tmp": "reads the file the line above writes",
    "cat key.tmp >> known_hosts/production": "appends to your known_hosts",
    "fab ui --env=integration,production [--port=8765] [--bind=127.0.0.1] [--trusted-header=X-Forwarded-User]": _SYNOPSIS,
    "rollout ui --env=integration,production": "serves until stopped; tests/test_ui.py serves the page and drives it",
    "fab enqueue --env=integration --ref=$COMMIT [--id=REQUEST_ID] [--wait] [--timeout=3600]": _SYNOPSIS,
    "fab worker --env=integration [--once] [--idle-timeout=SECONDS] [--wait=20] [--status-every=SECONDS]": _SYNOPSIS,
}


def _code_blocks(text: str) -> list[list[str]]:
    """The shell code blocks of a Markdown page: indented blocks, and fenced ones without a language or in sh/bash."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        fence = re.match(r"^\s*```(\w*)", lines[i])
        if fence:
            body, i = [], i + 1
            while i < len(lines) and not re.match(r"^\s*```", lines[i]):
                body.append(lines[i])
                i += 1
            if fence.group(1) in ("", "sh", "bash", "shell", "console"):
                out.append(body)
        elif lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()) and not lines[i].lstrip().startswith("- "):
            body = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                body.append(lines[i][4:])
                i += 1
            out.append(body)
            continue
        i += 1
    return out


def _without_comment(line: str) -> str:
    """The line without a trailing ` # comment` (a # inside quotes stays)."""
    quote = None
    for n, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote else ch
        elif ch == "#" and quote is None and (n == 0 or line[n - 1] == " "):
            return line[:n].rstrip()
    return line.rstrip()


def commands() -> dict[str, str]:
    """Every command of the docs' shell code blocks (continuation lines joined, comments dropped) -> the first page showing it."""
    found: dict[str, str] = {}
    for page in PAGES:
        for block in _code_blocks(page.read_text()):
            pending = ""
            for raw in block:
                line = _without_comment(raw.strip())
                if not line:
                    continue
                if line.endswith("\\"):
                    pending += line[:-1].strip() + " "
                    continue
                found.setdefault(pending + line, str(page.relative_to(ROOT)))
                pending = ""
    return found
