"""Batches in DynamoDB: one item per batch at pk=USER#{user} sk=BATCH#{id}, listing its job ids in order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from imagegen.adapters.delivery_store import put_new_action
from imagegen.adapters.dynamo import TransactionRefused, transact, transact_together, update_if
from imagegen.adapters.job_store import put_new
from imagegen.adapters.outbox_store import put_action
from imagegen.adapters.quota_store import charge_action, charged
from imagegen.errors import Conflict, NotFound
from imagegen.jobs.batch_models import BatchRecord
from imagegen.jobs.outbox import OutboxItem
from imagegen.jobs.quota import QuotaCharge
from imagegen.models import JobRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from imagegen.webhooks.deliveries import Delivery


class BatchRaced(Exception):
    """The batch changed under us (another retry won); nothing of this call was written to the batch."""


def _key(user_id: str, batch_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"BATCH#{batch_id}"}}


def _idempotency_key(user_id: str, key: str) -> dict[str, Any]:
    # Its own prefix: a key used for an image job and the same key used for a batch are different requests,
    # and neither prefix is a prefix of the other, so no key of one can collide with a key of the other.
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"BATCH_IDEMPOTENCY#{key}"}}


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def to_item(record: BatchRecord, ttl_seconds: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_key(record.user_id, record.id),
        "id": {"S": record.id},
        "user_id": {"S": record.user_id},
        "job_ids": {"S": json.dumps(record.job_ids)},
        "created_at": {"S": record.created_at.isoformat()},
        "round": {"N": str(record.round)},
        "expires_at": {"N": str(_epoch(record.created_at) + ttl_seconds)},
    }
    if record.webhook_url is not None:
        item["webhook_url"] = {"S": record.webhook_url}
    if record.request_hash is not None:
        item["request_hash"] = {"S": record.request_hash}
    if record.settled:
        item["settled"] = {"SS": sorted(record.settled)}
    if record.notified_round is not None:
        item["notified_round"] = {"N": str(record.notified_round)}
    return item


def from_item(item: dict[str, Any]) -> BatchRecord:
    return BatchRecord(
        id=item["id"]["S"],
        user_id=item["user_id"]["S"],
        job_ids=json.loads(item["job_ids"]["S"]),
        webhook_url=item.get("webhook_url", {}).get("S"),
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        round=int(item["round"]["N"]),
        settled=frozenset(item.get("settled", {}).get("SS", [])),
        notified_round=int(item["notified_round"]["N"]) if "notified_round" in item else None,
        request_hash=item.get("request_hash", {}).get("S"),
    )


class BatchStore:
    def __init__(self, table_name: str, client: DynamoDBClient, *, ttl_seconds: int) -> None:
        self._table = table_name
        self._client = client
        self._ttl = ttl_seconds

    def create(
        self,
        record: BatchRecord,
        idempotency_key: str | None,
        jobs: Sequence[JobRecord],
        charges: Sequence[QuotaCharge] = (),
    ) -> tuple[BatchRecord, bool]:
        """Write the batch, its idempotency marker, its quota charges and its jobs in one transaction: they appear
        together or not at all. A repeat (even a racing one) returns the first batch and writes nothing; QuotaFull
        when a charge does not fit."""
        head: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_item(record, self._ttl),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if idempotency_key is not None:
            head.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **_idempotency_key(record.user_id, idempotency_key),
                            "batch_id": {"S": record.id},
                            "request_hash": {"S": record.request_hash or ""},
                            "expires_at": {"N": str(_epoch(record.created_at) + self._ttl)},
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        first_charge = len(head)
        head.extend(charge_action(self._table, record.user_id, charge) for charge in charges)
        try:
            transact_together(self._client, head, [put_new(self._table, job, self._ttl) for job in jobs])
        except TransactionRefused as refused:
            if idempotency_key is not None and refused.failed(1):
                return self._replay(record.user_id, idempotency_key, record.request_hash), False
            full = charged(refused, first_charge, charges)
            if full is not None:
                raise full from None
            raise
        return record, True

    def find_replay(self, user_id: str, idempotency_key: str, request_hash: str | None) -> BatchRecord | None:
        """The batch an earlier request with this key created, if any (checked before any job is written)."""
        found = self._client.get_item(
            TableName=self._table, Key=_idempotency_key(user_id, idempotency_key), ConsistentRead=True
        ).get("Item")
        return None if found is None else self._replayed(user_id, found, request_hash)

    def _replay(self, user_id: str, idempotency_key: str, request_hash: str | None) -> BatchRecord:
        found = self._client.get_item(
            TableName=self._table, Key=_idempotency_key(user_id, idempotency_key), ConsistentRead=True
        ).get("Item")
        if found is None:  # the marker expired between the failed write and this read: rare, and retryable
            raise Conflict("Idempotency-Key is being reused; retry the request", hint="retry with the same key")
        return self._replayed(user_id, found, request_hash)

    def _replayed(self, user_id: str, found: dict[str, Any], request_hash: str | None) -> BatchRecord:
        if found.get("request_hash", {}).get("S") != (request_hash or ""):
            raise Conflict(
                "Idempotency-Key was already used with a different request body",
                hint="use a new Idempotency-Key for a different request",
                details={"field": "Idempotency-Key"},
            )
        return self.get(user_id, found["batch_id"]["S"])

    def get(self, user_id: str, batch_id: str) -> BatchRecord:
        item = self._client.get_item(TableName=self._table, Key=_key(user_id, batch_id), ConsistentRead=True).get(
            "Item"
        )
        if item is None:
            raise NotFound(f"no batch with id {batch_id}")
        return from_item(item)

    def replace_jobs(
        self,
        record: BatchRecord,
        job_ids: list[str],
        fresh: Sequence[JobRecord],
        charges: Sequence[QuotaCharge] = (),
    ) -> BatchRecord:
        """Point the batch at a new list of job ids and start a new round, only if no one else did since we read;
        the fresh jobs and their quota charges are written in the same transaction (BatchRaced, QuotaFull)."""
        head = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": _key(record.user_id, record.id),
                    "UpdateExpression": "SET job_ids = :ids, #round = :next",
                    "ConditionExpression": "#round = :round",
                    "ExpressionAttributeNames": {"#round": "round"},
                    "ExpressionAttributeValues": {
                        ":ids": {"S": json.dumps(job_ids)},
                        ":round": {"N": str(record.round)},
                        ":next": {"N": str(record.round + 1)},
                    },
                }
            },
            *(charge_action(self._table, record.user_id, charge) for charge in charges),
        ]
        try:
            transact_together(self._client, head, [put_new(self._table, job, self._ttl) for job in fresh])
        except TransactionRefused as refused:
            if refused.failed(0):
                raise BatchRaced(record.id) from None
            full = charged(refused, 1, charges)
            if full is not None:
                raise full from None
            raise
        return self.get(record.user_id, record.id)

    def settle(self, user_id: str, batch_id: str, job_id: str) -> BatchRecord | None:
        """Record that one of the batch's jobs reached a terminal state; the batch as it is right after, or None
        when the batch expired or never existed (nothing to track)."""
        settled = update_if(
            self._client,
            TableName=self._table,
            Key=_key(user_id, batch_id),
            # A string set: a repeated notice for the same job adds nothing, so nothing is counted twice.
            UpdateExpression="ADD settled :job",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":job": {"SS": [job_id]}},
            ReturnValues="ALL_NEW",
        )
        return from_item(settled) if settled is not None else None

    def claim_notification(self, record: BatchRecord, delivery: Delivery, send: OutboxItem) -> bool:
        """True for exactly one caller per batch round: it writes the round's claim, the batch event's delivery
        record and the outbox item of its first attempt in one transaction, so the event can be neither lost nor
        sent twice."""
        claim = {
            "Update": {
                "TableName": self._table,
                "Key": _key(record.user_id, record.id),
                "UpdateExpression": "SET notified_round = :round",
                "ConditionExpression": (
                    "#round = :round AND (attribute_not_exists(notified_round) OR notified_round < :round)"
                ),
                "ExpressionAttributeNames": {"#round": "round"},
                "ExpressionAttributeValues": {":round": {"N": str(record.round)}},
            }
        }
        try:
            transact(
                self._client,
                [claim, put_new_action(self._table, delivery), put_action(self._table, send, self._ttl)],
            )
        except TransactionRefused as refused:
            if refused.failed(0) or refused.failed(1):
                return False
            raise
        return True
