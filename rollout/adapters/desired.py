"""The desired version in SSM Parameter Store: written after a run, read by `status` and by booting instances."""

from __future__ import annotations

from typing import Optional

from botocore.exceptions import ClientError

from rollout.adapters.aws import Aws, translate
from rollout.core.desired import Desired, decode, encode


def publish(aws: Aws, parameter: str, desired: Desired) -> None:
    """Write the record in one PutParameter (version and run id change together)."""
    with translate(f"writing the desired version to SSM parameter {parameter}"):
        aws.client("ssm").put_parameter(Name=parameter, Value=encode(desired), Type="String", Overwrite=True)


def read(aws: Aws, parameter: str) -> Optional[Desired]:
    """The published record; None if the parameter does not exist or holds no record."""
    with translate(f"reading SSM parameter {parameter}"):
        try:
            value = aws.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ParameterNotFound":
                return None
            raise
    return decode(value)
