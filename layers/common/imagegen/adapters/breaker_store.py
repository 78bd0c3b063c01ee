"""DynamoDB circuit-breaker store: one item per provider + key source, changed only by conditional writes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from imagegen.adapters.dynamo import update_if
from imagegen.breaker import (
    BreakerDecision,
    BreakerPolicy,
    BreakerStateName,
    BreakerStatus,
    BreakerUnavailable,
    breaker_status,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SK = "BREAKER"


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value))}


def _float(attribute: dict[str, str] | None) -> float | None:
    return float(attribute["N"]) if attribute and "N" in attribute else None


class DynamoBreakerStore:
    """Item: pk=BREAKER#{provider}#{key_source}, sk=BREAKER; state, failures, opened_at, probe_until."""

    def __init__(self, table_name: str, dynamodb_client: DynamoDBClient, policy: BreakerPolicy | None = None) -> None:
        self.table_name = table_name
        self.client = dynamodb_client
        self.policy = policy or BreakerPolicy()

    @staticmethod
    def _key(provider: str, key_source: str) -> dict[str, Any]:
        return {"pk": {"S": f"BREAKER#{provider}#{key_source}"}, "sk": {"S": SK}}

    def _get(self, provider: str, key_source: str) -> dict[str, Any]:
        try:
            answer = self.client.get_item(
                TableName=self.table_name, Key=self._key(provider, key_source), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise BreakerUnavailable(type(exc).__name__) from exc
        return dict(answer.get("Item") or {})

    def _update(self, provider: str, key_source: str, **kwargs: Any) -> dict[str, Any] | None:
        """Conditional update; None when the condition did not hold (someone else changed the breaker)."""
        try:
            return update_if(self.client, TableName=self.table_name, Key=self._key(provider, key_source), **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise BreakerUnavailable(type(exc).__name__) from exc

    def state(self, provider: str, key_source: str, now: float) -> BreakerStateName:
        return self.status(provider, key_source).state

    def status(self, provider: str, key_source: str) -> BreakerStatus:
        item = self._get(provider, key_source)
        return breaker_status(
            item.get("state", {}).get("S", "closed"),
            _float(item.get("opened_at")),
            _float(item.get("probe_until")),
            self.policy,
        )

    def acquire(self, provider: str, key_source: str, now: float) -> BreakerDecision:
        item = self._get(provider, key_source)
        state = item.get("state", {}).get("S", "closed")
        if state == "open":
            opened_at = item["opened_at"]["N"]
            if now < float(opened_at) + self.policy.cooldown_s:
                return BreakerDecision(False, "open")
            condition, values = "#s = :open AND opened_at = :seen", {":open": {"S": "open"}, ":seen": {"N": opened_at}}
        elif state == "half_open":
            probe_until = item["probe_until"]["N"]
            if now < float(probe_until):
                return BreakerDecision(False, "half_open")
            # The last probe never reported back: its lease is over, so claim a new one.
            condition, values = "#s = :half AND probe_until = :seen", {":seen": {"N": probe_until}}
        else:
            return BreakerDecision(True, "closed")
        claimed = self._update(
            provider,
            key_source,
            UpdateExpression="SET #s = :half, probe_until = :lease, updated_at = :now",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={
                **values,
                ":half": {"S": "half_open"},
                ":lease": _n(now + self.policy.probe_lease_s),
                ":now": _n(now),
            },
        )
        if claimed is None:
            return BreakerDecision(False, "half_open")
        return BreakerDecision(True, "half_open", probe=True)

    def record_success(self, provider: str, key_source: str, now: float) -> None:
        # Conditional so a healthy, already-closed breaker costs no write.
        self._update(
            provider,
            key_source,
            UpdateExpression="SET #s = :closed, failures = :zero, updated_at = :now REMOVE opened_at, probe_until",
            ConditionExpression="attribute_exists(pk) AND (#s <> :closed OR failures > :zero)",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":closed": {"S": "closed"}, ":zero": {"N": "0"}, ":now": _n(now)},
        )

    def record_failure(self, provider: str, key_source: str, now: float) -> None:
        item = self._update(
            provider,
            key_source,
            UpdateExpression="ADD failures :one SET #s = if_not_exists(#s, :closed), updated_at = :now",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":closed": {"S": "closed"}, ":now": _n(now)},
            ReturnValues="ALL_NEW",
        )
        if item is None:
            return
        state = item.get("state", {}).get("S", "closed")
        failures = int(item.get("failures", {}).get("N", "0"))
        if state == "half_open":
            expected = "half_open"
        elif state == "closed" and failures >= self.policy.threshold:
            expected = "closed"
        else:
            return
        # Conditional: of several containers failing at once, one opens it and the rest see it open.
        self._update(
            provider,
            key_source,
            UpdateExpression="SET #s = :open, opened_at = :now REMOVE probe_until",
            ConditionExpression="#s = :expected",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":open": {"S": "open"}, ":now": _n(now), ":expected": {"S": expected}},
        )
