"""The deploy queue, end to end: enqueue (AWS only) and a worker inside the network, on moto's SQS."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from sandbox import awsresources
from tests import fleetctl as f, hostile

pytestmark = pytest.mark.fleet
SECRET = {"ROLLOUT_QUEUE_SECRET": hostile.SECRET}


@pytest.fixture
def queues(healthy_fleet):
    return f.aws("sqs"), f.drain_queues(awsresources.DEPLOY_QUEUE, awsresources.DEAD_LETTER)


def request_state(request_id: str) -> dict:
    item = f.aws("dynamodb").get_item(TableName="rollout-state", ConsistentRead=True,
                                      Key={"pk": {"S": "env#sandbox"}, "sk": {"S": f"request#{request_id}"}}).get("Item") or {}
    return {k: list(v.values())[0] for k, v in item.items()}


def test_a_queued_request_is_deployed_by_the_worker_and_the_enqueuer_gets_the_result(queues, new_commit):
    waiter = subprocess.Popen([f.FAB, "enqueue", "--env=sandbox", f"--ref={new_commit}", "--wait", "--timeout=180"],
                              cwd=f.ROOT, env=f.fab_env(SECRET), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = f.fab("worker", "--env=sandbox", "--once", "--wait=10", env=SECRET)
    out, err = waiter.communicate(timeout=200)
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert waiter.returncode == 0 and "succeeded (exit 0)" in out, out + err
    f.assert_fleet_serves(new_commit)
    runs = json.loads(f.fab("history", "--env=sandbox", "--json").stdout)
    assert runs[0]["sha"] == new_commit and runs[0]["who"].endswith("via queue")


def test_the_same_request_delivered_twice_is_deployed_once(queues, new_commit):
    rid = f"req-{time.time_ns()}"
    for _ in range(2):
        assert f.fab("enqueue", "--env=sandbox", f"--ref={new_commit}", f"--id={rid}", env=SECRET).returncode == 0
    first = f.fab("worker", "--env=sandbox", "--once", "--wait=10", env=SECRET)
    second = f.fab("worker", "--env=sandbox", "--once", "--wait=10", env=SECRET)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "not deploying it twice" in second.stdout
    # Counted by this test's own commit, not by the history's length: the history may hold
    # any number of earlier runs (and a --limit may cut it), so only new_commit's runs tell.
    runs = json.loads(f.fab("history", "--env=sandbox", "--json", "--limit=20").stdout)
    assert [r["sha"] for r in runs].count(new_commit) == 1 and runs[0]["sha"] == new_commit
    assert request_state(rid)["status"] == "succeeded"
    reused = f.fab("enqueue", "--env=sandbox", "--ref=v1", f"--id={rid}", env=SECRET)
    assert reused.returncode == 2 and f"request id {rid} was used before for ref '{new_commit}'" in reused.stderr, reused.stderr


def test_a_poisoned_request_goes_to_the_dead_letter_queue_and_deploys_nothing(queues):
    sqs, urls = queues
    before = f.snapshot()
    forged = {"id": "forged", "env": "sandbox", "ref": "main", "requested_by": "mallory", "at": 1, "signature": "0" * 64}
    sqs.send_message(QueueUrl=urls[awsresources.DEPLOY_QUEUE], MessageBody=json.dumps(forged))
    done = f.fab("worker", "--env=sandbox", "--once", "--wait=10", env=SECRET)
    assert done.returncode == 0 and "poisoned request" in done.stdout + done.stderr
    dead = sqs.receive_message(QueueUrl=urls[awsresources.DEAD_LETTER], MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    assert json.loads(dead[0]["Body"])["id"] == "forged" and "bad signature" in dead[0]["MessageAttributes"]["reason"]["StringValue"]
    assert f.snapshot() == before


def test_a_request_whose_worker_died_runs_again_only_after_recovery(queues, new_commit):
    rid = f"req-{time.time_ns()}"
    assert f.fab("enqueue", "--env=sandbox", f"--ref={new_commit}", f"--id={rid}", env=SECRET).returncode == 0
    died = f.fab("worker", "--env=sandbox", "--once", "--wait=10", env={**SECRET, "ROLLOUT_CRASH_AT": "after-deregister"})
    assert died.returncode == -9, died.stdout + died.stderr
    assert f.state("active") is not None and request_state(rid)["status"] == "running"
    # The message comes back after its visibility timeout (10 s in the sandbox); the next worker recovers first.
    again = f.fab("worker", "--env=sandbox", "--once", "--wait=20", env=SECRET, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "recovering first" in again.stdout
    assert request_state(rid)["status"] == "succeeded"
    f.assert_fleet_serves(new_commit)
    assert f.state("active") is None and f.state("lock") is None


@pytest.fixture
def queues_without_redrive(healthy_fleet, tmp_path):
    """A fresh request queue with NO redrive policy, its dead-letter queue, and an inventory using them."""
    sqs, suffix = f.aws("sqs"), time.time_ns()
    names = {"name": f"poison-{suffix}", "dead_letter": f"poison-{suffix}-dead"}
    urls = {k: sqs.create_queue(QueueName=n)["QueueUrl"] for k, n in names.items()}
    assert "RedrivePolicy" not in sqs.get_queue_attributes(QueueUrl=urls["name"], AttributeNames=["All"])["Attributes"]
    inv = f.write_inventory(tmp_path / "inv", lambda d: d["queue"].update(names))
    yield sqs, urls, inv
    for url in urls.values():
        sqs.delete_queue(QueueUrl=url)


def test_one_worker_dead_letters_every_hostile_body_and_then_deploys_the_valid_request(queues_without_redrive, new_commit):
    sqs, urls, inv = queues_without_redrive
    cases = hostile.bodies(time.time())
    for _, body, _ in cases:
        sqs.send_message(QueueUrl=urls["name"], MessageBody=body)
    valid = hostile.signed(ref=new_commit, id=f"req-{time.time_ns()}")
    sqs.send_message(QueueUrl=urls["name"], MessageBody=json.dumps(valid))
    # One long-running worker (no --once): it must handle every message, then stop when idle.
    worker = f.fab("worker", "--env=sandbox", "--wait=1", "--idle-timeout=3", env=SECRET, inventories=inv, timeout=200)
    out = worker.stdout + worker.stderr
    assert worker.returncode == 0, out
    assert "Traceback" not in out
    for case_id, _, words in cases:
        assert any(all(w in line for w in words) for line in out.splitlines() if "poisoned request" in line), (case_id, out)
    assert f"request {valid['id']}: succeeded (exit 0)" in out
    assert request_state(valid["id"])["status"] == "succeeded"
    f.assert_fleet_serves(new_commit)
    dead = []
    for _ in range(2 * len(cases)):  # bounded: one message per call at most 10
        got = sqs.receive_message(QueueUrl=urls["dead_letter"], MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  MessageAttributeNames=["All"], VisibilityTimeout=60).get("Messages", [])
        if not got:
            break
        dead += got
    assert len(dead) == len(cases)
    assert all(m["MessageAttributes"]["reason"]["StringValue"] for m in dead)
    left = sqs.get_queue_attributes(QueueUrl=urls["name"], AttributeNames=["ApproximateNumberOfMessages",
                                                                           "ApproximateNumberOfMessagesNotVisible"])
    assert left["Attributes"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
