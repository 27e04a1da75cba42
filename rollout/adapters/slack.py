"""Slack notifications: a start message updated as batches complete, and a final message.

Slack is never allowed to fail or slow a deploy: calls go out from one background thread,
in order, and every error is logged and dropped. Only `finish` waits, and only so long.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout

from tenacity import retry_if_exception_type, stop_after_attempt, wait_exponential_jitter, Retrying

log = logging.getLogger("rollout.slack")


def _retrying() -> Retrying:
    # slack_sdk is imported only where Slack is enabled: elsewhere its 40 ms would be on every command's start.
    from slack_sdk.errors import SlackClientError

    return Retrying(stop=stop_after_attempt(3), wait=wait_exponential_jitter(multiplier=0.2, max=2),
                    retry=retry_if_exception_type((OSError, SlackClientError)), reraise=True)


class Slack:
    """Posts to one channel; `enabled` is False when unconfigured or without a token."""

    # How long `finish` waits for the calls still queued before the process goes on without them.
    FINISH_WAIT = 30.0

    def __init__(self, config):
        self.channel = config.channel if config else None
        token = os.environ.get(config.token_env) if config else None
        self.enabled = bool(config and token)
        self.missing_token = config.token_env if config and not token else None
        self.client = None
        if self.enabled:
            from slack_sdk import WebClient

            kwargs = {"base_url": config.api_url.rstrip("/") + "/"} if config.api_url else {}
            self.client = WebClient(token=token, timeout=10, retry_handlers=[], **kwargs)
        self.ts = None
        self.posted_channel = None
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slack") if self.enabled else None
        self._progress_seq = 0

    def _call(self, method: str, **kwargs):
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            for attempt in _retrying():
                with attempt:
                    return getattr(self.client, method)(**kwargs)
        except (SlackApiError, SlackClientError, OSError) as exc:
            # Never the token: slack-sdk errors carry only the API's response.
            log.warning("slack: %s failed: %s", method, _reason(exc))
        return None

    def _send(self, fn, *args, **kwargs):
        if self._sender is None:
            return None
        return self._sender.submit(fn, *args, **kwargs)

    def start(self, text: str) -> None:
        if self.missing_token:
            log.warning("slack: %s is not set; no Slack messages will be sent", self.missing_token)
        self._send(self._post_start, text)

    def progress(self, text: str) -> None:
        """Update the start message; an update still queued when a newer one comes is skipped."""
        self._progress_seq += 1
        self._send(self._update, text, self._progress_seq)

    def finish(self, text: str) -> None:
        """Update the start message and post `text`; wait for what is queued, at most FINISH_WAIT seconds."""
        self.progress(text)
        last = self._send(self._call, "chat_postMessage", channel=self.channel, text=text)
        if last is None:
            return
        try:
            last.result(timeout=self.FINISH_WAIT)
        except FutureTimeout:
            log.warning("slack: still sending after %gs; going on without it", self.FINISH_WAIT)
        self._sender.shutdown(wait=False, cancel_futures=True)

    def _post_start(self, text: str) -> None:
        resp = self._call("chat_postMessage", channel=self.channel, text=text)
        if resp is not None:
            self.ts, self.posted_channel = resp.get("ts"), resp.get("channel", self.channel)

    def _update(self, text: str, seq: int) -> None:
        if self.ts and seq == self._progress_seq:
            self._call("chat_update", channel=self.posted_channel, ts=self.ts, text=text)


def _reason(exc: Exception) -> str:
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "unknown error"))
    return type(exc).__name__
