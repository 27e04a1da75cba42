"""The deploy queue, end to end: enqueue (AWS only) and a worker inside the network, on moto's SQS."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from sandbox import aws as sandbox_aws
from tests import fleetctl as f

pytestmark = pytest.mark.fleet
SECRET = {"ROLLOUT_QUEUE_SECRET": "queue-secret-for-tests"}


@pytest.fixture
def queues(healthy_fleet):
    sqs = f.aws("sqs")
    urls = {n: sqs.get_queue_url(QueueName=n)["QueueUrl"] for n in (sandbox_aws.DEPLOY_QUEUE, sandbox_aws.DEAD_LETTER)}
    for url in urls.values():  # drained by hand: SQS allows one purge a minute
        for _ in range(50):
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return sqs, urls


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
    runs_before = len(json.loads(f.fab("history", "--env=sandbox", "--json", "--limit=100").stdout))
    first = f.fab("worker", "--env=sandbox", "--once", "--wait=10", env=SECRET)
    second = f.fab("worker", "--env=sandbox", "--once", "--wait=10", env=SECRET)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "not deploying it twice" in second.stdout
    assert len(json.loads(f.fab("history", "--env=sandbox", "--json", "--limit=100").stdout)) == runs_before + 1
    assert request_state(rid)["status"] == "succeeded"


def test_a_poisoned_request_goes_to_the_dead_letter_queue_and_deploys_nothing(queues):
    sqs, urls = queues
    before = f.snapshot()
    forged = {"id": "forged", "env": "sandbox", "ref": "main", "requested_by": "mallory", "at": 1, "signature": "0" * 64}
    sqs.send_message(QueueUrl=urls[sandbox_aws.DEPLOY_QUEUE], MessageBody=json.dumps(forged))
    done = f.fab("worker", "--env=sandbox", "--once", "--wait=10", env=SECRET)
    assert done.returncode == 0 and "poisoned request" in done.stdout + done.stderr
    dead = sqs.receive_message(QueueUrl=urls[sandbox_aws.DEAD_LETTER], MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
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
