"""An SQS queue for queue messages (imagegen.messages): JSON bodies a handler's record model parses on `kind`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from imagegen.messages import QueueUnavailable

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

    from imagegen.messages import QueueMessage

# SQS caps DelaySeconds at 15 minutes.
MAX_DELAY_SECONDS = 900


class SqsQueue:
    """Implements the Queue port (imagegen.jobs.service.Queue) for the jobs queue and the webhooks queue alike."""

    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self._url = queue_url
        self._client = client

    def send(self, message: QueueMessage, *, delay_seconds: int = 0) -> None:
        body = message.model_dump_json()
        try:
            self._client.send_message(
                QueueUrl=self._url, MessageBody=body, DelaySeconds=max(0, min(delay_seconds, MAX_DELAY_SECONDS))
            )
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailable(f"SQS did not take a {message.kind} message: {type(error).__name__}") from error

    def send_many(self, messages: Sequence[QueueMessage]) -> None:
        """Send in batches of ten (the SQS limit); a partial failure raises so nothing is silently lost."""
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(index), "MessageBody": message.model_dump_json()} for index, message in enumerate(chunk)
            ]
            try:
                answer = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise QueueUnavailable(f"SQS did not take a batch of {len(chunk)}: {type(error).__name__}") from error
            failed = answer.get("Failed", [])
            if failed:
                raise QueueUnavailable(f"SQS refused {len(failed)} of {len(chunk)} messages: {failed[0].get('Code')}")
