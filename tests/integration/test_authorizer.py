"""The REQUEST authorizer against tokens stored (hashed) in moto's DynamoDB."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from imagegen import cli
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


def _authorize(token: str) -> dict:
    return load_function("authorizer").lambda_handler(_event(f"Bearer {token}"), FakeLambdaContext("Authorizer"))


def test_given_a_token_past_its_expiry_when_authorized_then_unauthorized(aws: Aws):
    # Given a token issued two hours ago for one hour, and one issued now for a day
    store = TokenStore(aws.table, aws.client("dynamodb"))
    old = store.issue("alice", expires_in=timedelta(hours=1), now=datetime.now(UTC) - timedelta(hours=2))
    fresh = store.issue("alice", expires_in=timedelta(days=1))

    # When each is presented, then the expired one is refused (DynamoDB's TTL has not removed it yet)
    with pytest.raises(PermissionError, match=r"^Unauthorized$"):
        _authorize(old)
    assert _authorize(fresh)["principalId"] == "alice"


def test_given_tokens_when_listed_and_one_revoked_then_it_is_refused_and_the_others_still_work(aws: Aws):
    # Given two tokens of alice and one of bob
    store = TokenStore(aws.table, aws.client("dynamodb"))
    first, second = store.issue("alice"), store.issue("alice", expires_in=timedelta(days=30))
    bob = store.issue("bob")

    # When alice's tokens are listed and the first is revoked by its id
    listed = store.list("alice")
    [revoked] = [info for info in listed if info.digest == hashlib.sha256(first.encode()).hexdigest()]
    store.revoke(revoked.id)

    # Then the list shows ids and expiry (never a token), and only the revoked token is refused
    assert [info.user_id for info in listed] == ["alice", "alice"]
    assert sorted(info.expires_at is None for info in listed) == [False, True]
    assert all(len(info.id) == 16 and info.id not in (first, second) for info in listed)
    with pytest.raises(PermissionError):
        _authorize(first)
    assert _authorize(second)["principalId"] == "alice"
    assert [info.user_id for info in store.list()] == ["alice", "bob"]
    assert [info.user_id for info in store.revoke_user("bob")] == ["bob"]
    with pytest.raises(PermissionError):
        _authorize(bob)


def test_given_the_tokens_commands_when_run_then_create_list_and_revoke_work_without_printing_a_token_twice(
    aws: Aws, capsys: pytest.CaptureFixture[str]
):
    # Given a token made with the command line, with an expiry
    assert cli.main(["tokens", "create", "--user", "dana", "--expires-in", "7d", "--table", aws.table]) == 0
    token = capsys.readouterr().out.strip()

    # When the tokens are listed, then the list names the user and the expiry, never the token
    assert cli.main(["tokens", "list", "--table", aws.table]) == 0
    listing = capsys.readouterr().out
    [row] = [line for line in listing.splitlines() if "dana" in line]
    token_id = row.split()[0]
    assert token not in listing
    assert hashlib.sha256(token.encode()).hexdigest().startswith(token_id)
    expires = datetime.now(UTC) + timedelta(days=7)
    assert expires.date().isoformat() in row

    # When it is revoked by its id, then the authorizer refuses it
    assert cli.main(["tokens", "revoke", token_id, "--table", aws.table]) == 0
    assert "revoked" in capsys.readouterr().out
    with pytest.raises(PermissionError):
        _authorize(token)
    assert cli.main(["tokens", "revoke", token_id, "--table", aws.table]) == 1


def test_given_a_token_stored_before_tokens_were_listed_when_reindexed_then_it_is_listed_and_revocable(aws: Aws):
    # Given a token item as the earlier release stored it (no index entry)
    token = "igk_from-an-earlier-release"
    digest = hashlib.sha256(token.encode()).hexdigest()
    aws.client("dynamodb").put_item(
        TableName=aws.table,
        Item={
            "pk": {"S": f"TOKEN#{digest}"},
            "sk": {"S": "TOKEN"},
            "user_id": {"S": "erin"},
            "created_at": {"S": "2026-01-01T00:00:00+00:00"},
        },
    )
    store = TokenStore(aws.table, aws.client("dynamodb"))
    assert store.list() == []

    # When the table is reindexed, then the token is listed, and revoking it makes the authorizer refuse it
    assert store.reindex() == 1
    assert [info.id for info in store.list("erin")] == [digest[:16]]
    assert _authorize(token)["principalId"] == "erin"
    store.revoke(digest[:12])
    with pytest.raises(PermissionError):
        _authorize(token)
