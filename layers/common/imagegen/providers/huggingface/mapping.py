"""The Hub's provider mapping for a model: which router providers serve it, under which ids (PROVIDERS-ROUTES.md 1.1).

`GET {HF_ENDPOINT}/api/models/{id}?expand[]=inferenceProviderMapping` (hub-docs, huggingface.js); huggingface_hub
sends `expand=` instead. Which spelling the Hub reads is UNCONFIRMED, so an answer without the mapping is asked
again with the other one. Only `live` text-to-image entries count, tried in HF_INFERENCE_PROVIDERS order (`auto`:
the mapping's own order, filtered; huggingface_hub's `auto` takes the first entry unfiltered and never falls back).

The token: the deployment's HF token when one is configured, as huggingface_hub's implicit token (HF_TOKEN) is, and
never a user's: the answer is cached for every caller, and a token only widens it by `staging` entries, which are
filtered out. Without a deployment token the call is anonymous.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from imagegen.providers.base import CatalogEntry, Route, bearer, body_json, request
from imagegen.providers.huggingface.common import AUTO, ROUTE_ORDER, HuggingFaceSettings
from imagegen.providers.spec import RoutedLinks

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

FIELD = "inferenceProviderMapping"
SPELLINGS = ("expand[]", "expand")
TASK = "text-to-image"
FALLBACK_ROUTE = "hf-inference"


def mapping_request(model: str, settings: HuggingFaceSettings, token: SecretStr | None, spelling: str) -> httpx.Request:
    url = f"{settings.hub_url}/api/models/{quote(model, safe='/')}"
    headers = {"accept": "application/json", **bearer(token)}
    return request("GET", url, params={spelling: FIELD}, headers=headers)


def fetch(
    model: str,
    settings: HuggingFaceSettings,
    token: SecretStr | None,
    send: Callable[[httpx.Request], httpx.Response],
) -> tuple[CatalogEntry, ...] | None:
    """The model's mapping entries (empty: the Hub knows no such model); None when the Hub gave no usable answer."""
    for spelling in SPELLINGS:
        response = _get(send, mapping_request(model, settings, token, spelling))
        if response.status_code == 401 and token is not None:
            # A deployment token the Hub refuses must not cost the mapping: the mapping is public.
            response = _get(send, mapping_request(model, settings, None, spelling))
        if response.status_code == 404 and response.headers.get("x-error-code") == "RepoNotFound":
            # The Hub knows no such model: no provider serves it (another 404 is no answer about the model).
            return ()
        body = body_json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            return None
        if FIELD in body:
            return parse(body[FIELD])
    # The Hub answered the model without a mapping under either spelling: no provider serves it.
    return ()


def _get(send: Callable[[httpx.Request], httpx.Response], asked: httpx.Request) -> httpx.Response:
    """A renamed repository answers a redirect to its new name: followed once, on the Hub itself only."""
    response = send(asked)
    location = response.headers.get("location", "")
    if response.is_redirect and location.startswith("/") and not location.startswith("//"):
        return send(request("GET", str(asked.url.join(location)), headers=dict(asked.headers)))
    return response


def parse(mapping: Any) -> tuple[CatalogEntry, ...]:
    """`{provider: {status, providerId, task, ...}}` (model_info) or `[{provider, ...}]` (list_models), in order."""
    if isinstance(mapping, dict):
        items = [{"provider": name, **entry} for name, entry in mapping.items() if isinstance(entry, dict)]
    elif isinstance(mapping, list):
        items = [entry for entry in mapping if isinstance(entry, dict)]
    else:
        return ()
    entries = []
    for item in items:
        route, provider_id = item.get("provider"), item.get("providerId")
        if isinstance(route, str) and isinstance(provider_id, str) and route and provider_id:
            adapter = item.get("adapter")
            entries.append(
                CatalogEntry(
                    route=route,
                    provider_model=provider_id,
                    status=str(item.get("status") or ""),
                    task=str(item.get("task") or ""),
                    adapter=str(adapter) if adapter else None,
                )
            )
    return tuple(entries)


def routes(model: str, entries: tuple[CatalogEntry, ...] | None, settings: HuggingFaceSettings) -> RoutedLinks:
    """The routes to try for `model`, in the configured order; when there are none, why."""
    order = settings.inference_providers
    if entries is None:
        if order == (AUTO,) or FALLBACK_ROUTE in order:
            note = "the Hub's provider mapping could not be read: hf-inference is the only route tried without one"
            return RoutedLinks((Route(FALLBACK_ROUTE, model),), note=note)
        return RoutedLinks((), reason="the Hub's provider mapping could not be read, and hf-inference is not allowed")
    usable = [e for e in entries if e.status == "live" and e.task == TASK and e.adapter is None]
    by_route = {entry.route: entry for entry in usable}
    names = [e.route for e in usable if e.route in ROUTE_ORDER] if order == (AUTO,) else order
    chosen = tuple(Route(name, by_route[name].provider_model) for name in names if name in by_route)
    if chosen:
        return RoutedLinks(chosen)
    listed = ", ".join(f"{e.route} ({e.status}, {e.task})" for e in entries) or "none"
    return RoutedLinks((), reason=f"no live text-to-image route among {', '.join(order)}; the mapping lists: {listed}")
