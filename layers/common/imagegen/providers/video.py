"""The video view of the registry and of the provider settings: what the one provider chain runs for a video job.

Each provider with a `video` part appears with its video hooks in place of its image ones (plan, request, answer,
queue checks) and its video models in place of its image models, so the chain, unchanged, runs video links: keys,
breakers, skips, fall-through and delayed checks all work as for images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from imagegen.models import ImageRequest
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


# --- sizes: services that take a resolution and an aspect ratio (fal's and Replicate's video models) ---------


def _ratio(aspect: str) -> float:
    width, height = (int(part) for part in aspect.split(":"))
    return width / height


def nearest_aspect(width: int, height: int, aspects: tuple[str, ...]) -> str:
    """The listed aspect ratio nearest to width:height on a log scale (2:1 is as far from 1:1 as 1:2)."""
    target = math.log(width / height)
    return min(aspects, key=lambda aspect: abs(math.log(_ratio(aspect)) - target))


def nearest_resolution(width: int, height: int, resolutions: dict[str, int]) -> str:
    """The smallest resolution whose short side reaches the request's short side, else the largest."""
    short = min(width, height)
    ordered = sorted(resolutions, key=resolutions.__getitem__)
    return next((name for name in ordered if resolutions[name] >= short), ordered[-1])


def nominal_size(resolution: int, aspect: str) -> tuple[int, int]:
    """The pixel size a resolution and aspect ratio name: the short side is the resolution, sides even."""
    ratio = _ratio(aspect)
    long_side = int(resolution * max(ratio, 1 / ratio) / 2 + 0.5) * 2
    return (long_side, resolution) if ratio >= 1 else (resolution, long_side)


def shape_note(asked: ImageRequest, resolution: str, aspect: str, size: tuple[int, int]) -> list[str]:
    """The mapping, visible on the attempt and in the job's warnings when it changed the size."""
    if size == (asked.width, asked.height):
        return []
    made = f"{size[0]}x{size[1]}"
    return [f"size {asked.width}x{asked.height} -> resolution {resolution}, aspect_ratio {aspect} ({made})"]
