"""rollout.adapters.retry: which failures are retried, how long it waits, when it gives up. No real sleeping."""

import logging

import botocore.exceptions
import paramiko
import pytest
import urllib3.exceptions

from rollout.adapters import retry
from rollout.adapters.retry import aws_retrying, is_transient
from rollout.core.errors import ConnectError, HostKeyError


def client_error(code: str, status: int = 400, operation: str = "DescribeInstances") -> botocore.exceptions.ClientError:
    response = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, operation)


@pytest.mark.parametrize(
    "exc, transient",
    [
        (client_error("Throttling"), True),
        (client_error("ThrottlingException"), True),
        (client_error("RequestLimitExceeded", 503), True),
        (client_error("TooManyRequestsException", 429), True),
        (client_error("RequestThrottled"), True),
        (client_error("SlowDown", 503), True),
        (client_error("ProvisionedThroughputExceededException"), True),
        (client_error("RequestTimeout"), True),
        (client_error("InternalError", 500), True),
        (client_error("InternalFailure", 500), True),
        (client_error("ServiceUnavailable", 503), True),
        (client_error("SomethingNew", 502), True),
        (client_error("TransactionConflictException"), True),
        (client_error("AccessDenied", 403), False),
        (client_error("ValidationError"), False),
        (client_error("TargetGroupNotFound"), False),
        (client_error("InvalidInstanceID.NotFound"), False),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (botocore.exceptions.ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), True),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (urllib3.exceptions.ProtocolError("reset"), True),
        (botocore.exceptions.NoCredentialsError(), False),
        (ValueError("bug"), False),
    ],
)
def test_is_transient_retries_throttling_5xx_and_connection_failures_only(exc, transient):
    assert is_transient(exc) is transient


class Flaky:
    """Fails with `errors` in turn, then returns "ok"; counts its calls."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, **kwargs):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_throttling_twice_then_success_is_retried_with_two_jittered_growing_waits():
    sleeps = []
    method = Flaky(client_error("Throttling"), client_error("Throttling"))
    assert aws_retrying(sleep=sleeps.append)(method, InstanceIds=["i-1"]) == "ok"
    assert method.calls == 3
    assert len(sleeps) == 2
    # full jitter: wait n is uniform in [0, 0.1 * 2**(n-1)]
    assert 0 <= sleeps[0] <= 0.1
    assert 0 <= sleeps[1] <= 0.2


def test_wait_ceiling_doubles_per_attempt_up_to_five_seconds(monkeypatch):
    monkeypatch.setattr("tenacity.wait.random.uniform", lambda lo, hi: hi)
    sleeps = []
    method = Flaky(*[client_error("Throttling")] * 7)
    assert aws_retrying(sleep=sleeps.append)(method) == "ok"
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0])


def test_wait_floor_is_zero_full_jitter(monkeypatch):
    monkeypatch.setattr("tenacity.wait.random.uniform", lambda lo, hi: lo)
    sleeps = []
    assert aws_retrying(sleep=sleeps.append)(Flaky(client_error("Throttling"), client_error("Throttling"))) == "ok"
    assert sleeps == [0, 0]


def test_access_denied_is_raised_at_once_without_waiting():
    sleeps = []
    method = Flaky(client_error("AccessDenied", 403))
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        aws_retrying(sleep=sleeps.append)(method)
    assert raised.value.response["Error"]["Code"] == "AccessDenied"
    assert method.calls == 1
    assert sleeps == []


def test_gives_up_after_eight_attempts_and_reraises_the_last_error():
    sleeps = []
    method = Flaky(*[client_error("RequestLimitExceeded", 503)] * 20)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        aws_retrying(sleep=sleeps.append)(method)
    assert raised.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert method.calls == retry.MAX_ATTEMPTS == 8
    assert len(sleeps) == 7
    assert all(0 <= s <= retry.MAX_WAIT for s in sleeps)


def test_retry_warning_names_operation_and_code_but_not_the_request(caplog):
    caplog.set_level(logging.WARNING, logger="rollout.aws")
    sleeps = []
    method = Flaky(client_error("Throttling"))
    aws_retrying(sleep=sleeps.append, operation="ec2.DescribeInstances")(method, Filters=[{"Name": "tag:Secret", "Values": ["hunter2"]}])
    [record] = [r for r in caplog.records if r.name == "rollout.aws"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"retrying ec2.DescribeInstances after Throttling (attempt 2 of 8, waiting {sleeps[0]:.2f}s)"
    assert "hunter2" not in caplog.text


def test_retry_warning_without_operation_uses_the_client_errors_operation(caplog):
    caplog.set_level(logging.WARNING, logger="rollout.aws")
    aws_retrying(sleep=lambda s: None)(Flaky(client_error("SlowDown", 503, operation="PutObject")))
    assert "retrying PutObject after SlowDown (attempt 2 of 8" in caplog.text


def cancelled(*codes: str, with_reasons: bool = True) -> botocore.exceptions.ClientError:
    """A TransactionCanceledException as botocore parses it: reasons listed, and in the message."""
    response = {"Error": {"Code": "TransactionCanceledException",
                          "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{', '.join(codes)}]"},
                "ResponseMetadata": {"HTTPStatusCode": 400}}
    if with_reasons:
        response["CancellationReasons"] = [{"Code": c} for c in codes]
    return botocore.exceptions.ClientError(response, "TransactWriteItems")


@pytest.mark.parametrize(
    "exc, transient, condition_failed",
    [
        (cancelled("None", "TransactionConflict"), True, False),
        (cancelled("ThrottlingError", "None"), True, False),
        (cancelled("TransactionConflict", "TransactionConflict"), True, False),
        (cancelled("None", "TransactionConflict", with_reasons=False), True, False),
        (cancelled("ConditionalCheckFailed", "None"), False, True),
        (cancelled("ConditionalCheckFailed", "TransactionConflict"), False, True),
        (cancelled("None", "ConditionalCheckFailed", with_reasons=False), False, True),
        (cancelled("None", "ValidationError"), False, False),
    ],
)
def test_cancelled_transaction_is_retried_for_conflicts_and_throttling_and_a_conflict_only_for_a_failed_condition(
        exc, transient, condition_failed):
    from rollout.state.store import condition_failed as failed

    assert is_transient(exc) is transient
    assert failed(exc) is condition_failed


def test_transaction_conflict_twice_then_success_is_retried():
    call = Flaky(cancelled("None", "TransactionConflict"), cancelled("ThrottlingError"))
    waits = []
    assert aws_retrying(sleep=waits.append)(call) == "ok"
    assert call.calls == 3 and len(waits) == 2


# --- SSH: the one recipe (ssh.Fleet.run, ssh.Fleet.bastion_channel, HAProxy's runtime API) ---

@pytest.mark.parametrize(
    "exc, lost",
    [
        (EOFError(), True),
        (ConnectionResetError(), True),
        (BrokenPipeError(), True),
        (paramiko.SSHException("Server connection dropped"), True),
        (ConnectError("host 10.0.0.1: connection lost"), True),
        (HostKeyError("host 10.0.0.1: host key does not match"), False),
        (ValueError("a bug"), False),
        (TimeoutError(), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_only_a_lost_connection_is_worth_a_reconnect(exc, lost):
    assert retry.connection_lost(exc) is lost


def test_ssh_retrying_tries_three_times_dropping_the_connection_before_each_retry_then_reraises():
    slept, dropped, calls = [], [], []

    def lose():
        calls.append(1)
        raise EOFError("gone")

    with pytest.raises(EOFError):
        for attempt in retry.ssh_retrying(lambda state: dropped.append(state.attempt_number), sleep=slept.append):
            with attempt:
                lose()
    assert (len(calls), dropped, len(slept)) == (retry.SSH_ATTEMPTS, [1, 2], 2)
    assert all(0 <= s <= 2 for s in slept)


def test_ssh_retrying_never_retries_a_host_key_problem():
    calls = []
    with pytest.raises(HostKeyError):
        for attempt in retry.ssh_retrying(lambda state: pytest.fail("must not retry"), sleep=lambda s: pytest.fail("slept")):
            with attempt:
                calls.append(1)
                raise HostKeyError("host 10.0.0.1: host key unknown")
    assert calls == [1]
