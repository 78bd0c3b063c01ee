"""SiliconFlow: POST {base}/images/generations with a Bearer key; the answer is a signed result URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from imagegen.providers.base import (
    Capabilities,
    FallThrough,
    ModelSpec,
    Provider,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    ResultUrl,
    body_json,
    classify_http_error,
    closest_size,
    fit_pixels,
    map_params,
)

if TYPE_CHECKING:
    from imagegen.models import ImageRequest
    from imagegen.providers.config import ProviderSettings

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
# Unlisted models (e.g. from SILICONFLOW_MODELS) get the fields every documented model shares.
GENERIC = ModelSpec(
    name="*",
    params={"negative_prompt": "negative_prompt", "steps": "num_inference_steps", "seed": "seed"},
    max_pixels=2359296,
)

CAPABILITIES = Capabilities(
    models=(KOLORS, QWEN_IMAGE, FLUX_SCHNELL, FLUX_SCHNELL_PRO, FLUX_DEV, GENERIC),
    size_rule='"WxH"; the closest recommended size for Kolors/Qwen-Image, else scaled to fit max_pixels',
    needs_key=True,
)

# Kolors accepts 1-100 steps and guidance 0-20; clamping keeps a valid portable request from a 400.
_CLAMP = {
    "num_inference_steps": (1, 100),
    "guidance_scale": (0.0, 20.0),
    "cfg": (0.1, 20.0),
    "seed": (0, 9_999_999_999),
}


def plan(request: ImageRequest, model: str | None, settings: ProviderSettings) -> ProviderPlan:
    spec = CAPABILITIES.spec(model or KOLORS.name)
    params, dropped = map_params(request, spec)
    notes: list[str] = []
    if spec.sizes:
        width, height = closest_size(request.width, request.height, spec.sizes)
    else:
        width, height = fit_pixels(request.width, request.height, spec.max_pixels)
    if (width, height) != (request.width, request.height):
        notes.append(f"size {request.width}x{request.height} -> {width}x{height}")
    if spec.name == FLUX_DEV.name and "num_inference_steps" in params:
        params["num_inference_steps"] = min(int(params["num_inference_steps"]), 30)
    for key, (low, high) in _CLAMP.items():
        if key in params:
            params[key] = type(params[key])(min(max(params[key], low), high))
    return ProviderPlan(
        provider=NAME,
        model=spec.name,
        prompt=request.prompt,
        width=width,
        height=height,
        params=params,
        dropped_params=dropped,
        notes=notes,
    )


def build_request(plan: ProviderPlan, settings: ProviderSettings) -> httpx.Request:
    body: dict[str, Any] = {"model": plan.model, "prompt": plan.prompt, "image_size": f"{plan.width}x{plan.height}"}
    body.update(plan.params)
    headers = {"accept": "application/json"}
    if settings.api_key is not None:
        headers["authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
    return httpx.Request("POST", f"{settings.base_url}/images/generations", json=body, headers=headers)


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(NAME, response)
    body = body_json(response)
    if not isinstance(body, dict):
        return FallThrough("bad_response", "200 without a JSON body", status_code=200)
    # images[0].url is documented; some captured payloads carry an OpenAI-style data[0].url instead.
    for key in ("images", "data"):
        items = body.get(key)
        if isinstance(items, list) and items and isinstance(items[0], dict) and items[0].get("url"):
            return ResultUrl(str(items[0]["url"]))
    return FallThrough("bad_response", "200 without images[0].url", status_code=200)


PROVIDER = Provider(
    name=NAME,
    capabilities=CAPABILITIES,
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
)
