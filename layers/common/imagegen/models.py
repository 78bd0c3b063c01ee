"""Request, job and error models: the public API shapes and what the stores persist."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from imagegen.clock import utcnow
from imagegen.providers import PROVIDER_NAMES

if TYPE_CHECKING:
    ProviderName = str
else:
    # The registry's image providers; the JSON schema stays an enum of their names.
    ProviderName = Literal[PROVIDER_NAMES]

__all__ = ["PROVIDER_NAMES", "ProviderName", "utcnow"]

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})

ExtraValue = str | int | float | bool
# Numbers in `extra` stay within what every JSON reader holds exactly (2**53 - 1, JavaScript's safe integers).
MAX_EXTRA_NUMBER = 2**53 - 1


def _integral(value: Any) -> Any:
    # JSON Schema calls 512.0 an integer, and clients that write every number as a float send it so; "512" and 512.5
    # are left as they are, for the strict int check to refuse.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# "Has a character that is not whitespace", as str.strip() sees whitespace, written so that ECMA-262 regexes (what
# JSON Schema validators use) and Python's agree: ECMA's \s lacks \x1c-\x1f and \x85, and has \ufeff.
NOT_BLANK_PATTERN = r"[^\s\x1c-\x1f\x85]|\ufeff"
# A URL we can fetch is printable ASCII (media.fetch refuses anything else): documented so, which also keeps the
# document from meaning another \S than the validator's (ECMA-262 and Rust regexes disagree on \x85 and \ufeff).
URL_SCHEMA_PATTERN = "^https?://[!-~]+$"
# After the bounds in an Annotated int, so that the JSON Schema keeps minimum/maximum.
INTEGRAL = BeforeValidator(_integral)
_EXTRA_NUMBER = {"minimum": -MAX_EXTRA_NUMBER, "maximum": MAX_EXTRA_NUMBER}
# What ImageRequest._extra_keys checks, said in the OpenAPI document too.
EXTRA_SCHEMA: dict[str, Any] = {
    "propertyNames": {"minLength": 1, "maxLength": 64},
    "additionalProperties": {
        "anyOf": [
            {"type": "string", "maxLength": 500},
            {"type": "integer", **_EXTRA_NUMBER},
            {"type": "number", **_EXTRA_NUMBER},
            {"type": "boolean"},
        ]
    },
}


# Mutable defaults are written as `[]` / `{}`: pydantic copies them for each instance, and
# `Field(default_factory=list)` would make pydantic tokenize the builtin's signature at import (a one-off ~40 ms of
# every cold start).


class StrictModel(BaseModel):
    """Input model: unknown fields are rejected and types are not coerced ("1024" is not a width)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ImageRequest(StrictModel):
    # NaN and infinities are not JSON: a request holding one could not be stored or echoed as standard JSON.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    # The pattern is for the OpenAPI document (a blank prompt is refused); the validator below says so in words.
    prompt: Annotated[str, Field(min_length=1, max_length=2000, json_schema_extra={"pattern": NOT_BLANK_PATTERN})]
    negative_prompt: Annotated[str | None, Field(max_length=2000)] = None
    width: Annotated[int, Field(ge=64, le=2048), INTEGRAL] = 1024
    height: Annotated[int, Field(ge=64, le=2048), INTEGRAL] = 1024
    steps: Annotated[int, Field(ge=1, le=100), INTEGRAL] | None = None
    guidance: Annotated[float | None, Field(ge=0, le=30)] = None
    seed: Annotated[int, Field(ge=0, le=4_294_967_295), INTEGRAL] | None = None
    model: Annotated[str | None, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/-]+$")] = None
    providers: Annotated[
        list[ProviderName] | None, Field(min_length=1, max_length=10, json_schema_extra={"uniqueItems": True})
    ] = None
    extra: Annotated[dict[str, ExtraValue] | None, Field(max_length=20, json_schema_extra=EXTRA_SCHEMA)] = None
    hedge: bool | None = None
    on_refusal: Literal["stop", "fallback"] = "stop"
    grounding: Literal["none", "web"] = "none"
    webhook_url: Annotated[
        str | None,
        Field(max_length=2048, pattern=r"^https?://\S+$", json_schema_extra={"pattern": URL_SCHEMA_PATTERN}),
    ] = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain a non-whitespace character")
        return value

    @field_validator("providers")
    @classmethod
    def _providers_unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("must not name a provider twice")
        return value

    @field_validator("extra")
    @classmethod
    def _extra_keys(cls, value: dict[str, ExtraValue] | None) -> dict[str, ExtraValue] | None:
        for key, item in (value or {}).items():
            if not key or len(key) > 64:
                raise ValueError("keys must be 1-64 characters")
            if isinstance(item, str) and len(item) > 500:
                raise ValueError(f"value of {key!r} is longer than 500 characters")
            if isinstance(item, int | float) and not isinstance(item, bool) and abs(item) > MAX_EXTRA_NUMBER:
                raise ValueError(f"value of {key!r} must be a finite number within ±{MAX_EXTRA_NUMBER}")
        return value


class ErrorInfo(BaseModel):
    code: str
    message: str
    hint: str | None = None
    details: Any = None


class Attempt(BaseModel):
    """One link of the chain as it was tried (or skipped): what the provider answered, without secrets."""

    provider: str
    model: str | None = None
    # Where a provider routes further: Hugging Face's router provider ("fal-ai", "replicate", ...).
    route: str | None = None
    outcome: Literal["succeeded", "failed", "skipped", "retried", "pending", "canceled"]
    error_class: str | None = None
    status_code: int | None = None
    message: str | None = None
    dropped_params: list[str] = []
    latency_ms: int | None = None


class ImageInfo(BaseModel):
    url: str
    content_type: str
    # Always the size the request asked for: the worker crops and resizes what the provider made.
    width: int
    height: int
    bytes: int
    sha256: str
    # What the provider produced before it was cropped and resized (the same as width/height when nothing changed);
    # absent on jobs stored before this was recorded.
    source_width: int | None = None
    source_height: int | None = None


class Waiting(BaseModel):
    """Why a queued job is not running yet, and when it runs again: every provider left is cooling down after errors
    (`breaker_open`) or at its rate limit (`rate_limited`), and the job still has time before its deadline."""

    reason: str
    until: datetime


class Job(BaseModel):
    """The job as a client sees it."""

    id: str
    status: JobStatus
    request: ImageRequest
    batch_id: str | None = None
    provider: str | None = None
    model: str | None = None
    attempts: list[Attempt] = []
    image: ImageInfo | None = None
    error: ErrorInfo | None = None
    warnings: list[str] = []
    grounding: dict[str, Any] | None = None
    # Set only while the job is queued waiting for a provider to reopen (null otherwise).
    waiting: Waiting | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @model_validator(mode="after")
    def _waiting_while_queued(self) -> Job:
        # A job claimed, canceled or ended since it began to wait waits no more, whatever its stored record says.
        if self.waiting is not None and self.status != "queued":
            self.waiting = None
        return self


class JobRecord(Job):
    """The job as the store keeps it: the public job plus worker bookkeeping that never leaves the service."""

    user_id: str
    lease_token: str | None = None
    lease_until: datetime | None = None
    deliveries: int = 0
    chain_state: dict[str, Any] = {}
    image_key: str | None = None
    request_hash: str | None = None
    # The UTC day (yyyy-mm-dd) whose daily quota this job took a unit from; None when quotas are off.
    quota_day: str | None = None
    # How often the sweeper re-queued the job; bounds how long a job whose messages keep vanishing can live.
    requeues: int = 0

    def public(self) -> Job:
        return Job.model_validate(self.model_dump(include=set(Job.model_fields)))


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None = None
