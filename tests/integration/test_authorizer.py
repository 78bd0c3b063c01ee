"""The REQUEST authorizer against tokens stored (hashed) in moto's DynamoDB."""

from __future__ import annotations

import hashlib

import pytest
from imagegen.adapters.tokens import TokenStore

from tests.conftest import Aws, FakeLambdaContext, load_function

pytestmark = pytest.mark.integration
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/GET/v1/images"


def _event(authorization: str | None) -> dict:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "resource": "/v1/{proxy+}",
        "path": "/v1/images",
        "httpMethod": "GET",
        "headers": headers,
        "queryStringParameters": {},
        "requestContext": {"stage": "api", "httpMethod": "GET", "resourcePath": "/v1/{proxy+}"},
    }


def test_given_issued_token_when_authorized_then_allow_all_routes_with_user_context(aws: Aws):
    token = TokenStore(aws.table, aws.client("dynamodb")).issue("alice")

    policy = load_function("authorizer").lambda_handler(_event(f"Bearer {token}"), FakeLambdaContext("Authorizer"))

    assert policy["principalId"] == "alice"
    assert policy["context"] == {"user_id": "alice"}
    statement = policy["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == ["arn:aws:execute-api:us-east-1:123456789012:abc123/api/*/*"]


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer nope", "Basic YWxpY2U6eA==", "igk_raw"])
def test_given_missing_or_bad_token_when_authorized_then_unauthorized(aws: Aws, authorization: str | None):
    TokenStore(aws.table, aws.client("dynamodb")).issue("alice")

    with pytest.raises(PermissionError, match=r"^Unauthorized$"):
        load_function("authorizer").lambda_handler(_event(authorization), FakeLambdaContext("Authorizer"))


def test_given_issued_token_when_stored_then_only_its_sha256_is_kept(aws: Aws):
    token = TokenStore(aws.table, aws.client("dynamodb")).issue("carol")

    items = aws.client("dynamodb").scan(TableName=aws.table)["Items"]

    assert token.startswith("igk_")
    assert [item["pk"]["S"] for item in items] == [f"TOKEN#{hashlib.sha256(token.encode()).hexdigest()}"]
    assert token not in str(items)


def test_given_bad_user_name_when_issuing_then_refused(aws: Aws):
    with pytest.raises(ValueError, match="user id"):
        TokenStore(aws.table, aws.client("dynamodb")).issue("bad user!")
