"""replicate through the router: a prediction with `Prefer: wait=N`; its output (URL or `data:` URI) when it finished.

The route of huggingface_hub 2.4.0 `_providers/replicate.py` (`/v1/models/{owner}/{name}/predictions`, or
`/v1/predictions` with `version` for a pinned id), with the input and prediction reading of our own Replicate
provider (providers/replicate.py `replicate_plan`'s shape, `replicate_input`, `parse_prediction`). Two differences
from huggingface_hub, which sends `{"input": {"prompt", **parameters}}` untranslated:
- Replicate's FLUX models take `aspect_ratio`, `megapixels`, `guidance`, `num_outputs` and `output_format`, not
  `width`/`height`/`guidance_scale`, and drop unknown inputs silently (PROVIDERS-ROUTES.md 1.3, 3.7): huggingface_hub's
  fields would give a 1:1 image at default guidance.
- A `failed` prediction carries its `error` (E005: a content refusal); huggingface_hub reports any missing output as
  a 60 s timeout. A prediction not finished within the wait is checked later through the router's
  `/v1/predictions/{id}` (whether the router serves it is UNCONFIRMED: if not, the link falls through as
  `unfinished`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from imagegen.providers import replicate as direct
from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    FallThrough,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    RemoteRequest,
    bearer,
    body_json,
    clamp,
    classify_http_error,
    request,
)
from imagegen.providers.huggingface.common import TASK_PARAMS, HuggingFaceSettings, RouteAdapter, classify, width_height

if TYPE_CHECKING:
    import httpx

    from imagegen.models import ImageRequest

NAME = "replicate"
# Replicate waits at most 60 s in a synchronous create (PROVIDERS-ROUTES.md 3.2); the checks after that follow the
# provider's backoff (no wait_time of Replicate's own).
MAX_WAIT_S = 60
CHECK_AFTER_S = 0.0
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _flux(provider_model: str) -> bool:
    return provider_model.split(":", 1)[0] in direct.RANGES


def table(provider_model: str) -> ModelSpec:
    name = provider_model.split(":", 1)[0]
    return direct.CAPABILITIES.spec(name) if _flux(provider_model) else ModelSpec(name=name, params=TASK_PARAMS)


def shape(asked: ImageRequest, params: dict[str, Any], provider_model: str) -> tuple[int, int, list[str]]:
    if not _flux(provider_model):
        return width_height(asked, params, provider_model)
    made = direct.shape_for(asked.width, asked.height)
    params["aspect_ratio"], params["megapixels"] = made.aspect_ratio, made.megapixels
    note = (
        f"size {asked.width}x{asked.height} -> aspect_ratio {made.aspect_ratio}, megapixels {made.megapixels} "
        f"({made.width}x{made.height})"
    )
    name = provider_model.split(":", 1)[0]
    return made.width, made.height, [note, *clamp(params, direct.RANGES[name], name)]


def build(plan: ProviderPlan, settings: HuggingFaceSettings) -> httpx.Request:
    provider_model = plan.provider_model or direct.FLUX_DEV_MODEL
    model_input = direct.replicate_input(plan) if _flux(provider_model) else {"prompt": plan.prompt, **plan.params}
    body: dict[str, Any] = {"input": model_input}
    name, _, version = provider_model.partition(":")
    if version:
        body["version"] = version
        path = "/v1/predictions"
    else:
        path = f"/v1/models/{name}/predictions"
    # Wait within this attempt's budget (the settings a request is built with carry it as timeout_s).
    wait = max(1, min(MAX_WAIT_S, int(settings.timeout_s) - 2))
    headers = {"accept": "application/json", "prefer": f"wait={wait}", **bearer(settings.api_key)}
    return request("POST", f"{settings.base_url}/{NAME}{path}", json=body, headers=headers)


def parse(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if not response.is_success:
        return classify_http_error(response, classify)
    body = body_json(response)
    read = direct.parse_prediction(body)
    if not isinstance(read, AsyncStatus):
        return read
    # Not finished within the wait: checked again later by its id, through the router.
    prediction_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(prediction_id, str) or not _ID.fullmatch(prediction_id):
        return FallThrough("bad_response", "an unfinished prediction without a usable id", status_code=200)
    return AsyncSubmitted(f"{NAME}:{prediction_id}", CHECK_AFTER_S)


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    if response.status_code in (404, 405):
        message = (
            "the prediction did not finish within the wait, and the router does not serve its status "
            f"(HTTP {response.status_code})"
        )
        return FallThrough("unfinished", message, status_code=response.status_code)
    if response.status_code != 200:
        return classify_http_error(response, classify)
    read = direct.parse_prediction(body_json(response))
    return AsyncStatus(done=False, wait_time=CHECK_AFTER_S) if isinstance(read, AsyncStatus) else read


def _prediction_id(remote: RemoteRequest) -> str:
    if not _ID.fullmatch(remote.id):
        raise ValueError("not a prediction id")
    return remote.id


def check(remote: RemoteRequest, settings: HuggingFaceSettings) -> httpx.Request:
    url = f"{settings.base_url}/{NAME}/v1/predictions/{_prediction_id(remote)}"
    return request("GET", url, headers={"accept": "application/json", **bearer(settings.api_key)})


def cancel(remote: RemoteRequest, settings: HuggingFaceSettings) -> httpx.Request:
    url = f"{settings.base_url}/{NAME}/v1/predictions/{_prediction_id(remote)}/cancel"
    return request("POST", url, headers={"accept": "application/json", **bearer(settings.api_key)})


ADAPTER = RouteAdapter(
    name=NAME,
    table=table,
    shape=shape,
    build=build,
    parse=parse,
    check=check,
    parse_check=parse_check,
    cancel=cancel,
    is_async=True,
)
