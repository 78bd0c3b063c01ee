"""Outbox items in DynamoDB: pk=USER#{user} sk=OUTBOX#{key}, on index gsi1 under gsi1pk="OUTBOX" by write time.

The item is written by the transaction that makes the state change (imagegen.adapters.job_store, batch_store,
delivery_store, through put_action), and deleted once its effect is done.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from imagegen.jobs.outbox import OutboxItem

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

OUTBOX_PARTITION = "OUTBOX"


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _key(item: OutboxItem) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{item.user_id}"}, "sk": {"S": f"OUTBOX#{item.key}"}}


def put_action(table: str, item: OutboxItem, ttl_seconds: int) -> dict[str, Any]:
    """The transaction action that records an outbox item beside the change it belongs to."""
    return {
        "Put": {
            "TableName": table,
            "Item": {
                **_key(item),
                "item": {"S": item.model_dump_json()},
                "gsi1pk": {"S": OUTBOX_PARTITION},
                "gsi1sk": {"S": f"{_epoch(item.created_at):012d}#{item.user_id}#{item.key}"},
                # An effect that keeps failing (a deleted queue) is given up with the data it belongs to.
                "expires_at": {"N": str(_epoch(item.created_at) + ttl_seconds)},
            },
        }
    }


class DynamoOutboxStore:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def stale(self, written_before: datetime, limit: int) -> list[OutboxItem]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            # Whole seconds: "~" sorts after every user id character, so the edge's own second is included.
            "KeyConditionExpression": "gsi1pk = :outbox AND gsi1sk <= :edge",
            "ExpressionAttributeValues": {
                ":outbox": {"S": OUTBOX_PARTITION},
                ":edge": {"S": f"{_epoch(written_before):012d}#~"},
            },
            "Limit": min(limit, 100),
        }
        found: list[OutboxItem] = []
        while len(found) < limit:
            answer = self._client.query(**query)
            found.extend(OutboxItem.model_validate_json(item["item"]["S"]) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                break
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return found[:limit]

    def done(self, item: OutboxItem) -> None:
        self._client.delete_item(TableName=self._table, Key=_key(item))
