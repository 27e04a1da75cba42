"""CloudWatch alarms whose actions are silenced for the rollout and re-enabled exactly after."""

from __future__ import annotations

from rollout.adapters.aws import Aws, translate

_CHUNK = 100  # the API's limit of names per call


class Alarms:
    def __init__(self, aws: Aws, names: list[str], prefix: str | None):
        self.client = aws.client("cloudwatch")
        self.names = names
        self.prefix = prefix

    def enabled(self) -> list[str]:
        """Names of the configured alarms whose actions are currently enabled."""
        found = []
        with translate("describing CloudWatch alarms"):
            pages = self.client.get_paginator("describe_alarms")
            if self.names:
                for i in range(0, len(self.names), _CHUNK):
                    for page in pages.paginate(AlarmNames=self.names[i : i + _CHUNK]):
                        found += page["MetricAlarms"]
            if self.prefix:
                for page in pages.paginate(AlarmNamePrefix=self.prefix):
                    found += page["MetricAlarms"]
        return sorted({a["AlarmName"] for a in found if a.get("ActionsEnabled")})

    def disable(self, names: list[str]) -> None:
        with translate("disabling alarm actions"):
            for i in range(0, len(names), _CHUNK):
                self.client.disable_alarm_actions(AlarmNames=names[i : i + _CHUNK])

    def enable(self, names: list[str]) -> None:
        with translate("enabling alarm actions"):
            for i in range(0, len(names), _CHUNK):
                self.client.enable_alarm_actions(AlarmNames=names[i : i + _CHUNK])
