"""A second moto server that enforces IAM, for tests of what rollout says when AWS denies an action.

The sandbox's own moto (127.0.0.1:5055) accepts every request. This one listens on a free
loopback port and starts open, so a test can create the resources it needs and an IAM user
with exactly the policy it wants; `enforce()` then turns IAM checks on (moto's
/moto-api/reset-auth with 0, the server-mode form of INITIAL_NO_AUTH_ACTION_COUNT=0): from
then on every request is allowed or denied by the caller's policies, as AWS would.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from functools import cache

from rollout.adapters.waiting import WaitTimeout, poll

REGION = "eu-west-1"
HOST = "127.0.0.1"


class StrictAws:
    """A moto server process on loopback; use as a context manager (stopped and waited for on exit)."""

    def __init__(self, timeout: float = 30.0):
        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            poll(self._listening, bool, timeout=timeout, interval=0.05, max_interval=0.5, what="strict moto server listening")
        except WaitTimeout:
            self.close()
            raise RuntimeError(f"moto server on {self.url} not listening after {timeout}s") from None

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {self.proc.returncode}")
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    @cache
    def client(self, service: str):
        """An administrator's client (dummy keys): use it before enforce()."""
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=REGION, aws_access_key_id="admin",
                            aws_secret_access_key="admin")

    def user(self, name: str, actions: list[str]) -> dict[str, str]:
        """An IAM user allowed exactly `actions` on every resource; its AWS_* variables and ARN."""
        iam = self.client("iam")
        arn = iam.create_user(UserName=name)["User"]["Arn"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "ARN": arn}

    def state_table(self, name: str = "rollout-state") -> None:
        """The DynamoDB table rollout keeps its state in, as `fab setup` creates it."""
        self.client("dynamodb").create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])

    def enforce(self) -> None:
        """From now on, every request is checked against its caller's IAM policies."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["status"] == "ok"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> "StrictAws":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
