"""The states of the rollback alarms: read them for the gates, force one for a drill."""

from __future__ import annotations

from rollout.adapters.aws import Aws, translate

_CHUNK = 100  # the API's limit of names per call
_TYPES = ["MetricAlarm", "CompositeAlarm"]


class RollbackAlarms:
    """The CloudWatch alarms named in `rollback_alarms`, whose state (not their actions) gates a rollout."""

    def __init__(self, aws: Aws, names: list[str]):
        self.client = aws.client("cloudwatch")
        self.names = list(names)

    def states(self) -> dict[str, str]:
        """Name -> StateValue (OK, ALARM, INSUFFICIENT_DATA) of each configured alarm that exists."""
        found: dict[str, str] = {}
        with translate("reading the rollback alarms' states"):
            pages = self.client.get_paginator("describe_alarms")
            for i in range(0, len(self.names), _CHUNK):
                for page in pages.paginate(AlarmNames=self.names[i : i + _CHUNK], AlarmTypes=_TYPES):
                    for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                        found[alarm["AlarmName"]] = alarm["StateValue"]
        return found

    def set_state(self, name: str, state: str, reason: str) -> None:
        """Set alarm `name` to `state` (CloudWatch's SetAlarmState, for a drill); it returns to its real state at its next evaluation."""
        with translate(f"setting rollback alarm {name} to {state}"):
            self.client.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason[:1023])
