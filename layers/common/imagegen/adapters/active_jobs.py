"""The sweeper's view of the jobs: non-terminal jobs on index gsi1, and writes conditioned on the job as it was read."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from imagegen.adapters.dynamo import TransactionRefused, transact, update_if
from imagegen.adapters.job_store import ACTIVE_PARTITION, epoch, from_item, job_key
from imagegen.adapters.outbox_store import put_action
from imagegen.jobs.outbox import OutboxItem
from imagegen.models import ErrorInfo, JobRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class ActiveJobs:
    """Every write here holds only while the job is still in the state the sweeper read, so a worker or a cancel
    that moved it on meanwhile always wins."""

    def __init__(self, table_name: str, client: DynamoDBClient, *, ttl_seconds: int) -> None:
        self._table = table_name
        self._client = client
        # How long an outbox item written here is kept (the jobs' TTL).
        self._ttl = ttl_seconds

    def due_active(self, now: datetime, limit: int) -> list[JobRecord]:
        """Non-terminal jobs whose lease ran out (running) or that were created (queued) by `now`, oldest first."""
        # "~" sorts after every job id character, so every job due in this very second is included.
        return self._active("gsi1sk <= :edge", f"{epoch(now):012d}#~", limit)

    def leased_active(self, now: datetime, limit: int) -> list[JobRecord]:
        """Running jobs whose lease (or parked async check) is still live at `now`."""
        return self._active("gsi1sk > :edge", f"{epoch(now):012d}#~", limit)

    def _active(self, condition: str, edge: str, limit: int) -> list[JobRecord]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": f"gsi1pk = :active AND {condition}",
            "ExpressionAttributeValues": {":active": {"S": ACTIVE_PARTITION}, ":edge": {"S": edge}},
            "Limit": min(limit, 100),
        }
        jobs: list[JobRecord] = []
        while len(jobs) < limit:
            answer = self._client.query(**query)
            jobs.extend(from_item(item) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                break
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return jobs[:limit]

    def mark_requeued(self, job: JobRecord, *, now: datetime) -> bool:
        """Count one sweeper re-queue; False when the job moved on since it was read (nothing to do)."""
        condition, names, values = _as_seen(job, now)
        marked = update_if(
            self._client,
            TableName=self._table,
            Key=job_key(job.user_id, job.id),
            UpdateExpression="ADD requeues :one",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={**values, ":one": {"N": "1"}},
        )
        return marked is not None

    def fail_stuck(
        self, job: JobRecord, error: ErrorInfo, *, now: datetime, ended: OutboxItem, even_if_leased: bool = False
    ) -> JobRecord | None:
        """Fail a job the sweeper found stuck, with `ended` (the outbox item of its side effects) in the same
        transaction; None when the job moved on since it was read (then neither is written).

        `even_if_leased`: also while a worker holds a live lease (a job past its maximum age); that worker's
        result is then discarded, as after a cancel."""
        condition, names, values = _as_seen(job, now, lease_expired=not even_if_leased)
        update = {
            "TableName": self._table,
            "Key": job_key(job.user_id, job.id),
            "UpdateExpression": (
                "SET #status = :failed, #error = :error, completed_at = :now_iso"
                " REMOVE gsi1pk, gsi1sk, lease_token, lease_until, lease_epoch"
            ),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {**names, "#error": "error"},
            "ExpressionAttributeValues": {
                **values,
                ":failed": {"S": "failed"},
                ":error": {"S": json.dumps(error.model_dump(mode="json"))},
                ":now_iso": {"S": now.isoformat()},
            },
        }
        try:
            transact(self._client, [{"Update": update}, put_action(self._table, ended, self._ttl)])
        except TransactionRefused as refused:
            if refused.failed(0):
                return None
            raise
        item = self._client.get_item(TableName=self._table, Key=job_key(job.user_id, job.id), ConsistentRead=True)
        return from_item(item["Item"])


def _as_seen(
    job: JobRecord, now: datetime, *, lease_expired: bool = True
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A condition that holds only while the job is still in the state the sweeper read."""
    names = {"#status": "status"}
    if job.status == "queued":
        return "#status = :queued", names, {":queued": {"S": "queued"}}
    if job.status != "running" or job.lease_token is None:
        raise ValueError(f"the sweeper only acts on queued or leased running jobs, not {job.status}")
    values: dict[str, Any] = {":running": {"S": "running"}, ":lease": {"S": job.lease_token}}
    if not lease_expired:
        return "#status = :running AND lease_token = :lease", names, values
    values[":now_epoch"] = {"N": str(epoch(now))}
    return "#status = :running AND lease_token = :lease AND lease_epoch <= :now_epoch", names, values
