"""Retry strategies (tenacity): AWS calls on throttling and transient failures; SSH work over a lost connection."""

from __future__ import annotations

import logging
import re
import time
from typing import Callable, Optional

import botocore.exceptions
import paramiko
import urllib3.exceptions
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_random_exponential

from rollout.core.errors import ConnectError, HostKeyError

log = logging.getLogger("rollout.aws")

MAX_ATTEMPTS = 8
MAX_SECONDS = 60.0
BACKOFF_MULTIPLIER = 0.1
MAX_WAIT = 5.0

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
        "ProvisionedThroughputExceededException",
    }
)
# TransactionConflictException: a single-item write (the lock's heartbeat) met a transaction on that item.
TRANSIENT_CODES = frozenset({"RequestTimeout", "InternalError", "InternalFailure", "ServiceUnavailable",
                             "TransactionConflictException"})
TRANSIENT_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    urllib3.exceptions.ProtocolError,
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, else the exception's class name."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code", "") or type(exc).__name__
    return type(exc).__name__


# Reasons a DynamoDB transaction is cancelled for that a retry can cure ("None": that item was fine).
RETRYABLE_CANCELLATIONS = frozenset({"None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


def cancellation_reasons(exc: BaseException) -> list[str]:
    """The codes of a TransactionCanceledException's CancellationReasons (from its message if absent)."""
    if not isinstance(exc, botocore.exceptions.ClientError) or error_code(exc) != "TransactionCanceledException":
        return []
    reasons = exc.response.get("CancellationReasons")
    if reasons:
        return [str((r or {}).get("Code") or "None") for r in reasons]
    found = re.search(r"\[([^\]]*)\]", exc.response.get("Error", {}).get("Message", "") or "")
    return [c.strip() for c in found.group(1).split(",")] if found else []


def is_transient(exc: BaseException) -> bool:
    """True if `exc` is throttling, a transient AWS error or a connection failure worth retrying.

    A cancelled DynamoDB transaction is, when every reason is a write conflict or throttling.
    """
    if isinstance(exc, botocore.exceptions.ClientError):
        if error_code(exc) in THROTTLING_CODES | TRANSIENT_CODES:
            return True
        reasons = cancellation_reasons(exc)
        if reasons and set(reasons) <= RETRYABLE_CANCELLATIONS and set(reasons) != {"None"}:
            return True
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return isinstance(status, int) and status >= 500
    return isinstance(exc, TRANSIENT_ERRORS)


def _log_retry(operation: Optional[str]) -> Callable[[RetryCallState], None]:
    """A before_sleep hook logging the operation, the error code and the coming wait; never the request."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception()
        name = operation or getattr(exc, "operation_name", None) or getattr(state.fn, "__name__", "AWS call")
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "retrying %s after %s (attempt %d of %d, waiting %.2fs)",
            name,
            error_code(exc),
            state.attempt_number + 1,
            MAX_ATTEMPTS,
            wait,
        )

    return before_sleep


def aws_retrying(sleep: Callable[[float], None] = time.sleep, operation: Optional[str] = None) -> Retrying:
    """A tenacity strategy for one AWS call: retry transient failures with full-jitter backoff.

    Waits are random in [0, 0.1 * 2**(n-1)] capped at 5 s; it stops after 8
    attempts or 60 s and re-raises the last exception. `operation` (such as
    "ec2.DescribeInstances") names the call in the WARNING logged before each
    retry; `sleep` is injectable so tests do not sleep.
    """
    return Retrying(
        retry=retry_if_exception(is_transient),
        wait=wait_random_exponential(multiplier=BACKOFF_MULTIPLIER, max=MAX_WAIT),
        stop=stop_after_attempt(MAX_ATTEMPTS) | stop_after_delay(MAX_SECONDS),
        sleep=sleep,
        before_sleep=_log_retry(operation),
        reraise=True,
    )


# --- SSH ---------------------------------------------------------------------------------

SSH_ATTEMPTS = 3


def connection_lost(exc: BaseException) -> bool:
    """Connection-level failures worth a reconnect; never a host key problem."""
    if isinstance(exc, HostKeyError):
        return False
    return isinstance(exc, (paramiko.SSHException, EOFError, ConnectionResetError, BrokenPipeError, ConnectError))


def ssh_retrying(on_retry: Callable[[RetryCallState], None], sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """The one strategy for SSH work (a command, a channel, an HAProxy exchange) whose connection was lost.

    Up to SSH_ATTEMPTS attempts while `connection_lost`, waits random in [0, 0.2 * 2**(n-1)]
    capped at 2 s, then the last exception is re-raised. `on_retry` runs before each new
    attempt: it logs and drops the dead connection, so the next attempt opens a new one.
    """
    return Retrying(retry=retry_if_exception(connection_lost), stop=stop_after_attempt(SSH_ATTEMPTS),
                    wait=wait_random_exponential(multiplier=0.2, max=2), before_sleep=on_retry, sleep=sleep, reraise=True)
