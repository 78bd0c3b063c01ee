"""hf-inference: `POST {router}/hf-inference/models/{model}`, the task spec's `{inputs, parameters}`; raw bytes back.

huggingface_hub 2.4.0 `_providers/hf_inference.py`. The mapping is never consulted there (the route is the model id
itself), which is why this is the one route tried when the Hub's mapping cannot be read (PROVIDERS-ROUTES.md 1.3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from imagegen.providers.base import (
    FallThrough,
    ImageBytes,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    bearer,
    classify_http_error,
    request,
)
from imagegen.providers.huggingface.common import TASK_PARAMS, HuggingFaceSettings, RouteAdapter, classify, width_height

if TYPE_CHECKING:
    import httpx

NAME = "hf-inference"


def table(provider_model: str) -> ModelSpec:
    # The task spec's parameters and nothing else: unknown keys are not reliably rejected (PROVIDERS.md 2.5).
    return ModelSpec(name=provider_model, params=TASK_PARAMS, extras=frozenset({"scheduler"}))


def build(plan: ProviderPlan, settings: HuggingFaceSettings) -> httpx.Request:
    model = plan.provider_model or plan.model or ""
    url = f"{settings.base_url}/{NAME}/models/{quote(model, safe='/')}"
    headers = {"accept": "image/png", **bearer(settings.api_key)}
    return request("POST", url, json={"inputs": plan.prompt, "parameters": plan.params}, headers=headers)


def parse(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("application/json") or content_type.startswith("text/"):
        return FallThrough("bad_response", f"200 with {content_type} instead of an image", status_code=200)
    if not response.content:
        return FallThrough("bad_response", "200 with an empty body", status_code=200)
    return ImageBytes(response.content, content_type or None)


ADAPTER = RouteAdapter(name=NAME, table=table, shape=width_height, build=build, parse=parse)
