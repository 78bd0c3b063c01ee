"""Webhook events: built once when a job or batch ends, recorded as a delivery, and sent with the same id and body
on every attempt."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from imagegen.clock import utcnow
from imagegen.jobs.outbox import Outbox
from imagegen.webhooks.deliveries import Delivery, DeliveryStore, expiry, new_delivery

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


class WebhookEvents:
    """A job-end effect (the job's own event) and the batch tracker's builder of a batch's event."""

    def __init__(
        self, store: DeliveryStore, outbox: Outbox, *, ttl_seconds: int, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._ttl = ttl_seconds
        self._clock = clock

    def job_ended(self, job: JobRecord) -> None:
        url = job.request.webhook_url
        if url is None:
            return
        now = self._clock()
        occurred = job.completed_at or now
        # job.succeeded, job.failed, job.canceled; a video job's: video.succeeded, video.failed, video.canceled.
        event_type = f"{'video' if job.kind == 'video' else 'job'}.{job.status}"
        delivery = new_delivery(
            user_id=job.user_id,
            # A job ends once, so its id names the event: a repeated dispatch finds the delivery it made before.
            event_id=f"msg_{job.id}",
            event_type=event_type,
            url=url,
            body=event_body(event_type, occurred, job.public()),
            now=now,
            expires_at=expiry(job.created_at, self._ttl),
            job_id=job.id,
        )
        send = delivery.first_send(now)
        if self._store.create(delivery, send):
            logger.info("webhook %s recorded", delivery.id)
            self._outbox.dispatch(send)

    def batch_delivery(self, batch: Batch, record: BatchRecord) -> Delivery:
        """The delivery of a batch's event, for the tracker to write with its claim on the batch's round."""
        now = self._clock()
        return new_delivery(
            user_id=record.user_id,
            # One event per batch round: a retried batch that ends again is a new event.
            event_id=f"msg_{batch.id}_{record.round}",
            event_type=f"batch.{batch.status}",
            url=record.webhook_url or "",
            body=event_body(f"batch.{batch.status}", batch.completed_at or now, batch),
            now=now,
            expires_at=expiry(record.created_at, self._ttl),
            batch_id=batch.id,
        )

    def send_first(self, delivery: Delivery) -> None:
        self._outbox.dispatch(delivery.first_send(delivery.created_at))
