"""Hugging Face Inference Providers via the router: {inputs, parameters} in, raw image bytes out."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from imagegen.providers.base import (
    Capabilities,
    FallThrough,
    ImageBytes,
    ModelSpec,
    Provider,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    classify_http_error,
    map_params,
)
from imagegen.providers.config import HuggingFaceSettings

if TYPE_CHECKING:
    from imagegen.models import ImageRequest
    from imagegen.providers.config import ProviderSettings

NAME = "huggingface"

# The text-to-image task spec's parameters, and nothing else: unknown keys are not reliably rejected
# (PROVIDERS.md 2.5), so anything outside the spec is dropped here and recorded instead.
TASK_PARAMS = {
    "negative_prompt": "negative_prompt",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "seed": "seed",
}
TASK_EXTRAS = frozenset({"scheduler"})

FLUX_DEV = ModelSpec(name="black-forest-labs/FLUX.1-dev", params=TASK_PARAMS, extras=TASK_EXTRAS)
# Timestep-distilled: 4 steps and no guidance whatever the request asked (PROVIDERS.md 2.6).
FLUX_SCHNELL = ModelSpec(
    name="black-forest-labs/FLUX.1-schnell",
    params=TASK_PARAMS,
    extras=TASK_EXTRAS,
    fixed={"num_inference_steps": 4, "guidance_scale": 0},
)
GENERIC = ModelSpec(name="*", params=TASK_PARAMS, extras=TASK_EXTRAS)

CAPABILITIES = Capabilities(
    models=(FLUX_DEV, FLUX_SCHNELL, GENERIC),
    size_rule="width/height passed as requested (64-2048)",
    needs_key=True,
)


def plan(request: ImageRequest, model: str | None, settings: ProviderSettings) -> ProviderPlan:
    spec = CAPABILITIES.spec(model or FLUX_DEV.name)
    params, dropped = map_params(request, spec)
    params["width"] = request.width
    params["height"] = request.height
    return ProviderPlan(
        provider=NAME,
        model=spec.name,
        prompt=request.prompt,
        width=request.width,
        height=request.height,
        params=params,
        dropped_params=dropped,
    )


def build_request(plan: ProviderPlan, settings: ProviderSettings) -> httpx.Request:
    model = plan.model or FLUX_DEV.name
    router_provider = settings.router_provider(model) if isinstance(settings, HuggingFaceSettings) else "hf-inference"
    url = f"{settings.base_url}/{router_provider}/models/{quote(model, safe='/')}"
    headers = {"accept": "image/png"}
    if settings.api_key is not None:
        headers["authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
    return httpx.Request("POST", url, json={"inputs": plan.prompt, "parameters": plan.params}, headers=headers)


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(NAME, response)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("application/json") or content_type.startswith("text/"):
        return FallThrough("bad_response", f"200 with {content_type} instead of an image", status_code=200)
    if not response.content:
        return FallThrough("bad_response", "200 with an empty body", status_code=200)
    return ImageBytes(response.content, content_type or None)


PROVIDER = Provider(
    name=NAME,
    capabilities=CAPABILITIES,
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
)
