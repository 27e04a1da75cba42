"""Slack notifications: a start message updated as batches complete, and a final message.

Slack is never allowed to fail a deploy: every error is logged and dropped.
"""

from __future__ import annotations

import logging
import os

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from tenacity import retry_if_exception_type, stop_after_attempt, wait_exponential_jitter, Retrying

log = logging.getLogger("rollout.slack")

_RETRY = dict(
    stop=stop_after_attempt(3),
    wait=wait_exponential_jitter(multiplier=0.2, max=2),
    retry=retry_if_exception_type((OSError, SlackClientError)),
    reraise=True,
)


class Slack:
    """Posts to one channel; `enabled` is False when unconfigured or without a token."""

    def __init__(self, config):
        self.channel = config.channel if config else None
        token = os.environ.get(config.token_env) if config else None
        self.enabled = bool(config and token)
        self.missing_token = config.token_env if config and not token else None
        self.client = None
        if self.enabled:
            kwargs = {"base_url": config.api_url.rstrip("/") + "/"} if config.api_url else {}
            self.client = WebClient(token=token, timeout=10, retry_handlers=[], **kwargs)
        self.ts = None
        self.posted_channel = None

    def _call(self, method: str, **kwargs):
        if not self.enabled:
            return None
        try:
            for attempt in Retrying(**_RETRY):
                with attempt:
                    return getattr(self.client, method)(**kwargs)
        except (SlackApiError, SlackClientError, OSError) as exc:
            # Never the token: slack-sdk errors carry only the API's response.
            log.warning("slack: %s failed: %s", method, _reason(exc))
        return None

    def start(self, text: str) -> None:
        if self.missing_token:
            log.warning("slack: %s is not set; no Slack messages will be sent", self.missing_token)
        resp = self._call("chat_postMessage", channel=self.channel, text=text)
        if resp is not None:
            self.ts, self.posted_channel = resp.get("ts"), resp.get("channel", self.channel)

    def progress(self, text: str) -> None:
        if self.ts:
            self._call("chat_update", channel=self.posted_channel, ts=self.ts, text=text)

    def finish(self, text: str) -> None:
        self.progress(text)
        self._call("chat_postMessage", channel=self.channel, text=text)


def _reason(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "unknown error"))
    return type(exc).__name__
