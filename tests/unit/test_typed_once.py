"""Values typed once where they are read: refs are checked at the edges only, and sizes become counts in the plan."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

from rollout.apps import strategies as apps
from rollout.core.sizes import Size

ROOT = Path(__file__).resolve().parents[2] / "rollout"

#: Where a ref enters rollout, as `module stem:function`: each checks it once, and nothing downstream does.
EDGES = {
    "commands:deploy",     # --ref, --branch
    "commands:rollback",   # --to
    "deploy:rollback",     # a ref read from the history
    "worker:submit",       # a request from the page
    "worker:enqueue",      # --ref of enqueue (exit 4 before the worker's own rules)
    "worker:read_request", # a request off the queue
    "inventory:_git_ref",  # app.branch
    "strategies:validate_ref",  # the check itself, by app kind
}
CHECKS = {"validate_ref", "validate"}


def callers() -> set[str]:
    found = set()
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CHECKS \
                        and isinstance(node.func.value, ast.Name) and node.func.value.id in ("apps", "refs", "registry"):
                    found.add(f"{path.stem}:{fn.name}")
    return found


def test_refs_are_checked_only_where_they_are_read():
    assert callers() == EDGES


def test_a_checked_ref_is_typed_and_written_as_the_app_kind_writes_it():
    digest = "sha256:" + "a" * 64
    container, git = SimpleNamespace(kind="container"), SimpleNamespace(kind="git")
    assert isinstance(apps.validate_ref(git, "main"), apps.Ref)
    assert apps.validate_ref(container, "@" + digest) == digest


def test_max_failures_is_a_count_of_the_planned_hosts_in_the_plan():
    from rollout.core import plan
    hosts = [plan.Host(f"i-{i}", f"10.0.0.{i}", f"h{i}") for i in range(10)]
    p = plan.build(env="e", ref="main", sha="a" * 40, hosts=hosts, batch=Size(2), balancers=(), group=None,
                   suspended_before=frozenset(), max_failures=Size(25, True), on_failure="stop")
    assert (p.max_failures, p.on_failure, p.ramp) == (2, "stop", (Size(2),))
