"""Queue messages: one pydantic model per kind, told apart by `kind`; what the worker and webhook queues carry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
)


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _JobMessage(_Message):
    """A message about one job of one user: the worker reads the job itself from the table."""

    user_id: str = Field(min_length=1)
    job_id: str = Field(min_length=1)


class GenerateMessage(_JobMessage):
    """Run the chain for a queued job; one that waits for a provider not before `not_before` (epoch seconds; SQS
    delays a message 15 minutes at most, so a longer wait is sent on again)."""

    kind: Literal["generate"] = "generate"
    not_before: float | None = None

    @model_serializer(mode="wrap")
    def _without_unset_wait(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A message that does not wait is the same message it always was.
        data: dict[str, Any] = handler(self)
        if data.get("not_before") is None:
            data.pop("not_before", None)
        return data


class CheckMessage(_JobMessage):
    """Ask an async provider about a pending job; only the holder of the job's current check token may."""

    kind: Literal["check"] = "check"
    check_token: str = Field(min_length=1)


class CancelMessage(_JobMessage):
    """Cancel the remote request a canceled job left at an async provider (best effort)."""

    kind: Literal["cancel"] = "cancel"


class KeyCheckMessage(_Message):
    """Check one key now: a call marked it out of credit (imagegen.keys.credit), and the mark should not wait for the
    schedule. The key itself is read again by the worker; the message names whose key it is."""

    kind: Literal["keycheck"] = "keycheck"
    user_id: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    source: Literal["user", "deployment"]


class WebhookMessage(_Message):
    """One attempt of a webhook delivery: the delivery record (imagegen.webhooks.deliveries) holds the URL and the
    body; the message says which series and attempt, and when it is due (SQS delays a message 15 minutes at most)."""

    kind: Literal["webhook"] = "webhook"
    user_id: str = Field(min_length=1)
    event_id: str = Field(min_length=1)
    series: int = Field(default=0, ge=0)
    attempt: int = Field(default=1, ge=1)
    due_at: datetime | None = None
    # Only on messages queued before delivery records existed: such a message brings its own URL and body.
    url: str | None = Field(default=None, min_length=1)
    body: str | None = Field(default=None, min_length=1)


JobMessage = Annotated[GenerateMessage | CheckMessage | CancelMessage | KeyCheckMessage, Field(discriminator="kind")]
QueueMessage = GenerateMessage | CheckMessage | CancelMessage | KeyCheckMessage | WebhookMessage


class QueueUnavailable(Exception):
    """The queue did not take a message (SQS refused it or could not be reached); the caller's record is durable, so
    the sweeper sends it again."""


class Queue(Protocol):
    """The one queue port (imagegen.adapters.queue.SqsQueue): the jobs queue and the webhooks queue alike. Both
    methods raise QueueUnavailable when the queue does not take the message(s)."""

    def send(self, message: QueueMessage, *, delay_seconds: int = 0) -> None: ...

    def send_many(self, messages: Sequence[QueueMessage]) -> None:
        """All or an error: a partial failure raises, so nothing is silently lost."""
        ...


@dataclass(frozen=True)
class Unreadable:
    """A message body that is no message of this queue: dropped with a log line, never retried."""

    reason: str


def _reason(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    return f"{where}: {first.get('type')}"


def _reader(adapter: TypeAdapter[Any]) -> Any:
    def read(raw: Any) -> Any:
        if isinstance(raw, BaseModel | Unreadable):
            return raw
        try:
            return adapter.validate_json(raw) if isinstance(raw, str | bytes) else adapter.validate_python(raw)
        except ValidationError as error:
            # The record itself still parses: its handler drops this body instead of failing (and redriving) it.
            return Unreadable(_reason(error))

    return read


_JOB = TypeAdapter(JobMessage)
_WEBHOOK = TypeAdapter(WebhookMessage)

# The `body` of an SQS record on each queue (Powertools' BatchProcessor parses records with these, see the handlers).
JobBody = Annotated[
    GenerateMessage | CheckMessage | CancelMessage | KeyCheckMessage | Unreadable, BeforeValidator(_reader(_JOB))
]
WebhookBody = Annotated[WebhookMessage | Unreadable, BeforeValidator(_reader(_WEBHOOK))]


def read_job_message(raw: str) -> GenerateMessage | CheckMessage | CancelMessage | KeyCheckMessage | Unreadable:
    """A jobs-queue body as the worker's record model reads it."""
    result: GenerateMessage | CheckMessage | CancelMessage | KeyCheckMessage | Unreadable = _reader(_JOB)(raw)
    return result


def read_webhook_message(raw: str) -> WebhookMessage | Unreadable:
    result: WebhookMessage | Unreadable = _reader(_WEBHOOK)(raw)
    return result
