"""What an AWS failure tells the operator, from botocore's own errors and responses."""

import botocore.exceptions
import pytest

from rollout.core import awserrors

ARN = "arn:aws:iam::123456789012:user/deployer"


def error(code, message, status=403):
    return {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "r"}}


@pytest.mark.parametrize(
    "response,line",
    [
        # EC2 names the principal and the action in its UnauthorizedOperation message.
        (error("UnauthorizedOperation", f"You are not authorized to perform this operation. User: {ARN} is not authorized to perform:"
                                        " ec2:DescribeInstances because no identity-based policy allows the ec2:DescribeInstances action"),
         f"ec2:DescribeInstances denied for {ARN}: add it to the deploy role's policy"),
        # Query services: AccessDenied, with the action in the message.
        (error("AccessDenied", f"User: {ARN} is not authorized to perform: elasticloadbalancing:DescribeTargetGroups"),
         f"elasticloadbalancing:DescribeTargetGroups denied for {ARN}: add it to the deploy role's policy"),
        # JSON services (DynamoDB): AccessDeniedException.
        (error("AccessDeniedException", f"User: {ARN} is not authorized to perform: dynamodb:CreateTable on resource: table/x"),
         f"dynamodb:CreateTable denied for {ARN}: add it to the deploy role's policy"),
        # moto's DynamoDB: the code is the HTTP status, the message the XML of the denial.
        (error("403", f"<Error><Code>AccessDenied</Code><Message>User: {ARN} is not authorized to perform: dynamodb:Query</Message>"),
         f"dynamodb:Query denied for {ARN}: add it to the deploy role's policy"),
        # An encoded message names nobody: the operation's action and the caller stand in.
        (error("UnauthorizedOperation", "You are not authorized to perform this operation. Encoded authorization failure message: AbC"),
         "ec2:DescribeInstances denied for arn:aws:sts::1:assumed-role/deploy/ci: add it to the deploy role's policy"),
        (error("ResourceNotFoundException", "Requested resource not found", 400), None),
        (error("Throttling", "Rate exceeded", 400), None),
        (error("403", "Forbidden, not a policy"), None),
    ],
)
def test_an_iam_denial_names_the_action_and_the_principal(response, line):
    assert awserrors.denial(response, "ec2:DescribeInstances", lambda: "arn:aws:sts::1:assumed-role/deploy/ci") == line


@pytest.mark.parametrize(
    "metadata,code,is_aws",
    [
        ({"HTTPStatusCode": 404, "HTTPHeaders": {"content-type": "text/html"}}, "", False),
        ({"HTTPStatusCode": 404, "HTTPHeaders": {"content-type": "text/html"}}, "Unknown", False),
        ({"HTTPStatusCode": 502, "HTTPHeaders": {"content-type": "text/html"}}, "502", False),
        ({"HTTPStatusCode": 200, "HTTPHeaders": {"content-type": "text/html"}}, "", False),
        ({"HTTPStatusCode": 200, "HTTPHeaders": {"x-amzn-requestid": "abc"}}, "", True),
        ({"HTTPStatusCode": 200, "RequestId": "abc", "HTTPHeaders": {}}, "", True),
        ({"HTTPStatusCode": 400, "HTTPHeaders": {}}, "Throttling", True),  # an AWS error code, whatever the headers
    ],
)
def test_an_answer_without_an_aws_request_id_is_not_aws(metadata, code, is_aws):
    line = awserrors.not_aws(metadata, "http://127.0.0.1:9", "ec2.DescribeInstances", code)
    assert (line is None) == is_aws
    if line:
        assert line.startswith("http://127.0.0.1:9 is not an AWS endpoint: it answered ec2.DescribeInstances with HTTP")


@pytest.mark.parametrize(
    "exc,why",
    [
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), "could not connect"),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="http://x"), "no answer in time"),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"), "no answer in time"),
        (botocore.exceptions.SSLError(endpoint_url="http://x", error="bad"), "TLS failed"),
        (botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"), "does not speak HTTP"),
    ],
)
def test_an_endpoint_that_cannot_be_talked_to_says_why(exc, why):
    assert isinstance(exc, awserrors.UNREACHABLE)
    assert why in awserrors.unreachable(exc, "http://x", "sts.GetCallerIdentity")


@pytest.mark.parametrize("signing,operation,action", [
    ("ec2", "DescribeInstances", "ec2:DescribeInstances"),
    ("elasticloadbalancing", "DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroups"),
    ("monitoring", "DescribeAlarms", "cloudwatch:DescribeAlarms"),  # CloudWatch signs as monitoring
])
def test_an_operation_is_named_by_its_iam_action(signing, operation, action):
    assert awserrors.action_name(signing, operation) == action
