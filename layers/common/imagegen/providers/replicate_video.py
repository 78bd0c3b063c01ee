"""Replicate video: the official Wan 2.2 models as predictions, exactly as its image models (`Prefer: wait=N`, then
checks, then the prediction's cancel URL).

Facts (docs/videos.md, "Replicate"): `wan-video/wan-2.2-t2v-fast` and `wan-video/wan-2.2-i2v-fast` take `prompt`,
`seed`, `resolution` (480p, 720p), `aspect_ratio` (16:9, 9:16; text-to-video) and, for image-to-video, `image` (a
URL or a data URI); the exact enums are UNCONFIRMED, so only these fields are sent. The output is read as
huggingface_hub's Replicate client reads it (a URL string, or the first of a list), and a data: URI is taken inline:
replicate.py's prediction parser does exactly that, so this module holds only the plan and the input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagegen.providers.base import (
    Capabilities,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    RemoteRequest,
    map_params,
)
from imagegen.providers.spec import VideoMode, VideoSpec, video_queue
from imagegen.providers.video import nearest_aspect, nearest_resolution, nominal_size, shape_note

if TYPE_CHECKING:
    import httpx

    from imagegen.models import ImageRequest
    from imagegen.providers.replicate import ReplicateSettings

TEXT_TO_VIDEO = "wan-video/wan-2.2-t2v-fast"
IMAGE_TO_VIDEO = "wan-video/wan-2.2-i2v-fast"

RESOLUTIONS: dict[str, int] = {"480p": 480, "720p": 720}
ASPECT_RATIOS: tuple[str, ...] = ("16:9", "9:16")

# negative_prompt is not among the fields the facts name: it is dropped and recorded, never sent.
_PARAMS = {"seed": "seed"}
_IMAGE = frozenset({"image"})
T2V = ModelSpec(name=TEXT_TO_VIDEO, params=_PARAMS)
I2V = ModelSpec(name=IMAGE_TO_VIDEO, params=_PARAMS, extras=_IMAGE)
GENERIC = ModelSpec(name="*", params=_PARAMS, extras=_IMAGE)
SIZE_RULE = "resolution 480p or 720p and aspect_ratio 16:9 or 9:16, the closest"
TEXT_CAPABILITIES = Capabilities(models=(T2V, GENERIC), size_rule=SIZE_RULE)
IMAGE_CAPABILITIES = Capabilities(models=(I2V, GENERIC), size_rule=SIZE_RULE)


def plan(asked: ImageRequest, model: str | None, settings: ReplicateSettings) -> ProviderPlan:
    """A video request (imagegen.models.VideoRequest.portable) on one Replicate video model. An image-to-video
    prediction gets no aspect_ratio (its frames follow the image; the facts name the field for text-to-video)."""
    with_image = bool((asked.extra or {}).get("image"))
    capabilities = IMAGE_CAPABILITIES if with_image else TEXT_CAPABILITIES
    spec = capabilities.spec(model or (IMAGE_TO_VIDEO if with_image else TEXT_TO_VIDEO))
    params, dropped = map_params(asked, spec)
    aspect = nearest_aspect(asked.width, asked.height, ASPECT_RATIOS)
    resolution = nearest_resolution(asked.width, asked.height, RESOLUTIONS)
    width, height = nominal_size(RESOLUTIONS[resolution], aspect)
    shape: dict[str, Any] = {"resolution": resolution}
    if not with_image:
        shape["aspect_ratio"] = aspect
    return ProviderPlan(
        provider="replicate",
        model=spec.name,
        prompt=asked.prompt,
        width=width,
        height=height,
        params={**shape, **params},
        dropped_params=dropped,
        notes=shape_note(asked, resolution, aspect, (width, height)),
    )


def build_request(plan: ProviderPlan, settings: ReplicateSettings) -> httpx.Request:
    from imagegen.providers import replicate

    return replicate.create(plan.model or TEXT_TO_VIDEO, {"prompt": plan.prompt, **plan.params}, settings)


# The prediction's calls and answers are the image models' own (replicate.py): a finished prediction carries its
# output (a URL string, a list of them, or a data: URI), `failed` its error, and the cancel URL stops it there.
# Imported when called, as replicate.py imports this module.


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    from imagegen.providers import replicate

    return replicate.parse_response(response, plan)


def build_check(remote: RemoteRequest, settings: ReplicateSettings) -> httpx.Request:
    from imagegen.providers import replicate

    return replicate.build_check(remote, settings)


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    from imagegen.providers import replicate

    return replicate.parse_check(response)


def build_cancel(remote: RemoteRequest, settings: ReplicateSettings) -> httpx.Request:
    from imagegen.providers import replicate

    return replicate.build_cancel(remote, settings)


VIDEO: VideoSpec[ReplicateSettings] = VideoSpec(
    text=VideoMode(TEXT_CAPABILITIES, lambda settings: settings.video_models),
    image=VideoMode(IMAGE_CAPABILITIES, lambda settings: settings.image_video_models),
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
    # After the create's own short wait; the check's answer carries the output (no collect call).
    async_=video_queue(build_check, parse_check, build_cancel),
)
