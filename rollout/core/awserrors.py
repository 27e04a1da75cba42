"""What an AWS failure tells the operator: an action the policy denies, an endpoint that is not AWS, or
one that cannot be reached. Pure functions of botocore's errors and responses, each returning one line."""

from __future__ import annotations

import re
from typing import Callable, Optional

import botocore.exceptions
import urllib3.exceptions

#: Error codes of a request the caller's policy does not allow (EC2, query services, JSON services, SNS).
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
                          "AuthorizationError"})
_NOT_AUTHORIZED = re.compile(r"(?:User|Principal): (arn:\S+) is not authorized to perform: ([A-Za-z0-9-]+:[A-Za-z0-9]+)")

#: Failures to exchange HTTP with the endpoint at all (after the retries), as botocore and urllib3 raise them.
UNREACHABLE = (botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError, urllib3.exceptions.HTTPError)


# Services whose IAM prefix is not their signing name.
_IAM_PREFIX = {"monitoring": "cloudwatch"}


def action_name(signing_name: str, operation: str) -> str:
    """The IAM action of an API operation: 'ec2:DescribeInstances', 'cloudwatch:DescribeAlarms' (signed as 'monitoring')."""
    return f"{_IAM_PREFIX.get(signing_name, signing_name)}:{operation}"


def denial(response: dict, action: str, whoami: Callable[[], str]) -> Optional[str]:
    """'ACTION denied for PRINCIPAL: ...' if the error response is an IAM denial, else None.

    The action and principal come from AWS's message when it names them; otherwise `action`
    (from the operation) and `whoami()` (the caller's ARN) stand in.
    """
    error = response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    named = _NOT_AUTHORIZED.search(message)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code not in DENIED_CODES and not (named and status == 403):
        return None
    principal, action = (named.group(1), named.group(2)) if named else (whoami(), action)
    return f"{action} denied for {principal}: add it to the deploy role's policy"


def speaks_aws(metadata: dict) -> bool:
    """Whether a response came from AWS (or an AWS-compatible endpoint): every AWS answer carries a request id."""
    headers = metadata.get("HTTPHeaders", {}) or {}
    return bool(metadata.get("RequestId")) or any(str(h).lower().startswith("x-amz") for h in headers)


def not_aws(metadata: dict, endpoint: str, operation: str, code: str = "") -> Optional[str]:
    """The line for an answer that is not AWS's (a web page, a proxy's error), else None.

    An error whose code AWS would never send ('Unknown', an HTTP status) without a request id,
    or a success without one, means the endpoint is something else.
    """
    if speaks_aws(metadata) or (code and code != "Unknown" and not code.isdigit()):
        return None
    status = metadata.get("HTTPStatusCode", "?")
    kind = (metadata.get("HTTPHeaders", {}) or {}).get("content-type", "no content type")
    return (f"{endpoint} is not an AWS endpoint: it answered {operation} with HTTP {status} ({kind}) and no AWS request id;"
            " fix aws.endpoint_url")


def unreachable(exc: BaseException, endpoint: str, operation: str) -> str:
    """The line for an endpoint that could not be talked to (refused, closed, timed out, not HTTP, TLS)."""
    if isinstance(exc, botocore.exceptions.EndpointConnectionError) and not isinstance(exc, botocore.exceptions.ConnectTimeoutError):
        why = "could not connect"
    elif isinstance(exc, (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError)):
        why = "no answer in time"
    elif isinstance(exc, botocore.exceptions.SSLError):
        why = "TLS failed"
    else:
        why = "it does not speak HTTP as AWS does (the connection closed without a valid answer)"
    return f"cannot talk to the AWS endpoint {endpoint} for {operation}: {why}; check aws.endpoint_url and the network"


def unparsable(endpoint: str, operation: str) -> str:
    """The line for an answer botocore could not read at all."""
    return f"{endpoint} is not an AWS endpoint: its answer to {operation} is not an AWS response; fix aws.endpoint_url"
