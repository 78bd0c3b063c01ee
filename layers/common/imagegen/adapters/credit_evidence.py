"""Refusals for credit per provider and key scope, in one DynamoDB item: a string set of "epoch|job id" entries that an
ADD grows (a repeated entry is one entry), read back by the same write."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagegen.keys.credit import distinct_recent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Evidence nobody added to for a day is gone (TTL).
TTL_S = 86400


class DynamoCreditEvidence:
    """Item: pk=CREDIT#{provider}#{scope}, sk=CREDIT; refusals (string set), expires_at."""

    def __init__(self, table_name: str, dynamodb_client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = dynamodb_client

    @staticmethod
    def _key(provider: str, scope: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"CREDIT#{provider}#{scope}"}, "sk": {"S": "CREDIT"}}

    def add(self, provider: str, scope: str, job_id: str, now: float, window_s: float) -> int:
        answer = self.client.update_item(
            TableName=self.table_name,
            Key=self._key(provider, scope),
            UpdateExpression="ADD refusals :entry SET expires_at = :ttl",
            ExpressionAttributeValues={
                ":entry": {"SS": [f"{int(now)}|{job_id}"]},
                ":ttl": {"N": str(int(now) + TTL_S)},
            },
            ReturnValues="ALL_NEW",
        )
        entries = answer.get("Attributes", {}).get("refusals", {}).get("SS", [])
        return distinct_recent(entries, now, window_s)

    def clear(self, provider: str, scope: str) -> None:
        self.client.delete_item(TableName=self.table_name, Key=self._key(provider, scope))
