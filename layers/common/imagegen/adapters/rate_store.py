"""DynamoDB token buckets: one item per provider (+ route) and key scope; a lease is one conditional write that adds to
the bucket's arrival time, a provider's "wait" one conditional write that only ever moves the block later."""

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
    """Item: pk=RATE#{provider[/route]}#{scope}, sk=RATE; tat (the bucket's theoretical arrival time) and blocked_until
    (epoch seconds), expires_at."""

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
        if not item:
            return None
        tat = item.get("tat", {}).get("N")
        return BucketRecord(
            tat=float(tat) if tat is not None else None,
            blocked_until=float(item.get("blocked_until", {"N": "0"})["N"]),
        )

    def advance(self, name: str, scope: str, *, now: float, cost: float, tolerance: float, idle: bool) -> bool:
        unblocked = "(attribute_not_exists(blocked_until) OR blocked_until <= :now)"
        if idle:
            update, condition = "SET tat = :start", f"(attribute_not_exists(tat) OR tat < :now) AND {unblocked}"
            values = {":start": _n(now + cost)}
        else:
            # Commutes with every other container's lease, the first ones on a new bucket included: no read, no lost
            # update; fails only when the bucket does not hold `cost` (or went idle meanwhile).
            update = "SET tat = if_not_exists(tat, :now) + :cost"
            condition = f"(attribute_not_exists(tat) OR (tat >= :now AND tat <= :last)) AND {unblocked}"
            values = {":cost": _n(cost), ":last": _n(now + tolerance - cost)}
        return self._update(
            name,
            scope,
            UpdateExpression=f"{update}, expires_at = :ttl",
            ConditionExpression=condition,
            ExpressionAttributeValues={**values, ":now": _n(now), ":ttl": {"N": str(int(now) + TTL_S)}},
        )

    def block(self, name: str, scope: str, until: float, now: float) -> None:
        self._update(
            name,
            scope,
            UpdateExpression="SET blocked_until = :until, expires_at = :ttl",
            ConditionExpression="attribute_not_exists(blocked_until) OR blocked_until < :until",
            ExpressionAttributeValues={":until": _n(until), ":ttl": {"N": str(int(until) + TTL_S)}},
        )

    def _update(self, name: str, scope: str, **kwargs: Any) -> bool:
        try:
            return update_if(self.client, TableName=self.table_name, Key=_key(name, scope), **kwargs) is not None
        except (ClientError, BotoCoreError) as exc:
            raise RateLimitUnavailable(type(exc).__name__) from exc
