"""Hugging Face Inference Providers via the router: {inputs, parameters} in, raw image bytes out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from pydantic import BeforeValidator, Field, field_validator

from imagegen.keys.types import CheckResult
from imagegen.providers.base import (
    Capabilities,
    FallThrough,
    HttpFailure,
    ImageBytes,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    RetrySameLink,
    bearer,
    body_json,
    classify_http_error,
    map_params,
    request,
    short,
)
from imagegen.providers.settings import CsvTuple, ProviderSettings, UrlStr, csv
from imagegen.providers.spec import KeyCheck, KeySpec, ProviderSpec

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

    from imagegen.models import ImageRequest

NAME = "huggingface"
# Router providers whose payload this package speaks; others need their own adapter (see docs/providers.md).
SUPPORTED_ROUTER_PROVIDERS = frozenset({"hf-inference"})

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
)


def _pairs(value: Any) -> Any:
    """ "model=provider, ..." -> {model: provider}."""
    if not isinstance(value, str):
        return value
    out: dict[str, str] = {}
    for item in csv(value):
        model, sep, provider = item.partition("=")
        if not sep:
            raise ValueError(f"expected model=provider, got {item!r}")
        out[model.strip()] = provider.strip()
    return out


class HuggingFaceSettings(ProviderSettings):
    base_url: str = "https://router.huggingface.co"
    # The Hub: key checks (whoami-v2) go there, not to the router.
    hub_url: UrlStr = "https://huggingface.co"
    models: CsvTuple = (FLUX_DEV.name, FLUX_SCHNELL.name)
    timeout_s: float = Field(default=90.0, gt=0)
    # model -> router provider; models not listed use default_router_provider.
    router_providers: Annotated[Mapping[str, str], BeforeValidator(_pairs)] = {}
    default_router_provider: str = "hf-inference"
    # whoami-v2 is strictly rate-limited: at most one check per key per day.
    key_check_interval_s: int | None = Field(default=86400, ge=0)

    @field_validator("default_router_provider")
    @classmethod
    def _router_provider(cls, value: str) -> str:
        if value not in SUPPORTED_ROUTER_PROVIDERS:
            raise ValueError(f"unsupported router provider {value!r}; supported: {sorted(SUPPORTED_ROUTER_PROVIDERS)}")
        return value

    @field_validator("router_providers")
    @classmethod
    def _router_providers(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for model, provider in value.items():
            if provider not in SUPPORTED_ROUTER_PROVIDERS:
                raise ValueError(f"{model}: unsupported router provider {provider!r}")
        return dict(value)

    def router_provider(self, model: str) -> str:
        return self.router_providers.get(model, self.default_router_provider)


def plan(asked: ImageRequest, model: str | None, settings: HuggingFaceSettings) -> ProviderPlan:
    spec = CAPABILITIES.spec(model or FLUX_DEV.name)
    params, dropped = map_params(asked, spec)
    params["width"] = asked.width
    params["height"] = asked.height
    return ProviderPlan(
        provider=NAME,
        model=spec.name,
        prompt=asked.prompt,
        width=asked.width,
        height=asked.height,
        params=params,
        dropped_params=dropped,
    )


def build_request(plan: ProviderPlan, settings: HuggingFaceSettings) -> httpx.Request:
    model = plan.model or FLUX_DEV.name
    url = f"{settings.base_url}/{settings.router_provider(model)}/models/{quote(model, safe='/')}"
    headers = {"accept": "image/png", **bearer(settings.api_key)}
    return request("POST", url, json={"inputs": plan.prompt, "parameters": plan.params}, headers=headers)


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("application/json") or content_type.startswith("text/"):
        return FallThrough("bad_response", f"200 with {content_type} instead of an image", status_code=200)
    if not response.content:
        return FallThrough("bad_response", "200 with an empty body", status_code=200)
    return ImageBytes(response.content, content_type or None)


def classify(failure: HttpFailure) -> ProviderError | None:
    if failure.status == 401:
        # A gated model answers 401 too (X-Error-Code: GatedRepo); the next model may be open, so scope "model".
        gated = failure.headers.get("x-error-code") == "GatedRepo"
        return FallThrough("forbidden" if gated else "unauthorized", failure.message, status_code=401)
    if failure.status == 503 and isinstance(failure.body, dict) and "estimated_time" in failure.body:
        try:
            estimated = float(failure.body["estimated_time"])
        except (TypeError, ValueError):
            estimated = math.inf
        return RetrySameLink("model_loading", failure.message, retry_after=estimated, status_code=503)
    return None


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
        "router_providers": "HF_ROUTER_PROVIDERS",
        "default_router_provider": "HF_ROUTER_PROVIDER",
        "timeout_s": "HF_TIMEOUT_S",
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
    result_hosts=(
        # The Hub and its CDNs (cdn-lfs.hf.co, cas-bridge.xethub.hf.co).
        ".huggingface.co",
        ".hf.co",
        # Router partners behind Hugging Face answer with links on their CDNs (fal-ai, replicate).
        ".fal.media",
        ".replicate.delivery",
    ),
)
