"""What a provider module declares about itself: one ProviderSpec, registered by one line in providers/__init__.py."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import SecretStr

from imagegen.providers.base import (
    Capabilities,
    CatalogEntry,
    HttpFailure,
    ImageBytes,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    RemoteRequest,
    Route,
)
from imagegen.providers.settings import ProviderSettings, ServiceSettings

if TYPE_CHECKING:
    import httpx

    from imagegen.keys.types import CheckResult
    from imagegen.models import ImageRequest

S = TypeVar("S", bound=ServiceSettings)

PlanFn = Callable[["ImageRequest", str | None, S], ProviderPlan]
BuildFn = Callable[[ProviderPlan, S], "httpx.Request"]
ParseFn = Callable[["httpx.Response", ProviderPlan], "ProviderResult | ProviderError"]
# A follow-up call on a queued request (check, collect, cancel): built from its id and the URLs its submit named.
RemoteRequestFn = Callable[[RemoteRequest, S], "httpx.Request"]
# A cancel request, or None where the provider offers no way to cancel (Hugging Face's wavespeed and zai-org routes).
CancelFn = Callable[[RemoteRequest, S], "httpx.Request | None"]
Send = Callable[["httpx.Request"], "httpx.Response"]
ParsePollFn = Callable[["httpx.Response"], "ProviderResult | ProviderError"]
RenderFn = Callable[[ProviderPlan], ImageBytes]
ClassifyFn = Callable[[HttpFailure], "ProviderError | None"]
"""A provider's reading of a failed answer, consulted before the generic HTTP semantics; None: no opinion."""


@dataclass(frozen=True)
class ModelListing(Generic[S]):
    """A second call of the key check that lists the models the key can use now (SiliconFlow's GET /models): stored
    with the key's health, so the chain skips configured models that are not listed."""

    build: Callable[[S, SecretStr], httpx.Request]
    # The listed model ids, or None when the answer lists nothing usable (then every configured model is tried).
    parse: Callable[[httpx.Response], tuple[str, ...] | None]


@dataclass(frozen=True)
class KeyCheck(Generic[S]):
    """The provider's cheapest call that says whether a key works, and how to read its answer."""

    build: Callable[[S, SecretStr], httpx.Request]
    parse: Callable[[httpx.Response], CheckResult]
    listing: ModelListing[S] | None = None


@dataclass(frozen=True)
class KeySpec(Generic[S]):
    """What a key for this provider looks like, which variable holds the deployment's, and where it is sent."""

    # Environment variable locally; key of the JSON map in the provider-keys secret in AWS.
    env: str
    # A user's key must match this whole (PUT /v1/keys/{provider} answers 422 otherwise).
    pattern: str
    # What a client is told was expected; never the key itself.
    expected: str
    # The request header the key travels in ("authorization" for Bearer, Horde's "apikey").
    header: str
    check: KeyCheck[S]
    # A well-known key that means "no key" (Horde's anonymous user): refused from users, ignored from deployments.
    anonymous: str | None = None
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def accepts(self, key: str) -> bool:
        return bool(self._compiled.fullmatch(key)) and key != self.anonymous


@dataclass(frozen=True)
class AsyncSpec(Generic[S]):
    """An asynchronous provider: submit (build_request), then check until done, collect once, or cancel.

    parse_check answers AsyncStatus (not done, or done: collect now), an error, or the result itself when the check's
    answer carries it (Replicate's prediction): then there is no collect call, and build_collect is None.
    """

    build_check: RemoteRequestFn[S]
    parse_check: ParsePollFn
    build_cancel: CancelFn[S]
    build_collect: RemoteRequestFn[S] | None = None
    parse_collect: ParsePollFn | None = None
    # Floor for the re-check delay (seconds); the provider's own wait_time is honoured above it.
    min_check_delay_s: int = 1
    # Without a wait_time from the provider, each further check waits check_backoff times longer than the one before,
    # from the floor up to max_check_delay_s: a long queue costs a few invocations, not one every floor seconds.
    check_backoff: float = 1.0
    max_check_delay_s: int = 900
    # How long a queued request may take before the chain cancels it and falls through.
    max_queue_s: float = 1200.0

    def delay(self, wait_time: float, checks: int) -> int:
        """Seconds before check number `checks` + 1: the provider's wait_time, else the backoff, within the bounds."""
        backoff = self.min_check_delay_s * self.check_backoff ** min(checks, 64)
        wait = math.ceil(wait_time) if math.isfinite(wait_time) and wait_time > 0 else 0
        return int(max(self.min_check_delay_s, wait, min(math.ceil(backoff), self.max_check_delay_s)))


def video_queue(
    build_check: RemoteRequestFn[S],
    parse_check: ParsePollFn,
    build_cancel: CancelFn[S],
    build_collect: RemoteRequestFn[S] | None = None,
    parse_collect: ParsePollFn | None = None,
) -> AsyncSpec[S]:
    """A video provider's queue: a generation takes minutes, so checks come at 2, 3, 5, 7, 10, 15, 23, 30, 30 ... s
    (30 s at most keeps a finished video's short-lived link far from expiry when it is fetched: SiliconFlow's lives
    10 minutes, Replicate's outputs an hour), and a request may stay queued 30 minutes, within the sweeper's hour
    (JOB_MAX_AGE_SECONDS) with room to fall through to another provider."""
    return AsyncSpec(
        build_check=build_check,
        parse_check=parse_check,
        build_cancel=build_cancel,
        build_collect=build_collect,
        parse_collect=parse_collect,
        min_check_delay_s=2,
        check_backoff=1.5,
        max_check_delay_s=30,
        max_queue_s=1800.0,
    )


@dataclass(frozen=True)
class RoutedLinks:
    """What a routing provider's catalog offers for one model: its routes in the order to try, and when there are
    none, why (the skip's message); `note` says when the routes are a fallback rather than the catalog's word."""

    routes: tuple[Route, ...]
    reason: str = ""
    note: str | None = None


@dataclass(frozen=True)
class RoutingSpec(Generic[S]):
    """A provider that forwards each model to other providers (Hugging Face's router): each route is its own link,
    with its own payload, parameter table, breaker and fall-through."""

    # Reads the catalog entries of a model through `send` (one or two GETs); None when the catalog cannot be read
    # (unreachable, an error): the caller keeps what it had. A model the catalog does not know has no entries.
    fetch: Callable[[str, S, SecretStr | None, Send], tuple[CatalogEntry, ...] | None]
    # The routes to try for a model from its entries (None: unknown), in the order the settings ask for.
    routes: Callable[[str, tuple[CatalogEntry, ...] | None, S], RoutedLinks]
    plan: Callable[[ImageRequest, str | None, Route, S], ProviderPlan]
    # Whether a route may answer "queued" (its links are then never hedged; see chain/hedging.py).
    is_async: Callable[[str], bool]


@dataclass(frozen=True)
class VideoMode(Generic[S]):
    """One way a provider makes videos (from text, or from an image): its documented models' tables, and the models
    its settings name for it, tried in that order."""

    capabilities: Capabilities
    models: Callable[[S], tuple[str, ...]]


@dataclass(frozen=True)
class VideoSpec(Generic[S]):
    """A provider that also makes videos, on endpoints of its own: planned, submitted, checked and cancelled like an
    async image request. The chain runs it through a view of the spec with these in place of the image hooks
    (imagegen.providers.video), so a video job takes the same path as an image job: links, keys, breakers, delayed
    checks. `plan` reads the input image of an image-to-video request from the request's `extra["image"]`."""

    text: VideoMode[S]
    image: VideoMode[S] | None
    plan: PlanFn[S]
    build_request: BuildFn[S]
    parse_response: ParseFn
    async_: AsyncSpec[S]
    # The provider's reading of a failed answer on its video endpoints; None: the image one (ProviderSpec.classify).
    classify: ClassifyFn | None = None


@dataclass(frozen=True)
class ProviderSpec(Generic[S]):
    """Everything about one provider (or keyed service); every list the package keeps is derived from these."""

    name: str
    # Every environment variable of this provider starts with it (SILICONFLOW_..., HF_...).
    env_prefix: str
    # The provider's settings model and which environment variable fills which of its fields.
    settings: type[S]
    env: Mapping[str, str]
    key: KeySpec[S] | None = None
    # Works without any key: Horde's anonymous user, Pollinations' legacy host, the offline placeholder.
    keyless: bool = False
    # False for a keyed service that is not an image provider (Tavily): it has keys and key checks, never a link.
    generates_images: bool = True
    capabilities: Capabilities | None = None
    plan: PlanFn[S] | None = None
    build_request: BuildFn[S] | None = None
    parse_response: ParseFn | None = None
    # An offline provider draws instead of calling anything.
    render: RenderFn | None = None
    offline: bool = False
    classify: ClassifyFn | None = None
    async_: AsyncSpec[S] | None = None
    routing: RoutingSpec[S] | None = None
    # Host suffixes its result links come from: they join the safe fetcher's default allowlist.
    result_hosts: tuple[str, ...] = ()
    # Video generation, where the provider offers it (imagegen.providers.VIDEO_PROVIDER_NAMES lists these).
    video: VideoSpec[S] | None = None

    @property
    def is_async(self) -> bool:
        return self.async_ is not None

    def settings_from(self, environ: Mapping[str, str], extra: Mapping[str, Any] | None = None) -> S:
        """This provider's settings from environment-style strings; unset or empty variables keep defaults."""
        values: dict[str, Any] = {}
        for field_name, variable in self.env.items():
            value = (environ.get(variable) or "").strip()
            if value:
                values[field_name] = value
        return self.settings.model_validate({**(extra or {}), **values})


def image_settings(spec: ProviderSpec[Any], settings: ServiceSettings) -> ProviderSettings:
    """The settings of an image provider; a keyed service's settings have no timeouts or models."""
    if not isinstance(settings, ProviderSettings):
        raise TypeError(f"{spec.name} is not an image provider")
    return settings
