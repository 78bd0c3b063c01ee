"""fal.ai video: Wan 2.2 apps through fal's queue, exactly as its image apps (submit, status, result, cancel).

Facts (docs/videos.md, "fal.ai"): the apps `fal-ai/wan/v2.2-a14b/text-to-video` and `.../image-to-video` take
`prompt`, `negative_prompt`, `seed`, `resolution` (480p, 580p, 720p), `aspect_ratio` (16:9, 9:16, 1:1) and
`enable_safety_checker`; image-to-video adds `image_url` (an https URL or a data URI). The output is read as
huggingface_hub's fal client reads it, `video.url`, and a bare string under `video` is accepted too (UNCONFIRMED).
The queue's calls are fal.py's: this module holds only what differs for videos (plan, input, output).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagegen.providers.base import (
    Capabilities,
    FallThrough,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    Refused,
    RemoteRequest,
    body_json,
    classify_http_error,
    image_link,
    map_params,
)
from imagegen.providers.spec import VideoMode, VideoSpec, video_queue
from imagegen.providers.video import nearest_aspect, nearest_resolution, nominal_size, shape_note

if TYPE_CHECKING:
    import httpx

    from imagegen.models import ImageRequest
    from imagegen.providers.fal import FalSettings

TEXT_TO_VIDEO = "fal-ai/wan/v2.2-a14b/text-to-video"
IMAGE_TO_VIDEO = "fal-ai/wan/v2.2-a14b/image-to-video"

# The short side of each resolution, in pixels; the long side follows the aspect ratio. What fal makes for each pair
# is not published: these nominal sizes are what the plan records, the stored video says what was made.
RESOLUTIONS: dict[str, int] = {"480p": 480, "580p": 580, "720p": 720}
ASPECT_RATIOS: tuple[str, ...] = ("16:9", "9:16", "1:1")

_PARAMS = {"negative_prompt": "negative_prompt", "seed": "seed"}
# The input image rides in the request's extra["image"]; fal's field for it is `image_url`.
_IMAGE = frozenset({"image"})
T2V = ModelSpec(name=TEXT_TO_VIDEO, params=_PARAMS)
I2V = ModelSpec(name=IMAGE_TO_VIDEO, params=_PARAMS, extras=_IMAGE)
# An app named only in the settings: the Wan fields.
GENERIC = ModelSpec(name="*", params=_PARAMS, extras=_IMAGE)
SIZE_RULE = "resolution 480p, 580p or 720p and aspect_ratio 16:9, 9:16 or 1:1, the closest"
TEXT_CAPABILITIES = Capabilities(models=(T2V, GENERIC), size_rule=SIZE_RULE)
IMAGE_CAPABILITIES = Capabilities(models=(I2V, GENERIC), size_rule=SIZE_RULE)
# Always sent: fal's safety checker stays on (a flagged video is a refusal).
FIXED_INPUT: dict[str, Any] = {"enable_safety_checker": True}


def plan(asked: ImageRequest, model: str | None, settings: FalSettings) -> ProviderPlan:
    """A video request (imagegen.models.VideoRequest.portable) on one fal video app."""
    with_image = bool((asked.extra or {}).get("image"))
    capabilities = IMAGE_CAPABILITIES if with_image else TEXT_CAPABILITIES
    spec = capabilities.spec(model or (IMAGE_TO_VIDEO if with_image else TEXT_TO_VIDEO))
    params, dropped = map_params(asked, spec)
    if "image" in params:
        params["image_url"] = params.pop("image")
    aspect = nearest_aspect(asked.width, asked.height, ASPECT_RATIOS)
    resolution = nearest_resolution(asked.width, asked.height, RESOLUTIONS)
    width, height = nominal_size(RESOLUTIONS[resolution], aspect)
    return ProviderPlan(
        provider="fal",
        model=spec.name,
        prompt=asked.prompt,
        width=width,
        height=height,
        params={"resolution": resolution, "aspect_ratio": aspect, **params},
        dropped_params=dropped,
        notes=shape_note(asked, resolution, aspect, (width, height)),
    )


def video_input(plan: ProviderPlan) -> dict[str, Any]:
    return {"prompt": plan.prompt, **plan.params, **FIXED_INPUT}


def build_request(plan: ProviderPlan, settings: FalSettings) -> httpx.Request:
    from imagegen.providers import fal

    return fal.submit(plan.model or TEXT_TO_VIDEO, video_input(plan), settings)


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    from imagegen.providers import fal

    # The submit answer is the queue's (request_id and the follow-up URLs, which drop the app's sub-path).
    return fal.parse_response(response, plan)


def parse_video_output(body: Any) -> ProviderResult | ProviderError:
    """A video app's output: `video.url` (huggingface_hub's reading), or `video` as the link itself (UNCONFIRMED);
    a data: URI is taken inline. An NSFW flag, where the output has one, is a refusal."""
    if not isinstance(body, dict):
        return FallThrough("bad_response", "output is not a JSON object", status_code=200)
    flags = body.get("has_nsfw_concepts")
    if flags is True or (isinstance(flags, list) and True in flags):
        return Refused("fal's safety checker flagged the video (has_nsfw_concepts)", status_code=200)
    video = body.get("video")
    link = video.get("url") if isinstance(video, dict) else video
    if not isinstance(link, str) or not link:
        return FallThrough("bad_response", "output without video.url", status_code=200)
    return image_link(link)


def parse_collect(response: httpx.Response) -> ProviderResult | ProviderError:
    from imagegen.providers import fal

    if not response.is_success:
        return classify_http_error(response, fal.classify)
    return parse_video_output(body_json(response))


# The queue's follow-up calls are the image apps' own (fal.py); imported when called, as fal.py imports this module.


def build_check(remote: RemoteRequest, settings: FalSettings) -> httpx.Request:
    from imagegen.providers import fal

    return fal.build_check(remote, settings)


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    from imagegen.providers import fal

    return fal.parse_check(response)


def build_collect(remote: RemoteRequest, settings: FalSettings) -> httpx.Request:
    from imagegen.providers import fal

    return fal.build_collect(remote, settings)


def build_cancel(remote: RemoteRequest, settings: FalSettings) -> httpx.Request:
    from imagegen.providers import fal

    return fal.build_cancel(remote, settings)


VIDEO: VideoSpec[FalSettings] = VideoSpec(
    text=VideoMode(TEXT_CAPABILITIES, lambda settings: settings.video_models),
    image=VideoMode(IMAGE_CAPABILITIES, lambda settings: settings.image_video_models),
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
    async_=video_queue(build_check, parse_check, build_cancel, build_collect, parse_collect),
)
