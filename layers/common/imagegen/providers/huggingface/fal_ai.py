"""fal-ai through the router: `POST {router}/fal-ai/{fal app id}` with the app's input; JSON with `images[0].url` back.

huggingface_hub 2.4.0 `_providers/fal_ai.py` (the sync host for text-to-image, not the queue): `{"prompt",
**parameters}`, width and height as `image_size`. fal's FLUX apps take no `negative_prompt` or `scheduler`
(PROVIDERS-ROUTES.md 2.4), and whether fal ignores unknown keys is UNCONFIRMED, so for them those are dropped and
recorded where huggingface_hub would send them; other apps get the task's parameters as huggingface_hub sends them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagegen.providers.base import (
    FallThrough,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    Refused,
    ResultUrl,
    bearer,
    classify_http_error,
    request,
)
from imagegen.providers.huggingface.common import (
    TASK_PARAMS,
    HuggingFaceSettings,
    Range,
    RouteAdapter,
    clamp,
    classify,
    first_url,
    json_object,
)

if TYPE_CHECKING:
    import httpx

    from imagegen.models import ImageRequest

NAME = "fal-ai"
FLUX_PARAMS = {"steps": "num_inference_steps", "guidance": "guidance_scale", "seed": "seed"}
# Timestep-distilled: guidance does nothing, and fal's range (from 1) cannot say 0; it is dropped and recorded.
SCHNELL_PARAMS = {"steps": "num_inference_steps", "seed": "seed"}
# fal's FLUX ranges: flux/schnell steps 1-12, guidance 1-20 (fal docs); flux/dev steps UNCONFIRMED (0-50 by a third
# party), guidance as schnell.
RANGES: dict[str, dict[str, Range]] = {
    "fal-ai/flux/dev": {"num_inference_steps": (1, 50), "guidance_scale": (1.0, 20.0)},
    "fal-ai/flux/schnell": {"num_inference_steps": (1, 12), "guidance_scale": (1.0, 20.0)},
}


def table(provider_model: str) -> ModelSpec:
    if provider_model == "fal-ai/flux/schnell":
        return ModelSpec(name=provider_model, params=SCHNELL_PARAMS)
    if provider_model in RANGES:
        return ModelSpec(name=provider_model, params=FLUX_PARAMS)
    return ModelSpec(name=provider_model, params=TASK_PARAMS)


def shape(asked: ImageRequest, params: dict[str, Any], provider_model: str) -> tuple[int, int, list[str]]:
    params["image_size"] = {"width": asked.width, "height": asked.height}
    notes: list[str] = []
    clamp(params, RANGES.get(provider_model, {}), notes, NAME)
    return asked.width, asked.height, notes


def build(plan: ProviderPlan, settings: HuggingFaceSettings) -> httpx.Request:
    url = f"{settings.base_url}/{NAME}/{plan.provider_model}"
    headers = {"accept": "application/json", **bearer(settings.api_key)}
    return request("POST", url, json={"prompt": plan.prompt, **plan.params}, headers=headers)


def parse(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    body = json_object(response)
    if isinstance(body, ProviderError):
        return body
    flagged = body.get("has_nsfw_concepts")
    if isinstance(flagged, list) and flagged and flagged[0] is True:
        # fal's safety checker answers a black image and this flag (PROVIDERS-ROUTES.md 2.5).
        return Refused("fal-ai flagged the image as NSFW (has_nsfw_concepts)", status_code=200)
    url = first_url(body.get("images"))
    if url is None:
        return FallThrough("bad_response", "200 without images[0].url", status_code=200)
    return ResultUrl(url)


ADAPTER = RouteAdapter(name=NAME, table=table, shape=shape, build=build, parse=parse)
