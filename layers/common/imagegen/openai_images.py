"""The OpenAI images API on our jobs: its body mapped onto ImageRequests, the wait, and its answers and errors."""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from imagegen.errors import ImagegenError
from imagegen.models import NOT_BLANK_PATTERN, PROVIDER_NAMES, ImageRequest, Job

if TYPE_CHECKING:
    from imagegen.jobs.batches import BatchService
    from imagegen.jobs.service import JobService

MAX_IMAGES = 4
MIN_SIDE, MAX_SIDE = 64, 2048
DEFAULT_SIZE = 1024
MAX_PROMPT = 2000
# Lambda answers at most 6 MB (6,291,456 bytes) including the response envelope; this leaves room for it.
MAX_RESPONSE_BYTES = 5_800_000
# Front ends name OpenAI's own models; none of them is ours, so they get the default chain.
OPENAI_MODEL = re.compile(r"^(dall-e|gpt-image|chatgpt-image)", re.IGNORECASE)
# Our models are passed on only if the chain could use them (ImageRequest.model's own rule).
OUR_MODEL = re.compile(r"^[A-Za-z0-9._:/-]{1,200}$")
_SIDE = r"(?:6[4-9]|[7-9][0-9]|[1-9][0-9]{2}|1[0-9]{3}|20[0-3][0-9]|204[0-8])"
# "auto" or WIDTHxHEIGHT with each side within 64-2048; the OpenAPI document carries the same pattern.
SIZE_PATTERN = rf"^(auto|{_SIDE}x{_SIDE})$"
_CONTENT_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}
_MAX_SEED = 4_294_967_295


class OpenAiError(Exception):
    """An answer in OpenAI's error shape. `retry` becomes `x-should-retry`, which the official clients obey before
    their own rule (they retry 408, 409, 429 and 5xx twice): a retry that would only create more jobs says false."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        if retry is not None:
            self.headers["x-should-retry"] = "true" if retry else "false"

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class GenerationRequest(BaseModel):
    """The body the official `openai` client sends to POST /images/generations. Fields we do not use (quality, style,
    background, output_format, moderation, user, ...) and unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT, json_schema_extra={"pattern": NOT_BLANK_PATTERN})
    model: str | None = None
    n: int | None = Field(default=None, ge=1, le=MAX_IMAGES)
    size: str | None = Field(default=None, pattern=SIZE_PATTERN)
    response_format: Literal["b64_json", "url"] | None = None
    stream: Literal[False] | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        # The same rule as ImageRequest's, so that every prompt accepted here makes a valid job.
        if not value.strip():
            raise ValueError("must contain a non-whitespace character")
        return value

    @field_validator("n", mode="before")
    @classmethod
    def _integral(cls, value: Any) -> Any:
        return int(value) if isinstance(value, float) and value.is_integer() else value


def parse_request(body: Any) -> GenerationRequest:
    """The body as a GenerationRequest, or a 400 that names the first wrong parameter as OpenAI does."""
    if not isinstance(body, dict):
        raise OpenAiError(400, "the request body must be a JSON object", param="body", code="invalid_json")
    if body.get("stream") is True:
        raise OpenAiError(
            400,
            "stream: streaming is not supported; send stream: false or leave it out",
            param="stream",
            code="unsupported_value",
        )
    try:
        return GenerationRequest.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> OpenAiError:
    problem = exc.errors()[0]
    param = ".".join(str(part) for part in problem.get("loc", ())) or "body"
    kind = problem.get("type")
    messages = {
        "missing": "is required",
        "string_too_short": "must not be empty",
        "string_pattern_mismatch": _pattern_message(param),
    }
    message = messages.get(str(kind), str(problem.get("msg", "is not valid")).removeprefix("Value error, "))
    code = "missing_required_parameter" if kind == "missing" else "invalid_value"
    return OpenAiError(400, f"{param}: {message}", param=param, code=code)


def _pattern_message(param: str) -> str:
    # Only size has a pattern the server checks.
    return f'must be "auto" or WIDTHxHEIGHT with each side between {MIN_SIDE} and {MAX_SIDE}, e.g. "1024x768"'


def image_size(size: str | None) -> tuple[int, int]:
    if size is None or size == "auto":
        return DEFAULT_SIZE, DEFAULT_SIZE
    width, _, height = size.partition("x")
    return int(width), int(height)


def chain_choice(model: str | None) -> dict[str, Any]:
    """What `model` asks of the chain: one of our providers by name, a model the chain passes to the providers that
    know it, or (OpenAI's model names, anything else) the default chain."""
    if not model or OPENAI_MODEL.match(model):
        return {}
    if model in PROVIDER_NAMES:
        return {"providers": [model]}
    if OUR_MODEL.fullmatch(model):
        return {"model": model}
    return {}


def image_requests(request: GenerationRequest, seed: int) -> list[ImageRequest]:
    """One ImageRequest per image; each has its own seed, so n images are n different images."""
    width, height = image_size(request.size)
    common = {"prompt": request.prompt, "width": width, "height": height, **chain_choice(request.model)}
    count = request.n or 1
    return [ImageRequest.model_validate({**common, "seed": (seed + index) % (_MAX_SEED + 1)}) for index in range(count)]


@dataclass
class Generated:
    """The answer to a generation: OpenAI's ImagesResponse body."""

    created: int
    data: list[dict[str, str]]
    output_format: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"created": self.created, "data": self.data}
        if self.output_format:
            out["output_format"] = self.output_format
        return out


class OpenAiImages:
    """Runs an OpenAI-style generation as our job (n = 1) or batch (n > 1), waits for it, and answers as OpenAI."""

    def __init__(
        self,
        jobs: JobService,
        batches: BatchService,
        *,
        wait_seconds: float,
        url_seconds: int = 3600,
        base_url_hint: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        seeds: Callable[[], int] = lambda: secrets.randbelow(_MAX_SEED + 1),
    ) -> None:
        self._jobs = jobs
        self._batches = batches
        self._wait_seconds = wait_seconds
        self._url_seconds = url_seconds
        self._base_url_hint = base_url_hint
        self._clock = clock
        self._monotonic = monotonic
        self._seeds = seeds

    def generate(self, user_id: str, body: Any, idempotency_key: str | None = None) -> Generated:
        request = parse_request(body)
        started = self._monotonic()
        job_ids = self._create(user_id, image_requests(request, self._seeds()), idempotency_key)
        jobs = self._wait(user_id, job_ids, started + self._wait_seconds)
        return self._answer(user_id, jobs, request.response_format or "b64_json")

    def _create(self, user_id: str, requests: list[ImageRequest], key: str | None) -> list[str]:
        # Imported here: wiring builds the job and batch services on first use, and the module should not load them.
        from imagegen.jobs.batch_models import BatchCreate

        try:
            if len(requests) == 1:
                job, _ = self._jobs.create(user_id, requests[0], key)
                return [job.id]
            items = [item.model_dump(mode="json", exclude_none=True) for item in requests]
            batch, _ = self._batches.create(user_id, BatchCreate(items=items), key)
            return [item.job_id for item in batch.items]
        except ImagegenError as exc:
            raise from_domain(exc) from None

    def _wait(self, user_id: str, job_ids: list[str], deadline: float) -> list[Job]:
        jobs = []
        for job_id in job_ids:
            jobs.append(self._jobs.wait(user_id, job_id, max(0.0, deadline - self._monotonic())))
        running = [job.id for job in jobs if not job.terminal]
        if running:
            where = f"; the route at {self._base_url_hint} waits longer" if self._base_url_hint else ""
            raise OpenAiError(
                504,
                f"the generation is still running after {self._wait_seconds:g} s: jobs {', '.join(running)}; "
                f"fetch them with GET /v1/images/{{id}} and /v1/images/{{id}}/content{where}",
                type_="server_error",
                code="timeout",
                headers={"x-imagegen-job-ids": ",".join(job.id for job in jobs)},
                retry=False,
            )
        failed = [job for job in jobs if job.status != "succeeded"]
        if failed:
            raise _ended_without_image(failed[0], jobs)
        return jobs

    def _answer(self, user_id: str, jobs: list[Job], response_format: str) -> Generated:
        ids = {"x-imagegen-job-ids": ",".join(job.id for job in jobs)}
        formats = {_CONTENT_FORMATS.get(job.image.content_type) for job in jobs if job.image}
        output_format = formats.pop() if len(formats) == 1 else None
        if response_format == "url":
            data = [{"url": self._jobs.content_url(user_id, job.id, self._url_seconds)} for job in jobs]
            return Generated(int(self._clock()), data, output_format, ids)
        encoded = sum(4 * -(-(job.image.bytes if job.image else 0) // 3) for job in jobs)
        if encoded > MAX_RESPONSE_BYTES:
            raise OpenAiError(
                400,
                f"the {len(jobs)} images are {encoded:,} bytes as base64, more than one response can carry "
                f"({MAX_RESPONSE_BYTES:,}): ask with response_format=url, or for fewer or smaller images. They are "
                f"made and kept: jobs {', '.join(job.id for job in jobs)} (GET /v1/images/{{id}}/content)",
                param="response_format",
                code="response_too_large",
                headers=ids,
                retry=False,
            )
        data = []
        for job in jobs:
            content, _ = self._jobs.content(user_id, job.id)
            data.append({"b64_json": base64.b64encode(content).decode("ascii")})
        return Generated(int(self._clock()), data, output_format, ids)


def _ended_without_image(job: Job, jobs: list[Job]) -> OpenAiError:
    ids = {"x-imagegen-job-ids": ",".join(item.id for item in jobs)}
    reason = job.error.message if job.error else "no image"
    if job.status == "canceled":
        return OpenAiError(
            410, f"job {job.id} was canceled", type_="invalid_request_error", code="canceled", headers=ids, retry=False
        )
    if job.error and job.error.code == "content_refused":
        # OpenAI's own code for a safety refusal; asking again gets the same answer.
        return OpenAiError(
            400, f"job {job.id}: {reason}", code="content_policy_violation", headers=ids, retry=False, param="prompt"
        )
    # Every provider of the chain was tried (with its fallbacks) already: an automatic retry would only repeat that.
    return OpenAiError(
        502,
        f"job {job.id} failed: {reason}",
        type_="server_error",
        code=job.error.code if job.error else "failed",
        headers=ids,
        retry=False,
    )


def from_domain(error: ImagegenError) -> OpenAiError:
    """Our typed errors in OpenAI's shape. 409 (an Idempotency-Key reused with another body) becomes 400: the
    clients retry 409, and this one does not change by asking again."""
    param = error.details.get("field") if isinstance(error.details, dict) else None
    if error.status == 429:
        return OpenAiError(
            429,
            error.message,
            type_="insufficient_quota",
            code=error.code,
            headers=error.headers,
            # The daily quota resets at midnight UTC: the clients' retry within seconds would fail the same way. The
            # per-minute limit (rate_limited) frees up within the minute, so a retry after Retry-After can succeed.
            retry=error.code == "rate_limited",
        )
    status = 400 if error.status in (409, 422) else error.status
    type_ = "invalid_request_error" if status < 500 else "server_error"
    return OpenAiError(status, error.message, type_=type_, param=param, code=error.code, headers=error.headers)
