"""The generator of video jobs: the one provider chain, run over the registry's video view (imagegen.providers.video).

A video request reaches the chain as its portable request (VideoRequest.portable): text-to-video and image-to-video
are two views (their own models), each a Chain built once per container on the worker's shared clients, keys and
breakers, with the results going to storage through imagegen.media.video_results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from imagegen.generation import ChainFailed, ChainOutcome, RunContext
from imagegen.models import ErrorInfo, ImageRequest
from imagegen.providers.base import RemoteRequest
from imagegen.providers.video import VideoModeName, video_registry, video_settings

if TYPE_CHECKING:
    import httpx

    from imagegen.breaker import BreakerStore
    from imagegen.chain.core import Chain
    from imagegen.chain.latency import LatencyStore
    from imagegen.chain.limits import RateStore
    from imagegen.chain.ports import KeyPort, MetricsSink, ResultFetcher, VideoResults
    from imagegen.keys.types import HealthStatus, ResolvedKey
    from imagegen.providers.settings import ProvidersSettings
    from imagegen.providers.spec import ProviderSpec


def mode_of(request: ImageRequest) -> VideoModeName:
    return "image" if (request.extra or {}).get("image") else "text"


class VideoKeys:
    """The chain's key port for video links. A key's model listing names the provider's image models (SiliconFlow's
    listing asks for text-to-image), so it says nothing about video models: it is left out here, and every
    configured video model is tried. Models the provider said are gone stay skipped."""

    def __init__(self, keys: KeyPort) -> None:
        self._keys = keys

    def resolve(self, user_id: str, provider: str) -> ResolvedKey:
        key = self._keys.resolve(user_id, provider)
        if key.health is None or key.health.models is None:
            return key
        return replace(key, health=key.health.model_copy(update={"models": None}))

    def report(self, user_id: str, provider: str, key_source: str, status: HealthStatus, detail: str) -> None:
        self._keys.report(user_id, provider, key_source, status, detail)

    def payment_refused(self, user_id: str, provider: str, key_source: str, job_id: str, detail: str) -> None:
        self._keys.payment_refused(user_id, provider, key_source, job_id, detail)

    def model_gone(self, user_id: str, provider: str, key_source: str, model: str) -> None:
        self._keys.model_gone(user_id, provider, key_source, model)


class VideoChains:
    """generation.Generator for video jobs: the text-to-video or image-to-video chain, as the request needs."""

    def __init__(self, build: Callable[[VideoModeName], Chain]) -> None:
        self._build = build
        self._chains: dict[VideoModeName, Chain] = {}

    def chain(self, mode: VideoModeName) -> Chain:
        if mode not in self._chains:
            self._chains[mode] = self._build(mode)
        return self._chains[mode]

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        mode = mode_of(request)
        chain = self.chain(mode)
        unable = [name for name in request.providers or () if name not in chain.deps.registry]
        if unable:
            how = "from an image" if mode == "image" else "from text"
            error = ErrorInfo(
                code="no_video_providers",
                message=f"{', '.join(unable)} cannot make a video {how}",
                hint="name providers that can (GET /v1/providers shows the video chain), or leave providers out",
            )
            return ChainFailed(error=error, attempts=[])
        if not chain.deps.settings.chain.default_chain and not request.providers:
            error = ErrorInfo(code="no_video_providers", message="no video provider is configured (VIDEO_PROVIDERS)")
            return ChainFailed(error=error, attempts=[])
        return _video_hint(chain, chain.start(request, ctx))

    def resume(self, request: ImageRequest, state: dict[str, Any], ctx: RunContext) -> ChainOutcome:
        return self.chain(mode_of(request)).resume(request, state, ctx)

    def cancel(self, state: dict[str, Any]) -> None:
        chain = self._holding(state)
        if chain is not None:
            chain.cancel(state)

    def cancel_note(self, state: dict[str, Any]) -> str | None:
        """What a canceled job says about the request its provider holds: cancelled there (fal, Replicate), or left
        to run to its end where the provider has no way to cancel it (SiliconFlow)."""
        chain = self._holding(state)
        provider = str(state.get("provider"))
        if chain is None:
            return None
        async_ = chain.deps.registry[provider].async_
        remote = RemoteRequest(str(state.get("remote_id", "")))
        settings = chain.deps.settings.image_provider(provider)
        if async_ is None:
            return None
        if async_.build_cancel(remote, settings) is not None:
            return (
                f"{provider} was asked to cancel the video request: checks on it stopped, and its result is not "
                "fetched (a run already under way is billed as the provider bills it)"
            )
        return (
            f"{provider} offers no way to cancel a video request: checks on it stopped, and it may still run to its "
            "end there (billed as the provider bills it); its result is not fetched"
        )

    def _holding(self, state: dict[str, Any]) -> Chain | None:
        # Both views hold a provider's one video queue; the text one has every provider that makes videos.
        for mode in ("text", "image"):
            chain = self.chain(mode)
            if state.get("provider") in chain.deps.registry:
                return chain
        return None


def _video_hint(chain: Chain, outcome: ChainOutcome) -> ChainOutcome:
    """No usable key: the image chain's hint points at keyless image providers, and no provider makes videos
    without a key."""
    if not isinstance(outcome, ChainFailed) or outcome.error.code != "no_providers_configured":
        return outcome
    variables = [spec.key.env for spec in chain.deps.registry.values() if spec.key is not None]
    hint = f"Set {' or '.join(variables)}, or store your own key (PUT /v1/keys/{{provider}}): videos need one"
    return replace(outcome, error=outcome.error.model_copy(update={"hint": hint}))


def build_video_chains(
    settings: ProvidersSettings,
    registry: Mapping[str, ProviderSpec[Any]],
    order: tuple[str, ...],
    *,
    http: httpx.Client,
    fetcher: ResultFetcher,
    keys: KeyPort,
    breaker: BreakerStore,
    results: VideoResults,
    metrics: MetricsSink | None = None,
    rates: RateStore | None = None,
    latencies: LatencyStore | None = None,
) -> VideoChains:
    """The video chains on the worker's clients: `order` is the video chain (VIDEO_PROVIDERS)."""
    from imagegen.chain.core import Chain

    def build(mode: VideoModeName) -> Chain:
        return Chain(
            video_settings(settings, registry, mode, order),
            http,
            fetcher,
            keys=VideoKeys(keys),
            breaker=breaker,
            rates=rates,
            latencies=latencies,
            metrics=metrics,
            registry=video_registry(registry, mode),
            videos=results,
        )

    return VideoChains(build)
