"""Bad input never shows a Python traceback: a table of arguments, inventories, environments and
queue bodies, each run through the real `fab` on the sandbox. Add rows freely.

Each row: (id, fab arguments, inventory change, environment, setup). `setup(tmp_path)` may
prepare the sandbox and return extra environment or an inventory change; the row's command must
end with a non-zero exit code (except where noted) and print no traceback.
"""

from __future__ import annotations

import time

import pytest

from tests import fleetctl as f, hostile

pytestmark = pytest.mark.fleet

TRACEBACK = "Traceback (most recent call last)"
SECRET = {"ROLLOUT_QUEUE_SECRET": hostile.SECRET}


def set_key(section: str, key: str, value):
    def change(d):
        d.setdefault(section, {})[key] = value
    return change


def hostile_queue(tmp_path):
    """A fresh queue without a redrive policy, holding every hostile body (and no valid request)."""
    sqs, suffix = f.aws("sqs"), time.time_ns()
    names = {"name": f"tb-{suffix}", "dead_letter": f"tb-{suffix}-dead"}
    urls = [sqs.create_queue(QueueName=n)["QueueUrl"] for n in names.values()]
    for _, body, _ in hostile.bodies(time.time()):
        sqs.send_message(QueueUrl=urls[0], MessageBody=body)
    return lambda d: d["queue"].update(names), lambda: [sqs.delete_queue(QueueUrl=u) for u in urls]


def unparsable_yaml(tmp_path):
    (tmp_path / "inv").mkdir(parents=True, exist_ok=True)
    (tmp_path / "inv" / "sandbox.yml").write_text("aws: {region: [unclosed\n")
    return None, None


def octal_port(tmp_path):
    """The sandbox inventory as written, with an octal-looking health port (YAML 1.1 reads 014000 as 6144)."""
    (tmp_path / "inv").mkdir(parents=True, exist_ok=True)
    text = (f.ROOT / "inventories" / "sandbox.yml").read_text().replace("  port: 14000", "  port: 014000")
    (tmp_path / "inv" / "sandbox.yml").write_text(text)
    return None, None


def top_level_list(tmp_path):
    (tmp_path / "inv").mkdir(parents=True, exist_ok=True)
    (tmp_path / "inv" / "sandbox.yml").write_text("- a\n- b\n")
    return None, None


ROWS = [
    # arguments
    ("batch-not-a-number", ["deploy", "--env=sandbox", "--yes", "--batch=abc"], None, None, None),
    ("batch-negative-percent", ["deploy", "--env=sandbox", "--yes", "--batch=-5%"], None, None, None),
    ("hosts-only-commas", ["deploy", "--env=sandbox", "--yes", "--hosts=,,,"], None, None, None),
    ("ref-with-newline", ["deploy", "--env=sandbox", "--yes", "--ref=main\nrollout: fake"], None, None, None),
    ("report-under-a-file", ["deploy", "--env=sandbox", "--yes", "--report=/dev/null/r.json"], None, None, None),
    ("junit-is-a-directory", ["deploy", "--env=sandbox", "--yes", "--junit=/tmp"], None, None, None),
    ("no-ssh-without-dry-run", ["deploy", "--env=sandbox", "--yes", "--no-ssh"], None, None, None),
    ("env-name-traversal", ["status", "--env=../etc/passwd"], None, None, None),
    ("env-at-bad-user", ["status", "--env=sandbox@Bad User"], None, None, None),
    ("enqueue-bad-id", ["enqueue", "--env=sandbox", "--ref=main", "--id=../../lock"], None, SECRET, None),
    ("rollback-to-bad-ref", ["rollback", "--env=sandbox", "--to=main;reboot", "--yes"], None, None, None),
    # inventories
    ("inventory-unparsable", ["deploy", "--env=sandbox", "--yes"], None, None, unparsable_yaml),
    ("inventory-a-list", ["deploy", "--env=sandbox", "--yes"], None, None, top_level_list),
    ("inventory-unknown-key", ["deploy", "--env=sandbox", "--yes"], set_key("app", "relaod", 1), None, None),
    ("inventory-port-a-string", ["deploy", "--env=sandbox", "--yes"], set_key("health", "port", "http"), None, None),
    ("inventory-missing-key-file", ["deploy", "--env=sandbox", "--yes"], set_key("ssh", "key", "/nonexistent/key"), None, None),
    ("inventory-endpoint-without-scheme", ["deploy", "--env=sandbox", "--yes"], set_key("aws", "endpoint_url", "127.0.0.1:5055"), None, None),
    ("inventory-region-with-path", ["deploy", "--env=sandbox", "--yes"], set_key("aws", "region", "eu west 1/../x"), None, None),
    ("inventory-queue-max-age-zero", ["worker", "--env=sandbox", "--once", "--wait=0"], set_key("queue", "max_age", 0), SECRET, None),
    ("inventory-batch-not-a-size", ["deploy", "--env=sandbox", "--yes"], lambda d: d.update(batch="lots"), None, None),
    ("inventory-max-failures-plenty", ["deploy", "--env=sandbox", "--yes"], lambda d: d.update(max_failures="plenty"), None, None),
    ("inventory-yaml-boolean-tag", ["deploy", "--env=sandbox", "--yes"], lambda d: d["instances"]["tags"].update(Enabled=True), None, None),
    ("inventory-octal-port", ["deploy", "--env=sandbox", "--yes"], None, None, octal_port),
    ("inventory-unknown-region", ["deploy", "--env=sandbox", "--yes"],
     lambda d: (d["aws"].pop("endpoint_url"), d["aws"].update(region="eu-west-9")), None, None),
    ("check-every-error", ["check", "--env=sandbox"], lambda d: d.update(batch="lots", max_failures="plenty"), None, None),
    ("status-bastion-not-ssh", ["status", "--env=sandbox"], set_key("bastion", "port", 8080), None, None),
    # environment
    ("inventories-dir-missing", ["deploy", "--env=sandbox", "--yes"], None, {"ROLLOUT_INVENTORIES": "/nonexistent"}, None),
    ("queue-secret-unset", ["worker", "--env=sandbox", "--once", "--wait=0"], None, {"ROLLOUT_QUEUE_SECRET": None}, None),
    ("rollout-user-with-newline", ["enqueue", "--env=sandbox", "--ref=main"], None, {**SECRET, "ROLLOUT_USER": "ci\nrollout: ok"}, None),
    ("aws-files-under-a-file", ["deploy", "--env=sandbox", "--yes"], None,
     {"AWS_CONFIG_FILE": "/dev/null/config", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null/credentials"}, None),
    # queue bodies: one worker reads them all, then stops when idle (exit 0: refusing them is its job)
    ("queue-bodies", ["worker", "--env=sandbox", "--wait=1", "--idle-timeout=2"], None, SECRET, hostile_queue),
]


@pytest.mark.parametrize("args,change,env,setup", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_never_prints_a_traceback(fleet, tmp_path, args, change, env, setup):
    cleanup = None
    if setup is not None:
        setup_change, cleanup = setup(tmp_path)
        change = change or setup_change
    try:
        if setup is None or change is not None:
            inv = f.write_inventory(tmp_path / "inv", change)
        else:
            inv = tmp_path / "inv"
        done = f.fab(*args, inventories=inv, env=env, timeout=120)
    finally:
        if cleanup:
            cleanup()
    out = done.stdout + done.stderr
    assert TRACEBACK not in out, out
    if args[0] == "worker" and setup is hostile_queue:
        assert done.returncode == 0 and out.count("poisoned request") == len(hostile.bodies(0)), out
    else:
        assert done.returncode != 0, out
        assert len([ln for ln in done.stderr.splitlines() if ln.startswith("rollout: ")]) == 1, out
