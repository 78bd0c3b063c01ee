"""Webhook function: SQS batches of webhook deliveries, one signed POST each, failures re-queued with backoff."""

import gc

gc.disable()  # loading makes long-lived objects only: no collection until they are frozen below (cold start)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from imagegen import wiring
from imagegen.messages import WebhookBody

logger = Logger()


class WebhookRecord(SqsRecordModel):
    # A malformed body parses as Unreadable and is dropped with a log line, never redelivered.
    body: WebhookBody  # type: ignore[assignment]


# A record fails only when its retry could not be queued; SQS then redelivers exactly that record.
processor = BatchProcessor(event_type=EventType.SQS, model=WebhookRecord, raise_on_entire_batch_failure=False)


def record_handler(record: WebhookRecord) -> None:
    wiring.webhook_delivery().handle(record.body)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


gc.freeze()  # what was loaded stays out of every later collection (docs/architecture.md, "Cold start")
gc.enable()
