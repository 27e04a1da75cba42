"""rollout as a package: the wheel, installed in a fresh virtual environment outside the repository, used from an
application's own repository with a fabfile of two lines and its own inventory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import pytest

from sandbox import topology as topo
from tests import fleetctl as f
from tests.test_personal_deploys import branch_commit, personal  # noqa: F401 - personal is a fixture
from tests.unit.test_ci_recipes import workflow_steps

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

APP_FABFILE = "from rollout.cli.tasks import namespace\n\nns = namespace()\n"


def sh(*argv, cwd, timeout=300, env=None):
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=f.fab_env(env), stdin=subprocess.DEVNULL)
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin directory, wheel path): the wheel built from the tracked files, installed with its runtime dependencies."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    files = subprocess.run(["git", "-C", str(f.ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, check=True, timeout=30).stdout.decode().split("\0")
    for name in filter(None, files):
        if (f.ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f.ROOT / name, source / name)
    built = sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", source, cwd=tmp)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp / "dist").glob("rollout-*.whl"))
    venv = tmp / "venv"
    made = sh(sys.executable, "-m", "venv", venv, cwd=tmp)
    assert made.returncode == 0, made.stderr
    done = sh(venv / "bin" / "pip", "install", "-q", wheel, cwd=tmp)
    assert done.returncode == 0, done.stderr
    return venv / "bin", wheel


def test_wheel_holds_rollout_its_license_and_command_only(installed):
    _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"rollout", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rollout = rollout.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_slim_install_has_no_test_or_sandbox_tools(installed):
    bin_dir, _ = installed
    listed = sh(bin_dir / "pip", "list", "--format=freeze", cwd=bin_dir).stdout.lower()
    for absent in ("moto", "tox", "pytest"):
        assert f"\n{absent}==" not in "\n" + listed, absent
    probe = sh(bin_dir / "python", "-c", "import sandbox", cwd=bin_dir)
    assert probe.returncode == 1 and "No module named 'sandbox'" in probe.stderr


def test_an_application_repository_lists_checks_and_deploys(installed, tmp_path, healthy_fleet, new_commit):
    bin_dir, _ = installed
    app = tmp_path / "myapp"
    (app / "inventories").mkdir(parents=True)
    (app / "fabfile.py").write_text(APP_FABFILE)
    shutil.copy(f.ROOT / "inventories" / "sandbox.yml", app / "inventories" / "sandbox.yml")
    listed = sh(bin_dir / "fab", "-l", cwd=app)
    assert listed.returncode == 0 and all(t in listed.stdout for t in ("deploy", "status", "rollback", "check"))
    assert "sandbox.up" not in listed.stdout
    checked = sh(bin_dir / "fab", "check", "--env=sandbox", cwd=app)
    assert checked.returncode == 0 and checked.stdout.startswith("sandbox: inventory valid"), checked.stderr
    helped = sh(bin_dir / "rollout", "--help", cwd=app)
    assert helped.returncode == 0 and "Usage: rollout [--core-opts] <subcommand>" in helped.stdout and "deploy" in helped.stdout
    refused = sh(bin_dir / "fab", "deploy", "--env=sandbox", "--refs=main", cwd=app)
    assert refused.returncode == 2 and refused.stderr.startswith("rollout: unknown option or task '--refs'")
    deployed = sh(bin_dir / "fab", "deploy", "--env=sandbox", "--yes", cwd=app)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    for host in topo.hosts(len(f.instances())):
        assert f.checked_out(host.name) == new_commit and f.served_version(host.address) == new_commit


def test_the_ci_recipes_deploy_steps_run_as_written_from_an_application_repository(installed, tmp_path, personal, new_commit):
    """docs/ci/github-actions.yml's deploy jobs, step by step, with pip installing the wheel as ROLLOUT_SPEC."""
    _, wheel = installed
    app = tmp_path / "myapp"
    (app / "inventories").mkdir(parents=True)
    (app / "fabfile.py").write_text(APP_FABFILE)
    for env in ("integration", "dev"):  # the recipe's environments, on the sandbox's hosts
        shutil.copy(f.ROOT / "inventories" / "sandbox.yml", app / "inventories" / f"{env}.yml")
    steps = workflow_steps()
    branch, branch_sha = branch_commit("ben")
    for job, env in (("deploy-integration", {"COMMIT": new_commit}), ("deploy-personal", {"BRANCH": branch})):
        for step in steps[job]:
            done = sh("bash", "-euo", "pipefail", "-c", step, cwd=app, env={**env, "ROLLOUT_SPEC": str(wheel), "ROLLOUT_USER": "ci:1"})
            assert done.returncode == 0, f"{job}: {step}\n{done.stdout}{done.stderr}"
        report = json.loads((app / "report.json").read_text())
        assert report["result"] == "succeeded" and report["who"] == "ci:1" and (app / "junit.xml").is_file(), report
    assert (app / ".rollout" / "bin" / "fab").is_file() and not (app / ".venv").exists()
    for host in topo.hosts(len(f.instances())):
        assert f.checked_out(host.name) == new_commit and f.served_version(host.address) == new_commit
    assert f.served_version(personal["ben"].address) == branch_sha
