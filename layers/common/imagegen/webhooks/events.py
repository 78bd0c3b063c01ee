"""Webhook events: built once when a job or batch ends, queued, and delivered with the same id and body every time."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from imagegen.clock import utcnow
from imagegen.messages import Queue, WebhookMessage

if TYPE_CHECKING:
    from imagegen.jobs.batch_models import Batch, BatchRecord
    from imagegen.models import JobRecord

logger = logging.getLogger(__name__)


def event_body(event_type: str, occurred_at: datetime, data: BaseModel) -> str:
    """The payload (the spec's `type`, `timestamp`, `data`), serialized once: what is signed is what is sent."""
    envelope = {
        "type": event_type,
        "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
        "data": data.model_dump(mode="json"),
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


class WebhookNotifier:
    """Queues webhook events: a job-terminal listener, and the batch tracker's `on_end`."""

    def __init__(self, queue: Queue, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._queue = queue
        self._clock = clock

    def __call__(self, job: JobRecord) -> None:
        url = job.request.webhook_url
        if url is None:
            return
        # A job ends once, so its id names the event: a duplicate notice yields the same webhook-id.
        occurred = job.completed_at or self._clock()
        self._enqueue(job.user_id, f"msg_{job.id}", url, event_body(f"job.{job.status}", occurred, job.public()))

    def batch_ended(self, batch: Batch, record: BatchRecord) -> None:
        if record.webhook_url is None:
            return
        occurred = batch.completed_at or self._clock()
        body = event_body(f"batch.{batch.status}", occurred, batch)
        # One event per batch round: a retried batch that ends again is a new event.
        self._enqueue(record.user_id, f"msg_{batch.id}_{record.round}", record.webhook_url, body)

    def _enqueue(self, user_id: str, event_id: str, url: str, body: str) -> None:
        self._queue.send(WebhookMessage(user_id=user_id, event_id=event_id, url=url, body=body))
        logger.info("webhook %s queued", event_id)
