"""Signed webhooks (Standard Webhooks): per-user secrets, events queued when a job or batch ends, retried delivery."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel

from imagegen.errors import UrlNotAllowed
from imagegen.jobs.batch_models import Batch, BatchRecord
from imagegen.messages import Queue, Unreadable, WebhookMessage
from imagegen.models import JobRecord, utcnow

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker of a secret, not a secret
SECRET_BYTES = 32  # the spec asks for 24-64 random bytes
# Delay before each attempt: 6 attempts over 51 minutes. SQS caps one delay at 15 minutes, hence no longer steps.
RETRY_DELAYS: tuple[int, ...] = (0, 60, 300, 900, 900, 900)
MAX_DELAY_SECONDS = 900
# After a rotation the old secret still signs (a second signature in the header) for a day, so receivers can switch.
ROTATION_GRACE = timedelta(hours=24)


# ---------------------------------------------------------------------------------------------------------------
# Secrets and signatures


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64-decoded part after `whsec_`."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as error:
        raise ValueError("a webhook secret is base64 after whsec_") from error


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(signing_secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures, one per secret (the current one first), as the spec does for rotation."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in signing_secrets)


@dataclass(frozen=True)
class WebhookSecret:
    current: str
    created_at: datetime
    previous: str | None = None
    previous_until: datetime | None = None

    def __repr__(self) -> str:  # never print a secret
        return f"WebhookSecret(created_at={self.created_at!r}, previous_until={self.previous_until!r})"

    def signing_secrets(self, now: datetime) -> list[str]:
        if self.previous and self.previous_until and now < self.previous_until:
            return [self.current, self.previous]
        return [self.current]


class SecretStore(Protocol):
    def get(self, user_id: str) -> WebhookSecret | None: ...

    def create(self, user_id: str, secret: WebhookSecret) -> WebhookSecret:
        """Store `secret` unless the user has one already; either way, the one that is stored."""
        ...

    def rotate(self, user_id: str, new: str, now: datetime, previous_until: datetime) -> WebhookSecret: ...


class SecretView(BaseModel):
    """What GET /v1/webhooks/secret shows: the caller's own secret (it is theirs to verify with)."""

    secret: str
    created_at: datetime
    previous_valid_until: datetime | None = None


class WebhookSecrets:
    def __init__(self, store: SecretStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock

    def current(self, user_id: str) -> WebhookSecret:
        """The user's secret, created on first use (by a GET or by the first delivery, whichever comes first)."""
        found = self._store.get(user_id)
        if found is not None:
            return found
        return self._store.create(user_id, WebhookSecret(current=new_secret(), created_at=self._clock()))

    def rotate(self, user_id: str) -> WebhookSecret:
        now = self._clock()
        self.current(user_id)
        return self._store.rotate(user_id, new_secret(), now, now + ROTATION_GRACE)

    @staticmethod
    def view(secret: WebhookSecret, now: datetime | None = None) -> SecretView:
        moment = now or utcnow()
        valid = secret.previous_until if secret.previous_until and secret.previous_until > moment else None
        return SecretView(secret=secret.current, created_at=secret.created_at, previous_valid_until=valid)


# ---------------------------------------------------------------------------------------------------------------
# Events: built once when a job or batch ends, queued, and delivered with the same id and body on every attempt.


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


# ---------------------------------------------------------------------------------------------------------------
# Delivery


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
    result: str  # delivered | retry | gave_up
    status: int | None = None
    detail: str | None = None
    next_delay: int | None = None


class WebhookDelivery:
    def __init__(
        self,
        secrets_: WebhookSecrets,
        sender: Sender,
        queue: Queue,
        *,
        delays: Sequence[int] = RETRY_DELAYS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._secrets = secrets_
        self._sender = sender
        self._queue = queue
        self._delays = tuple(delays)
        self._clock = clock

    def handle(self, message: WebhookMessage | Unreadable) -> DeliveryOutcome | None:
        """One attempt. A failed attempt queues the next one (with its delay) before this message is acknowledged;
        if that send fails, this raises, and SQS delivers this attempt again: at least once, never lost."""
        if isinstance(message, Unreadable):
            logger.error("dropping a webhook message that is malformed (%s)", message.reason)
            return None
        event_id, attempt = message.event_id, message.attempt
        body = message.body.encode()
        now = self._clock()
        timestamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "imagegen-webhooks/1",
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                self._secrets.current(message.user_id).signing_secrets(now), event_id, timestamp, body
            ),
        }
        try:
            answer = self._sender.post(message.url, body, headers)
        except UrlNotAllowed as refused:
            # The address is checked again at delivery (DNS may have changed since create): refused now is final.
            logger.warning("webhook %s not sent: %s", event_id, refused.message)
            return DeliveryOutcome(event_id, attempt, "gave_up", detail=refused.message)
        except DeliveryFailed as failed:
            return self._again(message, None, failed.reason, None)
        if 200 <= answer.status < 300:
            logger.info("webhook %s delivered on attempt %d", event_id, attempt)
            return DeliveryOutcome(event_id, attempt, "delivered", status=answer.status)
        if answer.status == 410:
            # The receiver says it no longer wants these (the spec: stop sending).
            logger.warning("webhook %s: receiver answered 410 Gone; not retried", event_id)
            return DeliveryOutcome(event_id, attempt, "gave_up", status=410, detail="receiver answered 410 Gone")
        detail = f"receiver answered {answer.status}" + (
            " (redirects are not followed)" if 300 <= answer.status < 400 else ""
        )
        return self._again(message, answer.status, detail, answer.retry_after)

    def _again(
        self, message: WebhookMessage, status: int | None, detail: str, retry_after: int | None
    ) -> DeliveryOutcome:
        event_id, attempt = message.event_id, message.attempt
        if attempt >= len(self._delays):
            logger.error("webhook %s failed on all %d attempts (last: %s); giving up", event_id, attempt, detail)
            return DeliveryOutcome(event_id, attempt, "gave_up", status=status, detail=detail)
        delay = min(MAX_DELAY_SECONDS, max(self._delays[attempt], retry_after or 0))
        self._queue.send(message.model_copy(update={"attempt": attempt + 1}), delay_seconds=delay)
        logger.warning("webhook %s attempt %d failed (%s); next in %d s", event_id, attempt, detail, delay)
        return DeliveryOutcome(event_id, attempt, "retry", status=status, detail=detail, next_delay=delay)
