"""ALB target group: deregister, wait with boto3's waiters, register, wait for healthy."""

from __future__ import annotations

from botocore.exceptions import ClientError, WaiterError

from rollout.adapters.aws import Aws, translate
from rollout.adapters.waiting import poll
from rollout.core.errors import PreflightError
from rollout.core.plan import BalancerFacts, Host


class TargetGroup:
    kind = "alb"

    def __init__(self, aws: Aws, target_group: str, port: int | None = None, poll_interval: int = 1):
        self.name = target_group
        self.port = port
        self.client = aws.client("elbv2")
        self.poll_interval = poll_interval
        self._arn = None
        self._facts = None
        self._ports: dict[str, int] = {}

    @property
    def arn(self) -> str:
        if self._arn is None:
            key = {"TargetGroupArns": [self.name]} if self.name.startswith("arn:") else {"Names": [self.name]}
            with translate(f"describing target group {self.name}"):
                try:
                    tg = self.client.describe_target_groups(**key)["TargetGroups"][0]
                except ClientError as exc:
                    if exc.response["Error"]["Code"] in ("TargetGroupNotFound", "ValidationError"):
                        raise PreflightError(f"target group {self.name!r} not found; fix load_balancers in the inventory") from None
                    raise
            self._arn = tg["TargetGroupArn"]
            self._tg = tg
        return self._arn

    def facts(self) -> BalancerFacts:
        if self._facts is None:
            arn = self.arn
            with translate(f"describing target group {self.name}"):
                attrs = self.client.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
            delay = next((float(a["Value"]) for a in attrs if a["Key"] == "deregistration_delay.timeout_seconds"), 300.0)
            healthy = float(self._tg.get("HealthCheckIntervalSeconds", 30) * self._tg.get("HealthyThresholdCount", 5))
            self._facts = BalancerFacts(kind=self.kind, name=self.name, drain_seconds=delay, healthy_seconds=healthy)
        return self._facts

    def members(self) -> dict[str, str]:
        with translate(f"reading target group {self.name}"):
            descs = self.client.describe_target_health(TargetGroupArn=self.arn)["TargetHealthDescriptions"]
        for d in descs:
            if "Port" in d["Target"]:
                self._ports.setdefault(d["Target"]["Id"], d["Target"]["Port"])
        return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in descs}

    def registered(self) -> set[str]:
        return set(self.members())  # DescribeTargetHealth is the only listing of a target group


    def _targets(self, hosts: list[Host]) -> list[dict]:
        if not self._ports and self.port is None:
            self.members()
        out = []
        for h in hosts:
            port = self.port or self._ports.get(h.instance_id)
            out.append({"Id": h.instance_id, "Port": port} if port else {"Id": h.instance_id})
        return out

    def deregister(self, hosts: list[Host]) -> None:
        targets = self._targets(hosts)
        with translate(f"deregistering from target group {self.name}"):
            self.client.deregister_targets(TargetGroupArn=self.arn, Targets=targets)

    def wait_drained(self, hosts: list[Host], cancelled=lambda: False, before_change=lambda: None) -> None:
        self._wait("target_deregistered", hosts, self.facts().drain_seconds + 30, "draining", cancelled)

    def register(self, hosts: list[Host]) -> None:
        targets = self._targets(hosts)
        with translate(f"registering with target group {self.name}"):
            self.client.register_targets(TargetGroupArn=self.arn, Targets=targets)

    def wait_healthy(self, hosts: list[Host], timeout: float) -> None:
        self._wait("target_in_service", hosts, max(timeout, self.facts().healthy_seconds * 2), "waiting for healthy")

    def _wait(self, waiter_name: str, hosts: list[Host], timeout: float, what: str, cancelled=lambda: False) -> None:
        """boto3's waiter, one attempt at a time inside a cancellable poll with a deadline."""
        waiter = self.client.get_waiter(waiter_name)
        targets = self._targets(hosts)
        last = {}

        def attempt() -> bool:
            try:
                with translate(f"target group {self.name}: {what}"):
                    waiter.wait(TargetGroupArn=self.arn, Targets=targets, WaiterConfig={"Delay": 1, "MaxAttempts": 1})
                return True
            except WaiterError as exc:
                last["response"] = exc.last_response.get("TargetHealthDescriptions")
                if "Max attempts exceeded" in str(exc):
                    return False
                raise RuntimeError(f"target group {self.name}: {what}: {exc}") from None

        poll(attempt, bool, timeout=timeout, interval=self.poll_interval, max_interval=5.0, cancelled=cancelled,
             what=f"target group {self.name}: {what}")
