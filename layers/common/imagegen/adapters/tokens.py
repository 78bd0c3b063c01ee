"""API tokens: only their SHA-256 is stored; the token itself is shown once, when it is issued."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
TOKEN_PREFIX = "igk_"  # noqa: S105 - a marker that makes leaked tokens greppable, not a secret


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def issue(self, user_id: str, token: str | None = None) -> str:
        if not USER_ID_PATTERN.fullmatch(user_id):
            raise ValueError("user id must be 1-64 characters of letters, digits, _ . @ -")
        token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": f"TOKEN#{_digest(token)}"},
                "sk": {"S": "TOKEN"},
                "user_id": {"S": user_id},
                "created_at": {"S": datetime.now(UTC).isoformat()},
            },
        )
        return token

    def resolve(self, token: str) -> str | None:
        if not token or len(token) > 512:
            return None
        item = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": f"TOKEN#{_digest(token)}"}, "sk": {"S": "TOKEN"}}
        ).get("Item")
        return item["user_id"]["S"] if item else None
