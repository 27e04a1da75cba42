"""The real `fab` and `rollout` commands: help, argument errors and refused core options (no fleet needed).

A refusal must come before anything is read: these run with --env=nosuch, which would exit 3
(unknown environment) had the task started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from rollout.cli import tasks
from tests import fleetctl as f

ROLLOUT = str(Path(sys.executable).parent / "rollout")
TASKS = [t.name for t in tasks.TASKS]
# The tasks that reach hosts or the state table, each with the arguments it needs to start.
HOST_TASKS = ["deploy", "status", "recover", "rollback", "worker", "enqueue --ref=main", "history", "pause", "unpause",
              "unlock --force", "setup", "check"]


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=f.ROOT, capture_output=True, text=True, timeout=60, env=f.fab_env(),
                          stdin=subprocess.DEVNULL)


def run_all_with(fn, items):
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(fn, items))


def run_all(argvs: list[list[str]]) -> list[subprocess.CompletedProcess]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda a: run(*a), argvs))


def one_line(p: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in p.stderr + p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rollout: "), p.stderr
    return lines[0]


@pytest.mark.parametrize("task", TASKS + ["sandbox.up", "sandbox.down", "sandbox.status"])
def test_every_task_prints_its_help_and_exits_0(task):
    forms = [[f.FAB, task, "--help"], [f.FAB, "--help", task]]
    if task in ("deploy", "status", "enqueue", "sandbox.up"):  # the tasks where -h, or the first argument, meant something else
        forms += [[f.FAB, task, "-h"]]
    if task in ("deploy", "enqueue"):
        forms += [[ROLLOUT, task, "--help"], [ROLLOUT, "--help", task]]
    for argv, p in zip(forms, run_all(forms)):
        assert p.returncode == 0, (argv, p.stderr)
        assert p.stdout.startswith(f"Usage: {Path(argv[0]).name} [--core-opts] {task} ") and "Traceback" not in p.stderr, argv
        if not task.startswith("sandbox."):
            assert "--env=STRING" in p.stdout and "-v, --verbose" in p.stdout and "-q, --quiet" in p.stdout


ARGUMENT_ERRORS = [
    # argv after the program, words of the one line
    (["deploy", "--env=nosuch", "--ref=-h"], "--ref='-h': that is an option, not a value"),
    (["deploy", "--env=nosuch", "--ref", "-h"], "--ref='-h': that is an option, not a value"),
    (["deploy", "--env=nosuch", "--batch=-h"], "--batch='-h': that is an option"),
    (["deploy", "--env=nosuch", "--ref", "--yes"], "--ref needs a value"),
    (["deploy", "--env=nosuch", "--refs=main"], "unknown option or task '--refs'"),
    (["deploy", "--env=nosuch", "-r", "main"], ("--search-root is a core option of fab", "unknown option or task '-r'")),
    (["deploy", "--env=nosuch", "-d"], "--debug is a core option of"),
    (["deploy", "--env=nosuch", "-H", "h001"], "--hosts is a core option of"),
    (["history", "--env=nosuch", "--limit=abc"], "--limit='abc' is not valid"),
    (["history", "--env=nosuch", "--limit=0"], "--limit='0' is not valid"),
    (["worker", "--env=nosuch", "--wait=50"], "--wait='50' is not valid"),
    (["worker", "--env=nosuch", "--idle-timeout=soon"], "--idle-timeout='soon' is not valid"),
    (["enqueue", "--env=nosuch", "--ref=main", "--timeout=x"], "--timeout='x' is not valid"),
    (["enqueue", "--env=nosuch"], "--ref is required"),
    (["status"], "--env is required: fab status --env=NAME"),
    (["deploy", "--env=nosuch", "--batch=0", "--dry-run"], "--batch='0' is not valid"),
    (["deploy", "sandbox"], "unknown option or task 'sandbox'"),
    (["nosuchtask"], "unknown option or task 'nosuchtask'"),
    (["deploy", "--env=nosuch", "--hosts="], "--hosts='' names no host"),
    (["deploy", "--env=nosuch", "--hosts=,"], "--hosts=',' names no host"),
    (["deploy", "--env=nosuch", "--hosts=h001,$(reboot)"], "is not an instance id"),
    (["deploy", "--env=nosuch", "--", "uname"], "ad-hoc shell command"),
]


@pytest.mark.parametrize("argv,words", ARGUMENT_ERRORS, ids=[" ".join(c[0]) for c in ARGUMENT_ERRORS])
def test_argument_errors_are_one_line_and_exit_2(argv, words):
    programs = [f.FAB, ROLLOUT] if argv in [c[0] for c in ARGUMENT_ERRORS[:6]] else [f.FAB]
    for p in run_all([[prog, *argv] for prog in programs]):
        line = one_line(p)
        assert p.returncode == 2 and any(w in line for w in ((words,) if isinstance(words, str) else words)), line


# Core options refused for every task, and the rollout option the line names.
REFUSED = [
    (["-e"], "-v/--verbose"), (["--hide=both"], "-q/--quiet"), (["-p"], "without a terminal"), (["-w"], "max_failures"),
    (["-T", "5"], "-T/--command-timeout"), (["-t", "5"], "ssh.connect_timeout"), (["-f", "fabric.yml"], "inventories/ENV.yml"),
    (["--prompt-for-login-password"], "key only"), (["--prompt-for-sudo-password"], "never runs sudo"),
]


@pytest.mark.parametrize("core,words", REFUSED, ids=[c[0][0] for c in REFUSED])
def test_refused_core_options_stop_deploy_before_it_starts(core, words):
    for p in run_all([[f.FAB, *core, "deploy", "--env=nosuch"], [ROLLOUT, *core, "deploy", "--env=nosuch"]]):
        assert p.returncode == 2 and words in one_line(p)


def test_refused_core_options_stop_every_other_task_before_it_starts():
    # The decision does not depend on the task (tests/unit/test_command_line.py): each task meets one refused option.
    others = [t for t in HOST_TASKS if t != "deploy"]
    cases = [(REFUSED[i % len(REFUSED)], t) for i, t in enumerate(others)]
    argvs = [[f.FAB, *core, *t.split(), "--env=nosuch"] for (core, _), t in cases]
    for argv, ((_, words), _), p in zip(argvs, cases, run_all(argvs)):
        assert p.returncode == 2 and words in one_line(p), argv


@pytest.mark.parametrize("core,flag", [(["-H", "h001"], "-H/--hosts"), (["-R"], "-R/--dry")], ids=["-H", "-R"])
def test_hosts_and_dry_apply_to_deploy_only(core, flag):
    others = [t for t in HOST_TASKS if t != "deploy"]
    argvs = [[f.FAB, *core, *t.split(), "--env=nosuch"] for t in others]
    for argv, p in zip(argvs, run_all(argvs)):
        assert p.returncode == 2 and f"{flag} does not apply to {argv[len(core) + 1]}" in one_line(p), argv
    # On deploy they reach the task (which then finds no such environment: exit 3, once).
    p = run(f.FAB, *core, "deploy", "--env=nosuch")
    assert p.returncode == 3 and one_line(p).count("unknown environment 'nosuch'") == 1


def test_hosts_given_twice_is_refused():
    p = run(f.FAB, "-H", "h001", "deploy", "--env=nosuch", "--hosts=h002")
    assert p.returncode == 2 and "hosts given twice" in one_line(p)


@pytest.mark.parametrize("core,words", [(["-i", "/nonexistent/key"], "-i/--identity: /nonexistent/key is not a file"),
                                        (["-S", "/nonexistent/config"], "-S/--ssh-config: /nonexistent/config is not a file")])
def test_missing_identity_or_ssh_config_is_refused(core, words):
    for p in run_all([[f.FAB, *core, "status", "--env=nosuch"], [ROLLOUT, *core, "status", "--env=nosuch"]]):
        assert p.returncode == 2 and words in one_line(p)


@pytest.mark.parametrize("text,words", [("Host *\n  User deploy\nMatch\n", "cannot be parsed: Unparsable line Match"),
                                        ("Host h001\n  Port abc\n", "Port 'abc' is not a port number"),
                                        ("Host h001\n  Port 70000\n", "Port '70000' is not a port number")])
def test_an_ssh_config_that_does_not_parse_or_has_a_bad_port_is_refused_in_one_line(tmp_path, text, words):
    config = tmp_path / "config"
    config.write_text(text)
    for p in run_all([[f.FAB, "-S", str(config), "unlock", "--env=nosuch"], [ROLLOUT, "-S", str(config), "status", "--env=nosuch"]]):
        assert p.returncode == 2 and words in one_line(p) and "Traceback" not in p.stderr


def test_ad_hoc_remainder_is_refused_by_rollout():
    p = run(ROLLOUT, "-H", "198.18.1.11", "--", "uname")
    assert p.returncode == 2 and "ad-hoc shell command" in one_line(p)


def test_core_parse_errors_of_the_rollout_program_are_exit_2():
    p = run(ROLLOUT, "--hosts")
    assert p.returncode == 2 and "--hosts needs a value" in one_line(p)


def test_version():
    p = run(ROLLOUT, "--version")
    from rollout import __version__

    assert p.returncode == 0 and p.stdout.startswith(f"rollout {__version__} (Fabric 3.")


def test_check_validates_offline(tmp_path):
    """No AWS (the endpoint is a closed port) and no SSH: the inventory and the files it names."""
    for name in ("key", "known_hosts"):
        (tmp_path / name).write_text("")

    def offline(d):
        d["aws"]["endpoint_url"] = "http://127.0.0.1:9"
        d["ssh"].update(key=str(tmp_path / "key"), known_hosts=str(tmp_path / "known_hosts"))

    good = f.write_inventory(tmp_path / "inv", offline, "app")
    data = yaml.safe_load((good / "app.yml").read_text())
    (good / "broken.yml").write_text(yaml.safe_dump({**data, "helth": data["health"]}))
    (good / "nokey.yml").write_text(yaml.safe_dump({**data, "ssh": {**data["ssh"], "key": str(tmp_path / "missing")}}))

    def check(env):
        return subprocess.run([f.FAB, "check", f"--env={env}"], cwd=f.ROOT, capture_output=True, text=True, timeout=60,
                              env=f.fab_env(inventories=good), stdin=subprocess.DEVNULL)

    ok, broken, nokey = run_all_with(check, ["app", "broken", "nokey"])
    assert ok.returncode == 0 and ok.stdout.strip().startswith("app: inventory valid"), ok.stderr
    assert broken.returncode == 3 and "broken.yml" in broken.stderr and "'helth'" in broken.stderr
    assert broken.stderr.startswith("rollout: ") and "Traceback" not in broken.stderr
    assert nokey.returncode == 3 and "ssh.key" in one_line(nokey)


def test_env_completion_lists_the_inventories():
    p = run(f.FAB, "--complete", "--", "fab", "deploy", "--env", "")
    names = sorted(x.stem for x in (f.ROOT / "inventories").glob("*.yml"))
    assert p.returncode == 0 and p.stdout.split() == names


def test_a_fabfile_without_namespace_still_never_runs_a_task_per_host_or_fakes_a_dry_run(tmp_path):
    (tmp_path / "fabfile.py").write_text("from invoke import Collection\n\nfrom rollout.cli.tasks import deploy, status\n\n"
                                         "ns = Collection(deploy, status)\n")

    def bare(argv):
        return subprocess.run([f.FAB, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=f.fab_env(),
                              stdin=subprocess.DEVNULL)

    per_host, dry, status = run_all_with(bare, [["-H", "h001,h002", "deploy", "--env=nosuch"], ["-R", "deploy", "--env=nosuch"],
                                                ["-H", "h001", "status", "--env=nosuch"]])
    assert per_host.returncode == 2 and one_line(per_host).startswith("rollout: -H ran this task once per host")
    assert dry.returncode == 2 and "use deploy --dry-run" in one_line(dry)
    assert status.returncode == 2 and "once per host" in one_line(status)


@pytest.mark.parametrize("argv", [[f.FAB, "deploy", "--help"], [f.FAB, "-l"], [ROLLOUT, "deploy", "--help"], [ROLLOUT, "--help"]],
                         ids=["fab deploy --help", "fab -l", "rollout deploy --help", "rollout --help"])
def test_help_read_by_a_pipe_that_closes_early_exits_0_without_a_traceback(argv):
    # `fab deploy --help | head -1`: the reader is gone before the program writes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(argv, cwd=f.ROOT, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
                              env=f.fab_env(), stdin=subprocess.DEVNULL)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("argv, says", [
    (["sandbox.up", "--hosts=x"], "--hosts='x' is not valid: give a whole number, from 1 to 100"),
    (["sandbox.up", "--hosts=0"], "--hosts='0' is not valid: give a whole number, from 1 to 100"),
    (["sandbox.scale", "--add=two"], "--add='two' is not valid: give a whole number, 0 or more"),
    (["sandbox.scale", "--remove=1.5"], "--remove='1.5' is not valid: give a whole number, 0 or more"),
])
def test_a_sandbox_tasks_bad_number_is_one_line_and_exit_2_before_anything_starts(argv, says):
    done = run(f.FAB, *argv)
    assert done.returncode == 2 and one_line(done) == f"rollout: {says}"
