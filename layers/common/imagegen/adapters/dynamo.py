"""Conditional writes to the single table: one place that tells "the condition did not hold" from a real error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

CONDITION_FAILED = "ConditionalCheckFailedException"
# A transaction one of whose conditions failed (an idempotency marker that exists, a refund made before).
TRANSACTION_CANCELED = "TransactionCanceledException"


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def condition_failed(error: ClientError) -> bool:
    return error_code(error) == CONDITION_FAILED


def update_if(client: DynamoDBClient, **request: Any) -> dict[str, Any] | None:
    """update_item with a ConditionExpression: the returned attributes ({} without ReturnValues), or None when the
    condition did not hold (someone else changed the item first). Any other error is raised."""
    try:
        answer = client.update_item(**request)
    except ClientError as error:
        if condition_failed(error):
            return None
        raise
    return dict(answer.get("Attributes") or {})


def put_if(client: DynamoDBClient, **request: Any) -> bool:
    """put_item with a ConditionExpression; False when the condition did not hold."""
    try:
        client.put_item(**request)
    except ClientError as error:
        if condition_failed(error):
            return False
        raise
    return True


def delete_if(client: DynamoDBClient, **request: Any) -> bool:
    """delete_item with a ConditionExpression; False when the condition did not hold."""
    try:
        client.delete_item(**request)
    except ClientError as error:
        if condition_failed(error):
            return False
        raise
    return True
