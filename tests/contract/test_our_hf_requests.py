"""Our router requests against huggingface_hub's own: the same URL, method, JSON body and auth header per route.

huggingface_hub 2.4.0 builds each router provider's text-to-image request in its `_providers/<provider>.py`;
tests/contract/hub_requests.py runs that code offline for a model and parameters (the Hub's mapping given to it as
the router double's). Our request for the same model and parameters is built by providers/huggingface the way the
chain builds it (the route's plan, then its request). They must be equal, except for the differences listed in each
row, each with its reason: where the provider takes other fields than huggingface_hub sends, we send what it takes.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from huggingface_hub.inference._common import RequestParameters
from huggingface_hub.inference._providers import get_provider_helper
from imagegen.models import ImageRequest
from imagegen.providers import huggingface
from imagegen.providers.base import FallThrough, ImageBase64, Refused, Route
from imagegen.providers.huggingface import HuggingFaceSettings
from pydantic import SecretStr

from tests.contract.hub_requests import hub_request
from tests.doubles.hf_router import DEV, GLM, SCHNELL, SD3, default_models
from tests.doubles.keys import HF_TOKEN
from tests.doubles.replicate import E005

SETTINGS = HuggingFaceSettings(api_key=SecretStr(HF_TOKEN))
ABSENT = object()
# One request in portable terms, and the same in huggingface_hub's text_to_image parameters.
PORTABLE = {"width": 768, "height": 512, "steps": 28, "guidance": 3.5, "seed": 42, "negative_prompt": "blurry"}
HUB = {
    "width": 768,
    "height": 512,
    "num_inference_steps": 28,
    "guidance_scale": 3.5,
    "seed": 42,
    "negative_prompt": "blurry",
}
# schnell's distilled values, asked for explicitly, so that both sides send them.
SCHNELL_PORTABLE = {**PORTABLE, "steps": 4, "guidance": 0.0}
SCHNELL_HUB = {**HUB, "num_inference_steps": 4, "guidance_scale": 0.0}

FAL_SAME_APP = "our fal provider sends the same input to the same app (providers/fal.py fal_input)"
NO_NEGATIVE = "fal's FLUX apps have no negative_prompt (PROVIDERS-ROUTES.md 2.4): dropped and recorded"
REPLICATE_FLUX = (
    "Replicate's FLUX models take aspect_ratio/megapixels/guidance, not width/height/guidance_scale, and drop unknown "
    "inputs silently (PROVIDERS-ROUTES.md 1.3, 3.7): huggingface_hub's fields would give a 1:1 image"
)


@dataclass(frozen=True)
class Difference:
    """One place where our body differs from huggingface_hub's: the JSON path, what we send (ABSENT: nothing)."""

    path: tuple[str, ...]
    ours: Any
    why: str


@dataclass(frozen=True)
class Row:
    route: str
    model: str
    portable: dict[str, Any]
    hub: dict[str, Any]
    differences: tuple[Difference, ...] = ()
    # Provider-specific extras a request may carry (hf-inference's scheduler).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.route}:{self.model.rsplit('/', 1)[-1]}"


def fal_flux(steps: int, guidance: float | None) -> tuple[Difference, ...]:
    differences = [
        Difference(("negative_prompt",), ABSENT, NO_NEGATIVE),
        Difference(("num_images",), 1, f"one image per job; {FAL_SAME_APP}"),
        Difference(("enable_safety_checker",), True, f"a flagged image is a refusal; {FAL_SAME_APP}"),
        Difference(("output_format",), "png", f"a lossless source for the worker's resize; {FAL_SAME_APP}"),
    ]
    if guidance is None:
        why = "FLUX.1-schnell is timestep-distilled: guidance does nothing, and fal's range (1-20) cannot say 0"
        differences.append(Difference(("guidance_scale",), ABSENT, why))
    return tuple(differences)


def replicate_flux(*, guidance: bool, megapixels: str, aspect_ratio: str) -> tuple[Difference, ...]:
    out = [
        Difference(("input", "width"), ABSENT, REPLICATE_FLUX),
        Difference(("input", "height"), ABSENT, REPLICATE_FLUX),
        Difference(("input", "aspect_ratio"), aspect_ratio, REPLICATE_FLUX),
        Difference(("input", "megapixels"), megapixels, REPLICATE_FLUX),
        Difference(("input", "guidance_scale"), ABSENT, REPLICATE_FLUX),
        Difference(("input", "negative_prompt"), ABSENT, "Replicate's FLUX models take no negative prompt"),
        Difference(("input", "num_outputs"), 1, "one image per job (providers/replicate.py replicate_input)"),
        Difference(("input", "output_format"), "png", "a lossless source (providers/replicate.py replicate_input)"),
    ]
    if guidance:
        out.append(Difference(("input", "guidance"), 3.5, REPLICATE_FLUX))
    return tuple(out)


ROWS = [
    Row("fal-ai", DEV, PORTABLE, HUB, fal_flux(28, 3.5)),
    Row("fal-ai", SCHNELL, SCHNELL_PORTABLE, SCHNELL_HUB, fal_flux(4, None)),
    Row("replicate", DEV, PORTABLE, HUB, replicate_flux(guidance=True, megapixels="1", aspect_ratio="3:2")),
    Row(
        "replicate",
        SCHNELL,
        {**SCHNELL_PORTABLE, "width": 512, "height": 512},
        {**SCHNELL_HUB, "width": 512, "height": 512},
        replicate_flux(guidance=False, megapixels="0.25", aspect_ratio="1:1"),
    ),
    Row("wavespeed", DEV, PORTABLE, HUB),
    Row("wavespeed", SCHNELL, SCHNELL_PORTABLE, SCHNELL_HUB),
    Row("nscale", SCHNELL, SCHNELL_PORTABLE, SCHNELL_HUB),
    Row("together", SCHNELL, SCHNELL_PORTABLE, SCHNELL_HUB),
    Row("hf-inference", SD3, PORTABLE, {**HUB, "scheduler": "Euler"}, extra={"scheduler": "Euler"}),
    Row("zai-org", GLM, {"width": 768, "height": 512, "seed": 42}, {"width": 768, "height": 512, "seed": 42}),
]


def _provider_model(route: str, model: str) -> str:
    return next(entry.provider_id for entry in default_models()[model].mapping if entry.provider == route)


def ours(row: Row) -> Any:
    asked = ImageRequest.model_validate({"prompt": "a cat", **row.portable, "extra": row.extra or None})
    route = Route(row.route, _provider_model(row.route, row.model))
    plan = huggingface.plan_route(asked, row.model, route, SETTINGS)
    return huggingface.build_request(plan, SETTINGS)


def _apply(body: dict[str, Any], difference: Difference) -> Any:
    """Put our value at the path (or remove it); answers what huggingface_hub had there."""
    *parents, last = difference.path
    node = body
    for name in parents:
        node = node[name]
    had = node.get(last, ABSENT)
    if difference.ours is ABSENT:
        node.pop(last, None)
    else:
        node[last] = difference.ours
    return had


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_given_a_route_when_we_build_its_request_then_it_is_huggingface_hubs_but_for_the_listed_differences(
    row: Row,
) -> None:
    # Given huggingface_hub's own request for the route, model and parameters
    expected = hub_request(row.route, row.model, row.hub, prompt="a cat", api_key=HF_TOKEN)

    # When ours is built
    sent = ours(row)

    # Then URL, method and auth are the same, and the body is the same once the listed differences are applied
    assert (sent.method, str(sent.url)) == (expected.method, expected.url)
    assert sent.headers["authorization"] == expected.headers["authorization"] == f"Bearer {HF_TOKEN}"
    body = copy.deepcopy(expected.json)
    assert body is not None
    stale = [d.path for d in row.differences if _apply(body, d) == d.ours]
    assert stale == [], "a listed difference is none: huggingface_hub already sends that"
    assert json.loads(sent.content) == body


def test_given_every_route_huggingface_hub_has_when_listed_then_each_has_a_row() -> None:
    assert {row.route for row in ROWS} == set(huggingface.ROUTES)


class TestAnswers:
    """Where we read an answer as huggingface_hub does, and the one place we read it differently on purpose."""

    @pytest.mark.parametrize("route", ["nscale", "together"])
    def test_given_a_base64_answer_when_read_by_both_then_the_same_bytes(self, route: str) -> None:
        png = b"\x89PNG\r\n\x1a\nnot really"
        body = {"data": [{"b64_json": base64.b64encode(png).decode()}]}
        helper = get_provider_helper(route, task="text-to-image", model=SCHNELL)
        plan = huggingface.plan_route(ImageRequest(prompt="a cat"), SCHNELL, Route(route, SCHNELL), SETTINGS)
        import httpx

        result = huggingface.parse_response(httpx.Response(200, json=body, request=ours(ROWS[0])), plan)

        assert isinstance(result, ImageBase64) and base64.b64decode(result.b64) == helper.get_response(body) == png

    def test_given_a_failed_replicate_prediction_when_read_then_ours_says_why_where_huggingface_hub_says_timeout(
        self,
    ) -> None:
        # A listed difference: huggingface_hub treats any prediction without output as a 60 s timeout, so a refused
        # prompt (E005) or a crashed model looks like a cold start; we read the prediction's error.
        import httpx

        helper = get_provider_helper("replicate", task="text-to-image", model=DEV)
        failed = {"id": "p1", "status": "failed", "output": None, "error": E005}
        params = RequestParameters(
            url="https://router.huggingface.co/replicate/x",
            task="text-to-image",
            model=DEV,
            json=None,
            data=None,
            headers={},
        )
        plan = huggingface.plan_route(
            ImageRequest(prompt="a cat"), DEV, Route("replicate", "black-forest-labs/flux-dev"), SETTINGS
        )

        with pytest.raises(TimeoutError):
            helper.get_response(failed, params)
        ours_read = huggingface.parse_response(httpx.Response(201, json=failed, request=ours(ROWS[2])), plan)
        crashed = {**failed, "error": "CUDA out of memory"}
        ours_crash = huggingface.parse_response(httpx.Response(201, json=crashed, request=ours(ROWS[2])), plan)

        assert isinstance(ours_read, Refused) and "E005" in ours_read.message
        assert isinstance(ours_crash, FallThrough) and ours_crash.error_class == "faulted"
