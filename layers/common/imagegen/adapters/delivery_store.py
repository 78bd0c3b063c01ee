"""Webhook delivery records in DynamoDB: pk=USER#{user} sk=WEBHOOK#{event id}.

On index gsi1 under `gsi1pk = "WEBHOOKS#{user}"` with `gsi1sk = "{status}#{created}#{id}"`, so one query lists a
user's deliveries of one status newest first (or all of them, grouped by status). What an attempt changes lives in
plain attributes (`status`, `series`, `attempts`, ...), so every change is a conditional update; what never changes
(the URL, the signed body, what the event is about) is one JSON attribute.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from imagegen.adapters.dynamo import TransactionRefused, transact, update_if
from imagegen.adapters.outbox_store import put_action
from imagegen.errors import BadRequest, NotFound
from imagegen.jobs.outbox import OutboxItem
from imagegen.webhooks.deliveries import (
    STALLED_AFTER,
    AttemptResult,
    Delivery,
    DeliveryPage,
    DeliveryStatus,
    stale_pending_conflict,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

_FIXED = ("id", "user_id", "event_type", "job_id", "batch_id", "url", "body", "created_at", "expires_at")


def _key(user_id: str, event_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"WEBHOOK#{event_id}"}}


def _index_key(delivery: Delivery, status: str) -> str:
    return f"{status}#{delivery.created_at.isoformat()}#{delivery.id}"


def to_item(delivery: Delivery) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_key(delivery.user_id, delivery.id),
        "fixed": {"S": delivery.model_dump_json(include=set(_FIXED))},
        "status": {"S": delivery.status},
        "series": {"N": str(delivery.series)},
        "attempts": {"N": str(delivery.attempts)},
        "gsi1pk": {"S": f"WEBHOOKS#{delivery.user_id}"},
        "gsi1sk": {"S": _index_key(delivery, delivery.status)},
        "expires_at": {"N": str(int(delivery.expires_at.timestamp()))},
    }
    if delivery.next_attempt_at is not None:
        item["next_attempt_at"] = {"S": delivery.next_attempt_at.isoformat()}
    return item


def from_item(item: dict[str, Any]) -> Delivery:
    data: dict[str, Any] = json.loads(item["fixed"]["S"])
    data.update(status=item["status"]["S"], series=int(item["series"]["N"]), attempts=int(item["attempts"]["N"]))
    for name in ("last_error", "last_attempt_at", "next_attempt_at"):
        if name in item:
            data[name] = item[name]["S"]
    if "last_status_code" in item:
        data["last_status_code"] = int(item["last_status_code"]["N"])
    return Delivery.model_validate(data)


def put_new_action(table: str, delivery: Delivery) -> dict[str, Any]:
    """The transaction action that writes a new delivery record (refused if the event has one already)."""
    return {"Put": {"TableName": table, "Item": to_item(delivery), "ConditionExpression": "attribute_not_exists(pk)"}}


class DeliveryRecords:
    """Implements imagegen.webhooks.deliveries.DeliveryStore."""

    def __init__(self, table_name: str, client: DynamoDBClient, *, outbox_ttl_seconds: int) -> None:
        self._table = table_name
        self._client = client
        self._outbox_ttl = outbox_ttl_seconds

    def get(self, user_id: str, event_id: str) -> Delivery | None:
        item = self._client.get_item(TableName=self._table, Key=_key(user_id, event_id), ConsistentRead=True).get(
            "Item"
        )
        return from_item(item) if item else None

    def create(self, delivery: Delivery, send: OutboxItem) -> bool:
        try:
            transact(
                self._client, [put_new_action(self._table, delivery), put_action(self._table, send, self._outbox_ttl)]
            )
        except TransactionRefused as refused:
            if refused.failed(0):
                return False
            raise
        return True

    def record_attempt(self, delivery: Delivery, result: AttemptResult, send: OutboxItem | None) -> bool:
        sets = ["attempts = :attempt", "#status = :status", "last_attempt_at = :at", "gsi1sk = :index"]
        removes: list[str] = []
        values: dict[str, Any] = {
            ":attempt": {"N": str(result.attempt)},
            ":previous": {"N": str(result.attempt - 1)},
            ":series": {"N": str(delivery.series)},
            ":status": {"S": result.status},
            ":pending": {"S": "pending"},
            ":at": {"S": result.at.isoformat()},
            ":index": {"S": _index_key(delivery, result.status)},
        }
        for name, value in (
            ("last_status_code", {"N": str(result.status_code)} if result.status_code is not None else None),
            ("last_error", {"S": result.error} if result.error else None),
            ("next_attempt_at", {"S": result.next_attempt_at.isoformat()} if result.next_attempt_at else None),
        ):
            if value is None:
                removes.append(name)
            else:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        update = {
            "TableName": self._table,
            "Key": _key(delivery.user_id, delivery.id),
            "UpdateExpression": "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else ""),
            # Only the copy of the message that finds the record at the attempt before this one records it.
            "ConditionExpression": "series = :series AND attempts = :previous AND #status = :pending",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }
        if send is None:
            return update_if(self._client, **update) is not None
        try:
            transact(self._client, [{"Update": update}, put_action(self._table, send, self._outbox_ttl)])
        except TransactionRefused as refused:
            if refused.failed(0):
                return False
            raise
        return True

    def redeliver(self, user_id: str, event_id: str, now: datetime) -> Delivery:
        current = self.get(user_id, event_id)
        if current is None:
            raise NotFound(f"no webhook delivery with id {event_id}")
        overdue = now - STALLED_AFTER
        if current.status == "pending" and (current.next_attempt_at is None or current.next_attempt_at > overdue):
            raise stale_pending_conflict(event_id)
        fresh = current.model_copy(
            update={
                "series": current.series + 1,
                "attempts": 0,
                "status": "pending",
                "next_attempt_at": now,
                "last_status_code": None,
                "last_error": None,
                "last_attempt_at": None,
            }
        )
        update = {
            "TableName": self._table,
            "Key": _key(user_id, event_id),
            "UpdateExpression": "SET series = :next, attempts = :zero, #status = :pending, next_attempt_at = :now,"
            " gsi1sk = :index REMOVE last_status_code, last_error, last_attempt_at",
            # A pending delivery whose next attempt is long overdue lost its message (SQS refused it until it went
            # to the dead-letter queue): it may be redelivered like a failed one.
            "ConditionExpression": "series = :series AND (#status <> :pending OR next_attempt_at < :overdue)",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":next": {"N": str(fresh.series)},
                ":series": {"N": str(current.series)},
                ":zero": {"N": "0"},
                ":pending": {"S": "pending"},
                ":now": {"S": now.isoformat()},
                ":overdue": {"S": overdue.isoformat()},
                ":index": {"S": _index_key(fresh, "pending")},
            },
        }
        try:
            transact(
                self._client, [{"Update": update}, put_action(self._table, fresh.first_send(now), self._outbox_ttl)]
            )
        except TransactionRefused as refused:
            if refused.failed(0):  # a redelivery racing this one started its series first
                raise stale_pending_conflict(event_id) from None
            raise
        return fresh

    def list(self, user_id: str, status: DeliveryStatus | None, limit: int, cursor: str | None) -> DeliveryPage:
        partition = f"WEBHOOKS#{user_id}"
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": {"S": partition}},
            "ScanIndexForward": False,  # newest first (within a status)
            "Limit": limit,
        }
        if status is not None:
            query["KeyConditionExpression"] += " AND begins_with(gsi1sk, :status)"
            query["ExpressionAttributeValues"][":status"] = {"S": f"{status}#"}
        if cursor:
            query["ExclusiveStartKey"] = _decode_cursor(cursor, user_id, partition)
        answer = self._client.query(**query)
        last = answer.get("LastEvaluatedKey")
        return DeliveryPage(
            items=[from_item(item).view() for item in answer.get("Items", [])],
            next_cursor=base64.urlsafe_b64encode(json.dumps(last).encode()).decode() if last else None,
        )


def _decode_cursor(cursor: str, user_id: str, partition: str) -> dict[str, Any]:
    bad = BadRequest("cursor is not valid", hint="pass next_cursor from a previous page", details={"field": "cursor"})
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise bad from error
    # A cursor is only ever a key of the caller's own deliveries; anything else is forged.
    if (
        not isinstance(key, dict)
        or set(key) != {"pk", "sk", "gsi1pk", "gsi1sk"}
        or key.get("pk") != {"S": f"USER#{user_id}"}
        or key.get("gsi1pk") != {"S": partition}
        or not str((key.get("sk") or {}).get("S", "")).startswith("WEBHOOK#")
        or not isinstance(key.get("gsi1sk"), dict)
    ):
        raise bad
    return key
