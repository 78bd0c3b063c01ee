"""What every Hugging Face router route shares: the settings, a route adapter's shape, parameter tables, readers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from imagegen.providers.base import (
    FallThrough,
    HttpFailure,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    RemoteRequest,
    RetrySameLink,
    body_json,
)
from imagegen.providers.settings import CsvTuple, RoutingSettings, UrlStr, csv

if TYPE_CHECKING:
    import httpx

    from imagegen.models import ImageRequest

NAME = "huggingface"
DEV = "black-forest-labs/FLUX.1-dev"
SCHNELL = "black-forest-labs/FLUX.1-schnell"

# Router providers with a text-to-image adapter here, in the default order to try them (PROVIDERS-ROUTES.md 1.3).
ROUTE_ORDER = ("fal-ai", "replicate", "wavespeed", "nscale", "together", "hf-inference", "zai-org")
DEFAULT_ORDER = ("fal-ai", "replicate", "wavespeed", "nscale", "together", "hf-inference")
AUTO = "auto"

# The text-to-image task's parameters (PROVIDERS.md 2.3), portable name -> wire name: what huggingface_hub sends.
TASK_PARAMS: Mapping[str, str] = {
    "negative_prompt": "negative_prompt",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "seed": "seed",
}
# Timestep-distilled models: these portable values whatever the request says (PROVIDERS.md 2.6), sent under each
# route's own names where the route takes them at all.
DISTILLED: Mapping[str, Mapping[str, Any]] = {SCHNELL: {"steps": 4, "guidance": 0}}
Range = tuple[float, float]


def _order(value: Any) -> Any:
    parsed = csv(value)
    return parsed if parsed else value


class HuggingFaceSettings(RoutingSettings):
    base_url: str = "https://router.huggingface.co"
    # The Hub: provider mappings and key checks (whoami-v2) go there, not to the router.
    hub_url: UrlStr = "https://huggingface.co"
    models: CsvTuple = (DEV, SCHNELL)
    timeout_s: float = Field(default=90.0, gt=0)
    # Router providers to try, in order; ("auto",) takes the mapping's own order.
    inference_providers: Annotated[tuple[str, ...], BeforeValidator(_order)] = DEFAULT_ORDER
    # The Hub re-tests every mapping every 6 h (hub-docs "Automatic validation"), so one that old is read again.
    mapping_max_age_s: int = Field(default=21600, ge=60)
    # whoami-v2 is strictly rate-limited: at most one check per key per day.
    key_check_interval_s: int | None = Field(default=86400, ge=0)

    @field_validator("inference_providers")
    @classmethod
    def _known_routes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value == (AUTO,):
            return value
        unknown = [name for name in value if name not in ROUTE_ORDER]
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(f"expected 'auto' or distinct router providers among {list(ROUTE_ORDER)}, got {value}")
        return value


# --- a route adapter ---------------------------------------------------------------------------------------------

ShapeFn = Callable[["ImageRequest", dict[str, Any], str], tuple[int, int, list[str]]]
BuildFn = Callable[[ProviderPlan, HuggingFaceSettings], "httpx.Request"]
ParseFn = Callable[["httpx.Response", ProviderPlan], "ProviderResult | ProviderError"]
PollFn = Callable[["httpx.Response"], "ProviderResult | ProviderError"]
IdFn = Callable[[RemoteRequest, HuggingFaceSettings], "httpx.Request"]


@dataclass(frozen=True)
class RouteAdapter:
    """One router provider: its parameter table per model id, the size mapping, the request and the answer.

    Built after huggingface_hub 2.4.0's `_providers/<provider>.py` for the same task (request shape and route),
    except where the provider takes other fields than huggingface_hub sends (noted in each module)."""

    name: str
    table: Callable[[str], ModelSpec]
    # Puts the asked size into the params (per the route's fields); answers the size the image comes back in.
    shape: ShapeFn
    build: BuildFn
    parse: ParseFn
    # Queue-based routes: the check of a queued request by its id, and its reading (a result when done).
    check: IdFn | None = None
    parse_check: PollFn | None = None
    cancel: IdFn | None = None
    # Whether a first answer may be "not done yet" (the link then goes pending; it is never hedged).
    is_async: bool = False
    ranges: Mapping[str, Mapping[str, Range]] = field(default_factory=dict)


def table_for(route: RouteAdapter, provider_model: str, hf_model: str) -> ModelSpec:
    """The route's table for this model id, with the HF model's distilled values under the route's names."""
    table = route.table(provider_model)
    distilled = DISTILLED.get(hf_model, {})
    fixed = {wire: distilled[name] for name, wire in table.params.items() if name in distilled}
    return replace(table, fixed={**table.fixed, **fixed}) if fixed else table


def width_height(asked: ImageRequest, params: dict[str, Any], provider_model: str) -> tuple[int, int, list[str]]:
    """Routes that take `width` and `height` as huggingface_hub sends them."""
    params["width"], params["height"] = asked.width, asked.height
    return asked.width, asked.height, []


def size_string(separator: str) -> ShapeFn:
    """Routes that take one `size` field ("WxH")."""

    def shape(asked: ImageRequest, params: dict[str, Any], provider_model: str) -> tuple[int, int, list[str]]:
        params["size"] = f"{asked.width}{separator}{asked.height}"
        return asked.width, asked.height, []

    return shape


# --- reading answers ---------------------------------------------------------------------------------------------


def json_object(response: httpx.Response) -> dict[str, Any] | FallThrough:
    body = body_json(response)
    if not isinstance(body, dict):
        return FallThrough("bad_response", f"{response.status_code} without a JSON object", status_code=200)
    return body


def first_url(items: Any) -> str | None:
    """The first entry's URL of `[{"url": ...}]` or `["https://..."]`; None when there is none."""
    if not isinstance(items, list) or not items:
        return None
    first = items[0]
    url = first.get("url") if isinstance(first, dict) else first
    return url if isinstance(url, str) and url else None


# The 403 a token without the "Make calls to Inference Providers" permission gets (PROVIDERS.md 2.2).
PERMISSION_HINT = (
    "The Hugging Face token lacks the 'Make calls to Inference Providers' permission: create a fine-grained token "
    "at https://huggingface.co/settings/tokens/new?tokenType=fineGrained with 'Make calls to Inference Providers' "
    "ticked, and store it (PUT /v1/keys/huggingface, or HF_TOKEN for the deployment)."
)


def classify(failure: HttpFailure) -> ProviderError | None:
    """The router's answers that mean something else than the generic HTTP reading (PROVIDERS-ROUTES.md 1.5).

    The two 402s and the permission 403 differ only in their text (no error code is documented), so the text is
    read here: "Pay-as-you go is not enabled for provider X" and "...permissions to call Inference Providers...".
    """
    text = failure.message.lower()
    if failure.status == 401:
        # A gated model answers 401 too (X-Error-Code: GatedRepo); the next model may be open, so scope "model".
        gated = failure.headers.get("x-error-code") == "GatedRepo"
        return FallThrough("forbidden" if gated else "unauthorized", failure.message, status_code=401)
    if failure.status == 402 and re.search(r"pay-as-you[- ]go", text):
        # The account cannot be billed through this router provider: the route is unavailable, the key is fine.
        return FallThrough("payment_required", failure.message, status_code=402, scope="route")
    if failure.status == 403 and "inference providers" in text:
        return FallThrough("forbidden", failure.message, status_code=403, scope="provider", hint=PERMISSION_HINT)
    if failure.status == 503 and isinstance(failure.body, dict) and "estimated_time" in failure.body:
        try:
            estimated = float(failure.body["estimated_time"])
        except (TypeError, ValueError):
            estimated = math.inf
        return RetrySameLink("model_loading", failure.message, retry_after=estimated, status_code=503)
    return None
