"""Quota counters (pk=USER#{user}, sk=QUOTA#{day} and RATE#{minute}) and the once-only refund marker on the job item."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imagegen.adapters.dynamo import TRANSACTION_CANCELED, TransactionRefused, error_code, update_if
from imagegen.jobs.quota import QuotaCharge, QuotaFull

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


def _counter_key(user_id: str, day: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"QUOTA#{day}"}}


def charge_action(table: str, user_id: str, charge: QuotaCharge) -> dict[str, Any]:
    """The transaction action that takes a charge's units from its counter, only if they fit: a create writes it with
    its jobs, so a job is never stored without its units nor units taken without a job."""
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": charge.counter}},
            "UpdateExpression": "SET expires_at = if_not_exists(expires_at, :expires) ADD used :units",
            # used + units <= limit, written without arithmetic (conditions cannot add).
            "ConditionExpression": "attribute_not_exists(used) OR used <= :room",
            "ExpressionAttributeValues": {
                ":units": {"N": str(charge.units)},
                ":room": {"N": str(charge.limit - charge.units)},
                ":expires": {"N": str(int(charge.expires_at.timestamp()))},
            },
        }
    }


def charged(refused: TransactionRefused, first: int, charges: Sequence[QuotaCharge]) -> QuotaFull | None:
    """The charge whose condition refused the transaction (its actions start at index `first`), if one did."""
    for index, charge in enumerate(charges):
        if refused.failed(first + index):
            return QuotaFull(charge)
    return None


class DynamoQuotaStore:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def refund_once(self, user_id: str, job_id: str, day: str, *, now: datetime, units: int = 1) -> bool:
        job_key = {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"JOB#{job_id}"}}
        # The marker and the decrement commit together or not at all: a second refund finds the marker and
        # cancels the whole transaction, however many redeliveries or cancels report the job's end.
        mark_job = {
            "Update": {
                "TableName": self._table,
                "Key": job_key,
                "UpdateExpression": "SET quota_refunded_at = :now",
                "ConditionExpression": (
                    "attribute_exists(pk) AND attribute_not_exists(quota_refunded_at) AND quota_day = :day"
                    " AND #status IN (:failed, :canceled)"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":now": {"S": now.isoformat()},
                    ":day": {"S": day},
                    ":failed": {"S": "failed"},
                    ":canceled": {"S": "canceled"},
                },
            }
        }
        decrement = {
            "Update": {
                "TableName": self._table,
                "Key": _counter_key(user_id, day),
                "UpdateExpression": "ADD used :minus_units",
                # Never below zero (written without arithmetic: conditions cannot subtract).
                "ConditionExpression": "used >= :units",
                "ExpressionAttributeValues": {":minus_units": {"N": str(-units)}, ":units": {"N": str(units)}},
            }
        }
        try:
            self._client.transact_write_items(TransactItems=[mark_job, decrement])  # type: ignore[list-item]
        except ClientError as error:
            if error_code(error) != TRANSACTION_CANCELED:
                raise
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False  # refunded before, or not a refundable job
            # The counter expired with its day (or is at zero): mark the job so no later call tries again.
            update_if(self._client, **mark_job["Update"])
            return False
        return True
