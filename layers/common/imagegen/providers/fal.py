"""fal.ai: FLUX apps through fal's queue (submit, status, result, cancel), `Authorization: Key`; results on fal's CDN.
Videos: fal_video.py (Wan apps on the same queue).

The payload builder (`fal_plan`, `fal_input`) and the output parser (`parse_fal_output`) are pure and shared with the
Hugging Face router's `fal-ai` route, which sends the same input and reads the same output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import Field

from imagegen.keys.types import CheckResult
from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    Capabilities,
    FallThrough,
    HttpFailure,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    Refused,
    RemoteRequest,
    body_json,
    clamp,
    classify_http_error,
    image_link,
    map_params,
    request,
    short,
    under,
)
from imagegen.providers.fal_video import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, VIDEO
from imagegen.providers.settings import CsvTuple, ProviderSettings, UrlStr
from imagegen.providers.spec import AsyncSpec, KeyCheck, KeySpec, ProviderSpec

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

    from imagegen.models import ImageRequest

NAME = "fal"
FLUX_DEV_APP = "fal-ai/flux/dev"
FLUX_SCHNELL_APP = "fal-ai/flux/schnell"

# fal's named sizes (fal-js `ImageSize`), sent by name when the size asked for is one of them exactly.
IMAGE_SIZES: dict[tuple[int, int], str] = {
    (1024, 1024): "square_hd",
    (512, 512): "square",
    (768, 1024): "portrait_4_3",
    (576, 1024): "portrait_16_9",
    (1024, 768): "landscape_4_3",
    (1024, 576): "landscape_16_9",
}
# Any other size goes as {"width", "height"}: FLUX works on a 16-pixel grid, and below 256 px a side it draws poorly,
# so a smaller request is generated at 256 px on its short side and scaled down by the worker.
SIZE_STEP, MIN_SIDE, MAX_SIDE = 16, 256, 2048

_PARAMS = {"steps": "num_inference_steps", "guidance": "guidance_scale", "seed": "seed"}
FLUX_DEV = ModelSpec(name=FLUX_DEV_APP, params=_PARAMS, extras=frozenset({"acceleration"}))
FLUX_SCHNELL = ModelSpec(name=FLUX_SCHNELL_APP, params=_PARAMS, extras=frozenset({"acceleration"}))
# Other apps from FAL_MODELS: the FLUX fields, unclamped (their ranges are their own).
GENERIC = ModelSpec(name="*", params=_PARAMS)
CAPABILITIES = Capabilities(
    models=(FLUX_DEV, FLUX_SCHNELL, GENERIC),
    size_rule="a fal size name when the size is one exactly, else {width, height} on a 16 px grid, short side >= 256",
)

# Ranges per app (PROVIDERS-ROUTES.md 2.4): schnell's are documented; dev's steps are UNCONFIRMED (a third party
# says up to 50). A value outside is clamped and the attempt says so, rather than sent for a 422.
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    FLUX_DEV_APP: {"num_inference_steps": (1, 50), "guidance_scale": (1.0, 20.0)},
    FLUX_SCHNELL_APP: {"num_inference_steps": (1, 12), "guidance_scale": (1.0, 20.0)},
}
# Always sent: one image per job, fal's safety checker on (a flagged image is a refusal), a lossless source for the
# worker's crop and resize.
FIXED_INPUT: dict[str, Any] = {"num_images": 1, "enable_safety_checker": True, "output_format": "png"}


class FalSettings(ProviderSettings):
    # The queue host (FAL_QUEUE_URL): generation, status, result and cancel calls all go here.
    base_url: str = "https://queue.fal.run"
    # fal's platform API: the key check reads the account's storage settings there.
    api_url: UrlStr = "https://api.fal.ai"
    models: CsvTuple = (FLUX_DEV_APP, FLUX_SCHNELL_APP)
    # One HTTP call (submit, status, result); the queue wait is not part of it.
    timeout_s: float = Field(default=20.0, gt=0)
    # Video apps tried in order: text-to-video, and image-to-video (a request with `image`).
    video_models: CsvTuple = (TEXT_TO_VIDEO,)
    image_video_models: CsvTuple = (IMAGE_TO_VIDEO,)


def flux_size(width: int, height: int) -> tuple[int, int]:
    """The size FLUX is asked for: as asked on a 16 px grid, the short side at least MIN_SIDE, each side at most
    MAX_SIDE (keeping the aspect ratio as well as the grid allows)."""
    scale = max(1.0, MIN_SIDE / min(width, height))
    scale = min(scale, MAX_SIDE / max(width, height)) if max(width, height) * scale > MAX_SIDE else scale

    def side(value: float) -> int:
        # Half-up (round() would take 62.5 steps to 62).
        return min(MAX_SIDE, max(SIZE_STEP, int(value / SIZE_STEP + 0.5) * SIZE_STEP))

    return side(width * scale), side(height * scale)


def image_size(width: int, height: int) -> str | dict[str, int]:
    """fal's `image_size` for a planned size: its name when fal has one, else the object."""
    return IMAGE_SIZES.get((width, height)) or {"width": width, "height": height}


def fal_plan(asked: ImageRequest, model: str | None, *, provider: str = NAME) -> ProviderPlan:
    """The portable request mapped onto one fal app; `provider` names whoever sends it (the HF router too)."""
    spec = CAPABILITIES.spec(model or FLUX_DEV_APP)
    params, dropped = map_params(asked, spec)
    asked_size = (asked.width, asked.height)
    width, height = asked_size if asked_size in IMAGE_SIZES else flux_size(*asked_size)
    notes = [] if (width, height) == asked_size else [f"size {asked.width}x{asked.height} -> {width}x{height}"]
    notes += clamp(params, RANGES.get(spec.name, {}), spec.name)
    return ProviderPlan(
        provider=provider,
        model=spec.name,
        prompt=asked.prompt,
        width=width,
        height=height,
        params=params,
        dropped_params=dropped,
        notes=notes,
    )


def fal_input(plan: ProviderPlan) -> dict[str, Any]:
    """The JSON input a fal FLUX app takes, for the queue, the sync host and the HF router alike."""
    return {"prompt": plan.prompt, "image_size": image_size(plan.width, plan.height), **plan.params, **FIXED_INPUT}


def parse_fal_output(body: Any) -> ProviderResult | ProviderError:
    """A FLUX app's output: the first image's link (or data: URI); an NSFW flag on it is a refusal, not a success."""
    if not isinstance(body, dict):
        return FallThrough("bad_response", "output is not a JSON object", status_code=200)
    images = body.get("images")
    if not isinstance(images, list) or not images or not isinstance(images[0], dict):
        return FallThrough("bad_response", "output without images[0]", status_code=200)
    flags = body.get("has_nsfw_concepts")
    if isinstance(flags, list) and flags and flags[0] is True:
        # fal's safety checker flagged the image (and may have blacked it out): the provider refused this prompt.
        return Refused("fal's safety checker flagged the image (has_nsfw_concepts)", status_code=200)
    return image_link(images[0].get("url"))


def plan(asked: ImageRequest, model: str | None, settings: FalSettings) -> ProviderPlan:
    return fal_plan(asked, model)


def _headers(key: SecretStr | None) -> dict[str, str]:
    auth = {"authorization": f"Key {key.get_secret_value()}"} if key is not None else {}
    return {"accept": "application/json", **auth}


def submit(app: str, payload: dict[str, Any], settings: FalSettings) -> httpx.Request:
    """A submit to the queue: `POST {FAL_QUEUE_URL}/{app}` (image and video apps alike)."""
    url = f"{settings.base_url}/{quote(app, safe='/')}"
    return request("POST", url, json=payload, headers=_headers(settings.api_key))


def build_request(plan: ProviderPlan, settings: FalSettings) -> httpx.Request:
    return submit(plan.model or FLUX_DEV_APP, fal_input(plan), settings)


def _follow_up_urls(body: dict[str, Any], request_id: str, submit_url: str, app: str) -> dict[str, str]:
    """The status, result and cancel URLs of a submitted request: those fal named when they are on the host we
    submitted to, else built as fal builds them (they drop the app's sub-path: fal-ai/flux/dev -> fal-ai/flux)."""
    base = submit_url.removesuffix("/" + quote(app, safe="/"))
    derived = f"{base}/{'/'.join(app.split('/')[:2])}/requests/{quote(request_id, safe='')}"
    named = {"check": body.get("status_url"), "collect": body.get("response_url"), "cancel": body.get("cancel_url")}
    fallback = {"check": f"{derived}/status", "collect": derived, "cancel": f"{derived}/cancel"}
    return {name: url if isinstance(url, str) and under(url, base) else fallback[name] for name, url in named.items()}


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if not response.is_success:
        return classify_http_error(response, classify)
    body = body_json(response)
    if not isinstance(body, dict) or not body.get("request_id"):
        return FallThrough("bad_response", "submit answered without a request_id", status_code=response.status_code)
    request_id = str(body["request_id"])
    urls = _follow_up_urls(body, request_id, str(response.request.url), plan.model or FLUX_DEV_APP)
    return AsyncSubmitted(remote_id=request_id, wait_time=0.0, urls=urls)


def _follow_up(method: str, name: str, remote: RemoteRequest, settings: FalSettings) -> httpx.Request:
    # A state stored without URLs (or under another FAL_QUEUE_URL) gets a URL that the queue answers 404 to:
    # the link then falls through, and the key still goes to the configured queue host only.
    default = f"{settings.base_url}/requests/{quote(remote.id, safe='')}"
    url = remote.url(name, settings.base_url, default)
    return request(method, url, headers=_headers(settings.api_key))


def build_check(remote: RemoteRequest, settings: FalSettings) -> httpx.Request:
    return _follow_up("GET", "check", remote, settings)


def build_collect(remote: RemoteRequest, settings: FalSettings) -> httpx.Request:
    return _follow_up("GET", "collect", remote, settings)


def build_cancel(remote: RemoteRequest, settings: FalSettings) -> httpx.Request:
    return _follow_up("PUT", "cancel", remote, settings)


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    body = body_json(response)
    if not isinstance(body, dict):
        return FallThrough("bad_response", "status answered without JSON", status_code=200)
    status = body.get("status")
    if status in ("IN_QUEUE", "IN_PROGRESS"):
        position = body.get("queue_position")
        return AsyncStatus(done=False, wait_time=0.0, queue_position=position if isinstance(position, int) else None)
    if status == "COMPLETED" and not body.get("error"):
        return AsyncStatus(done=True, wait_time=0.0)
    if status == "COMPLETED":
        kind = body.get("error_type") or "error"
        return FallThrough("faulted", short(f"fal completed the request with {kind}: {body['error']}"), status_code=200)
    # fal_client knows only the three above; FAILED/CANCELED come from a third-party schema (UNCONFIRMED).
    return FallThrough("faulted", short(f"fal reports the request {status!s}"), status_code=200)


def parse_collect(response: httpx.Response) -> ProviderResult | ProviderError:
    if not response.is_success:
        return classify_http_error(response, classify)
    return parse_fal_output(body_json(response))


def _lock_reason(failure: HttpFailure) -> str | None:
    detail = failure.body.get("detail") if isinstance(failure.body, dict) else None
    if failure.status == 403 and isinstance(detail, str) and detail.startswith("User is locked"):
        return detail
    return None


def _out_of_credit(lock: str) -> bool:
    # fal names the lock's reason only in the text (PROVIDERS-ROUTES.md 2.6): a balance lock, or an admin lock.
    return "Exhausted balance" in lock or "TOP_UP" in lock


def classify(failure: HttpFailure) -> ProviderError | None:
    lock = _lock_reason(failure)
    if lock is not None:
        # The account is locked: no other app of fal can do better with this key.
        error_class = "payment_required" if _out_of_credit(lock) else "forbidden"
        return FallThrough(error_class, lock, status_code=403, scope="provider")
    if failure.status == 504 and failure.headers.get("x-fal-request-timeout-type") == "user":
        return FallThrough("timeout", "fal's start timeout expired before the request ran", status_code=504)
    return None


def build_key_check(settings: FalSettings, key: SecretStr) -> httpx.Request:
    # The cheapest authenticated call the facts name (PROVIDERS-ROUTES.md 2.5): the account's storage settings.
    return request("GET", f"{settings.api_url}/v1/storage/settings", headers=_headers(key))


def parse_key_check(response: httpx.Response) -> CheckResult:
    if response.status_code == 401:
        return CheckResult("invalid", "fal does not know this key (HTTP 401)")
    if response.status_code == 403:
        lock = _lock_reason(HttpFailure.of(response))
        if lock is not None and _out_of_credit(lock):
            return CheckResult("out_of_credit", short(lock))
        return CheckResult("invalid", short(lock or "refused by fal (HTTP 403)"))
    body = body_json(response)
    if response.status_code != 200 or not isinstance(body, dict):
        return CheckResult.unexpected(response.status_code)
    expiry = body.get("expiration_duration_seconds")
    kept = "never expire" if expiry is None else f"expire after {expiry} s"
    return CheckResult("ok", f"key accepted; fal media {kept}")


SPEC = ProviderSpec(
    name=NAME,
    env_prefix="FAL",
    settings=FalSettings,
    env={
        "api_key": "FAL_KEY",
        "base_url": "FAL_QUEUE_URL",
        "api_url": "FAL_API_URL",
        "models": "FAL_MODELS",
        "timeout_s": "FAL_TIMEOUT_S",
        "video_models": "FAL_VIDEO_MODELS",
        "image_video_models": "FAL_I2V_MODELS",
        "rpm": "FAL_RPM",
    },
    key=KeySpec(
        env="FAL_KEY",
        # One string, or FAL_KEY_ID:FAL_KEY_SECRET (fal_client/auth.py).
        pattern=r"[A-Za-z0-9_-]{8,200}(:[A-Za-z0-9_-]{8,200})?",
        expected="a fal.ai key: key_id:key_secret (or one string), 8-200 letters, digits, _ or - each",
        header="authorization",
        check=KeyCheck(build=build_key_check, parse=parse_key_check),
    ),
    capabilities=CAPABILITIES,
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
    classify=classify,
    async_=AsyncSpec(
        build_check=build_check,
        parse_check=parse_check,
        build_collect=build_collect,
        parse_collect=parse_collect,
        build_cancel=build_cancel,
        # schnell is done within seconds; a long queue is checked at 2, 3, 5, 7, 10, 10 ... s.
        min_check_delay_s=2,
        check_backoff=1.5,
        max_check_delay_s=10,
        # fal's queue never rejects for concurrency (requests wait); 20 minutes bounds a stuck one.
        max_queue_s=1200.0,
    ),
    result_hosts=(
        # fal's CDN: v3.fal.media, v3b.fal.media (public links, kept at least 7 days).
        ".fal.media",
    ),
    video=VIDEO,
)
