"""Hugging Face Inference Providers through the router: one link per router provider that serves the model.

The Hub's provider mapping (mapping.py) says which router providers serve a model and under which ids; each of those
is a route with its own module here (one per router provider, like huggingface_hub's `_providers/`): its request,
its parameter table and size mapping, its answer, and for queue-based routes the checks. This module gathers them
into the provider's spec: the plan and request of a routed link, the checks of a queued one (the remote id names
its route: "wavespeed:/api/v3/predictions/<id>/result"), the key check, and the mapping's fetch and order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagegen.keys.types import CheckResult
from imagegen.providers.base import (
    Capabilities,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    RemoteRequest,
    Route,
    bearer,
    body_json,
    map_params,
    request,
    short,
)
from imagegen.providers.huggingface import fal_ai, hf_inference, mapping, openai_images, replicate, wavespeed, zai_org
from imagegen.providers.huggingface.common import (
    DEV,
    NAME,
    SCHNELL,
    TASK_PARAMS,
    HuggingFaceSettings,
    RouteAdapter,
    classify,
    table_for,
)
from imagegen.providers.spec import AsyncSpec, KeyCheck, KeySpec, ProviderSpec, RoutingSpec

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

    from imagegen.models import ImageRequest

__all__ = ["NAME", "ROUTES", "SPEC", "HuggingFaceSettings"]

ROUTES: dict[str, RouteAdapter] = {
    adapter.name: adapter
    for adapter in (
        fal_ai.ADAPTER,
        replicate.ADAPTER,
        wavespeed.ADAPTER,
        openai_images.NSCALE,
        openai_images.TOGETHER,
        hf_inference.ADAPTER,
        zai_org.ADAPTER,
    )
}

# The models served without a route named: what a request's `model` may pick (any Hub id works through the mapping).
CAPABILITIES = Capabilities(
    models=(
        ModelSpec(name=DEV, params=TASK_PARAMS),
        ModelSpec(name=SCHNELL, params=TASK_PARAMS),
        ModelSpec(name="*", params=TASK_PARAMS),
    ),
    size_rule="per route: width/height (hf-inference, together, wavespeed), image_size (fal-ai), size (nscale, "
    "zai-org), aspect_ratio + megapixels (Replicate's FLUX)",
)


def plan_route(asked: ImageRequest, model: str | None, route: Route, settings: HuggingFaceSettings) -> ProviderPlan:
    """The portable request on one route: that route's parameter names, size fields and ranges."""
    hf_model = model or DEV
    adapter = ROUTES[route.name]
    table = table_for(adapter, route.provider_model, hf_model)
    params, dropped = map_params(asked, table)
    width, height, notes = adapter.shape(asked, params, route.provider_model)
    return ProviderPlan(
        provider=NAME,
        model=hf_model,
        prompt=asked.prompt,
        width=width,
        height=height,
        params=params,
        dropped_params=dropped,
        notes=notes,
        route=route.name,
        provider_model=route.provider_model,
    )


def plan(asked: ImageRequest, model: str | None, settings: HuggingFaceSettings) -> ProviderPlan:
    """A link that was never routed (no chain in between): hf-inference, whose route is the model id itself."""
    hf_model = model or DEV
    return plan_route(asked, hf_model, Route(hf_inference.NAME, hf_model), settings)


def _adapter(plan: ProviderPlan) -> RouteAdapter:
    return ROUTES[plan.route or hf_inference.NAME]


def build_request(plan: ProviderPlan, settings: HuggingFaceSettings) -> httpx.Request:
    return _adapter(plan).build(plan, settings)


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    return _adapter(plan).parse(response, plan)


# --- queued routes: the remote id is "<route>:<that route's id>" -------------------------------------------------


def _queued(remote: RemoteRequest) -> tuple[RouteAdapter, RemoteRequest]:
    name, _, route_id = remote.id.partition(":")
    adapter = ROUTES.get(name)
    if adapter is None or adapter.check is None or adapter.parse_check is None:
        raise ValueError(f"no queued route {name!r}")
    return adapter, RemoteRequest(route_id)


# The check request carries its route's name, so its answer is read by that route (parse_check gets no remote id).
ROUTE_TAG = "imagegen_route"


def build_check(remote: RemoteRequest, settings: HuggingFaceSettings) -> httpx.Request:
    adapter, route_id = _queued(remote)
    assert adapter.check is not None
    checked = adapter.check(route_id, settings)
    checked.extensions[ROUTE_TAG] = adapter.name
    return checked


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    adapter = ROUTES[response.request.extensions[ROUTE_TAG]]
    assert adapter.parse_check is not None
    return adapter.parse_check(response)


def build_cancel(remote: RemoteRequest, settings: HuggingFaceSettings) -> httpx.Request | None:
    adapter, route_id = _queued(remote)
    return adapter.cancel(route_id, settings) if adapter.cancel else None


# --- key check -----------------------------------------------------------------------------------------------------


def build_key_check(settings: HuggingFaceSettings, key: SecretStr) -> httpx.Request:
    return request("GET", f"{settings.hub_url}/api/whoami-v2", headers={"accept": "application/json", **bearer(key)})


def parse_key_check(response: httpx.Response) -> CheckResult:
    if response.status_code == 401:
        return CheckResult("invalid", "Hugging Face says: invalid user token (HTTP 401)")
    body = body_json(response)
    if response.status_code != 200 or not isinstance(body, dict):
        return CheckResult.unexpected(response.status_code)
    token = (body.get("auth") or {}).get("accessToken") or {}
    parts = [f"{body.get('type', 'user')} {body.get('name', '?')}"]
    if token.get("role"):
        parts.append(f"token role {token['role']}")
    if token.get("expiration"):
        parts.append(f"expires {token['expiration']}")
    if body.get("isPro"):
        parts.append("PRO")
    return CheckResult("ok", short(", ".join(parts)))


SPEC = ProviderSpec(
    name=NAME,
    env_prefix="HF",
    settings=HuggingFaceSettings,
    env={
        "api_key": "HF_TOKEN",
        "base_url": "HF_ROUTER_URL",
        "hub_url": "HF_ENDPOINT",
        "models": "HF_MODELS",
        "inference_providers": "HF_INFERENCE_PROVIDERS",
        "mapping_refresh_s": "HF_MAPPING_REFRESH_SECONDS",
        "mapping_max_age_s": "HF_MAPPING_MAX_AGE_SECONDS",
        "mapping_cache_s": "HF_MAPPING_CACHE_SECONDS",
        "timeout_s": "HF_TIMEOUT_S",
        "rpm": "HF_RPM",
        "key_check_interval_s": "HF_WHOAMI_INTERVAL_SECONDS",
    },
    key=KeySpec(
        env="HF_TOKEN",
        pattern=r"hf_[A-Za-z0-9_-]{8,200}",
        expected="a Hugging Face token: hf_ followed by 8-200 letters, digits, _ or -",
        header="authorization",
        check=KeyCheck(build=build_key_check, parse=parse_key_check),
    ),
    capabilities=CAPABILITIES,
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
    classify=classify,
    async_=AsyncSpec(
        # A check's answer carries the result when there is one (a completed task, a finished prediction).
        build_check=build_check,
        parse_check=parse_check,
        build_cancel=build_cancel,
        # As our fal and Replicate providers: checks at 2, 3, 5, 7, 10, 10 ... s unless the route says when (zai-org
        # every 5 s, as huggingface_hub polls it), so a long queue costs a few invocations.
        min_check_delay_s=2,
        check_backoff=1.5,
        max_check_delay_s=10,
        # A queued route's task that has not finished in 10 minutes is abandoned for the next route.
        max_queue_s=600.0,
    ),
    routing=RoutingSpec(
        fetch=mapping.fetch,
        routes=mapping.routes,
        plan=plan_route,
        is_async=lambda route: ROUTES[route].is_async if route in ROUTES else False,
    ),
    result_hosts=(
        # The Hub and its CDNs (cdn-lfs.hf.co, cas-bridge.xethub.hf.co).
        ".huggingface.co",
        ".hf.co",
        # Router providers answer with links on their own CDNs: fal (v3.fal.media), Replicate (replicate.delivery);
        # wavespeed's and zai-org's result hosts are UNCONFIRMED: their own domains (add others to
        # MEDIA_ALLOWED_HOSTS when seen).
        ".fal.media",
        ".replicate.delivery",
        ".wavespeed.ai",
        ".z.ai",
    ),
)
