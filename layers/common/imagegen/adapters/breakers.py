"""Read-only view of the chain's circuit breakers (pk=BREAKER#{provider}#{key_source} sk=BREAKER)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from imagegen.chain_status import BreakerState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

_STATES = ("closed", "open", "half_open")


def _when(value: Mapping[str, Any] | None) -> datetime | None:
    # The chain's writer owns the format: accept epoch seconds (number or numeric string) or ISO-8601.
    if not value:
        return None
    raw = value.get("N") or value.get("S")
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except ValueError:
        parsed = datetime.fromisoformat(raw)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class DynamoBreakers:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def get(self, provider: str, key_source: str) -> BreakerState | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"BREAKER#{provider}#{key_source}"}, "sk": {"S": "BREAKER"}},
        ).get("Item")
        if item is None:
            return None
        state = item.get("state", {}).get("S", "closed")
        return BreakerState(
            state=state if state in _STATES else "closed",
            open_until=_when(item.get("open_until")),
        )
