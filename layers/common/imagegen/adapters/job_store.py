"""Jobs in DynamoDB: one item per job, every state change a conditional write."""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from imagegen.adapters.dynamo import TransactionRefused, put_if, transact, update_if
from imagegen.adapters.outbox_store import put_action
from imagegen.adapters.quota_store import charge_action, charged
from imagegen.errors import BadRequest, Conflict, NotFound
from imagegen.jobs.outbox import OutboxItem
from imagegen.jobs.quota import QuotaCharge
from imagegen.models import JobKindName, JobRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

# Nested fields are stored as JSON strings: they are only ever read whole, and it keeps floats out of DynamoDB.
_JSON_FIELDS = ("request", "attempts", "image", "video", "error", "warnings", "chain_state", "grounding", "waiting")
_TIME_FIELDS = ("created_at", "started_at", "completed_at", "lease_until")
_PLAIN_FIELDS = (
    "id",
    "status",
    "batch_id",
    "provider",
    "model",
    "user_id",
    "lease_token",
    "image_key",
    "video_key",
    "request_hash",
    "quota_day",
    "kind",
)
# Each kind's ids (imagegen.ids) start with its prefix, so one query lists one kind.
ID_PREFIXES = {"image": "img_", "video": "vid_"}
# DynamoDB's limit: BatchGetItem takes 100 keys.
BATCH_GET_KEYS = 100
# Unprocessed keys come back under throttling; a few rounds with a short backoff, then the caller sees an error.
_UNPROCESSED_ROUNDS = 5
# Non-terminal jobs carry these, so the sweeper finds stuck jobs with one query on the `gsi1` index.
ACTIVE_PARTITION = "ACTIVE"


class ClaimRefused(Exception):
    """The job cannot be claimed now; `job` says why (terminal, or another worker holds a live lease)."""

    def __init__(self, job: JobRecord) -> None:
        super().__init__(job.status)
        self.job = job


class LeaseLost(Exception):
    """A write conditioned on our lease failed: the job was canceled or another worker took it over."""


def epoch(value: datetime) -> int:
    return int(value.timestamp())


def job_key(user_id: str, job_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"JOB#{job_id}"}}


def _active_sort_key(due: datetime, job_id: str) -> str:
    return f"{epoch(due):012d}#{job_id}"


def to_item(record: JobRecord, ttl_seconds: int) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    item: dict[str, Any] = job_key(record.user_id, record.id)
    for name in _PLAIN_FIELDS:
        if data.get(name) is not None:
            item[name] = {"S": str(data[name])}
    for name in _TIME_FIELDS:
        if data.get(name) is not None:
            item[name] = {"S": data[name]}
    for name in _JSON_FIELDS:
        item[name] = {"S": json.dumps(data.get(name))}
    item["deliveries"] = {"N": str(record.deliveries)}
    item["requeues"] = {"N": str(record.requeues)}
    item["quota_units"] = {"N": str(record.quota_units)}
    if record.lease_until is not None:
        item["lease_epoch"] = {"N": str(epoch(record.lease_until))}
    item["expires_at"] = {"N": str(epoch(record.created_at) + ttl_seconds)}
    if not record.terminal:
        item["gsi1pk"] = {"S": ACTIVE_PARTITION}
        item["gsi1sk"] = {"S": _active_sort_key(record.lease_until or record.created_at, record.id)}
    return item


def put_new(table: str, record: JobRecord, ttl_seconds: int) -> dict[str, Any]:
    """The transaction action that writes a new job (an id that exists already refuses the transaction)."""
    return {
        "Put": {
            "TableName": table,
            "Item": to_item(record, ttl_seconds),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def from_item(item: dict[str, Any]) -> JobRecord:
    data: dict[str, Any] = {}
    for name in (*_PLAIN_FIELDS, *_TIME_FIELDS):
        if name in item:
            data[name] = item[name]["S"]
    for name in _JSON_FIELDS:
        if name in item:
            value = json.loads(item[name]["S"])
            if value is not None:
                data[name] = value
    data["deliveries"] = int(item.get("deliveries", {"N": "0"})["N"])
    data["requeues"] = int(item.get("requeues", {"N": "0"})["N"])
    data["quota_units"] = int(item.get("quota_units", {"N": "1"})["N"])
    return JobRecord.model_validate(data)


def _no_job(job_id: str) -> NotFound:
    noun = "video" if job_id.startswith(ID_PREFIXES["video"]) else "image"
    return NotFound(f"no {noun} job with id {job_id}")


class JobStore:
    def __init__(self, table_name: str, client: DynamoDBClient, *, ttl_seconds: int) -> None:
        self._table = table_name
        self._client = client
        self._ttl = ttl_seconds

    def create(
        self, record: JobRecord, idempotency_key: str | None = None, charges: Sequence[QuotaCharge] = ()
    ) -> tuple[JobRecord, bool]:
        """Write a new job, its idempotency marker and its quota charges in one transaction. With an idempotency key,
        a second create (even a racing one, even at the quota's limit) returns the first job; QuotaFull when a
        charge does not fit (then nothing is written)."""
        actions: list[dict[str, Any]] = [put_new(self._table, record, self._ttl)]
        if idempotency_key is not None:
            actions.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            "pk": {"S": f"USER#{record.user_id}"},
                            "sk": {"S": f"IDEMPOTENCY#{idempotency_key}"},
                            "job_id": {"S": record.id},
                            "request_hash": {"S": record.request_hash or ""},
                            "expires_at": {"N": str(epoch(record.created_at) + self._ttl)},
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        first_charge = len(actions)
        actions.extend(charge_action(self._table, record.user_id, charge) for charge in charges)
        try:
            transact(self._client, actions)
        except TransactionRefused as refused:
            # The marker first: a retry racing its original is answered with that job, even when the quota is full.
            if idempotency_key is not None and refused.failed(1):
                return self._replay(record.user_id, idempotency_key, record.request_hash), False
            full = charged(refused, first_charge, charges)
            if full is not None:
                raise full from None
            raise
        return record, True

    def _replay(self, user_id: str, idempotency_key: str, request_hash: str | None) -> JobRecord:
        found = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"IDEMPOTENCY#{idempotency_key}"}},
            ConsistentRead=True,
        ).get("Item")
        if found is None:  # the marker expired between the failed write and this read: a rare, retryable race
            raise Conflict("Idempotency-Key is being reused; retry the request", hint="retry with the same key")
        if found.get("request_hash", {}).get("S") != (request_hash or ""):
            raise Conflict(
                "Idempotency-Key was already used with a different request body",
                hint="use a new Idempotency-Key for a different request",
                details={"field": "Idempotency-Key"},
            )
        return self.get(user_id, found["job_id"]["S"])

    def find_replay(self, user_id: str, idempotency_key: str, request_hash: str | None) -> JobRecord | None:
        """The job an earlier create stored under this idempotency key, or None when the key is new."""
        marker = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"IDEMPOTENCY#{idempotency_key}"}},
            ConsistentRead=True,
        ).get("Item")
        return None if marker is None else self._replay(user_id, idempotency_key, request_hash)

    def get_many(self, user_id: str, job_ids: list[str]) -> dict[str, JobRecord]:
        """The jobs that exist among job_ids (BatchGetItem, 100 keys a call), keyed by id."""
        found: dict[str, JobRecord] = {}
        unique = list(dict.fromkeys(job_ids))
        for start in range(0, len(unique), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [job_key(user_id, job_id) for job_id in unique[start : start + BATCH_GET_KEYS]],
                    "ConsistentRead": True,
                }
            }
            for round_ in range(_UNPROCESSED_ROUNDS):
                answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    record = from_item(item)
                    found[record.id] = record
                request = dict(answer.get("UnprocessedKeys") or {})
                if not request:
                    break
                time.sleep(0.05 * 2**round_)
            else:
                raise RuntimeError(f"DynamoDB left {len(request[self._table]['Keys'])} keys unprocessed")
        return found

    def get(self, user_id: str, job_id: str) -> JobRecord:
        item = self._client.get_item(TableName=self._table, Key=job_key(user_id, job_id), ConsistentRead=True).get(
            "Item"
        )
        if item is None:
            raise _no_job(job_id)
        return from_item(item)

    def list(
        self, user_id: str, limit: int, cursor: str | None, kind: JobKindName = "image"
    ) -> tuple[list[JobRecord], str | None]:
        """One page of the user's jobs of one kind, newest first, and the cursor of the next page (None: the last)."""
        prefix = f"JOB#{ID_PREFIXES[kind]}"
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": f"USER#{user_id}"}, ":prefix": {"S": prefix}},
            "ScanIndexForward": False,  # ids sort by creation time, so this is newest first
            "Limit": limit,
        }
        if cursor:
            query["ExclusiveStartKey"] = _decode_cursor(cursor, user_id, prefix)
        answer = self._client.query(**query)
        last = answer.get("LastEvaluatedKey")
        return [from_item(item) for item in answer.get("Items", [])], _encode_cursor(last) if last else None

    def claim(self, user_id: str, job_id: str, *, now: datetime, lease_seconds: int) -> JobRecord:
        """queued → running (or take over a running job whose lease expired) under a fresh lease token."""
        return self._take_lease(
            user_id,
            job_id,
            now=now,
            lease_seconds=lease_seconds,
            condition=(
                "attribute_exists(pk) AND (#status = :queued OR (#status = :running AND lease_epoch <= :now_epoch))"
            ),
            values={":queued": {"S": "queued"}, ":now_epoch": {"N": str(epoch(now))}},
        )

    def claim_check(
        self, user_id: str, job_id: str, check_token: str, *, now: datetime, lease_seconds: int
    ) -> JobRecord:
        """Take a job left pending by an async provider, if `check_token` is still the one it was left with."""
        return self._take_lease(
            user_id,
            job_id,
            now=now,
            lease_seconds=lease_seconds,
            condition="#status = :running AND lease_token = :check",
            values={":check": {"S": check_token}},
        )

    def _take_lease(
        self,
        user_id: str,
        job_id: str,
        *,
        now: datetime,
        lease_seconds: int,
        condition: str,
        values: dict[str, Any],
    ) -> JobRecord:
        lease_until = datetime.fromtimestamp(epoch(now) + lease_seconds, UTC)
        taken = update_if(
            self._client,
            TableName=self._table,
            Key=job_key(user_id, job_id),
            UpdateExpression=(
                "SET #status = :running, lease_token = :token, lease_until = :until, lease_epoch = :until_epoch,"
                " started_at = if_not_exists(started_at, :now), gsi1sk = :gsi1sk ADD deliveries :one"
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":running": {"S": "running"},
                ":token": {"S": uuid.uuid4().hex},
                ":until": {"S": lease_until.isoformat()},
                ":until_epoch": {"N": str(epoch(lease_until))},
                ":now": {"S": now.isoformat()},
                ":gsi1sk": {"S": _active_sort_key(lease_until, job_id)},
                ":one": {"N": "1"},
                **values,
            },
            ReturnValues="ALL_NEW",
        )
        if taken is None:
            raise ClaimRefused(self.get(user_id, job_id))
        return from_item(taken)

    def finish(self, job: JobRecord, lease_token: str, ended: OutboxItem | None = None) -> JobRecord:
        """Write a terminal job (succeeded or failed), only while we still hold the lease; `ended`, the outbox item
        of the job's side effects, in the same transaction (LeaseLost: neither is written)."""
        if not job.terminal:
            raise ValueError("finish() takes a terminal job")
        condition = "#status = :running AND lease_token = :lease"
        if ended is None:
            return self._replace(job, condition, lease_token)
        put = {
            "TableName": self._table,
            "Item": to_item(job, self._ttl),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":running": {"S": "running"}, ":lease": {"S": lease_token}},
        }
        try:
            transact(self._client, [{"Put": put}, put_action(self._table, ended, self._ttl)])
        except TransactionRefused as refused:
            if refused.failed(0):
                raise LeaseLost(job.id) from None
            raise
        return job

    def park(self, job: JobRecord, lease_token: str) -> JobRecord:
        """Save a running job's progress (async provider pending) under the job's new lease token."""
        return self._replace(job, "#status = :running AND lease_token = :lease", lease_token)

    def release(self, user_id: str, job_id: str, lease_token: str, *, now: datetime) -> None:
        """Give the lease back so a redelivery can claim at once (used when a delivery fails)."""
        # A failed condition means someone else already moved the job on (canceled, or took it over): nothing of
        # ours to release.
        update_if(
            self._client,
            TableName=self._table,
            Key=job_key(user_id, job_id),
            UpdateExpression="SET lease_epoch = :now_epoch, lease_until = :now, gsi1sk = :gsi1sk",
            ConditionExpression="#status = :running AND lease_token = :lease",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":running": {"S": "running"},
                ":lease": {"S": lease_token},
                ":now": {"S": now.isoformat()},
                ":now_epoch": {"N": str(epoch(now))},
                ":gsi1sk": {"S": _active_sort_key(now, job_id)},
            },
        )

    def cancel(self, user_id: str, job_id: str, *, now: datetime) -> JobRecord:
        """queued|running → canceled; canceling a canceled job returns it (idempotent)."""
        return self.cancel_changed(user_id, job_id, now=now)[0]

    def cancel_changed(self, user_id: str, job_id: str, *, now: datetime) -> tuple[JobRecord, bool]:
        """As cancel(), and whether this call made the change. The job's end is recorded with an outbox item in the
        same transaction, so its side effects (refund, batch, webhook) happen even if this process stops here."""
        update = {
            "TableName": self._table,
            "Key": job_key(user_id, job_id),
            "UpdateExpression": "SET #status = :canceled, completed_at = :now REMOVE gsi1pk, gsi1sk, lease_token",
            "ConditionExpression": "#status IN (:queued, :running)",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":canceled": {"S": "canceled"},
                ":queued": {"S": "queued"},
                ":running": {"S": "running"},
                ":now": {"S": now.isoformat()},
            },
        }
        ended = OutboxItem.job_ended(user_id, job_id, now)
        try:
            transact(self._client, [{"Update": update}, put_action(self._table, ended, self._ttl)])
        except TransactionRefused as refused:
            if not refused.failed(0):
                raise
            current = self.get(user_id, job_id)  # NotFound for a job that does not exist
            if current.status == "canceled":
                return current, False
            raise Conflict(f"job {job_id} is {current.status} and can no longer be canceled") from None
        # The canceled job keeps its chain state: the caller needs it to cancel a remote request.
        return self.get(user_id, job_id), True

    def add_warning(self, user_id: str, job_id: str, warning: str, *, status: str) -> bool:
        """Add a warning to a job that is still `status` (once; False when it is not, or already says it)."""
        job = self.get(user_id, job_id)
        if job.status != status or warning in job.warnings:
            return False
        stored = json.dumps(job.model_dump(mode="json")["warnings"])
        return (
            update_if(
                self._client,
                TableName=self._table,
                Key=job_key(user_id, job_id),
                UpdateExpression="SET warnings = :new",
                # Unchanged since the read: a concurrent writer's warnings are never overwritten.
                ConditionExpression="#status = :status AND warnings = :old",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": {"S": status},
                    ":old": {"S": stored},
                    ":new": {"S": json.dumps([*job.warnings, warning])},
                },
            )
            is not None
        )

    def _replace(self, job: JobRecord, condition: str, lease_token: str) -> JobRecord:
        written = put_if(
            self._client,
            TableName=self._table,
            Item=to_item(job, self._ttl),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":running": {"S": "running"}, ":lease": {"S": lease_token}},
        )
        if not written:
            raise LeaseLost(job.id)
        return job


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def _decode_cursor(cursor: str, user_id: str, prefix: str) -> dict[str, Any]:
    bad = BadRequest("cursor is not valid", hint="pass next_cursor from a previous page", details={"field": "cursor"})
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise bad from error
    # A cursor is only ever a key of the caller's own partition; anything else is forged.
    if (
        not isinstance(key, dict)
        or set(key) != {"pk", "sk"}
        or key.get("pk") != {"S": f"USER#{user_id}"}
        or not isinstance(key.get("sk"), dict)
        or not str(key["sk"].get("S", "")).startswith(prefix)
    ):
        raise bad
    return key
