"""fal-ai through the router: `POST {router}/fal-ai/{fal app id}` with the app's input; JSON with `images[0].url` back.

The route of huggingface_hub 2.4.0 `_providers/fal_ai.py` (the sync host, `{"prompt", **parameters}`), with the input
and output of our own fal provider (providers/fal.py `fal_input`, `parse_fal_output`), the same app behind the
router: fal's FLUX apps take no `negative_prompt` or `scheduler` (PROVIDERS-ROUTES.md 2.4; whether fal ignores
unknown keys is UNCONFIRMED), so those are dropped and recorded where huggingface_hub would send them; the size goes
by fal's name when it has one; one image, the safety checker on, PNG. Apps other than FLUX get the task's parameters
as huggingface_hub sends them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagegen.providers import fal
from imagegen.providers.base import (
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    bearer,
    body_json,
    clamp,
    classify_http_error,
    request,
)
from imagegen.providers.huggingface.common import TASK_PARAMS, HuggingFaceSettings, RouteAdapter, classify

if TYPE_CHECKING:
    import httpx

    from imagegen.models import ImageRequest

NAME = "fal-ai"
# Timestep-distilled: guidance does nothing, and fal's range (from 1) cannot say 0; it is dropped and recorded.
SCHNELL = ModelSpec(name=fal.FLUX_SCHNELL_APP, params={"steps": "num_inference_steps", "seed": "seed"})


def _flux(provider_model: str) -> bool:
    return provider_model in fal.RANGES


def table(provider_model: str) -> ModelSpec:
    if provider_model == fal.FLUX_SCHNELL_APP:
        return SCHNELL
    if _flux(provider_model):
        return fal.CAPABILITIES.spec(provider_model)
    return ModelSpec(name=provider_model, params=TASK_PARAMS)


def shape(asked: ImageRequest, params: dict[str, Any], provider_model: str) -> tuple[int, int, list[str]]:
    """fal's size rule for its FLUX apps (a named size, else the 16 px grid); huggingface_hub's for other apps."""
    if not _flux(provider_model):
        params["image_size"] = {"width": asked.width, "height": asked.height}
        return asked.width, asked.height, []
    size = (asked.width, asked.height)
    width, height = size if size in fal.IMAGE_SIZES else fal.flux_size(*size)
    notes = [] if (width, height) == size else [f"size {asked.width}x{asked.height} -> {width}x{height}"]
    return width, height, notes + clamp(params, fal.RANGES[provider_model], provider_model)


def build(plan: ProviderPlan, settings: HuggingFaceSettings) -> httpx.Request:
    provider_model = plan.provider_model or fal.FLUX_DEV_APP
    body = fal.fal_input(plan) if _flux(provider_model) else {"prompt": plan.prompt, **plan.params}
    headers = {"accept": "application/json", **bearer(settings.api_key)}
    return request("POST", f"{settings.base_url}/{NAME}/{provider_model}", json=body, headers=headers)


def parse(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    return fal.parse_fal_output(body_json(response))


ADAPTER = RouteAdapter(name=NAME, table=table, shape=shape, build=build, parse=parse)
