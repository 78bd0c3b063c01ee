"""huggingface_hub's InferenceClient, unchanged, against the Hugging Face double: proof the double speaks the router.

How the client reaches the double: huggingface_hub reads `HF_ENDPOINT` once at import and has no setting at all for
the router (`constants.INFERENCE_PROXY_TEMPLATE`). So instead of patching constants, the test gives huggingface_hub
an HTTP client through its public `set_client_factory` whose transport sends the requests for
`router.huggingface.co` and `huggingface.co` to the double (as a proxy would). Everything else runs as in
production, including the places where huggingface_hub checks that the host is `router.huggingface.co`
(wavespeed's and fal's polling URLs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from huggingface_hub import HfApi, InferenceClient, constants, set_client_factory
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.inference._providers import _common, hf_inference, wavespeed
from huggingface_hub.utils._http import default_client_factory, hf_request_event_hook

from tests.contract.hub_requests import hub_request
from tests.doubles.hf_router import DEV, GLM, SCHNELL, SD3, HfRouterDouble, Mapping
from tests.doubles.keys import HF_TOKEN
from tests.doubles.storage import StorageDouble

HF_HOSTS = ("router.huggingface.co", "huggingface.co")


class _ToDouble(httpx2.HTTPTransport):
    """Sends requests for the Hugging Face hosts to the double's origin, over plain HTTP; others go as addressed."""

    def __init__(self, origin: str) -> None:
        super().__init__()
        self._origin = httpx2.URL(origin)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.host in HF_HOSTS:
            request.url = request.url.copy_with(scheme="http", host=self._origin.host, port=self._origin.port)
        return super().handle_request(request)


@pytest.fixture
def client_on(hf_router: HfRouterDouble, monkeypatch: pytest.MonkeyPatch) -> Iterator[HfRouterDouble]:
    # The Hub call is anonymous whatever token a developer's machine has cached (the double knows only HF_TOKEN).
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    # Speed only: wavespeed's helper sleeps this long before each poll.
    monkeypatch.setattr(wavespeed, "_POLLING_INTERVAL", 0.01)
    set_client_factory(
        lambda: httpx2.Client(
            transport=_ToDouble(hf_router.url),
            event_hooks={"request": [hf_request_event_hook]},
            follow_redirects=True,
            timeout=10,
        )
    )
    _common._fetch_inference_provider_mapping.cache_clear()
    hf_inference._check_supported_task.cache_clear()
    yield hf_router
    set_client_factory(default_client_factory)
    _common._fetch_inference_provider_mapping.cache_clear()
    hf_inference._check_supported_task.cache_clear()


# provider, model, parameters, size the image comes back in
ROUTES: list[tuple[str, str, dict[str, Any], tuple[int, int]]] = [
    ("fal-ai", DEV, {"width": 768, "height": 512, "seed": 7, "num_inference_steps": 28}, (768, 512)),
    # Replicate's FLUX takes aspect_ratio/megapixels and drops width/height (PROVIDERS-ROUTES.md 1.3): 1:1 back.
    ("replicate", DEV, {"width": 768, "height": 512, "seed": 7}, (1024, 1024)),
    ("wavespeed", DEV, {"width": 768, "height": 512, "seed": 7}, (768, 512)),
    ("nscale", SCHNELL, {"width": 768, "height": 512, "seed": 7, "num_inference_steps": 4}, (768, 512)),
    ("together", SCHNELL, {"width": 768, "height": 512, "seed": 7, "num_inference_steps": 4}, (768, 512)),
    ("hf-inference", SD3, {"width": 768, "height": 512, "seed": 7, "guidance_scale": 5.0}, (768, 512)),
    ("zai-org", GLM, {"width": 768, "height": 512}, (768, 512)),
]


@pytest.mark.parametrize(("provider", "model", "parameters", "size"), ROUTES, ids=[row[0] for row in ROUTES])
def test_given_a_mapped_model_when_inference_client_generates_through_the_router_then_an_image_comes_back(
    client_on: HfRouterDouble, storage: StorageDouble, provider: str, model: str, parameters: dict[str, Any], size
):
    # Given the double's Hub mapping and router, When huggingface_hub's own client asks for an image
    image = InferenceClient(provider=provider, api_key=HF_TOKEN).text_to_image("a cat", model=model, **parameters)

    # Then the image arrives, the Hub was asked for the mapping, and the route got the request with the token
    assert image.size == size
    [mapping_call] = [call for call in client_on.calls("hub") if call.path == f"/api/models/{model}"]
    if provider != "hf-inference":  # hf-inference reads the plain model info (pipeline_tag), never the mapping
        assert mapping_call.query_all("expand") == ["inferenceProviderMapping"]
    first = client_on.calls(provider)[0]
    assert first.headers["authorization"] == f"Bearer {HF_TOKEN}"
    expected = hub_request(provider, model, parameters, api_key=HF_TOKEN, router_url=client_on.url)
    assert (first.method, f"{client_on.url}{first.path}", first.json()) == ("POST", expected.url, expected.json)
    # Result downloads (fal, replicate, wavespeed, zai-org) carry no key.
    assert all("authorization" not in seen.headers for seen in storage.requests)


def test_given_auto_when_the_client_picks_a_provider_then_it_takes_the_first_mapping_entry(client_on: HfRouterDouble):
    image = InferenceClient(api_key=HF_TOKEN).text_to_image("a cat", model=DEV, width=512, height=512)

    assert image.size == (512, 512)
    assert [call.path.split("/")[1] for call in client_on.server.requests if not call.path.startswith("/api/")] == [
        "fal-ai"
    ]


@pytest.mark.parametrize(("status", "text"), [(404, "not supported by provider"), (410, "deprecated")])
def test_given_flux_on_hf_inference_when_requested_then_the_router_refuses_as_production_does(
    client_on: HfRouterDouble, status: int, text: str
):
    client_on.hf_inference_gone[DEV] = status
    client_on.models[DEV].mapping.append(Mapping("hf-inference", DEV))  # even if a mapping still named it

    with pytest.raises(HfHubHTTPError) as raised:
        InferenceClient(provider="hf-inference", api_key=HF_TOKEN).text_to_image("a cat", model=DEV)

    assert raised.value.response.status_code == status
    assert text in raised.value.response.text


def test_given_a_token_without_the_permission_when_generating_then_403_names_inference_providers(
    client_on: HfRouterDouble,
):
    client_on.no_permission.add(HF_TOKEN)

    with pytest.raises(HfHubHTTPError) as raised:
        InferenceClient(provider="fal-ai", api_key=HF_TOKEN).text_to_image("a cat", model=DEV)

    assert raised.value.response.status_code == 403
    assert "sufficient permissions to call Inference Providers" in raised.value.response.text


def test_given_strict_fal_when_the_client_sends_negative_prompt_then_422_and_ignore_mode_serves_it(
    client_on: HfRouterDouble,
):
    client = InferenceClient(provider="fal-ai", api_key=HF_TOKEN)

    with pytest.raises(HfHubHTTPError) as raised:
        client.text_to_image("a cat", model=DEV, negative_prompt="blurry")
    client_on.fal.unknown_fields = "ignore"
    image = client.text_to_image("a cat", model=DEV, negative_prompt="blurry", width=256, height=256)

    assert raised.value.response.status_code == 422
    assert "negative_prompt" in raised.value.response.text
    assert image.size == (256, 256)


def test_given_a_first_entry_for_another_task_when_auto_then_huggingface_hub_gives_up_without_falling_back(
    client_on: HfRouterDouble,
):
    client_on.models[DEV].mapping.insert(0, Mapping("together", "black-forest-labs/FLUX.1-dev", task="conversational"))

    with pytest.raises(ValueError, match="not supported for task text-to-image"):
        InferenceClient(api_key=HF_TOKEN).text_to_image("a cat", model=DEV)

    assert [call for call in client_on.server.requests if not call.path.startswith("/api/")] == []


def test_given_a_hub_that_reads_only_expand_brackets_when_huggingface_hub_asks_then_it_finds_no_mapping(
    client_on: HfRouterDouble,
):
    client_on.expand_params = {"expand[]"}

    with pytest.raises(ValueError, match="No provider mapping found"):
        InferenceClient(provider="fal-ai", api_key=HF_TOKEN).text_to_image("a cat", model=DEV)


@pytest.mark.parametrize(
    ("arrange", "provider", "status", "text"),
    [
        (lambda double: double.out_of_credit.add(HF_TOKEN), "fal-ai", 402, "exceeded your monthly included credits"),
        (lambda double: double.payg_disabled.add("replicate"), "replicate", 402, "Pay-as-you go is not enabled"),
        (lambda double: double.tokens.clear(), "fal-ai", 401, "Invalid credentials in Authorization header"),
        (lambda double: double.models[DEV].mapping.pop(0), "fal-ai", None, "not supported by provider fal-ai"),
    ],
    ids=["credits", "payg-disabled", "unknown-token", "unmapped"],
)
def test_given_a_router_refusal_when_generating_then_huggingface_hub_surfaces_it(
    client_on: HfRouterDouble, arrange: Any, provider: str, status: int | None, text: str
):
    arrange(client_on)

    # An unmapped provider is refused by huggingface_hub itself, before any router call (ValueError).
    with pytest.raises((HfHubHTTPError, ValueError)) as raised:
        InferenceClient(provider=provider, api_key=HF_TOKEN).text_to_image("a cat", model=DEV)

    if status is None:
        assert isinstance(raised.value, ValueError) and text in str(raised.value)
    else:
        assert isinstance(raised.value, HfHubHTTPError)
        assert raised.value.response.status_code == status and text in raised.value.response.text


def test_given_a_failed_wavespeed_task_when_polled_then_the_client_reports_its_error(client_on: HfRouterDouble):
    client_on.wavespeed_error = "content flagged"

    with pytest.raises(ValueError, match="WaveSpeed AI task failed: content flagged"):
        InferenceClient(provider="wavespeed", api_key=HF_TOKEN).text_to_image("a cat", model=DEV)


def test_given_the_hub_when_asked_whoami_then_the_key_check_answers_come_from_keycheck(client_on: HfRouterDouble):
    assert HfApi(token=HF_TOKEN).whoami(cache=False)["name"] == "alice"
    with pytest.raises(HfHubHTTPError) as raised:
        HfApi(token="hf_unknown").whoami(cache=False)
    assert raised.value.response.status_code == 401
