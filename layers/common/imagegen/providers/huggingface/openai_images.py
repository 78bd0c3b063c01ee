"""nscale and together through the router: OpenAI-style `POST /v1/images/generations`, base64 `data[0].b64_json` back.

huggingface_hub 2.4.0 `_providers/nscale.py` and `together.py`:
- nscale: `{"response_format": "b64_json", "prompt", "model", **parameters}`, width and height as `size: "WxH"`,
  `num_inference_steps` left out (nscale takes no steps; dropped and recorded here).
- together: `{"prompt", "response_format": "base64", **parameters, "model"}`, `num_inference_steps` as `steps`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagegen.providers.base import (
    FallThrough,
    ImageBase64,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    bearer,
    classify_http_error,
    request,
)
from imagegen.providers.huggingface.common import (
    HuggingFaceSettings,
    RouteAdapter,
    classify,
    json_object,
    size_string,
    width_height,
)

if TYPE_CHECKING:
    import httpx

NSCALE_PARAMS = {"negative_prompt": "negative_prompt", "guidance": "guidance_scale", "seed": "seed"}
TOGETHER_PARAMS = {"negative_prompt": "negative_prompt", "steps": "steps", "guidance": "guidance_scale", "seed": "seed"}


def _build(route: str, extra: dict[str, Any]) -> Any:
    def build(plan: ProviderPlan, settings: HuggingFaceSettings) -> httpx.Request:
        body = {"prompt": plan.prompt, **extra, **plan.params, "model": plan.provider_model}
        headers = {"accept": "application/json", **bearer(settings.api_key)}
        return request("POST", f"{settings.base_url}/{route}/v1/images/generations", json=body, headers=headers)

    return build


def parse(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    body = json_object(response)
    if isinstance(body, ProviderError):
        return body
    data = body.get("data")
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    b64 = first.get("b64_json")
    if not isinstance(b64, str) or not b64:
        return FallThrough("bad_response", "200 without data[0].b64_json", status_code=200)
    return ImageBase64(b64)


NSCALE = RouteAdapter(
    name="nscale",
    table=lambda provider_model: ModelSpec(name=provider_model, params=NSCALE_PARAMS),
    shape=size_string("x"),
    build=_build("nscale", {"response_format": "b64_json"}),
    parse=parse,
)
TOGETHER = RouteAdapter(
    name="together",
    table=lambda provider_model: ModelSpec(name=provider_model, params=TOGETHER_PARAMS),
    shape=width_height,
    build=_build("together", {"response_format": "base64"}),
    parse=parse,
)
