"""Fabric's core options on the sandbox: -H runs once on those hosts, -R is a dry run, -i, -S, the agent and a
key passphrase log in, host keys stay strict; and `fab status` shows the lock, pause, unfinished run, last deploy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from sandbox import topology as topo
from tests import fleetctl as f

pytestmark = pytest.mark.fleet


def history() -> list[dict]:
    done = f.fab("history", "--env=sandbox", "--limit=100", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_dash_H_deploys_those_hosts_once(healthy_fleet, new_commit):
    before = {h: f.checked_out(h) for h in f.host_names()}
    done = f.fab("-H", "h001,h003", "deploy", "--env=sandbox", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    after = history()
    # Counted by this test's own commit: the history may hold any number of earlier runs.
    assert [r["sha"] for r in after].count(new_commit) == 1 and len(after[0]["hosts"]) == 2  # one run, of two hosts
    assert {h: f.checked_out(h) for h in f.host_names()} == {**before, "h001": new_commit, "h003": new_commit}


def test_dash_R_is_a_dry_run_and_patterns_select(healthy_fleet, new_commit):
    before = f.snapshot()
    done = f.fab("-R", "-H", "h00*,!h002", "deploy", "--env=sandbox")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Dry run: nothing was changed") == 1
    assert "h001" in done.stdout and "h003" in done.stdout and "h004" in done.stdout and "h002" not in done.stdout
    assert f.snapshot() == before


def test_hosts_pattern_matching_nothing_names_it(fleet, tmp_path):
    done = f.fab("deploy", "--env=sandbox", "--dry-run", "--hosts=h00*,web-*")
    assert done.returncode == 2 and "no instance of this environment matches web-*" in done.stderr


@pytest.fixture
def wrong_key_inventory(tmp_path):
    """The sandbox inventory with ssh.key set to a key the fleet does not accept."""
    key = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    return f.write_inventory(tmp_path / "inv", lambda d: d["ssh"].update(key=str(key)))


def dry_run(*core, inventories, env=None, **kwargs):
    return f.fab(*core, "deploy", "--env=sandbox", "--dry-run", inventories=inventories, env=env, **kwargs)


def test_identity_option_logs_in(fleet, wrong_key_inventory):
    refused = dry_run(inventories=wrong_key_inventory)
    assert refused.returncode == 6 and "was refused with key" in refused.stderr
    done = dry_run("-i", str(topo.DEPLOY_KEY), inventories=wrong_key_inventory)
    assert done.returncode == 0, done.stderr
    status = f.fab("-i", str(topo.DEPLOY_KEY), "status", "--env=sandbox", "--json", inventories=wrong_key_inventory)
    assert status.returncode == 0 and {h["ssh"] for h in json.loads(status.stdout)["hosts"]} == {"ok"}


def test_ssh_config_option_logs_in_and_host_keys_stay_strict(fleet, wrong_key_inventory, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n    IdentityFile {topo.DEPLOY_KEY}\n    StrictHostKeyChecking no\n")
    done = dry_run("-S", str(config), inventories=wrong_key_inventory)
    assert done.returncode == 0, done.stderr
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    strict = f.write_inventory(tmp_path / "strict", lambda d: d["ssh"].update(known_hosts=str(empty)))
    refused = dry_run("-S", str(config), inventories=strict)
    assert refused.returncode == 7 and "host key unknown" in refused.stderr


def test_ssh_agent_logs_in(fleet, wrong_key_inventory, tmp_path):
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        f.wait_until(lambda: sock.exists(), 10, "ssh-agent's socket")
        subprocess.run(["ssh-add", str(topo.DEPLOY_KEY)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)}, check=True,
                       capture_output=True, timeout=10)
        done = dry_run(inventories=wrong_key_inventory, env={"SSH_AUTH_SOCK": str(sock)})
        assert done.returncode == 0, done.stderr
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)


def test_prompt_for_passphrase_unlocks_the_key(fleet, tmp_path):
    key = tmp_path / "locked_key"
    key.write_bytes(topo.DEPLOY_KEY.read_bytes())
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "s3cret", "-f", str(key)], check=True, capture_output=True, timeout=30)
    inv = f.write_inventory(tmp_path / "inv", lambda d: d["ssh"].update(key=str(key)))
    locked = dry_run(inventories=inv)
    assert locked.returncode == 6, locked.stderr
    # No controlling terminal (a new session): getpass reads the passphrase from stdin, as in CI.
    done = subprocess.run([f.FAB, "--prompt-for-passphrase", "deploy", "--env=sandbox", "--dry-run"], cwd=f.ROOT,
                          input="s3cret\n", capture_output=True, text=True, timeout=120, start_new_session=True,
                          env=f.fab_env(inventories=inv))
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout + done.stderr


def test_status_shows_lock_pause_unfinished_run_and_last_deploy(healthy_fleet):
    table, key = f.aws("dynamodb"), {"pk": {"S": "env#sandbox"}}
    now = time.time()
    try:
        assert f.fab("pause", "--env=sandbox", "--reason=status test").returncode == 0
        table.put_item(TableName="rollout-state", Item={**key, "sk": {"S": "lock"}, "run_id": {"S": "r-status"},
                       "who": {"S": "ci:7"}, "host": {"S": "runner-3"}, "ref": {"S": "main"}, "since": {"N": str(now)},
                       "ttl": {"N": "600.0"}, "version": {"S": "v-status"}})
        table.put_item(TableName="rollout-state", Item={**key, "sk": {"S": "active"}, "run_id": {"S": "r-status"},
                       "since": {"N": str(now)}})
        done = f.fab("status", "--env=sandbox", "--json")
        assert done.returncode == 0, done.stderr
        state = json.loads(done.stdout)["state"]
        text = f.fab("status", "--env=sandbox")
    finally:
        f.clear_state("lock", "active", "pause")
    assert state["lock"]["who"] == "ci:7" and state["lock"]["host"] == "runner-3" and state["lock"]["run_id"] == "r-status"
    assert state["lock"]["since"] and state["lock"]["ttl"] == 600 and "expires" not in state["lock"]
    assert state["pause"]["reason"] == "status test" and state["pause"]["who"] and state["pause"]["since"]
    assert state["unfinished_run"] == "r-status"
    assert "lock: held by ci:7 on runner-3" in text.stdout and "stale only after 600s" in text.stdout and "pause: paused by" in text.stdout
    assert "unfinished run: r-status" in text.stdout
    last = next(iter(history()), None)
    if last is None:
        assert state["last_deploy"] is None and "last deploy: none recorded" in text.stdout
    else:
        assert state["last_deploy"] == {k: last[k] for k in state["last_deploy"]} and state["last_deploy"]["result"]
        assert f"last deploy: {last['result']}" in text.stdout


def test_verbose_shows_paramiko_and_quiet_only_errors(healthy_fleet, new_commit):
    verbose = f.fab("deploy", "--env=sandbox", "--dry-run", "-v")
    assert verbose.returncode == 0 and "DEBUG paramiko.transport" in verbose.stderr, verbose.stderr
    # Without a Slack token, a real deploy warns once; -q leaves errors only.
    normal = f.fab("deploy", "--env=sandbox", "--yes", "--hosts=h001")
    quiet = f.fab("deploy", "--env=sandbox", "--yes", "--hosts=h002", "-q")
    assert normal.returncode == quiet.returncode == 0, normal.stderr + quiet.stderr
    assert "WARNING rollout.slack" in normal.stderr and "DEBUG" not in normal.stderr
    assert "WARNING" not in quiet.stderr and f.checked_out("h002") == new_commit
