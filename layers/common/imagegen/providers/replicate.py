"""Replicate: official FLUX models as predictions (`Prefer: wait=N`, then checks), Bearer `r8_` tokens. Videos:
replicate_video.py (Wan models, the same predictions).

The payload builder (`replicate_plan`, `replicate_input`) and the prediction parser (`parse_prediction`) are pure and
shared with the Hugging Face router's `replicate` route, which sends the same input and reads the same prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import Field, model_validator

from imagegen.keys.types import CheckResult
from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    Capabilities,
    FallThrough,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    Refused,
    RemoteRequest,
    bearer,
    body_json,
    clamp,
    classify_http_error,
    image_link,
    map_params,
    request,
    short,
    under,
)
from imagegen.providers.replicate_video import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, VIDEO
from imagegen.providers.settings import CsvTuple, ProviderSettings
from imagegen.providers.spec import AsyncSpec, KeyCheck, KeySpec, ProviderSpec

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

    from imagegen.models import ImageRequest

NAME = "replicate"
FLUX_DEV_MODEL = "black-forest-labs/flux-dev"
FLUX_SCHNELL_MODEL = "black-forest-labs/flux-schnell"

# Replicate's FLUX models take no width/height: an aspect ratio and a pixel budget (PROVIDERS-ROUTES.md 3.7).
ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
MEGAPIXELS = {"0.25": 0.25, "1": 1.0}
# A moderation failure ends in this code ("The input or output was flagged as sensitive. ... (E005)").
MODERATION_CODE = "(E005)"

FLUX_DEV = ModelSpec(
    name=FLUX_DEV_MODEL,
    params={"steps": "num_inference_steps", "guidance": "guidance", "seed": "seed"},
    extras=frozenset({"go_fast"}),
)
# schnell takes no guidance (it is timestep-distilled): a request's guidance is dropped and recorded.
FLUX_SCHNELL = ModelSpec(
    name=FLUX_SCHNELL_MODEL,
    params={"steps": "num_inference_steps", "seed": "seed"},
    extras=frozenset({"go_fast"}),
)
GENERIC = ModelSpec(name="*", params={"steps": "num_inference_steps", "seed": "seed"})
CAPABILITIES = Capabilities(
    models=(FLUX_DEV, FLUX_SCHNELL, GENERIC),
    size_rule="the nearest aspect_ratio of Replicate's list; megapixels 0.25 up to 512x512's area, else 1",
)

# Ranges per model (PROVIDERS-ROUTES.md 3.7, UNCONFIRMED third-party copies of the schemas): clamped, and said so.
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    FLUX_DEV_MODEL: {"num_inference_steps": (1, 50), "guidance": (0.0, 10.0)},
    FLUX_SCHNELL_MODEL: {"num_inference_steps": (1, 4)},
}
# One image per job, and a lossless source for the worker's crop and resize.
FIXED_INPUT: dict[str, Any] = {"num_outputs": 1, "output_format": "png"}


class ReplicateSettings(ProviderSettings):
    base_url: str = "https://api.replicate.com/v1"
    models: CsvTuple = (FLUX_DEV_MODEL, FLUX_SCHNELL_MODEL)
    # One HTTP call; the create holds the connection up to prefer_wait_s of it.
    timeout_s: float = Field(default=20.0, gt=0)
    # Replicate's published limit for creating predictions (replicate.com/docs/topics/predictions/rate-limits).
    rpm: float = Field(default=600.0, ge=0)
    # `Prefer: wait=N` on the create: a prediction done within N seconds is used at once, anything slower becomes
    # delayed checks. Every second of it is Lambda time billed while the worker waits on the socket, so N is small.
    prefer_wait_s: int = Field(default=1, ge=1, le=60)
    # Video models tried in order: text-to-video, and image-to-video (a request with `image`).
    video_models: CsvTuple = (TEXT_TO_VIDEO,)
    image_video_models: CsvTuple = (IMAGE_TO_VIDEO,)

    @model_validator(mode="after")
    def _wait_within_timeout(self) -> ReplicateSettings:
        if self.prefer_wait_s >= self.timeout_s:
            raise ValueError("prefer_wait_s must be shorter than timeout_s (the create would time out first)")
        return self


@dataclass(frozen=True)
class Shape:
    """What Replicate is asked for, and the size it makes of it (the worker crops and resizes to the request)."""

    aspect_ratio: str
    megapixels: str
    width: int
    height: int


def _ratio(aspect: str) -> float:
    w, h = (int(part) for part in aspect.split(":"))
    return w / h


def shape_for(width: int, height: int) -> Shape:
    """The nearest aspect ratio (log scale); the smaller pixel budget only when it is not less than the request's,
    so the worker scales down rather than up. The size Replicate makes is UNCONFIRMED: here, the budget spread over
    the ratio on FLUX's 16 px grid (1:1 at 1 MP -> 1024x1024); validation allows for a few steps either way."""
    target = math.log(width / height)
    aspect = min(ASPECT_RATIOS, key=lambda a: abs(math.log(_ratio(a)) - target))
    megapixels = "0.25" if width * height <= MEGAPIXELS["0.25"] * 1024 * 1024 else "1"
    area = MEGAPIXELS[megapixels] * 1024 * 1024
    ratio = _ratio(aspect)
    made_w, made_h = math.sqrt(area * ratio), math.sqrt(area / ratio)
    return Shape(aspect, megapixels, max(16, int(made_w / 16 + 0.5) * 16), max(16, int(made_h / 16 + 0.5) * 16))


def replicate_plan(asked: ImageRequest, model: str | None, *, provider: str = NAME) -> ProviderPlan:
    """The portable request mapped onto one Replicate model; `provider` names whoever sends it (the HF router too)."""
    spec = CAPABILITIES.spec(model or FLUX_DEV_MODEL)
    params, dropped = map_params(asked, spec)
    shape = shape_for(asked.width, asked.height)
    notes = [
        f"size {asked.width}x{asked.height} -> aspect_ratio {shape.aspect_ratio}, megapixels {shape.megapixels} "
        f"({shape.width}x{shape.height})"
    ]
    notes += clamp(params, RANGES.get(spec.name, {}), spec.name)
    return ProviderPlan(
        provider=provider,
        model=spec.name,
        prompt=asked.prompt,
        width=shape.width,
        height=shape.height,
        params={"aspect_ratio": shape.aspect_ratio, "megapixels": shape.megapixels, **params},
        dropped_params=dropped,
        notes=notes,
    )


def replicate_input(plan: ProviderPlan) -> dict[str, Any]:
    """The prediction's `input` for Replicate's FLUX models (direct, or behind the HF router)."""
    return {"prompt": plan.prompt, **plan.params, **FIXED_INPUT}


def _first_output(output: Any) -> Any:
    # FLUX answers a list of URIs; other models (and the HF router's readers) a single string.
    return output[0] if isinstance(output, list) and output else output


def parse_prediction(body: Any) -> ProviderResult | ProviderError:
    """A prediction: its first output when there is one (link or data: URI), `failed` as its error (E005 is a
    refusal), or AsyncStatus(done=False) while it runs. A reply may say `processing` with its output already set:
    a non-null output counts as done (replicate/run.py)."""
    if not isinstance(body, dict):
        return FallThrough("bad_response", "prediction is not a JSON object", status_code=200)
    status, output = body.get("status"), body.get("output")
    if status == "failed":
        error = str(body.get("error") or "failed without an error message")
        if MODERATION_CODE in error:
            return Refused(f"Replicate: {error}", status_code=200)
        return FallThrough("faulted", f"Replicate: {error}", status_code=200)
    if status == "canceled":
        return FallThrough("faulted", "the prediction was canceled at Replicate", status_code=200)
    if output is not None and output != []:
        return image_link(_first_output(output))
    if status == "succeeded":
        # Outputs of API predictions are removed after an hour (data_removed): too late to collect.
        if body.get("data_removed"):
            return FallThrough("expired", "the prediction's output was removed (older than an hour)", status_code=200)
        return FallThrough("bad_response", "succeeded without an output", status_code=200)
    if status in ("starting", "processing"):
        return AsyncStatus(done=False, wait_time=0.0)
    return FallThrough("bad_response", short(f"prediction in an unknown status {status!s}"), status_code=200)


def plan(asked: ImageRequest, model: str | None, settings: ReplicateSettings) -> ProviderPlan:
    return replicate_plan(asked, model)


def create(model: str, payload: dict[str, Any], settings: ReplicateSettings) -> httpx.Request:
    """A prediction's create with `Prefer: wait=N` (image and video models alike)."""
    body: dict[str, Any] = {"input": payload}
    owner_name, _, version = model.partition(":")
    if version:
        # A pinned version ("owner/name:version") is created through /predictions (replicate/prediction.py).
        url = f"{settings.base_url}/predictions"
        body["version"] = version
    else:
        url = f"{settings.base_url}/models/{quote(owner_name, safe='/')}/predictions"
    headers = {"accept": "application/json", "prefer": f"wait={settings.prefer_wait_s}", **bearer(settings.api_key)}
    return request("POST", url, json=body, headers=headers)


def build_request(plan: ProviderPlan, settings: ReplicateSettings) -> httpx.Request:
    return create(plan.model or FLUX_DEV_MODEL, replicate_input(plan), settings)


def _urls(body: dict[str, Any], base_url: str) -> dict[str, str]:
    """The prediction's get and cancel URLs, kept only when they are under the API base we created it on."""
    urls = body.get("urls")
    if not isinstance(urls, dict):
        return {}
    named = {"check": urls.get("get"), "cancel": urls.get("cancel")}
    return {name: url for name, url in named.items() if isinstance(url, str) and under(url, base_url)}


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if not response.is_success:
        return classify_http_error(response)
    body = body_json(response)
    result = parse_prediction(body)
    if not isinstance(result, AsyncStatus):
        return result
    if not isinstance(body, dict) or not body.get("id"):
        return FallThrough("bad_response", "prediction without an id", status_code=response.status_code)
    created_on = str(response.request.url).split("/models/")[0].removesuffix("/predictions")
    return AsyncSubmitted(remote_id=str(body["id"]), wait_time=0.0, urls=_urls(body, created_on))


def _prediction_url(remote: RemoteRequest, settings: ReplicateSettings) -> str:
    return f"{settings.base_url}/predictions/{quote(remote.id, safe='')}"


def build_check(remote: RemoteRequest, settings: ReplicateSettings) -> httpx.Request:
    url = remote.url("check", settings.base_url, _prediction_url(remote, settings))
    return request("GET", url, headers={"accept": "application/json", **bearer(settings.api_key)})


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    # The prediction carries its output: a finished one is the result, with no separate collect call.
    if not response.is_success:
        return classify_http_error(response)
    return parse_prediction(body_json(response))


def build_cancel(remote: RemoteRequest, settings: ReplicateSettings) -> httpx.Request:
    url = remote.url("cancel", settings.base_url, f"{_prediction_url(remote, settings)}/cancel")
    return request("POST", url, headers={"accept": "application/json", **bearer(settings.api_key)})


def build_key_check(settings: ReplicateSettings, key: SecretStr) -> httpx.Request:
    return request("GET", f"{settings.base_url}/account", headers={"accept": "application/json", **bearer(key)})


def parse_key_check(response: httpx.Response) -> CheckResult:
    if response.status_code == 401:
        return CheckResult("invalid", "Replicate does not know this token (HTTP 401)")
    body = body_json(response)
    if response.status_code != 200 or not isinstance(body, dict):
        return CheckResult.unexpected(response.status_code)
    return CheckResult("ok", short(f"{body.get('type', 'account')} {body.get('username', '?')}"))


SPEC = ProviderSpec(
    name=NAME,
    env_prefix="REPLICATE",
    settings=ReplicateSettings,
    env={
        "api_key": "REPLICATE_API_TOKEN",
        "base_url": "REPLICATE_BASE_URL",
        "models": "REPLICATE_MODELS",
        "timeout_s": "REPLICATE_TIMEOUT_S",
        "rpm": "REPLICATE_RPM",
        "prefer_wait_s": "REPLICATE_PREFER_WAIT_S",
        "video_models": "REPLICATE_VIDEO_MODELS",
        "image_video_models": "REPLICATE_I2V_MODELS",
    },
    key=KeySpec(
        env="REPLICATE_API_TOKEN",
        pattern=r"r8_[A-Za-z0-9_-]{8,200}",
        expected="a Replicate API token: r8_ followed by 8-200 letters, digits, _ or -",
        header="authorization",
        check=KeyCheck(build=build_key_check, parse=parse_key_check),
    ),
    capabilities=CAPABILITIES,
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
    async_=AsyncSpec(
        build_check=build_check,
        parse_check=parse_check,
        build_cancel=build_cancel,
        # After the create's own wait: checks at 2, 3, 5, 7, 10, 10 ... s.
        min_check_delay_s=2,
        check_backoff=1.5,
        max_check_delay_s=10,
        # Outputs are removed an hour after the prediction; 20 minutes bounds a stuck one well before that.
        max_queue_s=1200.0,
    ),
    result_hosts=(
        # replicate.delivery and its subdomains (links expire after an hour: stored at once).
        ".replicate.delivery",
    ),
    video=VIDEO,
)
