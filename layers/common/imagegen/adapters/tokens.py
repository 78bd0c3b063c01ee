"""API tokens: only their SHA-256 is stored; the token itself is shown once, when it is issued.

Item `pk=TOKEN#{sha256}` `sk=TOKEN` with the user, when it was made, and optionally `expires_at` (unix seconds, also
the table's TTL attribute, so DynamoDB removes it some time after; the authorizer refuses it from that second on).
`gsi1pk="TOKENS"` `gsi1sk="{user}#{created}#{sha256}"` lets `imagegen tokens list` and `revoke` find them.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
TOKEN_PREFIX = "igk_"  # noqa: S105 - a marker that makes leaked tokens greppable, not a secret
TOKENS_PARTITION = "TOKENS"
# How many hex digits of the hash name a token in lists (enough to tell tokens apart; revoke takes any unique prefix).
TOKEN_ID_LENGTH = 16
MIN_ID_PREFIX = 8


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """A stored token as `imagegen tokens list` shows it: never the token, only a prefix of its hash."""

    id: str
    user_id: str
    created_at: datetime
    expires_at: datetime | None
    digest: str

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class TokenNotFound(LookupError):
    """No stored token matches, or a prefix matches more than one."""


class TokenStore:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def issue(
        self,
        user_id: str,
        token: str | None = None,
        *,
        expires_in: timedelta | None = None,
        now: datetime | None = None,
    ) -> str:
        if not USER_ID_PATTERN.fullmatch(user_id):
            raise ValueError("user id must be 1-64 characters of letters, digits, _ . @ -")
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValueError("a token's lifetime must be positive")
        token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = now or datetime.now(UTC)
        digest = _digest(token)
        item: dict[str, Any] = {
            "pk": {"S": f"TOKEN#{digest}"},
            "sk": {"S": "TOKEN"},
            "user_id": {"S": user_id},
            "created_at": {"S": created.isoformat()},
            "gsi1pk": {"S": TOKENS_PARTITION},
            "gsi1sk": {"S": f"{user_id}#{created.isoformat()}#{digest}"},
        }
        if expires_in is not None:
            item["expires_at"] = {"N": str(int((created + expires_in).timestamp()))}
        self._client.put_item(TableName=self._table, Item=item)
        return token

    def resolve(self, token: str, *, now: datetime | None = None) -> str | None:
        if not token or len(token) > 512:
            return None
        item = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": f"TOKEN#{_digest(token)}"}, "sk": {"S": "TOKEN"}}
        ).get("Item")
        if item is None:
            return None
        # DynamoDB's TTL deletes expired items only eventually (within days): the expiry is checked here.
        expires = item.get("expires_at", {}).get("N")
        if expires is not None and int(expires) <= (now or datetime.now(UTC)).timestamp():
            return None
        return item["user_id"]["S"]

    def list(self, user_id: str | None = None) -> list[TokenInfo]:
        """Every token (or one user's), by user and then oldest first."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :tokens",
            "ExpressionAttributeValues": {":tokens": {"S": TOKENS_PARTITION}},
        }
        if user_id is not None:
            query["KeyConditionExpression"] += " AND begins_with(gsi1sk, :user)"
            query["ExpressionAttributeValues"][":user"] = {"S": f"{user_id}#"}
        found: list[TokenInfo] = []
        while True:
            answer = self._client.query(**query)
            found.extend(_info(item) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return found
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def revoke(self, token_id: str) -> TokenInfo:
        """Delete the one token whose id (a hex prefix of its hash, at least 8 digits) matches."""
        prefix = token_id.strip().lower()
        if len(prefix) < MIN_ID_PREFIX or not re.fullmatch(r"[0-9a-f]+", prefix):
            raise TokenNotFound(f"a token id is at least {MIN_ID_PREFIX} hex digits (as `imagegen tokens list` shows)")
        matches = [info for info in self.list() if info.digest.startswith(prefix)]
        if len(matches) != 1:
            raise TokenNotFound(f"{len(matches)} tokens match {prefix}" if matches else f"no token matches {prefix}")
        self._delete(matches[0])
        return matches[0]

    def revoke_user(self, user_id: str) -> builtins.list[TokenInfo]:
        """Delete every token of one user."""
        revoked = self.list(user_id)
        for info in revoked:
            self._delete(info)
        return revoked

    def reindex(self) -> int:
        """Give tokens issued before tokens could be listed their index entry (one Scan of the table, for the
        command line's `tokens reindex`); the number of tokens indexed."""
        scan: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "sk = :token AND attribute_not_exists(gsi1pk)",
            "ExpressionAttributeValues": {":token": {"S": "TOKEN"}},
        }
        indexed = 0
        while True:
            answer = self._client.scan(**scan)
            for item in answer.get("Items", []):
                digest = item["pk"]["S"].removeprefix("TOKEN#")
                self._client.update_item(
                    TableName=self._table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET gsi1pk = :tokens, gsi1sk = :sort",
                    ExpressionAttributeValues={
                        ":tokens": {"S": TOKENS_PARTITION},
                        ":sort": {"S": f"{item['user_id']['S']}#{item['created_at']['S']}#{digest}"},
                    },
                )
                indexed += 1
            if "LastEvaluatedKey" not in answer:
                return indexed
            scan["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _delete(self, info: TokenInfo) -> None:
        self._client.delete_item(TableName=self._table, Key={"pk": {"S": f"TOKEN#{info.digest}"}, "sk": {"S": "TOKEN"}})


def _info(item: dict[str, Any]) -> TokenInfo:
    digest = item["pk"]["S"].removeprefix("TOKEN#")
    expires = item.get("expires_at", {}).get("N")
    return TokenInfo(
        id=digest[:TOKEN_ID_LENGTH],
        user_id=item["user_id"]["S"],
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        expires_at=datetime.fromtimestamp(int(expires), UTC) if expires else None,
        digest=digest,
    )
