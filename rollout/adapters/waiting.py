"""Polls with a deadline, built on tenacity; no fixed sleeps anywhere else."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, stop_before_delay, wait_exponential
from tenacity.stop import stop_base

T = TypeVar("T")


class WaitTimeout(Exception):
    """The condition did not hold before the deadline; `last` is the last value seen."""

    def __init__(self, what: str, timeout: float, last):
        super().__init__(f"{what}: not done after {timeout:g}s (last seen: {last})")
        self.last = last


class Cancelled(WaitTimeout):
    """The wait was abandoned because the operator asked to stop."""


class _StopWhen(stop_base):
    def __init__(self, predicate):
        self.predicate = predicate

    def __call__(self, retry_state) -> bool:
        return self.predicate()


def poll(
    check: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    max_interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    cancelled: Callable[[], bool] = lambda: False,
    within: bool = False,
) -> T:
    """Call `check` until `done(result)` or `timeout` seconds pass; return the result.

    Waits start at `interval` and grow to `max_interval`, so quick conditions
    are seen quickly and slow ones do not flood the API. With `within`, no wait runs past
    the deadline (the last check comes before it), so the wait lasts at most `timeout`.
    """
    retrying = Retrying(
        retry=retry_if_result(lambda r: not done(r)),
        stop=(stop_before_delay(timeout) if within else stop_after_delay(timeout)) | _StopWhen(cancelled),
        wait=wait_exponential(multiplier=interval, min=interval, max=max_interval),
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(check)
    except RetryError as exc:
        kind = Cancelled if cancelled() else WaitTimeout
        raise kind(what, timeout, exc.last_attempt.result()) from None
