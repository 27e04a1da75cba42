"""boto3 clients for one environment: region, optional endpoint, retries, call counting."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Optional

import boto3
import botocore.exceptions
from botocore.config import Config

from rollout.errors import AwsAccessError

# botocore's "standard" mode retries throttling and 5xx with exponential backoff and jitter.
_RETRIES = Config(retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class Aws:
    """A boto3 session bound to an environment's region and endpoint, counting API calls."""

    def __init__(self, region: str, endpoint_url: Optional[str] = None, profile: Optional[str] = None):
        self.region = region
        self.endpoint_url = endpoint_url
        try:
            self.session = boto3.Session(profile_name=profile, region_name=region)
        except botocore.exceptions.ProfileNotFound:
            raise AwsAccessError(f"AWS profile {profile!r} not found; create it (aws configure --profile {profile}) or remove aws.profile") from None
        self.calls = 0
        self.calls_by_operation: dict[str, int] = {}
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()
        self.session.events.register("before-call.*.*", self._count)

    def _count(self, model, **_):
        with self._lock:
            self.calls += 1
            key = f"{model.service_model.service_name}.{model.name}"
            self.calls_by_operation[key] = self.calls_by_operation.get(key, 0) + 1

    def client(self, service: str):
        """A cached client for `service` (elb, elbv2, ec2, autoscaling, cloudwatch, ...)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url, config=_RETRIES)
            return self._clients[service]

    def check_access(self) -> str:
        """Confirm credentials exist and the endpoint answers; return the caller's ARN."""
        if self.session.get_credentials() is None:
            raise AwsAccessError(
                "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or aws.profile in the inventory"
            )
        with translate("checking AWS credentials"):
            return self.client("sts").get_caller_identity()["Arn"]


@contextmanager
def translate(doing: str):
    """Turn credential and endpoint failures into AwsAccessError naming what we were doing."""
    try:
        yield
    except botocore.exceptions.NoCredentialsError:
        raise AwsAccessError(f"{doing}: no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise AwsAccessError(f"{doing}: cannot reach the AWS endpoint {exc.kwargs.get('endpoint_url')}; check aws.endpoint_url and the network") from None
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "UnrecognizedClientException", "AuthFailure"):
            raise AwsAccessError(f"{doing}: AWS rejected the credentials ({code}); refresh them") from None
        raise
