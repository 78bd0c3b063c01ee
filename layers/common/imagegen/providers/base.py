"""Provider mapping types, result variants, typed outcome errors, and the one HTTP-error classifier."""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

    from imagegen.models import ImageRequest

# ---------------------------------------------------------------------------------------------------
# Capability tables: what a provider and each of its models accepts.

# Portable parameter names as recorded in `dropped_params`; extras are recorded as "extra.<key>".
PORTABLE_PARAMS = ("negative_prompt", "steps", "guidance", "seed")


@dataclass(frozen=True)
class ModelSpec:
    """One model's parameter table: which portable params it takes, under which wire names, and its defaults."""

    name: str
    # portable name -> wire name; anything a request sets that is not here is dropped and recorded.
    params: Mapping[str, str]
    # extra.<key> names passed through verbatim (wire name = key).
    extras: frozenset[str] = frozenset()
    # Sent when the request leaves the param unset.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Always sent; a request value for these is replaced and recorded as dropped (distilled models).
    fixed: Mapping[str, Any] = field(default_factory=dict)
    # Sizes the model is documented for; empty means any size within max_pixels.
    sizes: tuple[tuple[int, int], ...] = ()
    max_pixels: int | None = None


@dataclass(frozen=True)
class Capabilities:
    models: tuple[ModelSpec, ...]
    size_rule: str

    def spec(self, model: str | None) -> ModelSpec:
        for spec in self.models:
            if spec.name == model:
                return spec
        # A configured model we have no table for gets the provider's first (most generic) table.
        generic = self.models[-1]
        return ModelSpec(
            name=model or generic.name,
            params=generic.params,
            extras=generic.extras,
            defaults=generic.defaults,
            max_pixels=generic.max_pixels,
        )


@dataclass(frozen=True)
class ProviderPlan:
    """The portable request mapped onto one provider and model: what will be sent, and what was not."""

    provider: str
    model: str | None
    prompt: str
    width: int
    height: int
    params: dict[str, Any]
    dropped_params: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # A routing provider's plan (Hugging Face's router): the route taken and the model's id there.
    route: str | None = None
    provider_model: str | None = None


@dataclass(frozen=True)
class Route:
    """One way a routing provider serves a model: the route (a Hugging Face router provider, e.g. "fal-ai") and the
    model's id on it, as the provider's catalog names it (never guessed)."""

    name: str
    provider_model: str


@dataclass(frozen=True)
class CatalogEntry:
    """One entry of a routing provider's catalog for a model, as read (Hugging Face's inferenceProviderMapping)."""

    route: str
    provider_model: str
    status: str
    task: str
    # Set for adapter entries (a LoRA on a base model), which need their own payload.
    adapter: str | None = None


# Alias kept for readers coming from the issue text.
ProviderRequest = ProviderPlan


def map_params(request: ImageRequest, spec: ModelSpec) -> tuple[dict[str, Any], list[str]]:
    """Portable params -> wire params for one model; returns (params, dropped) with nothing silently ignored."""
    portable: dict[str, Any] = {
        "negative_prompt": request.negative_prompt,
        "steps": request.steps,
        "guidance": request.guidance,
        "seed": request.seed,
    }
    params: dict[str, Any] = {}
    dropped: list[str] = []
    fixed_wire = set(spec.fixed)
    for name, value in portable.items():
        wire = spec.params.get(name)
        if wire is not None and wire in fixed_wire:
            if value is not None:
                dropped.append(name)
            continue
        if value is None:
            if wire is not None and wire in spec.defaults:
                params[wire] = spec.defaults[wire]
            continue
        if wire is None:
            dropped.append(name)
        else:
            params[wire] = value
    for key, value in (request.extra or {}).items():
        if key in spec.extras:
            params[key] = value
        else:
            dropped.append(f"extra.{key}")
    for wire, value in spec.defaults.items():
        params.setdefault(wire, value)
    params.update(spec.fixed)
    return params, dropped


def clamp(params: dict[str, Any], ranges: Mapping[str, tuple[float, float]], model: str) -> list[str]:
    """Wire params brought into a model's ranges in place; a note for each value changed, so the mapping is visible
    (a request within the portable limits gets no 422 for a model's narrower ones)."""
    notes = []
    for wire, (low, high) in ranges.items():
        value = params.get(wire)
        if value is None:
            continue
        clamped = type(value)(min(max(value, low), high))
        if clamped != value:
            notes.append(f"{wire} {value} -> {clamped} ({model} takes {low:g}-{high:g})")
            params[wire] = clamped
    return notes


def closest_size(width: int, height: int, sizes: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """The listed size nearest in aspect ratio (log scale), then in area."""
    target_ratio = math.log(width / height)
    target_area = width * height
    return min(
        sizes, key=lambda s: (round(abs(math.log(s[0] / s[1]) - target_ratio), 3), abs(s[0] * s[1] - target_area))
    )


def fit_pixels(width: int, height: int, max_pixels: int | None, multiple: int = 16) -> tuple[int, int]:
    """Scale down (keeping the aspect ratio) to fit max_pixels, rounded down to `multiple`."""
    if max_pixels is None or width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return (
        max(multiple, int(width * scale) // multiple * multiple),
        max(multiple, int(height * scale) // multiple * multiple),
    )


# ---------------------------------------------------------------------------------------------------
# Results: what parse_response returns when the provider answered usefully.


@dataclass(frozen=True)
class ImageBytes:
    data: bytes
    content_type: str | None


@dataclass(frozen=True)
class ImageBase64:
    b64: str


@dataclass(frozen=True)
class ResultUrl:
    """A signed result link: fetch it exactly as given, with no Authorization header."""

    url: str


@dataclass(frozen=True)
class AsyncSubmitted:
    remote_id: str
    wait_time: float
    # Follow-up URLs the provider's answer named ("check", "collect", "cancel"): kept with the pending job, and used
    # only under the provider's configured base URL (see RemoteRequest.url). Empty when they derive from the id.
    urls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteRequest:
    """A request queued at an async provider: its id, and the follow-up URLs its submit answer named."""

    id: str
    urls: Mapping[str, str] = field(default_factory=dict)

    def url(self, name: str, base_url: str, default: str) -> str:
        """The URL the provider named for `name` when it lies under base_url, else `default` (built from the id).

        The key travels with every follow-up call, so a URL the answer names elsewhere is never used.
        """
        named = self.urls.get(name)
        return named if named is not None and under(named, base_url) else default


@dataclass(frozen=True)
class AsyncStatus:
    """A poll answer that is not final yet (done=False) or says the result may now be collected (done=True)."""

    done: bool
    wait_time: float
    queue_position: int | None = None


ProviderResult = ImageBytes | ImageBase64 | ResultUrl | AsyncSubmitted | AsyncStatus
# A result that is the image itself (or where to fetch it): what an async check may answer when it carries the result.
FINAL_RESULTS = (ImageBytes, ImageBase64, ResultUrl)


# ---------------------------------------------------------------------------------------------------
# Outcome classes: one typed error per class. Messages are short and never carry secrets.

ErrorClass = Literal[
    "rate_limited",
    "server_error",
    "overloaded",
    "model_loading",
    "timeout",
    "connection",
    "unauthorized",
    "forbidden",
    "payment_required",
    "model_unavailable",
    "bad_request",
    "expired",
    "faulted",
    "bad_response",
    "invalid_image",
    "content_policy",
]

# Outcomes that say the provider (for this key) is unhealthy; only these count towards the breaker.
BREAKER_CLASSES: frozenset[str] = frozenset({"rate_limited", "server_error", "overloaded", "timeout", "connection"})

MAX_MESSAGE = 200
# What an error keeps of a provider's text until the chain has scrubbed it: secrets are masked in this, then it is
# cut to MAX_MESSAGE (cutting first could leave the start of an echoed key behind, out of reach of the scrubbing).
MAX_RAW_MESSAGE = 2000


def short(text: str, limit: int = MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ProviderError(Exception):
    """Base of the outcome classes. `scope` says how far the failure reaches: this link only ("model"), every link
    through the same route of a routing provider ("route": Hugging Face's router provider that the account cannot
    pay for), or every link of the provider ("provider": a refused key; no other model can do better)."""

    def __init__(
        self,
        error_class: str,
        message: str,
        *,
        status_code: int | None = None,
        scope: Literal["model", "route", "provider"] = "model",
        hint: str | None = None,
    ) -> None:
        # Kept whole (within MAX_RAW_MESSAGE): the chain scrubs keys from it before cutting it to MAX_MESSAGE.
        self.message = short(message, MAX_RAW_MESSAGE)
        super().__init__(self.message)
        self.error_class = error_class
        self.status_code = status_code
        self.scope = scope
        # What the caller can do about it (a token permission to add); said once per run, in the job's warnings.
        self.hint = hint

    @property
    def trips_breaker(self) -> bool:
        return self.error_class in BREAKER_CLASSES

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error_class!r}, {self.status_code!r}, {self.message!r})"


class RetrySameLink(ProviderError):
    """Worth repeating on the same link after `retry_after` seconds, if that fits the budget; else fall through."""

    def __init__(self, error_class: str, message: str, *, retry_after: float, status_code: int | None = None) -> None:
        super().__init__(error_class, message, status_code=status_code)
        self.retry_after = retry_after


class FallThrough(ProviderError):
    """This link failed; the next link may succeed."""


class Refused(ProviderError):
    """A content-policy refusal: the chain stops unless the request says on_refusal="fallback"."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__("content_policy", message, status_code=status_code)


ContentPolicy = Refused


def under(url: str, base_url: str) -> bool:
    """Whether url is base_url itself or below it: same scheme, host and port, and the base's path as a prefix."""
    got, base = urlsplit(url), urlsplit(base_url)
    if (got.scheme.lower(), got.netloc.lower()) != (base.scheme.lower(), base.netloc.lower()):
        return False
    prefix = base.path.rstrip("/")
    return got.path == prefix or got.path.startswith(prefix + "/")


# Inline results (data: URIs) are held in memory whole: the same ceiling as a fetched result (media.fetch).
MAX_INLINE_BYTES = 20 * 1024 * 1024
_DATA_URI = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.I)


def data_uri(uri: str, *, max_bytes: int = MAX_INLINE_BYTES) -> ImageBytes | ProviderError:
    """A `data:` URI result (fal's sync_mode, Replicate's Prefer: wait) as bytes, refused above max_bytes."""
    match = _DATA_URI.match(uri)
    if match is None or not match.group("b64"):
        return FallThrough("bad_response", "result is a data: URI that is not base64", status_code=200)
    payload = uri[match.end() :]
    # Base64 holds 3 bytes in 4 characters: refuse by length before decoding anything.
    if len(payload) * 3 // 4 > max_bytes:
        return FallThrough("bad_response", f"inline result is larger than {max_bytes} bytes", status_code=200)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return FallThrough("bad_response", "result is a data: URI with invalid base64", status_code=200)
    return ImageBytes(data, match.group("type"))


def image_link(url: object) -> ImageBytes | ResultUrl | ProviderError:
    """One output link as a result: a data: URI decoded here, an http(s) link fetched later (safe fetcher, no key)."""
    if not isinstance(url, str) or not url:
        return FallThrough("bad_response", "output has no image link", status_code=200)
    if url[:5].lower() == "data:":
        return data_uri(url)
    if url.startswith(("https://", "http://")):
        return ResultUrl(url)
    return FallThrough("bad_response", "output link is neither https nor a data: URI", status_code=200)


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - now())


def body_json(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not JSON (several providers answer errors in plain text)."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _body_message(body: Any, text: str) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code") or "")
        if isinstance(error, list):
            return "; ".join(str(e) for e in error)
        for key in ("message", "error", "detail"):
            if body.get(key):
                return str(body[key])
    if isinstance(body, str):
        return body
    return text


@dataclass(frozen=True)
class HttpFailure:
    """A non-success answer, read once: what a provider's classify hook and the generic rules decide on."""

    status: int
    message: str
    body: Any
    # Horde's machine-readable error code ("rc"); None elsewhere.
    rc: str | None
    retry_after: float | None
    headers: Mapping[str, str]

    @classmethod
    def of(cls, response: httpx.Response) -> HttpFailure:
        status = response.status_code
        body = body_json(response)
        content_type = response.headers.get("content-type", "")
        text = response.text[:500] if content_type.startswith(("text/", "application/")) else ""
        message = _body_message(body, text) or response.reason_phrase or f"HTTP {status}"
        rc = body.get("rc") if isinstance(body, dict) else None
        if rc:
            message = f"{rc}: {message}"
        return cls(
            status=status,
            message=message,
            body=body,
            rc=str(rc) if rc else None,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            headers=response.headers,
        )


def classify_http_error(
    response: httpx.Response, hook: Callable[[HttpFailure], ProviderError | None] | None = None
) -> ProviderError:
    """The single place where a non-success HTTP answer becomes an outcome class.

    The provider's own hook (its ProviderSpec.classify) speaks first; the generic HTTP semantics decide the rest.
    Never branches on free message text except where a provider offers nothing else (documented in its hook).
    """
    failure = HttpFailure.of(response)
    special = hook(failure) if hook is not None else None
    return special if special is not None else generic_http_error(failure)


def generic_http_error(failure: HttpFailure) -> ProviderError:
    status, message, retry_after = failure.status, failure.message, failure.retry_after
    if status == 429:
        if retry_after is not None:
            return RetrySameLink("rate_limited", message, retry_after=retry_after, status_code=status)
        return FallThrough("rate_limited", message, status_code=status)
    if status == 401:
        return FallThrough("unauthorized", message, status_code=status, scope="provider")
    if status == 402:
        return FallThrough("payment_required", message, status_code=status, scope="provider")
    simple = _SIMPLE.get(status)
    if simple is not None:
        return FallThrough(simple, message, status_code=status)
    if status == 451:
        return Refused(message, status_code=status)
    if status == 503 and retry_after is not None:
        return RetrySameLink("overloaded", message, retry_after=retry_after, status_code=status)
    if status == 503:
        return FallThrough("overloaded", message, status_code=status)
    if status >= 500:
        return FallThrough("server_error", message, status_code=status)
    return FallThrough("bad_response", message, status_code=status)


# Statuses that always mean one class and stay with this model (the next model or provider may do better).
_SIMPLE = {
    403: "forbidden",
    404: "model_unavailable",
    410: "expired",
    400: "bad_request",
    413: "bad_request",
    422: "bad_request",
}


def number(value: Any) -> Decimal | None:
    """A JSON number (or numeric string) as a Decimal; None for anything else, booleans included."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def request(method: str, url: str, **kwargs: Any) -> httpx.Request:
    """An httpx.Request; httpx is imported on first use so that the registry's metadata costs no cold start."""
    import httpx

    return httpx.Request(method, url, **kwargs)


def bearer(key: SecretStr | None) -> dict[str, str]:
    """The Authorization header for a key, or none without one."""
    return {} if key is None else {"authorization": f"Bearer {key.get_secret_value()}"}
