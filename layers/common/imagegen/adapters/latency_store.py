"""DynamoDB latency sketches: one item per provider (+ route), model and 5-minute slot, counts added with ADD (no
condition, so writers never conflict), read back with one Query; old slots expire by TTL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# A slot is read for 30 minutes; kept a day for whoever wants to look.
TTL_S = 86400


def _pk(name: str, model: str) -> str:
    return f"LATENCY#{name}#{model}"


def _sk(slot: int) -> str:
    return f"SLOT#{slot:012d}"


class DynamoLatencyStore:
    """Item: pk=LATENCY#{provider[/route]}#{model}, sk=SLOT#{slot}; b{i} = samples in bucket i; expires_at."""

    def __init__(self, table_name: str, dynamodb_client: DynamoDBClient, *, slot_s: int = 300) -> None:
        self.table_name = table_name
        self.client = dynamodb_client
        self.slot_s = slot_s

    def read(self, name: str, model: str, since_slot: int) -> dict[int, dict[int, float]]:
        answer = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk >= :since",
            ExpressionAttributeValues={":pk": {"S": _pk(name, model)}, ":since": {"S": _sk(since_slot)}},
        )
        slots: dict[int, dict[int, float]] = {}
        for item in answer.get("Items", []):
            slot = int(item["sk"]["S"].removeprefix("SLOT#"))
            slots[slot] = {
                int(attribute[1:]): float(value["N"])
                for attribute, value in item.items()
                if attribute.startswith("b") and attribute[1:].isdigit() and "N" in value
            }
        return slots

    def add(self, name: str, model: str, slot: int, counts: Mapping[int, int]) -> None:
        names = {f"#b{index}": f"b{index}" for index in counts}
        values: dict[str, Any] = {f":b{index}": {"N": str(count)} for index, count in counts.items()}
        values[":ttl"] = {"N": str((slot + 1) * self.slot_s + TTL_S)}
        adds = ", ".join(f"#b{index} :b{index}" for index in counts)
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": _pk(name, model)}, "sk": {"S": _sk(slot)}},
            UpdateExpression=f"ADD {adds} SET expires_at = :ttl",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
