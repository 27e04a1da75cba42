"""The deploy queue (SQS): signed requests in, poisoned ones to a dead-letter queue."""

from __future__ import annotations

import json
from typing import Optional

from botocore.exceptions import ClientError

from rollout.adapters.aws import Aws, translate
from rollout.core.errors import PreflightError


# SQS carries at most 256 KiB per message, attributes included: room is left for the reason.
MAX_DEAD_BODY = 256 * 1024 - 1024


class DeployQueue:
    """One environment's request queue and its dead-letter queue."""

    def __init__(self, aws: Aws, name: str, dead_letter: str, visibility_timeout: int):
        self.sqs = aws.client("sqs")
        self.name, self.dead_name, self.visibility = name, dead_letter, visibility_timeout
        self._urls: dict[str, str] = {}

    def url(self, name: str) -> str:
        if name not in self._urls:
            with translate(f"finding SQS queue {name}"):
                try:
                    self._urls[name] = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
                except ClientError as exc:
                    if "NonExistentQueue" in exc.response["Error"]["Code"]:
                        raise PreflightError(f"SQS queue {name!r} does not exist; create it (and its dead-letter queue) first") from None
                    raise
        return self._urls[name]

    def send(self, request: dict) -> None:
        with translate(f"sending to {self.name}"):
            self.sqs.send_message(QueueUrl=self.url(self.name), MessageBody=json.dumps(request))

    def receive(self, wait: int) -> Optional[tuple[str, str, int]]:
        """(body, receipt handle, times received) of one message, waiting up to `wait` seconds."""
        with translate(f"receiving from {self.name}"):
            resp = self.sqs.receive_message(QueueUrl=self.url(self.name), MaxNumberOfMessages=1, WaitTimeSeconds=max(0, min(20, wait)),
                                            VisibilityTimeout=self.visibility, AttributeNames=["ApproximateReceiveCount"])
        msgs = resp.get("Messages") or []
        if not msgs:
            return None
        m = msgs[0]
        return m["Body"], m["ReceiptHandle"], int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1))

    def delete(self, receipt: str) -> None:
        with translate(f"deleting from {self.name}"):
            self.sqs.delete_message(QueueUrl=self.url(self.name), ReceiptHandle=receipt)

    def keep(self, receipt: str) -> None:
        """Keep a message invisible to other workers for another visibility timeout."""
        with translate(f"extending a message of {self.name}"):
            self.sqs.change_message_visibility(QueueUrl=self.url(self.name), ReceiptHandle=receipt, VisibilityTimeout=self.visibility)

    def dead_letter(self, body: str, reason: str) -> None:
        """Send `body` with its `reason` to the dead-letter queue; a body too large to carry both is cut (and says so)."""
        attributes = {"reason": {"DataType": "String", "StringValue": reason[:250]}}
        data = body.encode("utf-8", "surrogatepass")
        if len(data) > MAX_DEAD_BODY:
            attributes["truncated_from_bytes"] = {"DataType": "Number", "StringValue": str(len(data))}
            body = data[:MAX_DEAD_BODY].decode("utf-8", "ignore")
        with translate(f"sending to {self.dead_name}"):
            self.sqs.send_message(QueueUrl=self.url(self.dead_name), MessageBody=body, MessageAttributes=attributes)
