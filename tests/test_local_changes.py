"""Local changes in a host's checkout (drift) and a host that cannot fetch, on the sandbox fleet."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from sandbox import origin, topology as topo
from tests import fleetctl as f

pytestmark = pytest.mark.fleet


def on_host(name: str, *args: str) -> str:
    """Run a command in h00N's checkout as the deploy user (so git's files keep their owner)."""
    app = topo.host_by_name(name).app_dir
    return subprocess.run(["runuser", "-u", topo.DEPLOY_USER, "--", *args], cwd=app, check=True, capture_output=True,
                          text=True, timeout=30).stdout


@pytest.fixture
def drifted_h002(healthy_fleet):
    """h002's checkout with a local edit, a staged new file, and an untracked file at a path the new commit adds."""
    added = f"added-{time.time_ns()}.txt"
    new = origin.add_commit(topo.ORIGIN, f"adds {added}", files={added: "from the commit\n"})
    app = topo.host_by_name("h002").app_dir
    on_host("h002", "sh", "-c", "echo '// local hotfix' >> server.js")
    on_host("h002", "sh", "-c", "echo staged > staged-by-hand.txt && git add staged-by-hand.txt")
    on_host("h002", "sh", "-c", f"echo mine > {added}")
    yield new, added
    on_host("h002", "git", "reset", "-q", "--hard")
    for name in ("staged-by-hand.txt", added):
        if not on_host("h002", "git", "ls-files", "--", name):  # untracked here: ours to remove
            (app / name).unlink(missing_ok=True)
    assert on_host("h002", "git", "status", "--porcelain", "--untracked-files=all") == ""


def test_a_host_with_local_changes_is_refused_with_exit_13_and_nothing_changes(drifted_h002):
    new, added = drifted_h002
    before = f.snapshot()
    done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={new}")
    assert done.returncode == 13, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rollout: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for words in ("h002 (198.18.1.12)", '" M server.js"', '"A  staged-by-hand.txt"', f'"?? {added}"', "--force"):
        assert words in lines[0], lines[0]
    assert not any(h in lines[0] for h in ("h001", "h003", "h004"))
    assert f.snapshot() == before
    app = topo.host_by_name("h002").app_dir
    assert (app / added).read_text() == "mine\n" and "local hotfix" in (app / "server.js").read_text()


@pytest.mark.parametrize("how", ["--force", "app.discard_local_changes"])
def test_force_discards_the_local_changes_and_the_report_lists_them(drifted_h002, tmp_path, how):
    new, added = drifted_h002
    report = tmp_path / "report.json"
    if how == "--force":
        done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={new}", "--force", f"--report={report}")
    else:
        inv = f.write_inventory(tmp_path / "inv", lambda d: d["app"].update(discard_local_changes=True))
        done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={new}", f"--report={report}", inventories=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "h002 (198.18.1.12): discarding 3 local change(s)" in done.stdout + done.stderr
    hosts = {h["name"]: h for h in json.loads(report.read_text())["hosts"]}
    assert sorted(hosts["h002"]["discarded"]) == sorted([" M server.js", "A  staged-by-hand.txt", f"?? {added}"])
    assert all(hosts[n]["discarded"] == [] for n in ("h001", "h003", "h004"))
    f.assert_fleet_serves(new)
    assert (topo.host_by_name("h002").app_dir / added).read_text() == "from the commit\n"


def test_a_rollback_is_refused_for_local_changes_too_and_force_discards_them(drifted_h002):
    refused = f.fab("rollback", "--env=sandbox", "--to=v2", "--yes")
    assert refused.returncode == 13 and "h002 (198.18.1.12)" in refused.stderr, refused.stdout + refused.stderr
    done = f.fab("rollback", "--env=sandbox", "--to=v2", "--yes", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "h002 (198.18.1.12): discarding 2 local change(s)" in done.stdout + done.stderr  # v2 does not add the file
    assert f.checked_out("h002") == f.checked_out("h001") != drifted_h002[0]


def test_a_host_that_cannot_fetch_names_the_host_the_remote_and_gits_first_error(healthy_fleet, new_commit):
    url = on_host("h003", "git", "remote", "get-url", "origin").strip()
    wrong = "/var/tmp/rollout-sandbox/no-such-origin.git"
    before = f.snapshot()
    on_host("h003", "git", "remote", "set-url", "origin", wrong)
    try:
        done = f.fab("deploy", "--env=sandbox", "--yes", f"--ref={new_commit}")
    finally:
        on_host("h003", "git", "remote", "set-url", "origin", url)
    assert done.returncode == 4, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rollout: ")]
    assert len(lines) == 1, done.stderr
    assert "h003 (198.18.1.13) cannot fetch" in lines[0]
    assert f"git fetch from {wrong} failed: fatal: '{wrong}' does not appear to be a git repository" in lines[0]
    assert f.snapshot() == before
