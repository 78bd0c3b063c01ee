"""Pollinations: GET an image for a URL-encoded prompt; keyless legacy host, or the gen gateway with a key."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from imagegen.providers.base import (
    Capabilities,
    FallThrough,
    ImageBytes,
    ModelSpec,
    Provider,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    classify_http_error,
    map_params,
)

if TYPE_CHECKING:
    from imagegen.models import ImageRequest
    from imagegen.providers.config import ProviderSettings

NAME = "pollinations"

# The legacy host documents only model/seed/width/height and switches; negative_prompt appears only
# in the gen gateway's parameter echo (PROVIDERS.md 4.2, UNCONFIRMED), so it is sent in gen mode only.
LEGACY = ModelSpec(name="flux", params={"seed": "seed"}, extras=frozenset({"enhance", "safe", "private"}))
GEN = ModelSpec(
    name="flux",
    params={"seed": "seed", "negative_prompt": "negative_prompt"},
    extras=frozenset({"enhance", "safe", "private", "quality"}),
)

CAPABILITIES = Capabilities(
    models=(
        LEGACY,
        ModelSpec(name="turbo", params=LEGACY.params, extras=LEGACY.extras),
    ),
    size_rule="width/height query parameters as requested",
    needs_key=False,
)


def plan(request: ImageRequest, model: str | None, settings: ProviderSettings) -> ProviderPlan:
    spec = GEN if settings.api_key is not None else LEGACY
    params, dropped = map_params(request, spec)
    return ProviderPlan(
        provider=NAME,
        model=model or spec.name,
        prompt=request.prompt,
        width=request.width,
        height=request.height,
        params=params,
        dropped_params=dropped,
    )


def build_request(plan: ProviderPlan, settings: ProviderSettings) -> httpx.Request:
    keyed = settings.api_key is not None
    query: dict[str, str] = {
        "width": str(plan.width),
        "height": str(plan.height),
        "model": plan.model or LEGACY.name,
        "nologo": "true",
    }
    for key, value in plan.params.items():
        query[key] = str(value).lower() if isinstance(value, bool) else str(value)
    path = "image" if keyed else "prompt"
    headers = {"accept": "image/*"}
    if keyed and settings.api_key is not None:
        headers["authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
    url = f"{settings.base_url}/{path}/{quote(plan.prompt, safe='')}"
    return httpx.Request("GET", url, params=query, headers=headers)


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(NAME, response)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        return FallThrough("bad_response", f"200 with {content_type or 'no content type'}", status_code=200)
    # A 200 may still be a branded placeholder: imaging.validate_image decides, not the status code.
    return ImageBytes(response.content, content_type)


PROVIDER = Provider(
    name=NAME,
    capabilities=CAPABILITIES,
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
)
