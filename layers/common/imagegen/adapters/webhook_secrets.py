"""Webhook signing secrets in DynamoDB: one item per user at pk=USER#{user} sk=WEBHOOK_SECRET."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from imagegen.adapters.dynamo import put_if
from imagegen.webhooks.secrets import WebhookSecret

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


def _key(user_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "WEBHOOK_SECRET"}}


def _from_item(item: dict[str, Any]) -> WebhookSecret:
    until = item.get("previous_until", {}).get("S")
    return WebhookSecret(
        current=item["current"]["S"],
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        previous=item.get("previous", {}).get("S"),
        previous_until=datetime.fromisoformat(until) if until else None,
    )


class WebhookSecretStore:
    """The table is encrypted at rest; the secret is stored as is because signing needs it and GET shows it."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def get(self, user_id: str) -> WebhookSecret | None:
        item = self._client.get_item(TableName=self._table, Key=_key(user_id), ConsistentRead=True).get("Item")
        return _from_item(item) if item else None

    def create(self, user_id: str, secret: WebhookSecret) -> WebhookSecret:
        item = {**_key(user_id), "current": {"S": secret.current}, "created_at": {"S": secret.created_at.isoformat()}}
        if put_if(self._client, TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"):
            return secret
        # Two first uses raced (a GET and a delivery): both go on with the one that was stored first.
        stored = self.get(user_id)
        if stored is None:
            raise RuntimeError(f"the webhook secret of {user_id} exists and does not")
        return stored

    def rotate(self, user_id: str, new: str, now: datetime, previous_until: datetime) -> WebhookSecret:
        answer = self._client.update_item(
            TableName=self._table,
            Key=_key(user_id),
            UpdateExpression="SET previous = #current, previous_until = :until, #current = :new, created_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#current": "current"},
            ExpressionAttributeValues={
                ":new": {"S": new},
                ":until": {"S": previous_until.isoformat()},
                ":now": {"S": now.isoformat()},
            },
            ReturnValues="ALL_NEW",
        )
        return _from_item(answer["Attributes"])
