"""DynamoDB circuit-breaker items: one per provider (+ route) and key scope, changed only by conditional writes, and
only when a breaker changes state (a healthy breaker costs no write at all)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from imagegen.adapters.dynamo import update_if
from imagegen.breaker import BreakerRecord, BreakerUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SK = "BREAKER"
# A breaker nobody changed for this long is dropped by DynamoDB's TTL (a rotated key's, a deleted user's).
TTL_S = 30 * 86400


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value))}


def _float(attribute: Mapping[str, Any] | None) -> float | None:
    return float(attribute["N"]) if attribute and "N" in attribute else None


def breaker_key(name: str, scope: str) -> dict[str, Any]:
    return {"pk": {"S": f"BREAKER#{name}#{scope}"}, "sk": {"S": SK}}


class DynamoBreakerStore:
    """Item: pk=BREAKER#{provider[/route]}#{scope}, sk=BREAKER; state, opened_at, probe_until, updated_at."""

    def __init__(self, table_name: str, dynamodb_client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = dynamodb_client

    def read(self, name: str, scope: str) -> BreakerRecord:
        try:
            answer = self.client.get_item(TableName=self.table_name, Key=breaker_key(name, scope), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise BreakerUnavailable(type(exc).__name__) from exc
        item = answer.get("Item") or {}
        return BreakerRecord(
            state=item.get("state", {}).get("S", "closed"),
            opened_at=_float(item.get("opened_at")),
            probe_until=_float(item.get("probe_until")),
        )

    def _update(self, name: str, scope: str, now: float, **kwargs: Any) -> bool:
        """Conditional update; False when the condition did not hold (someone else changed the breaker first)."""
        kwargs["UpdateExpression"] = kwargs["UpdateExpression"].replace(
            "SET ", "SET updated_at = :now, expires_at = :ttl, ", 1
        )
        values = kwargs.setdefault("ExpressionAttributeValues", {})
        values.update({":now": _n(now), ":ttl": {"N": str(int(now) + TTL_S)}})
        kwargs.setdefault("ExpressionAttributeNames", {})["#s"] = "state"
        try:
            changed = update_if(self.client, TableName=self.table_name, Key=breaker_key(name, scope), **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise BreakerUnavailable(type(exc).__name__) from exc
        return changed is not None

    def open(self, name: str, scope: str, now: float, *, expected: str) -> bool:
        # Of several containers that see the same streak, one opens it and the rest find it open.
        condition = "attribute_not_exists(pk) OR #s = :expected" if expected == "closed" else "#s = :expected"
        return self._update(
            name,
            scope,
            now,
            UpdateExpression="SET #s = :open, opened_at = :now REMOVE probe_until",
            ConditionExpression=condition,
            ExpressionAttributeValues={":open": {"S": "open"}, ":expected": {"S": expected}},
        )

    def claim_probe(self, name: str, scope: str, now: float, lease_s: float, *, seen: BreakerRecord) -> bool:
        if seen.state == "open" and seen.opened_at is not None:
            condition, values = (
                "#s = :open AND opened_at = :seen",
                {":open": {"S": "open"}, ":seen": _n(seen.opened_at)},
            )
        elif seen.state == "half_open" and seen.probe_until is not None:
            # The last probe never reported back: its lease is over, so claim a new one.
            condition, values = "#s = :half AND probe_until = :seen", {":seen": _n(seen.probe_until)}
        else:
            return False
        return self._update(
            name,
            scope,
            now,
            UpdateExpression="SET #s = :half, probe_until = :lease",
            ConditionExpression=condition,
            ExpressionAttributeValues={**values, ":half": {"S": "half_open"}, ":lease": _n(now + lease_s)},
        )

    def close(self, name: str, scope: str, now: float) -> bool:
        return self._update(
            name,
            scope,
            now,
            UpdateExpression="SET #s = :closed REMOVE opened_at, probe_until",
            ConditionExpression="#s = :half",
            ExpressionAttributeValues={":closed": {"S": "closed"}, ":half": {"S": "half_open"}},
        )
