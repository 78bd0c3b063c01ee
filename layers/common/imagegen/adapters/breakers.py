"""Read-only view of the chain's circuit breakers (adapters.breaker_store writes them): state and until when."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
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
    """pk=BREAKER#{provider}#{key_source} sk=BREAKER: `state`, and `open_until`, or the breaker store's `opened_at`
    (+ the cool-down) while open and `probe_until` while a half-open trial call is out."""

    def __init__(self, table_name: str, client: DynamoDBClient, *, cooldown_seconds: float) -> None:
        self._table = table_name
        self._client = client
        self._cooldown = timedelta(seconds=cooldown_seconds)

    def get(self, provider: str, key_source: str) -> BreakerState | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"BREAKER#{provider}#{key_source}"}, "sk": {"S": "BREAKER"}},
        ).get("Item")
        if item is None:
            return None
        state = item.get("state", {}).get("S", "closed")
        until = _when(item.get("open_until"))
        if until is None and state == "open":
            opened = _when(item.get("opened_at"))
            until = opened + self._cooldown if opened else None
        if until is None and state == "half_open":
            until = _when(item.get("probe_until"))
        return BreakerState(state=state if state in _STATES else "closed", open_until=until)
