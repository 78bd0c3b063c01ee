"""replicate through the router: a prediction with `Prefer: wait=N`; its output (URL or `data:` URI) when it finished.

huggingface_hub 2.4.0 `_providers/replicate.py` builds the route (`/v1/models/{owner}/{name}/predictions`, or
`/v1/predictions` with `version` for a pinned id) and `{"input": {"prompt", **parameters}}`. Two differences:
- Replicate's FLUX models take `aspect_ratio`, `megapixels`, `guidance`, `num_outputs` and `output_format`, not
  `width`/`height`/`guidance_scale`, and drop unknown inputs silently (PROVIDERS-ROUTES.md 1.3, 3.7): huggingface_hub's
  fields would give a 1:1 image at default guidance, so for them we send what they take.
- A `failed` prediction carries its `error` (E005: a content refusal); huggingface_hub reports any missing output as
  a 60 s timeout. A prediction not finished within the wait is checked again later through the router's
  `/v1/predictions/{id}` (whether the router serves it is UNCONFIRMED: if it does not, the link falls through as
  `unfinished`).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    FallThrough,
    ImageBase64,
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
    json_object,
    width_height,
)

if TYPE_CHECKING:
    import httpx

    from imagegen.models import ImageRequest

NAME = "replicate"
ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
# One image, lossless: what every FLUX prediction here asks for.
FLUX_FIXED = {"num_outputs": 1, "output_format": "png"}
FLUX_DEV = ModelSpec(
    name="black-forest-labs/flux-dev",
    params={"steps": "num_inference_steps", "guidance": "guidance", "seed": "seed"},
    fixed=FLUX_FIXED,
)
FLUX_SCHNELL = ModelSpec(
    name="black-forest-labs/flux-schnell", params={"steps": "num_inference_steps", "seed": "seed"}, fixed=FLUX_FIXED
)
FLUX = {spec.name: spec for spec in (FLUX_DEV, FLUX_SCHNELL)}
RANGES: dict[str, dict[str, Range]] = {
    FLUX_DEV.name: {"num_inference_steps": (1, 50), "guidance": (0.0, 10.0)},
    FLUX_SCHNELL.name: {"num_inference_steps": (1, 4)},
}
# Replicate waits at most 60 s in a synchronous create (PROVIDERS-ROUTES.md 3.2); checks after that start here.
MAX_WAIT_S = 60
CHECK_AFTER_S = 2.0
TERMINAL_FAILURES = ("failed", "canceled")
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _name(provider_model: str) -> str:
    return provider_model.split(":", 1)[0]


def table(provider_model: str) -> ModelSpec:
    return FLUX.get(_name(provider_model)) or ModelSpec(name=provider_model, params=TASK_PARAMS)


def aspect_ratio(width: int, height: int) -> str:
    target = math.log(width / height)
    return min(ASPECT_RATIOS, key=lambda ratio: abs(math.log(_ratio(ratio)) - target))


def _ratio(text: str) -> float:
    w, h = text.split(":")
    return int(w) / int(h)


def output_size(ratio: str, megapixels: str) -> tuple[int, int]:
    """The size FLUX answers for an aspect ratio and megapixels (sides to multiples of 16; exact sizes UNCONFIRMED,
    and the image check allows 15 %)."""
    w, h = (int(part) for part in ratio.split(":"))
    area = 1024 * 1024 * float(megapixels)
    scale = math.sqrt(area / (w * h))
    return max(16, round(w * scale / 16) * 16), max(16, round(h * scale / 16) * 16)


def shape(asked: ImageRequest, params: dict[str, Any], provider_model: str) -> tuple[int, int, list[str]]:
    if _name(provider_model) not in FLUX:
        return width_height(asked, params, provider_model)
    ratio = aspect_ratio(asked.width, asked.height)
    # The nearer of FLUX's two sizes, by area on a log scale (0.5 MP is their geometric mean).
    megapixels = "0.25" if asked.width * asked.height <= 512 * 1024 else "1"
    params["aspect_ratio"], params["megapixels"] = ratio, megapixels
    width, height = output_size(ratio, megapixels)
    notes = [f"size {asked.width}x{asked.height} -> aspect_ratio {ratio}, megapixels {megapixels} ({width}x{height})"]
    clamp(params, RANGES[_name(provider_model)], notes, NAME)
    return width, height, notes


def build(plan: ProviderPlan, settings: HuggingFaceSettings) -> httpx.Request:
    provider_model = plan.provider_model or ""
    body: dict[str, Any] = {"input": {"prompt": plan.prompt, **plan.params}}
    if ":" in provider_model:
        body["version"] = provider_model.split(":", 1)[1]
        path = "/v1/predictions"
    else:
        path = f"/v1/models/{provider_model}/predictions"
    # Wait within this attempt's budget (the settings a request is built with carry it as timeout_s).
    wait = max(1, min(MAX_WAIT_S, int(settings.timeout_s) - 2))
    headers = {"accept": "application/json", "prefer": f"wait={wait}", **bearer(settings.api_key)}
    return request("POST", f"{settings.base_url}/{NAME}{path}", json=body, headers=headers)


def parse(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if not 200 <= response.status_code < 300:
        return classify_http_error(response, classify)
    body = json_object(response)
    if isinstance(body, ProviderError):
        return body
    return _prediction(body, submitted=True)


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    if response.status_code in (404, 405):
        message = (
            "the prediction did not finish within the wait, and the router does not serve its status "
            f"(HTTP {response.status_code})"
        )
        return FallThrough("unfinished", message, status_code=response.status_code)
    if response.status_code != 200:
        return classify_http_error(response, classify)
    body = json_object(response)
    if isinstance(body, ProviderError):
        return body
    return _prediction(body, submitted=False)


def _prediction(body: dict[str, Any], *, submitted: bool) -> ProviderResult | ProviderError:
    """A prediction: its output once there (a finished sync reply may still say "processing"), its error when it
    failed, else not done yet."""
    status, output = body.get("status"), body.get("output")
    if status in TERMINAL_FAILURES:
        error = str(body.get("error") or f"prediction {status}")
        if "(E005)" in error or "flagged as sensitive" in error:
            return Refused(error, status_code=200)
        return FallThrough("faulted", error, status_code=200)
    first = output if isinstance(output, str) else output[0] if isinstance(output, list) and output else None
    if isinstance(first, str) and first:
        return _output(first)
    if status == "succeeded":
        return FallThrough("bad_response", "succeeded without an output", status_code=200)
    prediction_id = body.get("id")
    if not isinstance(prediction_id, str) or not _ID.fullmatch(prediction_id):
        return FallThrough("bad_response", "an unfinished prediction without a usable id", status_code=200)
    if submitted:
        return AsyncSubmitted(f"{NAME}:{prediction_id}", CHECK_AFTER_S)
    return AsyncStatus(done=False, wait_time=CHECK_AFTER_S)


def _output(value: str) -> ProviderResult | ProviderError:
    if value.startswith("data:"):
        header, _, data = value.partition(",")
        if not header.endswith(";base64") or not data:
            return FallThrough("bad_response", "a data: output that is not base64", status_code=200)
        return ImageBase64(data)
    return ResultUrl(value)


def _prediction_id(remote: str) -> str:
    if not _ID.fullmatch(remote):
        raise ValueError("not a prediction id")
    return remote


def check(remote: str, settings: HuggingFaceSettings) -> httpx.Request:
    url = f"{settings.base_url}/{NAME}/v1/predictions/{_prediction_id(remote)}"
    return request("GET", url, headers={"accept": "application/json", **bearer(settings.api_key)})


def cancel(remote: str, settings: HuggingFaceSettings) -> httpx.Request:
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
