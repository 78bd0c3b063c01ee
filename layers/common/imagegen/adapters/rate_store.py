"""DynamoDB token buckets: one item per provider (+ route) and key scope; a lease is one conditional write on the
bucket as it was read, a provider's "wait" one conditional write that only ever moves the block later."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from imagegen.adapters.dynamo import update_if
from imagegen.chain.limits import BucketRecord, RateLimitUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SK = "RATE"
# A bucket nobody used for a day is dropped by TTL (an unused bucket is a full one).
TTL_S = 86400


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value))}


def _key(name: str, scope: str) -> dict[str, Any]:
    return {"pk": {"S": f"RATE#{name}#{scope}"}, "sk": {"S": SK}}


class DynamoRateStore:
    """Item: pk=RATE#{provider[/route]}#{scope}, sk=RATE; tokens, at, blocked_until (epoch seconds), expires_at."""

    def __init__(self, table_name: str, dynamodb_client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = dynamodb_client

    def read(self, name: str, scope: str) -> BucketRecord | None:
        try:
            item = self.client.get_item(TableName=self.table_name, Key=_key(name, scope), ConsistentRead=True).get(
                "Item"
            )
        except (ClientError, BotoCoreError) as exc:
            raise RateLimitUnavailable(type(exc).__name__) from exc
        if not item or "at" not in item:
            return None
        return BucketRecord(
            tokens=float(item["tokens"]["N"]),
            at=float(item["at"]["N"]),
            blocked_until=float(item.get("blocked_until", {"N": "0"})["N"]),
        )

    def take(self, name: str, scope: str, *, seen: BucketRecord | None, left: BucketRecord) -> bool:
        if seen is None:
            condition, values = "attribute_not_exists(#at)", {}
        else:
            condition, values = "#at = :seen", {":seen": _n(seen.at)}
        return self._update(
            name,
            scope,
            UpdateExpression="SET tokens = :tokens, #at = :at, blocked_until = :blocked, expires_at = :ttl",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues={
                **values,
                ":tokens": _n(left.tokens),
                ":at": _n(left.at),
                ":blocked": _n(left.blocked_until),
                ":ttl": {"N": str(int(left.at) + TTL_S)},
            },
        )

    def block(self, name: str, scope: str, until: float, now: float) -> None:
        self._update(
            name,
            scope,
            UpdateExpression="SET tokens = :zero, #at = :now, blocked_until = :until, expires_at = :ttl",
            ConditionExpression="attribute_not_exists(blocked_until) OR blocked_until < :until",
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues={
                ":zero": _n(0),
                ":now": _n(now),
                ":until": _n(until),
                ":ttl": {"N": str(int(until) + TTL_S)},
            },
        )

    def _update(self, name: str, scope: str, **kwargs: Any) -> bool:
        try:
            return update_if(self.client, TableName=self.table_name, Key=_key(name, scope), **kwargs) is not None
        except (ClientError, BotoCoreError) as exc:
            raise RateLimitUnavailable(type(exc).__name__) from exc
