"""zai-org through the router: an async image task; `GET .../async-result/{id}` until `SUCCESS`.

huggingface_hub 2.4.0 `_providers/zai_org.py`: `POST {router}/zai-org/api/paas/v4/async/images/generations` with
`{"model": providerId, "prompt", "size": "WxH", **rest}` and the headers `Accept-Language: en-US,en` and
`x-source-channel: hugging_face`; `{id, task_status}` back: `PROCESSING` (checked again; huggingface_hub every 5 s),
`SUCCESS` (`image_result[0].url`), `FAIL`. No cancel is documented (UNCONFIRMED).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

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
    size_string,
)

if TYPE_CHECKING:
    import httpx

NAME = "zai-org"
CHECK_AFTER_S = 5.0
HEADERS = {"accept-language": "en-US,en", "x-source-channel": "hugging_face"}
_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def build(plan: ProviderPlan, settings: HuggingFaceSettings) -> httpx.Request:
    headers = {"accept": "application/json", **HEADERS, **bearer(settings.api_key)}
    body = {"model": plan.provider_model, "prompt": plan.prompt, **plan.params}
    return request(
        "POST", f"{settings.base_url}/{NAME}/api/paas/v4/async/images/generations", json=body, headers=headers
    )


def _task(response: httpx.Response, *, submitted: bool) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    body: dict[str, Any] | ProviderError = json_object(response)
    if isinstance(body, ProviderError):
        return body
    status, task_id = body.get("task_status"), body.get("id")
    if status == "SUCCESS":
        return image_link(first_url(body.get("image_result")))
    if status == "FAIL":
        return FallThrough("faulted", f"zai-org task {task_id} failed", status_code=200)
    if status != "PROCESSING":
        return FallThrough("bad_response", f"unknown task_status {status!r}", status_code=200)
    if not submitted:
        return AsyncStatus(done=False, wait_time=CHECK_AFTER_S)
    if not isinstance(task_id, str) or not _ID.fullmatch(task_id):
        return FallThrough("bad_response", "a PROCESSING task without a usable id", status_code=200)
    return AsyncSubmitted(f"{NAME}:{task_id}", CHECK_AFTER_S)


def parse(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    return _task(response, submitted=True)


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    return _task(response, submitted=False)


def check(remote: RemoteRequest, settings: HuggingFaceSettings) -> httpx.Request:
    if not _ID.fullmatch(remote.id):
        raise ValueError("not a zai-org task id")
    headers = {"accept": "application/json", **HEADERS, **bearer(settings.api_key)}
    return request("GET", f"{settings.base_url}/{NAME}/api/paas/v4/async-result/{remote.id}", headers=headers)


ADAPTER = RouteAdapter(
    name=NAME,
    table=lambda provider_model: ModelSpec(name=provider_model, params=TASK_PARAMS),
    shape=size_string("x"),
    build=build,
    parse=parse,
    check=check,
    parse_check=parse_check,
    is_async=True,
)
