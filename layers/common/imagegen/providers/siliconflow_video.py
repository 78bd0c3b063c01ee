"""SiliconFlow video: POST {base}/video/submit, then POST {base}/video/status until Succeed with a signed video link.

Facts: PROVIDERS-ROUTES.md section 4 and PROVIDERS.md 1.6 (kept in docs/videos.md). The status answer of a finished
request carries the link itself, so there is no collect call; SiliconFlow documents no cancel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    Capabilities,
    FallThrough,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    RemoteRequest,
    ResultUrl,
    bearer,
    body_json,
    classify_http_error,
    closest_size,
    map_params,
    request,
    short,
)
from imagegen.providers.spec import VideoMode, VideoSpec, video_queue

if TYPE_CHECKING:
    import httpx

    from imagegen.models import ImageRequest
    from imagegen.providers.siliconflow import SiliconFlowSettings

TEXT_TO_VIDEO = "Wan-AI/Wan2.2-T2V-A14B"
IMAGE_TO_VIDEO = "Wan-AI/Wan2.2-I2V-A14B"
# `image_size` is an enum of these (the submit page); the nearest in aspect ratio, then area, is asked for.
VIDEO_SIZES: tuple[tuple[int, int], ...] = ((1280, 720), (720, 1280), (960, 960))
_PARAMS = {"negative_prompt": "negative_prompt", "seed": "seed"}
# The input image goes as `image`: a data URI or a URL, both documented (required by the image-to-video model).
_IMAGE = frozenset({"image"})

T2V = ModelSpec(name=TEXT_TO_VIDEO, params=_PARAMS, sizes=VIDEO_SIZES)
I2V = ModelSpec(name=IMAGE_TO_VIDEO, params=_PARAMS, extras=_IMAGE, sizes=VIDEO_SIZES)
# A model named only in the settings (the .com site's Wan2.1 models): the documented fields and sizes.
GENERIC = ModelSpec(name="*", params=_PARAMS, extras=_IMAGE, sizes=VIDEO_SIZES)
TEXT_CAPABILITIES = Capabilities(models=(T2V, GENERIC), size_rule='"WxH": 1280x720, 720x1280 or 960x960, the closest')
IMAGE_CAPABILITIES = Capabilities(models=(I2V, GENERIC), size_rule=TEXT_CAPABILITIES.size_rule)


def plan(asked: ImageRequest, model: str | None, settings: SiliconFlowSettings) -> ProviderPlan:
    """A video request (imagegen.models.VideoRequest.portable) on one SiliconFlow video model."""
    with_image = bool((asked.extra or {}).get("image"))
    capabilities = IMAGE_CAPABILITIES if with_image else TEXT_CAPABILITIES
    spec = capabilities.spec(model or (IMAGE_TO_VIDEO if with_image else TEXT_TO_VIDEO))
    params, dropped = map_params(asked, spec)
    width, height = closest_size(asked.width, asked.height, spec.sizes or VIDEO_SIZES)
    asked_size = f"{asked.width}x{asked.height}"
    notes = [] if (width, height) == (asked.width, asked.height) else [f"size {asked_size} -> {width}x{height}"]
    return ProviderPlan(
        provider="siliconflow",
        model=spec.name,
        prompt=asked.prompt,
        width=width,
        height=height,
        params=params,
        dropped_params=dropped,
        notes=notes,
    )


def build_request(plan: ProviderPlan, settings: SiliconFlowSettings) -> httpx.Request:
    body: dict[str, Any] = {"model": plan.model, "prompt": plan.prompt, "image_size": f"{plan.width}x{plan.height}"}
    body.update(plan.params)
    headers = {"accept": "application/json", **bearer(settings.api_key)}
    return request("POST", f"{settings.base_url}/video/submit", json=body, headers=headers)


def _classified(response: httpx.Response) -> ProviderError:
    # SiliconFlow's reading of its errors (overloaded, a model that does not exist) holds for its video routes too.
    from imagegen.providers.siliconflow import classify

    return classify_http_error(response, classify)


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return _classified(response)
    body = body_json(response)
    request_id = body.get("requestId") if isinstance(body, dict) else None
    if not isinstance(request_id, str) or not request_id:
        return FallThrough("bad_response", "submit answered without a requestId", status_code=200)
    return AsyncSubmitted(remote_id=request_id, wait_time=0.0)


def build_check(remote: RemoteRequest, settings: SiliconFlowSettings) -> httpx.Request:
    headers = {"accept": "application/json", **bearer(settings.api_key)}
    return request("POST", f"{settings.base_url}/video/status", json={"requestId": remote.id}, headers=headers)


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    """Succeed: the video's link (fetched at once: it lives 10 minutes); Failed: the reason; anything else, among it
    InQueue, InProgress and statuses no page lists: not done yet."""
    if response.status_code != 200:
        return _classified(response)
    body = body_json(response)
    if not isinstance(body, dict):
        return FallThrough("bad_response", "status answered without a JSON object", status_code=200)
    status = body.get("status")
    if status == "Succeed":
        return _video_link(body.get("results"))
    if status == "Failed":
        reason = body.get("reason") or "no reason given"
        return FallThrough("faulted", short(f"SiliconFlow failed the video: {reason}"), status_code=200)
    position = body.get("position")
    return AsyncStatus(done=False, wait_time=0.0, queue_position=position if isinstance(position, int) else None)


def _video_link(results: Any) -> ProviderResult | ProviderError:
    videos = results.get("videos") if isinstance(results, dict) else None
    first = videos[0] if isinstance(videos, list) and videos and isinstance(videos[0], dict) else {}
    url = first.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return FallThrough("bad_response", "Succeed without results.videos[0].url", status_code=200)
    return ResultUrl(url)


def build_cancel(remote: RemoteRequest, settings: SiliconFlowSettings) -> httpx.Request | None:
    # No cancel is documented (PROVIDERS-ROUTES.md 4): the request runs to its end there and its link expires.
    return None


VIDEO: VideoSpec[SiliconFlowSettings] = VideoSpec(
    text=VideoMode(TEXT_CAPABILITIES, lambda settings: settings.video_models),
    image=VideoMode(IMAGE_CAPABILITIES, lambda settings: settings.image_video_models),
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
    async_=video_queue(build_check, parse_check, build_cancel),
)
