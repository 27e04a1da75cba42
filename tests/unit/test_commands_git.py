"""The git app's remote scripts, exactly as they reach the host's shell, with hostile paths and refs.

Modelled on pyinfra's operation tests (`checkout_branch_needs_quotes`): arguments in, the
exact commands out. Every value is a single shell word: a quote or `;` in it runs nothing.
"""

import subprocess

import pytest

from rollout.apps import git
from rollout.core import marks

PATH = "/srv/my app's"  # a space and a quote
P = "'/srv/my app'\"'\"'s'"
SHA = "x'; reboot #"  # what a hostile ref would carry if it ever got this far
S = "'x'\"'\"'; reboot #'"


def test_version_command_quotes_the_path():
    assert git.version_command(PATH) == (
        f"{{ {{ h=; [ -f {P}/.git/HEAD ] && read -r h < {P}/.git/HEAD; case $h in *[!0-9a-f]*) false;; esac"
        f' && [ ${{#h}} -eq 40 ] && echo "$h"; }} || git -C {P} rev-parse --verify --quiet HEAD; }}')


def test_processes_command_quotes_the_pid_file():
    assert git.processes_command("/run/app $(id).pid") == (
        "pid=$(cat -- '/run/app $(id).pid') && kill -0 \"$pid\" && echo \"$pid\" && (pgrep -P \"$pid\" || true)")


def test_update_script_with_a_reload_command_and_install():
    script = git.update_script(PATH, SHA, install="npm ci; echo $HOME", pid_file=None, signal=None,
                               command="systemctl reload 'app'", workers=None)
    assert script.splitlines() == [
        "set -e",
        marks.FUNCTION,
        "mark start",
        f"git -C {P} checkout --quiet --force --detach {S}",
        f"if [ -f {P}/.git/HEAD ]; then read -r head < {P}/.git/HEAD; else head=$(git -C {P} rev-parse HEAD); fi",
        'echo "head $head"',
        "mark checkout",
        f"cd {P} && DEPLOY_SHA={S} sh -c 'npm ci; echo $HOME'",
        "mark install",
        f"cd {P} && DEPLOY_SHA={S} sh -c 'systemctl reload '\"'\"'app'\"'\"''",
        "mark reload",
    ]


def test_update_script_with_a_pid_file_signals_the_primary_and_waits_on_the_host():
    script = git.update_script("/srv/app", "a" * 40, install=None, pid_file="/srv/app/run; rm -rf ~/app.pid",
                               signal="HUP; reboot", command=None, workers=3, wait=1.0)
    lines = script.splitlines()
    assert lines[3] == f"git -C /srv/app checkout --quiet --force --detach {'a' * 40}"
    assert lines[7] == "pid=; read -r pid < '/srv/app/run; rm -rf ~/app.pid' || [ -n \"$pid\" ]; kill -0 \"$pid\""
    assert "kill -s 'HUP; reboot' \"$pid\"" in lines
    assert "want=3" in lines and "tries=50" in lines
    assert lines[-2:] == ['echo "after $pid" $new', "mark reload"]


@pytest.mark.parametrize("pid_file, command", [("/srv/app/app.pid", None), (None, "touch reloaded")])
def test_update_script_is_valid_shell(pid_file, command):
    script = git.update_script(PATH, SHA, install="true", pid_file=pid_file, signal="HUP", command=command, workers=None)
    assert subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True).returncode == 0


def test_fetch_and_drift_commands_quote_path_and_sha():
    fetch = git.fetch_command(PATH, SHA)
    assert f"git -C {P} fetch --quiet origin {S}" in fetch
    assert "x'; reboot" not in fetch.replace(S, "")
    drift = git.drift_command(PATH, SHA)
    assert f"--diff-filter=A HEAD {S} --" in drift and "x'; reboot" not in drift.replace(S, "")
