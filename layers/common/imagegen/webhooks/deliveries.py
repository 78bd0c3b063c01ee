"""Delivery records: one per webhook event (id = the event's `webhook-id`), listed by status, redelivered on request.

A record holds what every attempt sends (the URL and the signed body, both fixed when the event happened), where
its attempts stand (the series a redelivery starts, attempts made, the last answer, when the next is due) and a
status: `pending` while attempts remain, then `succeeded` or `failed`. It is kept as long as the job or batch it
tells of (the same TTL). Clients see its view: the URL's host only, never its path or query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from imagegen.clock import utcnow
from imagegen.errors import Conflict, NotFound
from imagegen.jobs.outbox import Outbox, OutboxItem

DeliveryStatus = Literal["pending", "succeeded", "failed"]
# Standard Webhooks' schedule: seconds before each attempt (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h):
# eight attempts over about 27 hours, so a receiver that is down for a day still gets the event.
RETRY_SCHEDULE: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
# A pending delivery whose next attempt is this overdue has lost its message (it can only be in the dead-letter
# queue): it may be redelivered.
STALLED_AFTER = timedelta(hours=1)
EVENT_ID_PATTERN = r"^msg_(img|bat)_[0-9A-HJKMNP-TV-Z]{26}(_[0-9]{1,6})?$"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)


def parse_schedule(text: str) -> tuple[int, ...]:
    """`0,5,300` -> (0, 5, 300): seconds before each attempt, 1-20 attempts, each at most 2 days."""
    parts = [part.strip() for part in text.split(",")]
    if not 1 <= len(parts) <= 20 or not all(part.isdigit() and int(part) <= 172_800 for part in parts):
        raise ValueError("WEBHOOK_RETRY_SCHEDULE: 1-20 comma-separated whole seconds, each at most 172800")
    return tuple(int(part) for part in parts)


def url_host(url: str) -> str:
    """What a delivery shows of its URL: the host (and a port that is not the scheme's), never path or query."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    host = parts.hostname or "(no host)"
    default = 443 if parts.scheme == "https" else 80
    return host if port in (None, default) else f"{host}:{port}"


class DeliveryView(BaseModel):
    """A delivery as `GET /v1/webhooks/deliveries` shows it."""

    model_config = ConfigDict(defer_build=True)

    id: str
    event_type: str
    job_id: str | None = None
    batch_id: str | None = None
    url_host: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime


class DeliveryPage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    items: list[DeliveryView]
    next_cursor: str | None = None


class Delivery(BaseModel):
    """The record as the store keeps it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    user_id: str
    event_type: str
    job_id: str | None = None
    batch_id: str | None = None
    url: str
    body: str
    status: DeliveryStatus = "pending"
    series: int = 0
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    expires_at: datetime

    def view(self) -> DeliveryView:
        return DeliveryView(
            id=self.id,
            event_type=self.event_type,
            job_id=self.job_id,
            batch_id=self.batch_id,
            url_host=url_host(self.url),
            status=self.status,
            attempts=self.attempts,
            last_status_code=self.last_status_code,
            last_error=self.last_error,
            last_attempt_at=self.last_attempt_at,
            next_attempt_at=self.next_attempt_at if self.status == "pending" else None,
            created_at=self.created_at,
        )

    def first_send(self, now: datetime) -> OutboxItem:
        """The outbox item that queues attempt 1 of the current series."""
        return OutboxItem.webhook_send(
            self.user_id, self.id, series=self.series, attempt=1, due_at=self.next_attempt_at or now, now=now
        )


class AttemptResult(BaseModel):
    """What one attempt ended with, as the store records it (conditionally: see DeliveryStore.record_attempt)."""

    model_config = ConfigDict(frozen=True)

    attempt: int
    status: DeliveryStatus
    at: datetime
    status_code: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


class DeliveryStore(Protocol):
    def get(self, user_id: str, event_id: str) -> Delivery | None: ...

    def create(self, delivery: Delivery, send: OutboxItem) -> bool:
        """Write the record and the outbox item of its first attempt together, unless the record exists (False)."""
        ...

    def record_attempt(self, delivery: Delivery, result: AttemptResult, send: OutboxItem | None) -> bool:
        """Record an attempt (and the outbox item of the next one) only if the record is still at this series and
        the attempt before it; False when another copy of the message got there first."""
        ...

    def redeliver(self, user_id: str, event_id: str, now: datetime) -> Delivery:
        """Start a new series (attempts from 0, pending, due now) on a delivery that is not pending, together with
        the outbox item of its first attempt. NotFound, or Conflict while it is pending."""
        ...

    def list(self, user_id: str, status: DeliveryStatus | None, limit: int, cursor: str | None) -> DeliveryPage: ...


class WebhookDeliveries:
    """What the API's delivery routes call: list a user's deliveries, redeliver one."""

    def __init__(self, store: DeliveryStore, outbox: Outbox, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._outbox = outbox
        self._clock = clock

    def list(self, user_id: str, status: DeliveryStatus | None, limit: int, cursor: str | None) -> DeliveryPage:
        return self._store.list(user_id, status, limit, cursor)

    def redeliver(self, user_id: str, event_id: str) -> DeliveryView:
        """Same `webhook-id`, same body, a fresh series of attempts on the same schedule."""
        if not _EVENT_ID.fullmatch(event_id):
            raise NotFound(f"no webhook delivery with id {event_id[:80]}")
        now = self._clock()
        delivery = self._store.redeliver(user_id, event_id, now)
        self._outbox.dispatch(delivery.first_send(now))
        return delivery.view()


def new_delivery(
    *,
    user_id: str,
    event_id: str,
    event_type: str,
    url: str,
    body: str,
    now: datetime,
    expires_at: datetime,
    job_id: str | None = None,
    batch_id: str | None = None,
) -> Delivery:
    return Delivery(
        id=event_id,
        user_id=user_id,
        event_type=event_type,
        job_id=job_id,
        batch_id=batch_id,
        url=url,
        body=body,
        next_attempt_at=now,
        created_at=now,
        expires_at=expires_at,
    )


def next_delay(schedule: Sequence[int], attempt: int, retry_after: int | None) -> int | None:
    """Seconds until the attempt after `attempt` (1-based), or None when `attempt` was the last. A receiver's
    Retry-After lengthens the wait (up to 10 hours), never shortens it."""
    if attempt >= len(schedule):
        return None
    return max(schedule[attempt], min(retry_after or 0, 36_000))


def stale_pending_conflict(event_id: str) -> Conflict:
    return Conflict(
        f"webhook delivery {event_id} is still pending: its attempts are under way",
        hint="wait until it is succeeded or failed (GET /v1/webhooks/deliveries?status=pending shows when the next "
        "attempt is due; one overdue by an hour may be redelivered)",
    )


def expiry(created_at: datetime, ttl_seconds: int) -> datetime:
    """A delivery lives as long as the job or batch it tells of: their TTL counts from their creation."""
    return created_at + timedelta(seconds=ttl_seconds)
