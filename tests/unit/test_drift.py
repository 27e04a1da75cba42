"""Drift (local changes a checkout would discard) and fetch errors: the exact remote scripts, run by a
real shell on a local repository with hostile paths and refs, and their pure parsers."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from rollout.apps import git as gitapp
from rollout.apps import strategies as apps
from rollout.core.plan import Host
from rollout.orchestration import preflight

HOSTILE_NAMES = ["plain.js", "with space.js", "new\nline.js", "$(touch PWNED).js", "*.js", "-rf", "quote'.js", "é.js", "[ab].js"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo),
                               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """An origin with two commits (the second adds every hostile name) and a checkout at the first,
    at a path that is itself hostile."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    (origin / "server.js").write_text("v1\n")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "v1")
    v1 = git(origin, "rev-parse", "HEAD")
    for name in HOSTILE_NAMES:
        (origin / name).write_text("v2\n")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "v2")
    v2 = git(origin, "rev-parse", "HEAD")
    path = tmp_path / "app dir; $(touch PWNED) 'x'"
    subprocess.run(["git", "clone", "-q", str(origin), str(path)], check=True, capture_output=True)
    git(path, "checkout", "-q", "--detach", v1)
    git(origin, "commit", "-q", "--allow-empty", "-m", "v3")  # only origin has v3: the checkout must fetch it
    v3 = git(origin, "rev-parse", "HEAD")
    return SimpleNamespace(path=path, v1=v1, v2=v2, v3=v3, tmp=tmp_path)


def run(command: str, cwd: Path):
    done = subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=30)
    return SimpleNamespace(stdout=done.stdout, stderr=done.stderr, exited=done.returncode)


@pytest.mark.parametrize("case", ["detached, without git on PATH", "on a branch", "HEAD names an unborn branch", "not a checkout"])
def test_the_version_read_takes_a_detached_head_from_the_file_and_asks_git_otherwise(checkout, case):
    path, env = checkout.path, {"PATH": "/usr/bin:/bin", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(checkout.tmp)}
    expected = checkout.v1
    if case == "detached, without git on PATH":
        env["PATH"] = str(checkout.tmp / "no-git-here")  # so only the shell's builtins can answer
    elif case == "on a branch":
        git(path, "checkout", "-q", "-B", "local", checkout.v2)
        expected = checkout.v2
    elif case == "HEAD names an unborn branch":
        (path / ".git" / "HEAD").write_text("ref: refs/heads/unborn\n")
        expected = None
    else:
        path = checkout.tmp / "plain dir"
        path.mkdir()
        expected = None
    done = subprocess.run(["/bin/sh", "-c", gitapp.version_command(str(path))], cwd=checkout.tmp, env=env,
                          capture_output=True, text=True, timeout=30)
    assert (done.returncode == 0) == (expected is not None), done.stderr
    assert gitapp.parse_version(done.stdout) == expected
    assert not (checkout.tmp / "PWNED").exists()


def read_fetch_drift(c, sha: str):
    command, stdin = apps.read_and_fetch(apps.GitStrategy(SimpleNamespace(path=str(c.path), branch="main")), {sha}, drift_for=sha)
    assert stdin is None
    return apps.split_read_and_fetch(run(command, c.tmp))


def test_a_clean_checkout_has_no_drift_and_the_read_and_fetch_still_work(checkout):
    read, fetched, drift = read_fetch_drift(checkout, checkout.v3)
    assert gitapp.parse_version(read.stdout) == checkout.v1
    assert fetched.exited == 0 and drift.exited == 0
    assert gitapp.parse_drift(drift.stdout) == ()
    assert not (checkout.tmp / "PWNED").exists() and not (Path.cwd() / "PWNED").exists()


def test_modified_staged_and_untracked_files_the_checkout_would_touch_are_drift(checkout):
    c = checkout
    (c.path / "server.js").write_text("local edit\n")
    (c.path / "staged.txt").write_text("staged\n")
    git(c.path, "add", "staged.txt")
    for name in HOSTILE_NAMES:  # untracked, at paths v2 adds
        (c.path / name).write_text("mine\n")
    (c.path / "not-in-v2.log").write_text("untouched by the checkout\n")
    read, fetched, drift = read_fetch_drift(c, c.v2)
    assert fetched.exited == 0 and drift.exited == 0, drift.stderr
    assert sorted(gitapp.parse_drift(drift.stdout)) == sorted([" M server.js", "A  staged.txt", *(f"?? {n}" for n in HOSTILE_NAMES)])
    assert not (c.tmp / "PWNED").exists() and not (c.path / "PWNED").exists()


def test_an_untracked_file_at_a_path_the_target_does_not_add_is_not_drift(checkout):
    (checkout.path / "with space.js").write_text("mine\n")
    _, _, drift = read_fetch_drift(checkout, checkout.v3)  # v3 adds the names too (it follows v2)
    assert gitapp.parse_drift(drift.stdout) == ("?? with space.js",)
    (checkout.path / "with space.js").unlink()
    (checkout.path / "elsewhere.txt").write_text("mine\n")
    _, _, drift = read_fetch_drift(checkout, checkout.v3)
    assert gitapp.parse_drift(drift.stdout) == ()


def test_a_ref_that_cannot_be_fetched_names_the_remote_and_gits_first_error_and_reads_no_drift(checkout):
    git(checkout.path, "remote", "set-url", "origin", str(checkout.tmp / "gone.git"))
    missing = "0" * 40
    read, fetched, drift = read_fetch_drift(checkout, missing)
    assert read.exited == 0 and fetched.exited != 0 and drift is None
    remote, first = gitapp.parse_fetch_error(fetched.stderr)
    assert remote == str(checkout.tmp / "gone.git")
    assert first.startswith("fatal:") and "gone.git" in first


@pytest.mark.parametrize("stderr,expected", [
    ("fatal: 'x' does not appear to be a git repository\nfatal: Could not read from remote repository.\n\n"
     "Please make sure you have the correct access rights\nand the repository exists.\nrollout-remote /srv/origin.git\n",
     ("/srv/origin.git", "fatal: 'x' does not appear to be a git repository")),
    ("warning: redirecting\nerror: RPC failed\nrollout-remote https://ci:s3cret@git.example.com/app.git\n",
     ("https://git.example.com/app.git", "error: RPC failed")),
    ("", ("unknown", "no error output")),
    ("something odd\n", ("unknown", "something odd")),
])
def test_fetch_error_parser(stderr, expected):
    assert gitapp.parse_fetch_error(stderr) == expected


def test_the_exact_scripts_quote_every_value():
    path, sha = "/srv/a b;$(x)", "'; rm -rf / #"
    assert gitapp.drift_command(path, sha) == (
        "git --no-optional-locks -C '/srv/a b;$(x)' status --porcelain=v1 -z --untracked-files=no --no-renames"
        " && echo && echo '--- rollout: untracked ---'"
        " && git -C '/srv/a b;$(x)' diff --name-only -z --no-renames --diff-filter=A HEAD ''\"'\"'; rm -rf / #' --"
        " | xargs -0 -r git --literal-pathspecs -C '/srv/a b;$(x)' ls-files --others -z --")
    assert gitapp.fetch_command(path, sha) == (
        "{ git -C '/srv/a b;$(x)' cat-file -e ''\"'\"'; rm -rf / #^{commit}' 2>/dev/null"
        " || git -C '/srv/a b;$(x)' fetch --quiet origin ''\"'\"'; rm -rf / #'"
        " || git -C '/srv/a b;$(x)' fetch --quiet --tags origin;"
        " git -C '/srv/a b;$(x)' cat-file -e ''\"'\"'; rm -rf / #^{commit}' 2>/dev/null"
        " || { printf 'rollout-remote %s\\n' \"$(git -C '/srv/a b;$(x)' remote get-url origin 2>&1)\" >&2; false; }; }")


@pytest.mark.parametrize("output,expected", [
    ("\n--- rollout: untracked ---\n", ()),
    (" M a.js\0A  b.txt\0 D c.js\0\n--- rollout: untracked ---\nd.js\0new\nline\0", (" M a.js", "A  b.txt", " D c.js", "?? d.js", "?? new\nline")),
    ("MM both.js\0\n--- rollout: untracked ---\n", ("MM both.js",)),
])
def test_drift_parser(output, expected):
    assert gitapp.parse_drift(output) == expected


def host(name, changes=()):
    return Host(f"i-{name}", f"10.0.0.{len(name)}", name, "a" * 40, tuple(changes))


@pytest.mark.parametrize("hosts,expected", [
    ([host("h1"), host("h2")], None),
    ([host("h1", [" M server.js"])], 'on 1 host(s): h1 (10.0.0.2): " M server.js"; commit or remove'),
    ([host("h1", ["?? a\nb"]), host("h22", ["A  x"])], 'on 2 host(s): h1 (10.0.0.2): "?? a\\nb"; h22 (10.0.0.3): "A  x"; commit'),
    ([host("h1", [f"?? f{i}" for i in range(8)])], '"?? f4" and 3 more; commit'),
])
def test_drift_message_names_each_host_and_its_files_on_one_line(hosts, expected):
    message = preflight.drift_message(hosts)
    if expected is None:
        assert message is None
    else:
        assert expected in message and "\n" not in message and "--force" in message
