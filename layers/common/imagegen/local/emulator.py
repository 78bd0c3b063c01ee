"""Makes moto's DynamoDB as atomic as the real one: every request runs alone.

moto's TransactWriteItems applies its writes one by one and, when a condition fails, puts back a deep copy of each
table it touched as it was before the transaction. A write that another thread made meanwhile is lost with that
copy (seen as a racing batch create whose winner kept two of its three jobs). DynamoDB itself commits a transaction
atomically, so the local stack and the tests serialize moto's DynamoDB requests to behave the same.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()


def serialize_dynamodb() -> None:
    """Idempotent: the first call wraps moto's DynamoDB request handler in one process-wide lock."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "_imagegen_serialized", False):
        return

    def call_action(self: Any) -> Any:
        with _LOCK:
            return original(self)

    call_action._imagegen_serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
