"""Lambda's event source mapping for SQS, and EventBridge schedules, run against the emulator."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from imagegen.local.logs import LOGGER_NAME
from imagegen.local.spec import ScheduleSpec, SqsSourceSpec

log = logging.getLogger(LOGGER_NAME)

Invoke = Callable[[str, Any], Any]

# Short, so that stop() returns quickly; Lambda's pollers long-poll for 20 s.
RECEIVE_WAIT_SECONDS = 1
# The record attributes Lambda passes on (it leaves out the rest of what ReceiveMessage can return).
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ReceiveMessage message as a record of Lambda's SQS event."""
    attributes = message.get("Attributes") or {}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {name: attributes[name] for name in _RECORD_ATTRIBUTES if name in attributes},
        "messageAttributes": {
            name: {
                **({"stringValue": value["StringValue"]} if "StringValue" in value else {}),
                **({"binaryValue": _b64(value["BinaryValue"])} if "BinaryValue" in value else {}),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": [_b64(item) for item in value.get("BinaryListValues", [])],
                "dataType": value["DataType"],
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def failed_message_ids(result: Any, message_ids: list[str]) -> set[str]:
    """Which records stay on the queue after the function returned result, per Lambda's partial batch rules."""
    if result is None:
        return set()
    if not isinstance(result, dict):
        return set(message_ids)
    failures = result.get("batchItemFailures")
    if failures is None or failures == []:
        return set()
    if not isinstance(failures, list):
        return set(message_ids)
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in message_ids:
            # An invalid response is a failure of the whole batch.
            return set(message_ids)
        failed.add(identifier)
    return failed


class QueuePoller:
    """One event source mapping: a receiver hands batches to up to `concurrency` concurrent invocations."""

    def __init__(
        self,
        source: SqsSourceSpec,
        invoke: Invoke,
        sqs_client: Any,
        region: str,
        concurrency: int,
        stop: threading.Event,
    ) -> None:
        self.source = source
        self._invoke = invoke
        self._sqs = sqs_client
        self._region = region
        self._stop = stop
        self._slots = threading.Semaphore(concurrency)
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"sqs-{source.function}")
        self._thread = threading.Thread(target=self._receive_loop, name=f"sqs-receive-{source.function}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()
        self._executor.shutdown(wait=True)

    def _receive_loop(self) -> None:
        # One receiver, so that two receives never race inside the emulator for the same message; it only
        # receives when an invocation slot is free, so no message waits in memory while its visibility runs. Like
        # Lambda's pollers it asks for up to 10 messages at once (as many as free slots can take) and hands them
        # out in batches of the source's BatchSize, so a burst of messages starts its invocations together.
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.2):
                continue
            slots = 1 + self._more_slots(max(0, 10 // self.source.batch_size - 1))
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self.source.queue_url,
                    MaxNumberOfMessages=min(slots * self.source.batch_size, 10),
                    WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                self._release(slots)
                if self._stop.is_set():
                    break
                log.exception("receiving from %s failed", self.source.queue_url)
                self._stop.wait(1)
                continue
            batches = [
                messages[i : i + self.source.batch_size] for i in range(0, len(messages), self.source.batch_size)
            ]
            self._release(slots - len(batches))
            for batch in batches:
                self._executor.submit(self._process, batch)

    def _more_slots(self, wanted: int) -> int:
        taken = 0
        while taken < wanted and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _process(self, messages: list[dict[str, Any]]) -> None:
        try:
            records = [sqs_record(message, self.source.queue_arn, self._region) for message in messages]
            ids = [record["messageId"] for record in records]
            try:
                result = self._invoke(self.source.function, {"Records": records})
            except Exception as exc:  # an invocation error leaves the whole batch for redelivery
                log.error(
                    "%s failed on a batch of %d: %s", self.source.function, len(ids), type(exc).__name__, exc_info=exc
                )
                return
            failed = failed_message_ids(result, ids) if self.source.report_batch_item_failures else set()
            done = [record for record in records if record["messageId"] not in failed]
            for start in range(0, len(done), 10):
                chunk = done[start : start + 10]
                response = self._sqs.delete_message_batch(
                    QueueUrl=self.source.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
                )
                for failure in response.get("Failed", []):
                    log.warning("could not delete a message from %s: %s", self.source.queue_url, failure.get("Code"))
            if failed:
                log.info("%s reported %d of %d records failed", self.source.function, len(failed), len(ids))
        except Exception:
            log.exception("handling a batch from %s failed", self.source.queue_url)
        finally:
            self._slots.release()


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs of a rate() expression; None for cron() and at(), which are not run locally."""
    match = _RATE.match(expression.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def scheduled_event(schedule: ScheduleSpec, region: str, account_id: str) -> Any:
    """The event EventBridge sends for a schedule: the rule's constant Input if it has one."""
    if schedule.input is not None:
        return json.loads(schedule.input)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events" if schedule.event_type == "Schedule" else "aws.scheduler",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account_id}:rule/{schedule.name}"],
        "detail": {},
    }


class ScheduleRunner:
    """Invokes a function every period; runs do not overlap (a late run delays the next one)."""

    def __init__(
        self,
        schedule: ScheduleSpec,
        period_seconds: float,
        invoke: Invoke,
        region: str,
        account_id: str,
        stop: threading.Event,
    ) -> None:
        self.schedule = schedule
        self.period_seconds = period_seconds
        self._invoke = invoke
        self._region = region
        self._account_id = account_id
        self._stop = stop
        self._thread = threading.Thread(target=self._loop, name=f"schedule-{schedule.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_seconds):
            try:
                self._invoke(self.schedule.function, scheduled_event(self.schedule, self._region, self._account_id))
            except Exception as exc:  # EventBridge only records a failed invocation
                log.error("scheduled %s failed: %s", self.schedule.function, type(exc).__name__, exc_info=exc)
