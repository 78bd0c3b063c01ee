"""AI Horde: async submit, then check until done, then collect once; results are R2 links or base64 WebP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from imagegen.providers.base import (
    AsyncHooks,
    AsyncStatus,
    AsyncSubmitted,
    Capabilities,
    FallThrough,
    ImageBase64,
    ModelSpec,
    Provider,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    Refused,
    ResultUrl,
    body_json,
    classify_http_error,
    map_params,
)
from imagegen.providers.config import HordeSettings

if TYPE_CHECKING:
    from imagegen.models import ImageRequest
    from imagegen.providers.config import ProviderSettings

NAME = "horde"
MIN_SIDE, MAX_SIDE, STEP = 64, 3072, 64
NEGATIVE_SEPARATOR = "###"

ANY_MODEL = ModelSpec(
    name="*",
    # negative_prompt is not a param: it rides in the prompt after "###" (see plan()).
    params={"steps": "steps", "guidance": "cfg_scale", "seed": "seed"},
    extras=frozenset({"sampler_name", "karras", "clip_skip", "hires_fix", "tiling"}),
)

CAPABILITIES = Capabilities(
    models=(ANY_MODEL,),
    size_rule="each side rounded to the nearest multiple of 64 within 64-3072",
    needs_key=False,
    is_async=True,
)


def round_side(value: int) -> int:
    # Half-up to the nearest multiple (round() would round 2.5 steps to 2).
    return min(MAX_SIDE, max(MIN_SIDE, (value + STEP // 2) // STEP * STEP))


def plan(request: ImageRequest, model: str | None, settings: ProviderSettings) -> ProviderPlan:
    params, dropped = map_params(request, ANY_MODEL)
    if "negative_prompt" in dropped:
        dropped.remove("negative_prompt")
    width, height = round_side(request.width), round_side(request.height)
    notes = (
        []
        if (width, height) == (request.width, request.height)
        else [f"size {request.width}x{request.height} -> {width}x{height}"]
    )
    if "seed" in params:
        params["seed"] = str(params["seed"])  # the Horde takes the seed as a string
    if "cfg_scale" in params:
        params["cfg_scale"] = round(float(params["cfg_scale"]), 2)  # rc BadCFGDecimals otherwise
    prompt = request.prompt
    if request.negative_prompt:
        prompt = f"{prompt} {NEGATIVE_SEPARATOR} {request.negative_prompt}"
    return ProviderPlan(
        provider=NAME,
        model=model if model and model != "*" else None,
        prompt=prompt,
        width=width,
        height=height,
        params=params,
        dropped_params=dropped,
        notes=notes,
    )


def _headers(settings: ProviderSettings) -> dict[str, str]:
    key = settings.api_key.get_secret_value() if settings.api_key is not None else "0000000000"
    agent = settings.client_agent if isinstance(settings, HordeSettings) else "imagegen:0:unknown"
    return {"apikey": key, "client-agent": agent, "accept": "application/json"}


def build_request(plan: ProviderPlan, settings: ProviderSettings) -> httpx.Request:
    params: dict[str, Any] = {"width": plan.width, "height": plan.height, "n": 1, **plan.params}
    body: dict[str, Any] = {
        "prompt": plan.prompt,
        "params": params,
        "nsfw": False,
        "censor_nsfw": False,
        "r2": True,
        "shared": False,
    }
    if plan.model:
        body["models"] = [plan.model]
    return httpx.Request("POST", f"{settings.base_url}/generate/async", json=body, headers=_headers(settings))


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code not in (200, 202):
        return classify_http_error(NAME, response)
    body = body_json(response)
    if not isinstance(body, dict) or not body.get("id"):
        return FallThrough("bad_response", "submit answered without an id", status_code=response.status_code)
    # No wait_time on submit: the first check comes after the settings' minimum delay.
    return AsyncSubmitted(remote_id=str(body["id"]), wait_time=0.0)


def build_check(remote_id: str, settings: ProviderSettings) -> httpx.Request:
    return httpx.Request("GET", f"{settings.base_url}/generate/check/{remote_id}", headers=_headers(settings))


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(NAME, response)
    body = body_json(response)
    if not isinstance(body, dict):
        return FallThrough("bad_response", "check answered without JSON", status_code=200)
    if body.get("faulted"):
        return FallThrough("faulted", "the Horde reports the request faulted", status_code=200)
    if body.get("is_possible") is False:
        return FallThrough(
            "model_unavailable", "no Horde worker can serve this request (is_possible=false)", status_code=200
        )
    return AsyncStatus(
        done=bool(body.get("done")),
        wait_time=float(body.get("wait_time") or 0),
        queue_position=body.get("queue_position"),
    )


def build_collect(remote_id: str, settings: ProviderSettings) -> httpx.Request:
    return httpx.Request("GET", f"{settings.base_url}/generate/status/{remote_id}", headers=_headers(settings))


def _censored(generation: dict[str, Any]) -> bool:
    if generation.get("censored") or generation.get("state") in ("censored", "csam"):
        return True
    for meta in generation.get("gen_metadata") or []:
        if isinstance(meta, dict) and meta.get("type") == "censorship":
            return True
    return False


def parse_collect(response: httpx.Response) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(NAME, response)
    body = body_json(response)
    if not isinstance(body, dict):
        return FallThrough("bad_response", "status answered without JSON", status_code=200)
    if body.get("faulted"):
        return FallThrough("faulted", "the Horde reports the request faulted", status_code=200)
    generations = body.get("generations") or []
    if not generations or not isinstance(generations[0], dict):
        return FallThrough("bad_response", "status is done but has no generations", status_code=200)
    generation = generations[0]
    if _censored(generation):
        # A censored image is the worker's safety filter firing: a refusal, never a success.
        return Refused("the Horde worker returned a censored image", status_code=200)
    img = str(generation.get("img") or "")
    if img.startswith(("https://", "http://")):
        return ResultUrl(img)
    if img:
        return ImageBase64(img)
    return FallThrough("bad_response", "generation without img", status_code=200)


def build_cancel(remote_id: str, settings: ProviderSettings) -> httpx.Request:
    return httpx.Request("DELETE", f"{settings.base_url}/generate/status/{remote_id}", headers=_headers(settings))


PROVIDER = Provider(
    name=NAME,
    capabilities=CAPABILITIES,
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
    async_hooks=AsyncHooks(
        build_check=build_check,
        parse_check=parse_check,
        build_collect=build_collect,
        parse_collect=parse_collect,
        build_cancel=build_cancel,
    ),
    key_header="apikey",
)
