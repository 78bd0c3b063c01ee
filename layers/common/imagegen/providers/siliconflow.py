"""SiliconFlow: POST {base}/images/generations with a Bearer key; the answer is a signed result URL. Videos:
siliconflow_video.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from imagegen.keys.types import CheckResult
from imagegen.providers.base import (
    Capabilities,
    FallThrough,
    HttpFailure,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    ResultUrl,
    bearer,
    body_json,
    classify_http_error,
    closest_size,
    fit_pixels,
    map_params,
    number,
    request,
    short,
)
from imagegen.providers.settings import CsvTuple, ProviderSettings
from imagegen.providers.siliconflow_video import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, VIDEO
from imagegen.providers.spec import KeyCheck, KeySpec, ModelListing, ProviderSpec

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

    from imagegen.models import ImageRequest

NAME = "siliconflow"

KOLORS = ModelSpec(
    name="Kwai-Kolors/Kolors",
    params={
        "negative_prompt": "negative_prompt",
        "steps": "num_inference_steps",
        "guidance": "guidance_scale",
        "seed": "seed",
    },
    # One image per job; batch_size is only accepted by Kolors, so only Kolors gets it.
    defaults={"batch_size": 1},
    sizes=((1024, 1024), (960, 1280), (768, 1024), (720, 1440), (720, 1280)),
)
QWEN_IMAGE = ModelSpec(
    name="Qwen/Qwen-Image",
    params={"negative_prompt": "negative_prompt", "steps": "num_inference_steps", "guidance": "cfg", "seed": "seed"},
    sizes=((1328, 1328), (1664, 928), (928, 1664), (1472, 1140), (1140, 1472), (1584, 1056), (1056, 1584)),
)
FLUX_SCHNELL = ModelSpec(
    name="black-forest-labs/FLUX.1-schnell",
    params={"seed": "seed"},
    max_pixels=2359296,
)
FLUX_SCHNELL_PRO = ModelSpec(name="Pro/black-forest-labs/FLUX.1-schnell", params={"seed": "seed"}, max_pixels=2359296)
FLUX_DEV = ModelSpec(
    name="black-forest-labs/FLUX.1-dev",
    params={"steps": "num_inference_steps", "seed": "seed"},
    max_pixels=2359296,
)
# Named by SiliconFlow's users (and third-party clients' defaults), on no official page (PROVIDERS.md 1.4): only
# what every documented model takes is sent (seed, image_size); its steps, guidance and negative prompt fields are
# UNCONFIRMED, so they are dropped and recorded. The pixel limit is FLUX's, also UNCONFIRMED for it.
Z_IMAGE_TURBO = ModelSpec(name="Tongyi-MAI/Z-Image-Turbo", params={"seed": "seed"}, max_pixels=2359296)
# Unlisted models (e.g. from SILICONFLOW_MODELS) get the fields every documented model shares.
GENERIC = ModelSpec(
    name="*",
    params={"negative_prompt": "negative_prompt", "steps": "num_inference_steps", "seed": "seed"},
    max_pixels=2359296,
)

CAPABILITIES = Capabilities(
    models=(KOLORS, QWEN_IMAGE, Z_IMAGE_TURBO, FLUX_SCHNELL, FLUX_SCHNELL_PRO, FLUX_DEV, GENERIC),
    size_rule='"WxH"; the closest recommended size for Kolors/Qwen-Image, else scaled to fit max_pixels',
)


class SiliconFlowSettings(ProviderSettings):
    base_url: str = "https://api.siliconflow.com/v1"
    # Tried in order, those the key's last listing names (all of them while there is no listing).
    models: CsvTuple = tuple(model.name for model in (KOLORS, Z_IMAGE_TURBO, FLUX_SCHNELL, FLUX_DEV, QWEN_IMAGE))
    timeout_s: float = Field(default=60.0, gt=0)
    # SiliconFlow counts images a minute (IPM) per account and model: at least 2 at the lowest tier, more as the
    # account pays. 20 a key keeps a batch of 50 from becoming a 429 storm on common tiers (SiliconFlow's 429 has no
    # Retry-After); set SILICONFLOW_RPM to your tier's IPM times the models you use.
    rpm: float = Field(default=20.0, ge=0)
    # Video models tried in order: text-to-video, and image-to-video (a request with `image`).
    video_models: CsvTuple = (TEXT_TO_VIDEO,)
    image_video_models: CsvTuple = (IMAGE_TO_VIDEO,)


# Kolors accepts 1-100 steps and guidance 0-20; clamping keeps a valid portable request from a 400.
_CLAMP = {
    "num_inference_steps": (1, 100),
    "guidance_scale": (0.0, 20.0),
    "cfg": (0.1, 20.0),
    "seed": (0, 9_999_999_999),
}


def plan(asked: ImageRequest, model: str | None, settings: SiliconFlowSettings) -> ProviderPlan:
    spec = CAPABILITIES.spec(model or KOLORS.name)
    params, dropped = map_params(asked, spec)
    notes: list[str] = []
    if spec.sizes:
        width, height = closest_size(asked.width, asked.height, spec.sizes)
    else:
        width, height = fit_pixels(asked.width, asked.height, spec.max_pixels)
    if (width, height) != (asked.width, asked.height):
        notes.append(f"size {asked.width}x{asked.height} -> {width}x{height}")
    if spec.name == FLUX_DEV.name and "num_inference_steps" in params:
        params["num_inference_steps"] = min(int(params["num_inference_steps"]), 30)
    for key, (low, high) in _CLAMP.items():
        if key in params:
            params[key] = type(params[key])(min(max(params[key], low), high))
    return ProviderPlan(
        provider=NAME,
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
    return request("POST", f"{settings.base_url}/images/generations", json=body, headers=headers)


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    body = body_json(response)
    if not isinstance(body, dict):
        return FallThrough("bad_response", "200 without a JSON body", status_code=200)
    # images[0].url is documented; some captured payloads carry an OpenAI-style data[0].url instead.
    for key in ("images", "data"):
        items = body.get(key)
        if isinstance(items, list) and items and isinstance(items[0], dict) and items[0].get("url"):
            return ResultUrl(str(items[0]["url"]))
    return FallThrough("bad_response", "200 without images[0].url", status_code=200)


def classify(failure: HttpFailure) -> ProviderError | None:
    # 503 with code 50505 is SiliconFlow's "model overloaded": another model or provider may answer now.
    if failure.status == 503 and isinstance(failure.body, dict) and failure.body.get("code") == 50505:
        return FallThrough("overloaded", failure.message, status_code=failure.status)
    # A retired or renamed model: "Model does not exist" with 400 code 20012 (documented) or a 404 (issue 10). The
    # code alone is not enough (20012 is every bad parameter), so the text decides; the chain marks the model gone.
    if failure.status in (400, 404) and "model does not exist" in failure.message.lower():
        return FallThrough("model_gone", failure.message, status_code=failure.status)
    return None


def build_key_check(settings: SiliconFlowSettings, key: SecretStr) -> httpx.Request:
    return request("GET", f"{settings.base_url}/user/info", headers={"accept": "application/json", **bearer(key)})


def build_listing(settings: SiliconFlowSettings, key: SecretStr) -> httpx.Request:
    """The live text-to-image models (PROVIDERS-ROUTES.md 4: `sub_type` works with or without `type`)."""
    params = {"type": "image", "sub_type": "text-to-image"}
    return request(
        "GET", f"{settings.base_url}/models", params=params, headers={"accept": "application/json", **bearer(key)}
    )


def parse_listing(response: httpx.Response) -> tuple[str, ...] | None:
    body = body_json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    ids = [item.get("id") for item in data if isinstance(item, dict)]
    listed = tuple(dict.fromkeys(model for model in ids if isinstance(model, str) and model))
    # An empty list is an answer too (no image model for this key), unlike an unreadable one.
    return listed


def parse_key_check(response: httpx.Response) -> CheckResult:
    if response.status_code in (401, 403):
        return CheckResult("invalid", f"rejected by SiliconFlow (HTTP {response.status_code})")
    body = body_json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(data, dict):
        return CheckResult.unexpected(response.status_code)
    account_status = data.get("status")
    if isinstance(account_status, str) and account_status != "normal":
        return CheckResult("invalid", short(f"account status {account_status}"))
    balance = number(data.get("totalBalance", data.get("balance")))
    if balance is None:
        return CheckResult("ok", "key accepted; balance not reported")
    if balance < 0:
        return CheckResult("out_of_credit", f"balance {balance}")
    # A zero balance still runs SiliconFlow's free models, so it is not a reason to skip the key.
    return CheckResult("ok", f"balance {balance}" + (" (free models only)" if balance == 0 else ""))


SPEC = ProviderSpec(
    name=NAME,
    env_prefix="SILICONFLOW",
    settings=SiliconFlowSettings,
    env={
        "api_key": "SILICONFLOW_API_KEY",
        "base_url": "SILICONFLOW_BASE_URL",
        "models": "SILICONFLOW_MODELS",
        "timeout_s": "SILICONFLOW_TIMEOUT_S",
        "rpm": "SILICONFLOW_RPM",
        "video_models": "SILICONFLOW_VIDEO_MODELS",
        "image_video_models": "SILICONFLOW_I2V_MODELS",
    },
    key=KeySpec(
        env="SILICONFLOW_API_KEY",
        pattern=r"sk-[A-Za-z0-9_-]{8,200}",
        expected="a SiliconFlow API key: sk- followed by 8-200 letters, digits, _ or -",
        header="authorization",
        check=KeyCheck(
            build=build_key_check,
            parse=parse_key_check,
            listing=ModelListing(build=build_listing, parse=parse_listing),
        ),
    ),
    capabilities=CAPABILITIES,
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
    classify=classify,
    video=VIDEO,
    result_hosts=(
        # Azure Blob SAS links (reported for SiliconFlow results; the field failure the safe fetcher exists for).
        ".blob.core.windows.net",
        # Aliyun OSS signed links: sc-maas.oss-cn-<region>.aliyuncs.com. The region sits in a label, so no narrower
        # suffix covers every region; the safe fetcher's address checks still apply to every name.
        ".aliyuncs.com",
        # SiliconFlow's own CDN (cdn.siliconflow.com) on both sites.
        ".siliconflow.com",
        ".siliconflow.cn",
    ),
)
