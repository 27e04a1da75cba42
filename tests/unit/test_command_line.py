"""The command line's pure decisions: core options, --env completion, numeric flags, the status state section."""

import pytest

from fabric.main import program as fab

from rollout.cli import program
from rollout.config import args
from rollout.core import coreopts
from rollout.core.errors import UsageError
from rollout.orchestration import status

DEPLOY = ("deploy", {"hosts": None, "dry_run": False}, frozenset({"hosts", "dry"}))
STATUS = ("status", {"json": False}, frozenset())

# core options given -> the refusal's words, or the values each task gets.
CORE = [
    ({}, [DEPLOY], [{"hosts": None, "dry_run": False}]),
    ({"hosts": "h001,h002"}, [DEPLOY], [{"hosts": "h001,h002", "dry_run": False}]),
    ({"hosts": ""}, [DEPLOY], [{"hosts": "", "dry_run": False}]),
    ({"dry": True}, [DEPLOY], [{"hosts": None, "dry_run": True}]),
    ({"hosts": "h1", "dry": True}, [DEPLOY, DEPLOY], [{"hosts": "h1", "dry_run": True}] * 2),
    ({"identity": ["k"], "ssh-config": "c", "prompt-for-passphrase": True}, [STATUS], [{"json": False}]),
    ({"debug": True, "write-pyc": True, "no-dedupe": True}, [STATUS], [{"json": False}]),
    ({"hosts": "h1"}, [STATUS], "-H/--hosts does not apply to status"),
    ({"hosts": "h1"}, [DEPLOY, STATUS], "-H/--hosts does not apply to status"),
    ({"dry": True}, [STATUS], "-R/--dry does not apply to status"),
    ({"hosts": "h1"}, [("deploy", {"hosts": "h2", "dry_run": False}, DEPLOY[2])], "hosts given twice"),
    ({"echo": True}, [DEPLOY], "-v/--verbose"),
    ({"hide": "both"}, [DEPLOY], "-q/--quiet"),
    ({"pty": True}, [DEPLOY], "without a terminal"),
    ({"warn-only": True}, [DEPLOY], "max_failures"),
    ({"command-timeout": 5}, [DEPLOY], "-T/--command-timeout"),
    ({"connect-timeout": 5}, [DEPLOY], "ssh.connect_timeout"),
    ({"config": "x.yml"}, [DEPLOY], "inventories/ENV.yml"),
    ({"prompt-for-login-password": True}, [DEPLOY], "key only"),
    ({"prompt-for-sudo-password": True}, [DEPLOY], "never runs sudo"),
    ({"surprise": True}, [DEPLOY], "--surprise is not known"),
]


@pytest.mark.parametrize("core,tasks,expected", CORE, ids=[",".join(c[0]) or "none" for c in CORE])
def test_each_core_option_is_applied_once_or_refused(core, tasks, expected):
    decision = coreopts.decide(core, tasks)
    if isinstance(expected, str):
        assert decision.refusal is not None and expected in decision.refusal
    else:
        assert decision.refusal is None and list(decision.task_values) == expected


def test_a_remainder_command_is_refused():
    assert "ad-hoc" in coreopts.decide({}, [DEPLOY], remainder="uname -a").refusal


def test_every_core_option_of_fab_has_a_decision():
    names = {max(a.names, key=len) for a in fab.core_args() + fab.task_args()}
    assert names <= coreopts.KNOWN
    assert coreopts.PASS_THROUGH.isdisjoint(coreopts.REFUSED) and coreopts.SSH.isdisjoint(coreopts.REFUSED)


@pytest.mark.parametrize("invocation,expected", [
    ("fab deploy --env ", "names"),
    ("fab deploy --env san", "names"),
    ("fab deploy --env = ", "names"),
    ("fab deploy --env = san", "names"),
    ("fab deploy --env=san", "--env=names"),
    ("fab deploy --env", None),
    ("fab deploy --env sandbox --re", None),
    ("fab deploy ", None),
    ("fab deploy --ref ", None),
    ("fab 'unterminated", None),
])
def test_env_completion_only_after_env(invocation, expected, tmp_path, monkeypatch):
    (tmp_path / "sandbox.yml").write_text("")
    (tmp_path / "prod.yml").write_text("")
    monkeypatch.setenv("ROLLOUT_INVENTORIES", str(tmp_path))
    got = program.environment_completion(invocation)
    want = None if expected is None else ["prod", "sandbox"] if expected == "names" else ["--env=prod", "--env=sandbox"]
    assert got == want


@pytest.mark.parametrize("value,kwargs,expected", [
    (None, {}, 20), ("5", {}, 5), (" 7 ", {}, 7), ("0", {"minimum": 0}, 0), ("20", {"maximum": 20}, 20),
    ("abc", {}, UsageError), ("-1", {}, UsageError), ("1.5", {}, UsageError), ("", {}, UsageError),
    ("0", {"minimum": 1}, UsageError), ("21", {"maximum": 20}, UsageError),
])
def test_whole_numbers_name_their_flag(value, kwargs, expected):
    if expected is UsageError:
        with pytest.raises(UsageError, match="--limit="):
            args.whole(value, "--limit", 20, **kwargs)
    else:
        assert args.whole(value, "--limit", 20, **kwargs) == expected


@pytest.mark.parametrize("value,expected", [(None, 3600.0), ("0", 0.0), ("2.5", 2.5), ("abc", UsageError), ("-1", UsageError),
                                            ("nan", UsageError), ("inf", UsageError)])
def test_seconds_name_their_flag(value, expected):
    if expected is UsageError:
        with pytest.raises(UsageError, match="--timeout="):
            args.seconds(value, "--timeout", 3600)
    else:
        assert args.seconds(value, "--timeout", 3600) == expected


def test_status_state_carries_lock_pause_unfinished_run_and_last_deploy():
    lock = {"who": "ci:42", "host": "runner", "run_id": "r2", "ref": "main", "since": 0, "ttl": 60.0, "version": "v1"}
    pause = {"who": "ana", "reason": "incident 7", "since": 86400}
    last = {"run_id": "r1", "who": "ben", "ref": "v2", "sha": "a" * 40, "started": "2026-01-01T00:00:00.000Z",
            "ended": "2026-01-01T00:01:00.000Z", "result": "succeeded", "exit_code": 0, "hosts": ["i-1"]}
    st = status.state(lock, pause, "r2", last)
    assert st["lock"] == {"who": "ci:42", "host": "runner", "run_id": "r2", "ref": "main", "since": "1970-01-01T00:00:00Z",
                          "ttl": 60.0}
    assert st["pause"] == {"who": "ana", "reason": "incident 7", "since": "1970-01-02T00:00:00Z"}
    assert st["unfinished_run"] == "r2"
    assert st["last_deploy"]["result"] == "succeeded" and "hosts" not in st["last_deploy"]
    lines = status.state_lines({"env": "prod", "state": st})
    assert lines[0] == ("lock: held by ci:42 on runner (run r2, ref main) since 1970-01-01T00:00:00Z by its clock;"
                        " judged stale only after 60s (its ttl) without renewal")
    assert "None" not in lines[0]
    assert lines[1] == "pause: paused by ana since 1970-01-02T00:00:00Z: incident 7"
    assert "fab recover --env=prod" in lines[2]
    assert lines[3].startswith("last deploy: succeeded aaaaaaaaaaaa (v2) by ben, 2026-01-01T00:00:00.000Z")


def test_status_state_when_nothing_is_held():
    lines = status.state_lines({"env": "prod", "state": status.state(None, None, None, None)})
    assert lines == ["lock: free", "pause: not paused", "unfinished run: none", "last deploy: none recorded"]
