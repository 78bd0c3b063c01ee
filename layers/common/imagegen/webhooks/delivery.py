"""Webhook delivery: one signed POST per attempt; a failed attempt queues the next one on the retry schedule."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from imagegen.clock import utcnow
from imagegen.errors import UrlNotAllowed
from imagegen.messages import Queue, Unreadable, WebhookMessage
from imagegen.webhooks.secrets import WebhookSecrets, signature_header

logger = logging.getLogger(__name__)

# Delay before each attempt: 6 attempts over 51 minutes. SQS caps one delay at 15 minutes, hence no longer steps.
RETRY_DELAYS: tuple[int, ...] = (0, 60, 300, 900, 900, 900)
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
