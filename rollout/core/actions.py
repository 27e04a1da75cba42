"""What a signed queue request asks the worker to do: one vocabulary for the page, signing and the worker."""

from __future__ import annotations

from enum import Enum


class Action(str, Enum):
    """A request's kind. A request without one is a deploy (requests made before kinds existed)."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    PAUSE = "pause"
    UNPAUSE = "unpause"


# Taken from the control queue, beside a running rollout: they touch the state table only.
CONTROL = frozenset({Action.PAUSE, Action.UNPAUSE})


def of(request: dict) -> Action:
    """The action a verified request asks for."""
    return Action(request.get("action") or Action.DEPLOY.value)
