"""boto3 clients for one environment: region, optional endpoint, retries, call counting."""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from functools import cache
from typing import Callable, Optional

import boto3
import botocore
import botocore.credentials
import botocore.exceptions
import botocore.parsers
import botocore.session
from botocore.config import Config
from botocore.paginate import Paginator
from botocore.waiter import Waiter, create_waiter_with_client

from rollout import __version__
from rollout.adapters.retry import aws_retrying
from rollout.core import awserrors
from rollout.core.errors import AwsAccessError, ConfigError

USER_AGENT = f"rollout/{__version__}"
# botocore's own retries are off: every retry goes through tenacity (rollout.adapters.retry), so it
# is logged and bounded in one place. "standard" is pinned so AWS_RETRY_MODE=adaptive
# cannot add botocore's client-side rate limiter (its own sleeps) behind our back.
# The user agent names rollout (`rollout/VERSION`), so an endpoint's log tells its calls from others'.
_NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30,
                     user_agent_extra=USER_AGENT)


class Aws:
    """A boto3 session bound to an environment's region and endpoint, counting API calls.

    `calls` counts HTTP attempts (botocore's before-call
    event fires once per attempt now that botocore does not retry by itself), so
    a call retried by tenacity after throttling counts twice.
    """

    def __init__(
        self,
        region: str,
        endpoint_url: Optional[str] = None,
        profile: Optional[str] = None,
        sleep: Callable[[float], None] = time.sleep,
        role=None,
        requester: str = "",
    ):
        problem = region_problem(region, endpoint_url)
        if problem:
            raise ConfigError(problem)
        self.region = region
        self.endpoint_url = endpoint_url
        self._sleep = sleep
        self._botocore = botocore.session.get_session()
        try:
            self.session = boto3.Session(botocore_session=self._botocore, profile_name=profile, region_name=region)
        except botocore.exceptions.ProfileNotFound:
            raise AwsAccessError(f"AWS profile {profile!r} not found; create it (aws configure --profile {profile}) or remove aws.profile") from None
        self._principal: Optional[str] = None
        if role is not None:
            self._botocore = botocore.session.get_session()
            self._botocore.register_component("credential_provider", botocore.credentials.CredentialResolver(
                [_AssumedRole(self.session, role, session_name(requester), region, endpoint_url)]))
            self.session = boto3.Session(botocore_session=self._botocore, region_name=region)
        self.calls = 0
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()
        self.session.events.register("before-call.*.*", self._count)

    def _count(self, model, **_):
        with self._lock:
            self.calls += 1

    def client(self, service: str) -> "RetryingClient":
        """A cached client for `service` (elb, elbv2, ec2, autoscaling, cloudwatch, ...).

        Returns a RetryingClient: the boto3 client's API methods, paginators and
        waiters, each HTTP call retried by rollout.adapters.retry.aws_retrying().
        """
        with self._lock:
            if service not in self._clients:
                raw = self.session.client(service, endpoint_url=self.endpoint_url, config=_NO_RETRIES)
                self._clients[service] = RetryingClient(raw, self._botocore, sleep=self._sleep, whoami=self.principal)
            return self._clients[service]

    def require_credentials(self) -> None:
        """Fail unless credentials are configured (no network call)."""
        if self.session.get_credentials() is None:
            raise AwsAccessError(
                "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or aws.profile in the inventory"
            )

    def principal(self) -> str:
        """The caller's ARN, for error messages; 'these credentials' if even that cannot be read."""
        if self._principal is None:
            try:
                raw = self.session.client("sts", endpoint_url=self.endpoint_url, config=_NO_RETRIES)
                self._principal = raw.get_caller_identity()["Arn"]
            except Exception:  # noqa: BLE001 - only names the caller in a message about another failure
                return "these credentials"
        return self._principal

    def check_access(self) -> str:
        """Confirm credentials exist and the endpoint answers; return the caller's ARN."""
        self.require_credentials()
        with translate("checking AWS credentials"):
            return self.client("sts").get_caller_identity()["Arn"]


@cache
def known_regions() -> frozenset[str]:
    """Every region of every AWS partition that this botocore knows (read from its own data, offline)."""
    session = botocore.session.get_session()
    return frozenset(r for p in session.get_available_partitions() for r in session.get_available_regions("ec2", p))


def region_problem(region: str, endpoint_url: Optional[str]) -> Optional[str]:
    """Why `region` cannot be reached on AWS's own endpoints (None if it can, or if `endpoint_url` is given)."""
    if endpoint_url or region in known_regions():
        return None
    return (f"aws.region {region!r} is not an AWS region (botocore {botocore.__version__} knows {len(known_regions())},"
            " e.g. eu-west-1, us-east-1); fix aws.region, or set aws.endpoint_url for an endpoint of your own")


def session_name(requester: str) -> str:
    """An STS RoleSessionName naming the requester: `rollout-WHO`, unsupported characters as '-', at most 64."""
    return ("rollout-" + re.sub(r"[^A-Za-z0-9+=,.@_-]", "-", requester or "unknown"))[:64]


class _AssumedRole(botocore.credentials.CredentialProvider):
    """Credentials of `role`, assumed with the source session's credentials when first asked for, renewed before expiry."""

    METHOD = "assume-role"

    def __init__(self, source: boto3.Session, role, name: str, region: str, endpoint_url: Optional[str]):
        self._source, self._role, self._name, self._region, self._endpoint = source, role, name, region, endpoint_url

    def load(self):
        source = self._source.get_credentials()
        if source is None:
            return None
        extra = {"RoleSessionName": self._name, "DurationSeconds": self._role.duration}
        if self._role.external_id:
            extra["ExternalId"] = self._role.external_id

        def sts(service, **kwargs):
            return self._source.client(service, region_name=self._region, endpoint_url=self._endpoint, config=_NO_RETRIES, **kwargs)

        fetcher = botocore.credentials.AssumeRoleCredentialFetcher(sts, source, self._role.arn, extra_args=extra)

        def fetch():
            try:
                return fetcher.fetch_credentials()
            except botocore.exceptions.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                raise AwsAccessError(f"cannot assume role {self._role.arn} ({code}): check aws.role (arn, external_id)"
                                     " and the role's trust policy, and that your credentials may assume it") from None

        # Fetched now, not deferred: botocore logs a failed deferred fetch with its traceback.
        return botocore.credentials.RefreshableCredentials.create_from_metadata(fetch(), fetch, self.METHOD)


class RetryingClient:
    """A boto3 client whose API calls, paginator pages and waiter polls are retried with tenacity.

    Anything that is not an API method (`exceptions`, `meta`, `can_paginate`, ...)
    is the wrapped client's own attribute.
    """

    def __init__(self, client, botocore_session: botocore.session.Session, sleep: Callable[[float], None] = time.sleep,
                 whoami: Callable[[], str] = lambda: "these credentials"):
        self._client = client
        self._botocore = botocore_session
        self._sleep = sleep
        self._whoami = whoami
        self._methods: dict[str, Callable] = {}
        self._service = client.meta.service_model.service_name

    def __getattr__(self, name: str):
        if name.startswith("_"):  # never reached for our own attributes; avoids recursion before __init__
            raise AttributeError(name)
        operation = self._client.meta.method_to_api_mapping.get(name)
        if operation is None:
            return getattr(self._client, name)
        if name not in self._methods:
            self._methods[name] = self._retried(getattr(self._client, name), f"{self._service}.{operation}")
        return self._methods[name]

    def _retried(self, method: Callable, operation: str) -> Callable:
        """`method` called through a fresh aws_retrying() strategy on every call.

        An IAM denial, an endpoint that is not AWS, or one that cannot be reached (after the
        retries) becomes AwsAccessError naming the action or the endpoint.
        """
        endpoint = self._client.meta.endpoint_url
        action = awserrors.action_name(self._client.meta.service_model.signing_name, operation.split(".", 1)[1])

        def call(*args, **kwargs):
            try:
                response = aws_retrying(sleep=self._sleep, operation=operation)(method, *args, **kwargs)
            except botocore.exceptions.ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                line = (awserrors.denial(exc.response, action, self._whoami)
                        or awserrors.not_aws(exc.response.get("ResponseMetadata", {}), endpoint, operation, code))
                if line is None:
                    raise
                raise AwsAccessError(line) from None
            except (botocore.parsers.ResponseParserError, KeyError):  # KeyError: botocore reading a body that is not AWS XML
                raise AwsAccessError(awserrors.unparsable(endpoint, operation)) from None
            except awserrors.UNREACHABLE as exc:
                raise AwsAccessError(awserrors.unreachable(exc, endpoint, operation)) from None
            line = awserrors.not_aws(response.get("ResponseMetadata", {}), endpoint, operation)
            if line:
                raise AwsAccessError(line)
            return response

        call.__name__ = method.__name__
        call.__doc__ = method.__doc__
        return call

    def get_paginator(self, operation_name: str) -> Paginator:
        """botocore's paginator for `operation_name`, fetching each page through the retried method."""
        if not self._client.can_paginate(operation_name):
            return self._client.get_paginator(operation_name)  # raises OperationNotPageableError
        meta = self._client.meta
        api_name = meta.method_to_api_mapping[operation_name]
        model = self._botocore.get_paginator_model(self._service, meta.service_model.api_version)
        return Paginator(getattr(self, operation_name), model.get_paginator(api_name), meta.service_model.operation_model(api_name))

    def get_waiter(self, waiter_name: str) -> Waiter:
        """botocore's waiter `waiter_name`, polling through the retried method."""
        model = self._botocore.get_waiter_model(self._service, self._client.meta.service_model.api_version)
        names = {botocore.xform_name(n): n for n in model.waiter_names}
        if waiter_name not in names:
            raise ValueError(f"Waiter does not exist: {waiter_name}")
        return create_waiter_with_client(names[waiter_name], model, self)


@contextmanager
def translate(doing: str):
    """Turn credential and endpoint failures into AwsAccessError naming what we were doing."""
    try:
        yield
    except botocore.exceptions.NoCredentialsError:
        raise AwsAccessError(f"{doing}: no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "UnrecognizedClientException", "AuthFailure"):
            raise AwsAccessError(f"{doing}: AWS rejected the credentials ({code}); refresh them") from None
        raise


def from_config(cfg, requester: str) -> Aws:
    """An Aws for an inventory's `aws` section; a role is assumed in a session named after `requester`."""
    return Aws(cfg.region, cfg.endpoint_url, cfg.profile, role=cfg.role, requester=requester if cfg.role else "")
