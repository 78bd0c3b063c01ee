"""wavespeed through the router: a queued task; `data.urls.get` is checked (under the router) until `completed`.

huggingface_hub 2.4.0 `_providers/wavespeed.py`: `POST {router}/wavespeed/api/v3/{providerId}` with `{"prompt",
**parameters}` as given; then GET `{router}/wavespeed` + the path of `data.urls.get`: `created`/`processing` (not
done), `completed` (`data.outputs[0]`), `failed` (`data.error`). huggingface_hub polls in-process every 0.5 s; here
each check is a delayed queue message, so no Lambda sleeps. Only the path of `urls.get` is used, under the router
(the key never goes to another host), and only a path of the documented shape.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
    classify_http_error,
    image_link,
    request,
)
from imagegen.providers.huggingface.common import (
    TASK_PARAMS,
    HuggingFaceSettings,
    RouteAdapter,
    classify,
    first_url,
    json_object,
    width_height,
)

if TYPE_CHECKING:
    import httpx

NAME = "wavespeed"
# huggingface_hub polls every 0.5 s in-process; here the checks follow the provider's backoff (no wait_time).
CHECK_AFTER_S = 0.0
_RESULT_PATH = re.compile(r"/api/v3/predictions/[A-Za-z0-9_-]{1,100}/result")


def build(plan: ProviderPlan, settings: HuggingFaceSettings) -> httpx.Request:
    headers = {"accept": "application/json", **bearer(settings.api_key)}
    url = f"{settings.base_url}/{NAME}/api/v3/{plan.provider_model}"
    return request("POST", url, json={"prompt": plan.prompt, **plan.params}, headers=headers)


def _task(response: httpx.Response) -> dict[str, Any] | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    body = json_object(response)
    if isinstance(body, ProviderError):
        return body
    data = body.get("data")
    return data if isinstance(data, dict) else FallThrough("bad_response", "200 without data", status_code=200)


def _status(data: dict[str, Any]) -> ProviderResult | ProviderError | None:
    """A final answer for a finished task; None while it is queued or running."""
    status = data.get("status")
    if status in ("created", "processing"):
        return None
    if status == "completed":
        return image_link(first_url(data.get("outputs")))
    if status == "failed":
        return FallThrough("faulted", str(data.get("error") or "task failed"), status_code=200)
    return FallThrough("bad_response", f"unknown task status {status!r}", status_code=200)


def parse(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    data = _task(response)
    if isinstance(data, ProviderError):
        return data
    final = _status(data)
    if final is not None:
        return final
    urls = data.get("urls")
    path = urlsplit(str(urls.get("get") or "")).path if isinstance(urls, dict) else ""
    if not _RESULT_PATH.fullmatch(path):
        return FallThrough("bad_response", "a queued task without a usable data.urls.get", status_code=200)
    return AsyncSubmitted(f"{NAME}:{path}", CHECK_AFTER_S)


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    data = _task(response)
    if isinstance(data, ProviderError):
        return data
    final = _status(data)
    return final if final is not None else AsyncStatus(done=False, wait_time=CHECK_AFTER_S)


def check(remote: RemoteRequest, settings: HuggingFaceSettings) -> httpx.Request:
    if not _RESULT_PATH.fullmatch(remote.id):
        raise ValueError("not a wavespeed result path")
    headers = {"accept": "application/json", **bearer(settings.api_key)}
    return request("GET", f"{settings.base_url}/{NAME}{remote.id}", headers=headers)


ADAPTER = RouteAdapter(
    name=NAME,
    table=lambda provider_model: ModelSpec(name=provider_model, params=TASK_PARAMS),
    shape=width_height,
    build=build,
    parse=parse,
    check=check,
    parse_check=parse_check,
    is_async=True,
)
