"""Worker function: SQS batches of job messages, with partial batch failures reported."""

import gc

gc.disable()  # loading makes long-lived objects only: no collection until they are frozen below (cold start)

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from imagegen import wiring
from imagegen.messages import JobBody

logger = Logger()
# Powertools metric instances share one set: this flushes what the provider chain recorded.
metrics = Metrics()


class JobRecord(SqsRecordModel):
    # A body that is no job message parses as Unreadable: the worker drops it with a log line instead of failing
    # the record (which SQS would redeliver until the DLQ).
    body: JobBody  # type: ignore[assignment]


# Report every failed record, even when all failed, instead of raising: SQS redelivers exactly those.
processor = BatchProcessor(event_type=EventType.SQS, model=JobRecord, raise_on_entire_batch_failure=False)


def record_handler(record: JobRecord, lambda_context: LambdaContext) -> None:
    wiring.worker().handle(
        record.body,
        receive_count=int(record.attributes.ApproximateReceiveCount),
        remaining_seconds=lambda_context.get_remaining_time_in_millis() / 1000,
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # Decrypted user keys are cached for one invocation only.
    wiring.worker_keys().begin_invocation()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


gc.freeze()  # what was loaded stays out of every later collection (docs/architecture.md, "Cold start")
gc.enable()
