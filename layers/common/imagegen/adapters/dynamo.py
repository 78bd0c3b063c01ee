"""Conditional writes to the single table: one place that tells "the condition did not hold" from a real error."""

from __future__ import annotations

import time
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


# AWS takes 100 actions per transaction; the local emulator (moto) 25. Learned on the first refusal and remembered
# for the container's life: callers that must write more than fit split the rest into later transactions.
AWS_TRANSACT_ITEMS = 100
_EMULATOR_TRANSACT_ITEMS = 25
_transact_items = [AWS_TRANSACT_ITEMS]
_CONFLICT_RETRIES = 4


def transact_limit() -> int:
    return _transact_items[0]


class TransactionRefused(Exception):
    """A transaction one of whose conditions did not hold; `reasons[i]` is action i's cancellation code
    ("None" for an action whose condition held)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"


class TooManyActions(Exception):
    """The backend takes fewer actions per transaction than were sent (the emulator's 25); nothing was written."""


def transact(client: DynamoDBClient, actions: list[dict[str, Any]]) -> None:
    """TransactWriteItems, all or nothing. A transaction that lost a race with another one on the same items
    (TransactionConflict) is tried again a few times; one whose conditions failed raises TransactionRefused."""
    if len(actions) > transact_limit():
        raise TooManyActions(f"{len(actions)} actions; this backend takes {transact_limit()}")
    for attempt in range(_CONFLICT_RETRIES):
        try:
            client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
            return
        except ClientError as error:
            code, message = error_code(error), str(error.response.get("Error", {}).get("Message", ""))
            if code == "ValidationException" and "less than or equal to" in message and len(actions) > 25:
                _transact_items[0] = _EMULATOR_TRANSACT_ITEMS
                raise TooManyActions(message) from None
            if code != TRANSACTION_CANCELED:
                raise
            reasons = [str(reason.get("Code") or "None") for reason in error.response.get("CancellationReasons", [])]
            conflict_only = "TransactionConflict" in reasons and "ConditionalCheckFailed" not in reasons
            if conflict_only and attempt + 1 < _CONFLICT_RETRIES:
                time.sleep(0.02 * 2**attempt)
                continue
            raise TransactionRefused(reasons) from None


def transact_together(client: DynamoDBClient, head: list[dict[str, Any]], rest: list[dict[str, Any]]) -> None:
    """`head` and `rest` in one transaction where the backend takes that many actions (AWS: 100, enough for a
    50-item batch with its marker and counters). Where it takes fewer (the emulator: 25), `head` goes with as much of
    `rest` as fits, and the remainder follows in further transactions: the conditions that decide (in `head`) are
    still all or nothing."""
    try:
        transact(client, head + rest)
        return
    except TooManyActions:
        pass
    room = transact_limit() - len(head)
    transact(client, head + rest[:room])
    for start in range(room, len(rest), transact_limit()):
        transact(client, rest[start : start + transact_limit()])
