"""Request, job and error models: the public API shapes and what the stores persist."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from imagegen.clock import utcnow
from imagegen.providers import PROVIDER_NAMES, VIDEO_PROVIDER_NAMES

if TYPE_CHECKING:
    ProviderName = str
else:
    # The registry's image providers; the JSON schema stays an enum of their names.
    ProviderName = Literal[PROVIDER_NAMES]

__all__ = ["PROVIDER_NAMES", "ProviderName", "VideoProviderName", "utcnow"]

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
_URL_CHARS = re.compile(r"[!-~]+")
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

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

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


# An image-to-video input inline: a job record (and its webhook body) holds the request whole, and API bodies are at
# most 64 KB; larger images go as an https URL. Types the providers take, told by their first bytes.
MAX_IMAGE_DATA_URI_CHARS = 60_000
IMAGE_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/webp": (b"RIFF",),
}
# Base64 of a whole number of bytes (its length a multiple of 4), never empty.
_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)"
IMAGE_DATA_URI_PATTERN = rf"^data:image/(png|jpeg|webp);base64,{_BASE64}$"
_IMAGE_DATA_URI = re.compile(rf"data:(image/(?:png|jpeg|webp));base64,({_BASE64})")
MAX_IMAGE_URL_CHARS = 2048
# 64-2048 a side, as the pattern the OpenAPI document gives image_size.
_SIDE = r"(?:6[4-9]|[7-9][0-9]|[1-9][0-9]{2}|1[0-9]{3}|20[0-3][0-9]|204[0-8])"
IMAGE_SIZE_PATTERN = rf"^{_SIDE}x{_SIDE}$"
# What a video job makes when the request names no size: the first size SiliconFlow lists (landscape 720p).
DEFAULT_VIDEO_SIZE = (1280, 720)

if TYPE_CHECKING:
    VideoProviderName = str
else:
    # The registry's video providers (those whose spec has a `video` part).
    VideoProviderName = Literal[VIDEO_PROVIDER_NAMES]


def image_data_uri(value: str) -> tuple[str, bytes]:
    """(content type, bytes) of a base64 data URI holding a PNG, JPEG or WebP; ValueError saying what is wrong."""
    match = _IMAGE_DATA_URI.fullmatch(value)
    if match is None:
        raise ValueError("must be data:image/png|jpeg|webp;base64,<base64 of the image> or an http(s) URL")
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("holds invalid base64") from None
    content_type = match.group(1)
    webp = content_type != "image/webp" or data[8:12] == b"WEBP"
    if not data.startswith(IMAGE_SIGNATURES[content_type]) or not webp:
        raise ValueError(f"says {content_type} but its bytes are not one")
    return content_type, data


def _integer(name: str) -> dict[str, Any]:
    return {"properties": {name: {"type": "integer"}}, "required": [name]}


# What the validators below check across fields, said in the OpenAPI document too (a null is an absent field).
_VIDEO_SIZE_RULES: dict[str, Any] = {
    "allOf": [
        {"if": _integer("width"), "then": _integer("height")},
        {"if": _integer("height"), "then": _integer("width")},
        {
            "if": {"properties": {"image_size": {"type": "string"}}, "required": ["image_size"]},
            "then": {"properties": {"width": {"type": "null"}, "height": {"type": "null"}}},
        },
    ]
}
_IMAGE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "maxLength": MAX_IMAGE_URL_CHARS, "pattern": URL_SCHEMA_PATTERN},
        {"type": "string", "maxLength": MAX_IMAGE_DATA_URI_CHARS, "pattern": IMAGE_DATA_URI_PATTERN},
        {"type": "null"},
    ],
    "description": "Image-to-video: the first frame, as an http(s) URL (https when deployed; it must reach a public "
    "address) or a base64 data URI of a PNG, JPEG or WebP (its bytes must be the type it names).",
}


class VideoRequest(StrictModel):
    """POST /v1/videos: text-to-video, or image-to-video with `image`."""

    # Built on the first video request, not at the API's cold start (as the other video models below).
    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, json_schema_extra=_VIDEO_SIZE_RULES, defer_build=True
    )

    prompt: Annotated[str, Field(min_length=1, max_length=2000, json_schema_extra={"pattern": NOT_BLANK_PATTERN})]
    negative_prompt: Annotated[str | None, Field(max_length=2000)] = None
    # The size as width and height, or as a provider's "WxH" (image_size); neither: 1280x720. The provider makes the
    # size it lists closest to it (SiliconFlow: 1280x720, 720x1280, 960x960), and the job's video says which.
    width: Annotated[int, Field(ge=64, le=2048), INTEGRAL] | None = None
    height: Annotated[int, Field(ge=64, le=2048), INTEGRAL] | None = Field(default=None, validate_default=True)
    image_size: Annotated[
        str | None, Field(pattern=r"^[0-9]{1,4}x[0-9]{1,4}$", json_schema_extra={"pattern": IMAGE_SIZE_PATTERN})
    ] = None
    # Image-to-video: an http(s) URL (checked as the safe fetcher checks URLs before it is passed on) or a base64
    # data URI of a PNG, JPEG or WebP of at most MAX_IMAGE_DATA_URI_CHARS characters.
    image: Annotated[
        str | None, Field(min_length=1, max_length=MAX_IMAGE_DATA_URI_CHARS, json_schema_extra=_IMAGE_SCHEMA)
    ] = None
    seed: Annotated[int, Field(ge=0, le=4_294_967_295), INTEGRAL] | None = None
    model: Annotated[str | None, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/-]+$")] = None
    providers: Annotated[
        list[VideoProviderName] | None, Field(min_length=1, max_length=10, json_schema_extra={"uniqueItems": True})
    ] = None
    webhook_url: Annotated[
        str | None,
        Field(max_length=2048, pattern=r"^https?://\S+$", json_schema_extra={"pattern": URL_SCHEMA_PATTERN}),
    ] = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        return ImageRequest._prompt_not_blank(value)

    @field_validator("providers")
    @classmethod
    def _providers_unique(cls, value: list[str] | None) -> list[str] | None:
        return ImageRequest._providers_unique(value)

    @field_validator("height")
    @classmethod
    def _width_and_height(cls, value: int | None, info: ValidationInfo) -> int | None:
        if (info.data.get("width") is None) != (value is None) and "width" in info.data:
            raise ValueError("width and height go together: give both, or neither")
        return value

    @field_validator("image_size")
    @classmethod
    def _one_size(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("width") is not None or info.data.get("height") is not None:
            raise ValueError("give image_size or width and height, not both")
        if not re.fullmatch(IMAGE_SIZE_PATTERN, value):
            raise ValueError("each side must be 64-2048, as WIDTHxHEIGHT")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is None or value.startswith(("https://", "http://")):
            if value is not None and (len(value) > MAX_IMAGE_URL_CHARS or not _URL_CHARS.fullmatch(value)):
                raise ValueError(f"a URL must be at most {MAX_IMAGE_URL_CHARS} printable ASCII characters")
            return value
        image_data_uri(value)
        return value

    @property
    def size(self) -> tuple[int, int]:
        if self.image_size is not None:
            width, height = self.image_size.split("x")
            return int(width), int(height)
        if self.width is not None and self.height is not None:
            return self.width, self.height
        return DEFAULT_VIDEO_SIZE

    def portable(self) -> ImageRequest:
        """The request as the provider chain reads every request (prompt, size, seed, model, providers); the input
        image rides in `extra`, as the provider-specific parameter it is. Built unvalidated (model_construct): this
        request was validated, and a data URI is longer than extra's 500 characters for hand-written parameters."""
        width, height = self.size
        return ImageRequest.model_construct(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            width=width,
            height=height,
            seed=self.seed,
            model=self.model,
            providers=self.providers,
            extra={"image": self.image} if self.image is not None else None,
            hedge=False,
        )


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


class VideoInfo(BaseModel):
    """The stored video, as the container check read it while it streamed into storage."""

    model_config = ConfigDict(defer_build=True)

    url: str
    content_type: Literal["video/mp4", "video/webm"]
    # As the container says (an MP4's tkhd, a WebM's video track); None when it does not say.
    width: int | None = None
    height: int | None = None
    duration_s: float
    bytes: int
    sha256: str


class JobFields(BaseModel):
    """What every job has, whatever it makes (an image or a video)."""

    id: str
    status: JobStatus
    batch_id: str | None = None
    provider: str | None = None
    model: str | None = None
    attempts: list[Attempt] = []
    error: ErrorInfo | None = None
    warnings: list[str] = []
    # Set only while the job is queued waiting for a provider to reopen (null otherwise).
    waiting: Waiting | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @model_validator(mode="after")
    def _waiting_while_queued(self) -> JobFields:
        # A job claimed, canceled or ended since it began to wait waits no more, whatever its stored record says.
        if self.waiting is not None and self.status != "queued":
            self.waiting = None
        return self


class Job(JobFields):
    """An image job as a client sees it."""

    request: ImageRequest
    image: ImageInfo | None = None
    grounding: dict[str, Any] | None = None


class VideoJob(JobFields):
    """A video job as a client sees it: an image job's fields with `video` in place of `image`."""

    model_config = ConfigDict(defer_build=True)

    request: VideoRequest
    video: VideoInfo | None = None


JobKindName = Literal["image", "video"]


class JobRecord(JobFields):
    """A job as the store keeps it: the public job of its kind plus worker bookkeeping that never leaves the service."""

    kind: JobKindName = "image"
    request: ImageRequest | VideoRequest
    image: ImageInfo | None = None
    video: VideoInfo | None = None
    grounding: dict[str, Any] | None = None
    user_id: str
    lease_token: str | None = None
    lease_until: datetime | None = None
    deliveries: int = 0
    chain_state: dict[str, Any] = {}
    image_key: str | None = None
    # Where the stored video is (videos/{user}/{job}); set once it passed the container check.
    video_key: str | None = None
    request_hash: str | None = None
    # The UTC day (yyyy-mm-dd) whose daily quota this job took its units from; None when quotas are off.
    quota_day: str | None = None
    # How many units of that day's quota the job holds (a video counts as VIDEO_QUOTA_UNITS images): what a refund
    # gives back, whatever the setting says by then.
    quota_units: int = Field(default=1, ge=1)
    # How often the sweeper re-queued the job; bounds how long a job whose messages keep vanishing can live.
    requeues: int = 0

    @model_validator(mode="before")
    @classmethod
    def _request_of_kind(cls, data: Any) -> Any:
        # The stored request is read as the model its kind names, never guessed from its fields.
        if isinstance(data, dict) and isinstance(data.get("request"), dict):
            model = VideoRequest if data.get("kind") == "video" else ImageRequest
            data = {**data, "request": model.model_validate(data["request"])}
        return data

    @model_validator(mode="after")
    def _kind_matches(self) -> JobRecord:
        if isinstance(self.request, VideoRequest) != (self.kind == "video"):
            raise ValueError(f"a {self.kind} job holds a {type(self.request).__name__}")
        return self

    def public(self) -> Job | VideoJob:
        model: type[Job] | type[VideoJob] = VideoJob if self.kind == "video" else Job
        return model.model_validate(self.model_dump(include=set(model.model_fields)))


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None = None


class VideoJobPage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    items: list[VideoJob]
    next_cursor: str | None = None
