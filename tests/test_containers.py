"""The container app kind end to end: rootless podman on every host, images from the bastion's registry.

The fleet runs the app twice: as a git checkout (port 14000, HAProxy :8080) and as a
container (port 14100, HAProxy :8081); these tests deploy only the container
(inventories/sandbox-container.yml) and observe podman on the hosts directly.
"""

from __future__ import annotations

import json
import shlex
import time

import pytest

from sandbox import container, fleet as sandbox_fleet, haproxy as sandbox_haproxy, topology as topo
from tests import fleetctl as f
from tests.instruments.load import LoadGenerator
from tests.slackstub import SlackStub

pytestmark = pytest.mark.fleet

ENV = "sandbox-container"
SECRET = "correct-horse-battery-staple-4711"
FRONT = f"http://{topo.BASTION_ADDR}:{topo.HAPROXY_CONTAINER_PORT}"
HOSTS = [h.name for h in topo.hosts(4)]


@pytest.fixture(scope="module")
def digests(fleet):
    """Bring the container half of the sandbox up: {tag: digest} of rollout-app v1, v2, broken."""
    sandbox_fleet.up(hosts=4, app="container", quiet=True)
    found = {t: container.digest(t) for t in container.TAGS}
    assert all(d and d.startswith("sha256:") for d in found.values()), found
    assert len(set(found.values())) == 3, found
    return found


@pytest.fixture
def on_v1(digests):
    """Every host runs the v1 container, serving and UP in HAProxy; nothing suspended; no lock."""
    container.ensure_registry()
    if set(running().values()) != {digests["v1"]}:
        done = deploy("--ref=v1")
        assert done.returncode == 0, done.stdout + done.stderr
    assert_serves(digests["v1"])
    yield digests
    container.ensure_registry()


def deploy(*args: str, secret: str = SECRET, **kw):
    return f.fab("deploy", f"--env={ENV}", "--yes", *args, env={"SANDBOX_APP_SECRET": secret, **kw.pop("env", {})}, **kw)


def podman(name: str, script: str) -> str:
    out = container.as_deploy(topo.host_by_name(name), script, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def running() -> dict[str, str | None]:
    return {n: container.running_digest(topo.host_by_name(n)) for n in HOSTS}


def container_ids() -> dict[str, str]:
    return {n: podman(n, "podman container inspect -f '{{.Id}}' app") for n in HOSTS}


def has_image(name: str, digest: str) -> bool:
    ref = shlex.quote(f"{topo.IMAGE}@{digest}")
    return container.as_deploy(topo.host_by_name(name), f"podman image exists {ref}", timeout=30).returncode == 0


def assert_serves(digest: str) -> None:
    """Every host runs `digest`, answers it on /version, and is UP in the container backend."""
    assert running() == {n: digest for n in HOSTS}
    addresses = [topo.host_by_name(n).address for n in HOSTS]
    assert {a: f.served_version(a, topo.CONTAINER_PORT) for a in addresses} == {a: digest for a in addresses}
    states = f.wait_until(lambda: (s := f.haproxy_states(sandbox_haproxy.CONTAINER_BACKEND)) and
                          set(s.values()) == {"UP"} and s, 10, "the container backend all UP")
    assert set(states) == set(addresses)


def snapshot() -> dict:
    return {"containers": container_ids(), "running": running(), "suspended": f.suspended(),
            "haproxy": f.haproxy_states(sandbox_haproxy.CONTAINER_BACKEND)}


def test_new_digest_under_load_zero_failures_and_fab_rollback_restarts_the_kept_image(on_v1, tmp_path):
    before = container_ids()
    report = tmp_path / "report.json"
    with LoadGenerator(f"{FRONT}/version", duration=90, keepalive_workers=4, fresh_workers=4) as load:
        f.wait_until(lambda: load.elapsed() >= 1.0, 5, "the load to start")
        done = deploy("--ref=v2", f"--report={report}")
        time.sleep(0.5)
    result = load.result()
    print(result.summary())
    assert done.returncode == 0, done.stdout + done.stderr
    assert result.failures == 0, result.summary()
    assert result.rate >= 300, result.summary()
    # The tag was resolved once: the load saw exactly the two digests, never anything else.
    assert set(result.versions) == {on_v1["v1"], on_v1["v2"]}, result.summary()
    assert_serves(on_v1["v2"])
    after = container_ids()
    assert all(after[n] != before[n] for n in HOSTS), "every host runs a new container"
    assert all(has_image(n, on_v1["v1"]) for n in HOSTS), "the previous image is kept for rollback"
    mounts = {n: podman(n, "podman container inspect -f '{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}' app") for n in HOSTS}
    assert mounts == {n: f"{topo.SRV_MOUNTPOINT}/log:/var/log/app" for n in HOSTS}
    doc = json.loads(report.read_text())
    assert doc["sha"] == on_v1["v2"] and doc["result"] == "succeeded"
    assert {h["result"] for h in doc["hosts"]} == {"updated"}
    assert all({"pull", "stop", "run", "health"} <= {s["step"] for s in h["steps"]} for h in doc["hosts"])
    assert f.suspended() == set()

    # Rolling back needs no registry: the previous digest is on every host already.
    container.stop_registry()
    back = f.fab("rollback", f"--env={ENV}", f"--to={on_v1['v1']}", "--yes", env={"SANDBOX_APP_SECRET": SECRET})
    assert back.returncode == 0, back.stdout + back.stderr
    assert_serves(on_v1["v1"])


def test_image_whose_app_does_not_start_returns_the_host_to_the_previous_digest(on_v1, tmp_path):
    before = snapshot()
    report = tmp_path / "report.json"
    done = deploy("--ref=broken", f"--report={report}")
    assert done.returncode == 9, done.stdout + done.stderr
    err = done.stderr.strip().splitlines()[-1]
    assert "h001" in err and "exited" in err and "returned to its previous version" in err, err
    assert_serves(on_v1["v1"])
    ids = container_ids()
    assert ids["h001"] != before["containers"]["h001"], "h001 runs a restarted v1 container"
    assert {n: ids[n] for n in HOSTS[1:]} == {n: before["containers"][n] for n in HOSTS[1:]}, "others untouched"
    assert f.suspended() == before["suspended"] == set()
    doc = json.loads(report.read_text())
    h1 = next(h for h in doc["hosts"] if h["name"] == "h001")
    assert h1["result"] == "failed, restored" and h1["new_version"] == on_v1["v1"]
    assert [h["result"] for h in doc["hosts"] if h["name"] != "h001"] == ["pending"] * 3


@pytest.mark.parametrize("case", ["unknown tag", "unknown digest", "registry down", "no such cli", "secret unset"])
def test_refused_at_preflight_and_nothing_touched(on_v1, tmp_path, case):
    before = snapshot()
    kw = {}
    if case == "unknown tag":
        args, code, says = ["--ref=no-such-tag"], 4, "not found"
    elif case == "unknown digest":
        args, code, says = ["--ref=sha256:" + "0" * 64], 4, "not found"
    elif case == "registry down":
        container.stop_registry()
        args, code, says = ["--ref=v2"], 8, "does not answer"
    elif case == "no such cli":
        inv = _inventory(tmp_path, lambda d: d["app"].update(cli="docker"))
        args, code, says, kw = ["--ref=v2"], 8, "docker", {"inventories": inv}
    else:
        args, code, says, kw = ["--ref=v2"], 8, "SANDBOX_APP_SECRET", {"env": {"SANDBOX_APP_SECRET": None}}
    done = deploy(*args, **kw)
    assert done.returncode == code, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    container.ensure_registry()
    assert snapshot() == before


def test_secret_env_reaches_the_container_but_never_output_report_or_slack(on_v1, tmp_path):
    token = "xoxb-container-token"
    report = tmp_path / "report.json"
    with SlackStub() as slack:
        inv = _inventory(tmp_path, lambda d: d["slack"].update(api_url=slack.url))
        done = deploy("--ref=v2", f"--report={report}", inventories=inv, env={"SLACK_BOT_TOKEN": token})
        failed = deploy("--ref=broken", inventories=inv, env={"SLACK_BOT_TOKEN": token})
    assert done.returncode == 0, done.stdout + done.stderr
    assert failed.returncode == 9, failed.stdout + failed.stderr
    # The value did reach the app (so the checks below are not vacuous) ...
    assert {n: podman(n, "podman exec app /usr/bin/node -p process.env.APP_SECRET") for n in HOSTS} == {n: SECRET for n in HOSTS}
    # ... and nothing a person or a log sees carries it.
    assert slack.calls, "Slack heard nothing"
    for text in (done.stdout, done.stderr, failed.stdout, failed.stderr, report.read_text(), *(c["raw"] for c in slack.calls)):
        assert SECRET not in text
    # Not on the hosts' process lists either: scripts travel on stdin, never in argv.
    assert all(SECRET not in podman(n, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '") for n in HOSTS)


def _inventory(tmp_path, change):
    """A directory holding a changed copy of inventories/sandbox-container.yml."""
    import yaml

    data = yaml.safe_load((f.ROOT / "inventories" / f"{ENV}.yml").read_text())
    change(data)
    directory = tmp_path / "inv"
    directory.mkdir(exist_ok=True)
    (directory / f"{ENV}.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return directory


def test_crash_mid_batch_then_recover_restarts_the_previous_digest_and_never_strands_without_the_secret(on_v1):
    crashed = deploy("--ref=v2", env={"ROLLOUT_CRASH_AT": "after-update"})
    assert crashed.returncode not in (0, 1, 9), crashed.stdout + crashed.stderr  # killed mid-batch
    assert running()["h001"] == on_v1["v2"] and f.suspended() == f.ALL
    # Without the app's secret no host could be restored: recover refuses before changing
    # anything, and the dead run stays recoverable.
    refused = f.fab("recover", f"--env={ENV}", "--force", env={"SANDBOX_APP_SECRET": None})
    assert refused.returncode == 8 and "SANDBOX_APP_SECRET" in refused.stderr, refused.stdout + refused.stderr
    assert f.suspended() == f.ALL
    done = f.fab("recover", f"--env={ENV}", "--force", env={"SANDBOX_APP_SECRET": SECRET})
    assert done.returncode == 0, done.stdout + done.stderr
    assert_serves(on_v1["v1"])
    assert f.suspended() == set()
