"""The video view of the registry and of the provider settings: what the one provider chain runs for a video job.

Each provider with a `video` part appears with its video hooks in place of its image ones (plan, request, answer,
queue checks) and its video models in place of its image models, so the chain, unchanged, runs video links: keys,
breakers, skips, fall-through and delayed checks all work as for images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from imagegen.providers.settings import ProvidersSettings
    from imagegen.providers.spec import ProviderSpec, VideoMode

# "text": text-to-video; "image": image-to-video (the request has an input image).
VideoModeName = Literal["text", "image"]


def _mode(spec: ProviderSpec[Any], mode: VideoModeName) -> VideoMode[Any] | None:
    if spec.video is None:
        return None
    return spec.video.text if mode == "text" else spec.video.image


def video_registry(registry: Mapping[str, ProviderSpec[Any]], mode: VideoModeName) -> dict[str, ProviderSpec[Any]]:
    """The providers that make videos this way, each spec with its video hooks where the image ones were."""
    views: dict[str, ProviderSpec[Any]] = {}
    for name, spec in registry.items():
        part = _mode(spec, mode)
        if part is None or spec.video is None:
            continue
        video = spec.video
        views[name] = replace(
            spec,
            capabilities=part.capabilities,
            plan=video.plan,
            build_request=video.build_request,
            parse_response=video.parse_response,
            async_=video.async_,
            classify=video.classify or spec.classify,
            routing=None,
            render=None,
            offline=False,
        )
    return views


def video_settings(
    settings: ProvidersSettings,
    registry: Mapping[str, ProviderSpec[Any]],
    mode: VideoModeName,
    order: tuple[str, ...],
) -> ProvidersSettings:
    """The settings with each video provider's models for `mode` as its models, `order` (those of it that make videos
    this way) as the default chain, and no hedging (a video is one queued request, never raced)."""
    providers = dict(settings.providers)
    for name, spec in registry.items():
        part = _mode(spec, mode)
        if part is not None:
            own = settings.image_provider(name)
            providers[name] = own.model_copy(update={"models": part.models(own)})
    chain = settings.chain.model_copy(
        update={"default_chain": tuple(name for name in order if _mode(registry[name], mode)), "hedge": False}
    )
    return settings.model_copy(update={"providers": providers, "chain": chain})
