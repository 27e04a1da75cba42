"""Exit codes are a contract: every code in the exit-code table of docs/tasks.md is reached by a test.

REACHED_BY names, for each code, a test that runs `fab` and asserts exactly that code. The unit
checks below keep this table equal to docs/tasks.md's and to rollout.core.errors, and read each named
test's source to confirm it asserts `returncode == CODE` (or, for a row of a case table, that
the row carries CODE). Add a row when you document a new code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from rollout.core import errors
from tests import fleetctl as f

ROOT = Path(__file__).resolve().parents[1]

# code -> (test file, test function, case id of a row of a case table (module-level or in the test) or None)
REACHED_BY = {
    0: ("tests/test_deploy.py", "test_batches_by_percentage_keep_capacity_and_deploy_everything", None),
    1: ("tests/test_failure_safety.py", "test_on_failure_stop_leaves_updated_hosts_and_exits_1", None),
    2: ("tests/test_bad_input.py", "test_bad_input_is_refused_clearly_and_touches_nothing", "bad-batch"),
    3: ("tests/test_bad_input.py", "test_bad_input_is_refused_clearly_and_touches_nothing", "unknown-env"),
    4: ("tests/test_bad_input.py", "test_bad_input_is_refused_clearly_and_touches_nothing", "unknown-ref"),
    5: ("tests/test_bad_input.py", "test_missing_credentials_are_refused_before_anything", None),
    6: ("tests/test_bad_input.py", "test_bad_input_is_refused_clearly_and_touches_nothing", "unreachable-bastion"),
    7: ("tests/test_bad_input.py", "test_bad_input_is_refused_clearly_and_touches_nothing", "unknown-bastion-host-key"),
    8: ("tests/test_personal_deploys.py", "test_a_personal_selector_can_never_reach_a_shared_environment", None),
    9: ("tests/test_deploy.py", "test_commit_whose_app_does_not_start_stops_at_the_first_batch_and_restores_the_host", None),
    10: ("tests/test_failure_safety.py", "test_unlock_needs_force_and_names_the_holder", None),
    11: ("tests/test_failure_safety.py", "test_pause_stops_after_the_batch_in_hand_and_refuses_new_deploys", None),
    12: ("tests/test_exit_codes.py", "test_an_unfinished_run_whose_lock_expired_refuses_the_next_deploy_with_12", None),
    13: ("tests/test_local_changes.py", "test_a_host_with_local_changes_is_refused_with_exit_13_and_nothing_changes", None),
    14: ("tests/test_ramp_and_floor.py", "test_a_host_made_unhealthy_from_outside_makes_the_floor_refuse_a_batch", None),
    15: ("tests/test_gates_and_steps.py", "test_step_then_continue_from_another_process_and_abort_rolls_back", None),
    18: ("tests/test_recovery.py", "test_a_frozen_run_resumed_while_recover_restores_its_host_changes_nothing", None),
    20: ("tests/test_stacks.py", "test_stack_and_account_problems_are_refused_with_distinct_codes_and_touch_nothing", "stack updating"),
    130: ("tests/test_deploy.py", "test_interrupt_mid_rollout_restores_processes_and_exits_130", None),
}


def documented_table() -> dict[int, str]:
    """Code -> error class name ('' for success) from the exit-code table of docs/tasks.md."""
    text = (ROOT / "docs/tasks.md").read_text()
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (?:`(\w+)`)? *\|", section, flags=re.M)
    assert rows, "no exit-code table found in docs/tasks.md"
    return {int(code): name for code, name in rows}


def test_the_table_here_matches_the_documented_table_and_rollout_errors():
    table = documented_table()
    assert sorted(table) == sorted(REACHED_BY)
    for code, name in table.items():
        if name:
            assert getattr(errors, name).exit_code == code, name


def _returncode_asserts(func: ast.FunctionDef) -> set:
    """What a test function compares `X.returncode ==` with: ints, or "variable" for a name (a case table's code)."""
    codes = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "returncode":
            for op, right in zip(node.ops, node.comparators):
                if isinstance(op, ast.Eq) and isinstance(right, ast.Constant) and isinstance(right.value, int):
                    codes.add(right.value)
                elif isinstance(op, ast.Eq) and isinstance(right, ast.Name):
                    codes.add("variable")
    return codes


def _case_codes(tree: ast.AST, case_id: str) -> set[int]:
    """The integers in the case-table row whose first item is `case_id`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and node.elts and isinstance(node.elts[0], ast.Constant) and node.elts[0].value == case_id:
            return {e.value for e in node.elts if isinstance(e, ast.Constant) and type(e.value) is int}
    return set()


@pytest.mark.parametrize("code", sorted(REACHED_BY))
def test_each_code_is_asserted_by_the_test_named_for_it(code):
    path, name, case_id = REACHED_BY[code]
    tree = ast.parse((ROOT / path).read_text())
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    assert func is not None, f"{path}::{name} does not exist"
    if case_id is None:
        assert code in _returncode_asserts(func), f"{path}::{name} does not assert returncode == {code}"
    else:
        assert "variable" in _returncode_asserts(func), f"{path}::{name} does not assert returncode == a case's code"
        assert code in (_case_codes(func, case_id) or _case_codes(tree, case_id)), f"case {case_id!r} of {path} does not carry code {code}"


@pytest.mark.fleet
def test_an_unfinished_run_whose_lock_expired_refuses_the_next_deploy_with_12(healthy_fleet, new_commit):
    crashed = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={new_commit}", env={"ROLLOUT_CRASH_AT": "after-suspend"})
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    assert f.fab("unlock", "--env=sandbox", "--force").returncode == 0  # as if the dead run's lock had expired
    refused = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={new_commit}")
    assert refused.returncode == 12, refused.stdout + refused.stderr
    lines = [ln for ln in refused.stderr.splitlines() if ln.startswith("rollout: ")]
    assert len(lines) == 1 and "fab recover --env=sandbox" in lines[0], refused.stderr
    recovered = f.fab("recover", "--env=sandbox")
    assert recovered.returncode == 0 and f.state("active") is None, recovered.stdout + recovered.stderr
