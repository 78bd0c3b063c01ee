"""huggingface_hub's own text-to-image request for a router provider, built offline (PROVIDERS-ROUTES.md 1.6).

huggingface_hub 2.4.0 builds a request in `get_provider_helper(provider, task, model).prepare_request(...)`; the
only network call on the way is the Hub's provider mapping (`_fetch_inference_provider_mapping`, and for
hf-inference `_check_supported_task`). Replacing those two pure look-ups with a mapping given here (parsed by
huggingface_hub's own `ModelInfo`, exactly as the Hub's answer would be) leaves the request huggingface_hub would
send. `hub_request("fal-ai", DEV, {"width": 1024, "height": 768, "seed": 42})` gives its URL, method, JSON body and
headers; the test that compares our provider code's requests with huggingface_hub's is then one table:

    expected = hub_request(route, model, parameters, api_key=HF_TOKEN)
    ours = <our build_request for the same route and parameters>
    assert (ours.method, str(ours.url), json.loads(ours.content)) == (expected.method, expected.url, expected.json)

`router_url` replaces `https://router.huggingface.co` in the URL (for comparing with a request aimed at a double).
The mapping defaults to the Hugging Face double's (tests/doubles/hf_router.py `default_models()`), so a request
built here is one that double serves. `parameters` are text_to_image's (`negative_prompt`, `height`, `width`,
`num_inference_steps`, `guidance_scale`, `scheduler`, `seed`, plus `extra_body` keys); `None` values are dropped
by huggingface_hub, as on the wire. Headers come lower-cased, with `accept: image/png` added as `_inner_post` adds
it, and without `user-agent` (it names the Python version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from unittest import mock

from huggingface_hub.hf_api import ModelInfo
from huggingface_hub.inference import _providers
from huggingface_hub.inference._providers import _common, get_provider_helper, hf_inference

from tests.doubles.hf_router import Mapping, default_models

ROUTER = "https://router.huggingface.co"


@dataclass(frozen=True)
class HubRequest:
    method: str
    url: str
    json: dict[str, Any] | None
    headers: dict[str, str]


def hub_request(
    provider: str,
    model: str,
    parameters: dict[str, Any],
    *,
    prompt: str = "a cat",
    api_key: str = "hf_fake",
    mapping: list[Mapping] | None = None,
    headers: dict[str, str] | None = None,
    router_url: str = ROUTER,
) -> HubRequest:
    entries = mapping if mapping is not None else default_models()[model].mapping
    hub_answer = {"id": model, "inferenceProviderMapping": {entry.provider: entry.as_json() for entry in entries}}
    parsed = ModelInfo(**hub_answer).inference_provider_mapping

    def fetch(_: str) -> Any:
        return parsed

    with (
        mock.patch.object(_common, "_fetch_inference_provider_mapping", fetch),
        mock.patch.object(_providers, "_fetch_inference_provider_mapping", fetch),
        mock.patch.object(hf_inference, "_check_supported_task", lambda model, task: None),
    ):
        helper = get_provider_helper(provider, task="text-to-image", model=model)
        built = helper.prepare_request(
            inputs=prompt, parameters=dict(parameters), headers=dict(headers or {}), model=model, api_key=api_key
        )
    sent = {key: value for key, value in built.headers.items() if key != "user-agent"}
    sent.setdefault("accept", "image/png")
    return HubRequest("POST", built.url.replace(ROUTER, router_url.rstrip("/"), 1), built.json, sent)
