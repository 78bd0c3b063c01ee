"""Webhook delivery: one signed POST per attempt, each attempt recorded on the delivery, the next one queued through
the outbox on the retry schedule.

A message names a delivery, its series and attempt, and when that attempt is due. SQS delays a message by at most
15 minutes, so a message that arrives before its attempt is due sends itself on again with the rest of the wait (a
"not yet" hop: one tiny invocation per 15 minutes of waiting). A message whose attempt was already made (a
duplicate, or a series a redelivery replaced) is dropped: the record's attempt counter decides.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from imagegen.clock import utcnow
from imagegen.errors import UrlNotAllowed
from imagegen.jobs.outbox import Outbox, OutboxItem
from imagegen.messages import Queue, Unreadable, WebhookMessage
from imagegen.webhooks.deliveries import (
    RETRY_SCHEDULE,
    AttemptResult,
    Delivery,
    DeliveryStatus,
    DeliveryStore,
    next_delay,
)
from imagegen.webhooks.secrets import WebhookSecrets, signature_header

logger = logging.getLogger(__name__)

# SQS caps one message's delay at 15 minutes: longer waits are hops of at most this.
MAX_DELAY_SECONDS = 900


class DeliveryFailed(Exception):
    """The receiver could not be reached or did not answer in time; `reason` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: int | None = None


class Sender(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST once, following no redirect; raises UrlNotAllowed (SSRF check) or DeliveryFailed."""
        ...


@dataclass(frozen=True)
class DeliveryOutcome:
    event_id: str
    attempt: int
    result: str  # delivered | retry | gave_up | waiting | dropped
    status: int | None = None
    detail: str | None = None
    next_delay: int | None = None


@dataclass(frozen=True)
class _Tried:
    """What one POST came to."""

    status_code: int | None = None
    error: str | None = None
    retry_after: int | None = None
    # No later attempt can help: the URL is refused now, or the receiver answered 410 Gone.
    final: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def send_effect(queue: Queue, clock: Callable[[], datetime] = utcnow) -> Callable[[OutboxItem], None]:
    """The outbox effect of a `webhook_send` item: queue its attempt, delayed as far as SQS allows."""

    def send(item: OutboxItem) -> None:
        assert item.event_id is not None and item.due_at is not None
        message = WebhookMessage(
            user_id=item.user_id, event_id=item.event_id, series=item.series, attempt=item.attempt, due_at=item.due_at
        )
        queue.send(message, delay_seconds=_delay(item.due_at, clock()))

    return send


def _delay(due_at: datetime, now: datetime) -> int:
    return max(0, min(MAX_DELAY_SECONDS, math.ceil((due_at - now).total_seconds())))


class WebhookDelivery:
    def __init__(
        self,
        secrets_: WebhookSecrets,
        sender: Sender,
        queue: Queue,
        store: DeliveryStore,
        outbox: Outbox,
        *,
        schedule: Sequence[int] = RETRY_SCHEDULE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._secrets = secrets_
        self._sender = sender
        self._queue = queue
        self._store = store
        self._outbox = outbox
        self._schedule = tuple(schedule)
        self._clock = clock

    def handle(self, message: WebhookMessage | Unreadable) -> DeliveryOutcome | None:
        """One message: drop it, hop it on, or make its attempt. A hop that cannot be sent raises, and SQS delivers
        this message again; the attempt's follow-up is an outbox item, so nothing after the POST can be lost."""
        if isinstance(message, Unreadable):
            logger.error("dropping a webhook message that is malformed (%s)", message.reason)
            return None
        delivery = self._store.get(message.user_id, message.event_id) or self._legacy(message)
        stale = self._stale(message, delivery)
        if stale is not None or delivery is None:
            logger.info("webhook %s attempt %d dropped: %s", message.event_id, message.attempt, stale or "no record")
            return DeliveryOutcome(message.event_id, message.attempt, "dropped", detail=stale or "no record")
        now = self._clock()
        if message.due_at is not None and message.due_at > now + timedelta(seconds=1):
            delay = _delay(message.due_at, now)
            self._queue.send(message, delay_seconds=delay)
            return DeliveryOutcome(message.event_id, message.attempt, "waiting", next_delay=delay)
        return self._attempt(delivery, message.attempt, now)

    def _legacy(self, message: WebhookMessage) -> Delivery | None:
        """A message queued before delivery records existed carries its URL and body: it gets its record now."""
        if message.url is None or message.body is None:
            return None
        now = self._clock()
        try:
            event_type = str(json.loads(message.body)["type"])
        except (ValueError, KeyError, TypeError):
            event_type = "unknown"
        record = Delivery(
            id=message.event_id,
            user_id=message.user_id,
            event_type=event_type,
            url=message.url,
            body=message.body,
            attempts=message.attempt - 1,
            next_attempt_at=now,
            created_at=now,
            expires_at=now + timedelta(days=30),
        )
        self._store.create(record, record.first_send(now))
        return self._store.get(message.user_id, message.event_id)

    @staticmethod
    def _stale(message: WebhookMessage, delivery: Delivery | None) -> str | None:
        if delivery is None:
            return "the delivery is no longer stored"
        if delivery.series != message.series:
            return f"series {message.series} was replaced by series {delivery.series} (a redelivery)"
        if message.attempt <= delivery.attempts or delivery.status != "pending":
            return f"attempt {message.attempt} was made already (the delivery is {delivery.status})"
        return None

    def _attempt(self, delivery: Delivery, attempt: int, now: datetime) -> DeliveryOutcome:
        tried = self._post(delivery, now)
        status: DeliveryStatus
        delay: int | None = None
        if tried.succeeded:
            status = "succeeded"
        elif tried.final:
            status = "failed"
        else:
            delay = next_delay(self._schedule, attempt, tried.retry_after)
            status = "pending" if delay is not None else "failed"
        next_at = now + timedelta(seconds=delay) if delay is not None else None
        result = AttemptResult(
            attempt=attempt,
            status=status,
            at=now,
            status_code=tried.status_code,
            error=tried.error,
            next_attempt_at=next_at,
        )
        send = None
        if next_at is not None:
            send = OutboxItem.webhook_send(
                delivery.user_id, delivery.id, series=delivery.series, attempt=attempt + 1, due_at=next_at, now=now
            )
        if not self._store.record_attempt(delivery, result, send):
            logger.info("webhook %s attempt %d was recorded by another copy", delivery.id, attempt)
            return DeliveryOutcome(delivery.id, attempt, "dropped", status=tried.status_code, detail="raced")
        if send is not None:
            self._outbox.dispatch(send)
        return self._outcome(delivery, result, delay)

    def _post(self, delivery: Delivery, now: datetime) -> _Tried:
        body = delivery.body.encode()
        timestamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "imagegen-webhooks/1",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                self._secrets.current(delivery.user_id).signing_secrets(now), delivery.id, timestamp, body
            ),
        }
        try:
            answer = self._sender.post(delivery.url, body, headers)
        except UrlNotAllowed as refused:
            # Checked again at delivery (DNS may have changed since create): refused now is final.
            logger.warning("webhook %s not sent: %s", delivery.id, refused.message)
            return _Tried(error=refused.message, final=True)
        except DeliveryFailed as failed:
            return _Tried(error=failed.reason)
        if 200 <= answer.status < 300:
            return _Tried(status_code=answer.status)
        if answer.status == 410:
            # The receiver says it no longer wants these (the spec: stop sending).
            return _Tried(status_code=410, error="receiver answered 410 Gone", final=True)
        redirect = " (redirects are not followed)" if 300 <= answer.status < 400 else ""
        return _Tried(answer.status, f"receiver answered {answer.status}{redirect}", answer.retry_after)

    @staticmethod
    def _outcome(delivery: Delivery, result: AttemptResult, delay: int | None) -> DeliveryOutcome:
        event_id, attempt = delivery.id, result.attempt
        if result.status == "succeeded":
            logger.info("webhook %s delivered on attempt %d", event_id, attempt)
            return DeliveryOutcome(event_id, attempt, "delivered", status=result.status_code)
        if result.status == "failed":
            logger.error("webhook %s failed on attempt %d (%s); no more attempts", event_id, attempt, result.error)
            return DeliveryOutcome(event_id, attempt, "gave_up", status=result.status_code, detail=result.error)
        logger.warning("webhook %s attempt %d failed (%s); next in %s s", event_id, attempt, result.error, delay)
        return DeliveryOutcome(
            event_id, attempt, "retry", status=result.status_code, detail=result.error, next_delay=delay
        )
