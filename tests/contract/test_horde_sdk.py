"""horde-sdk's request and response models against our Horde payloads and the Horde double's answers.

The models are strict here: horde-sdk forbids unknown fields when `TESTS_ONGOING` is set at its import
(tests/contract/conftest.py sets it), so a field the double invents, or one our payload sends that the API does
not know, fails. horde-sdk releases after 0.18.0 need Python 3.12; pyproject.toml installs the newest one the
interpreter takes.

Known difference, kept visible: horde-sdk requires `models` on a request (a client-side choice: the server's
`GenerationInputStable` has it optional, PROVIDERS.md 3.2), and our payload leaves it out when any model will do;
the test adds `models: []` for that case only.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from horde_sdk.ai_horde_api.apimodels import (
    ImageGenerateAsyncRequest,
    ImageGenerateAsyncResponse,
    ImageGenerateCheckResponse,
    ImageGenerateStatusResponse,
)
from horde_sdk.generic_api.apimodels import RequestErrorResponse
from imagegen.models import ImageRequest
from imagegen.providers import horde
from imagegen.providers.base import RemoteRequest
from imagegen.providers.horde import HordeSettings
from pydantic import SecretStr

from tests.doubles.horde import HordeDouble
from tests.doubles.keys import HORDE_KEY
from tests.doubles.storage import StorageDouble


@pytest.fixture
def horde_double(storage: StorageDouble) -> Any:
    with HordeDouble(storage, api_keys={HORDE_KEY}, checks_until_done=2) as double:
        yield double


def _settings(double: HordeDouble) -> HordeSettings:
    return HordeSettings(base_url=double.base_url, api_key=SecretStr(HORDE_KEY))


def test_given_horde_sdk_is_strict_in_this_run_when_loaded_then_unknown_fields_are_refused():
    # Guards the rest of this module: lenient models would accept anything.
    assert ImageGenerateCheckResponse.model_config.get("extra") == "forbid"
    assert ImageGenerateAsyncRequest.model_config.get("extra") == "forbid"


# (request, the chain's model for the link: Horde model names have spaces, e.g. from HORDE_MODELS)
REQUESTS = [
    (ImageRequest(prompt="a cat"), None),
    (
        ImageRequest(prompt="a cat", negative_prompt="dogs", width=700, height=500, steps=20, guidance=7.125, seed=42),
        None,
    ),
    (ImageRequest(prompt="a cat", width=64, height=2048, extra={"sampler_name": "k_euler"}), "AlbedoBase XL (SDXL)"),
]


@pytest.mark.parametrize(("request_", "model"), REQUESTS, ids=["defaults", "every-param", "model-and-extra"])
def test_given_our_submit_payload_when_validated_by_horde_sdk_then_it_is_a_valid_generation_input(
    horde_double: HordeDouble, request_: ImageRequest, model: str | None
):
    settings = _settings(horde_double)
    plan = horde.plan(request_, model, settings)
    body = json.loads(horde.build_request(plan, settings).content)

    validated = ImageGenerateAsyncRequest.model_validate(body if "models" in body else {**body, "models": []})

    assert validated.prompt == body["prompt"]
    assert validated.params is not None
    assert (validated.params.width, validated.params.height) == (plan.width, plan.height)
    assert validated.params.seed == body["params"].get("seed")
    assert validated.models == body.get("models", [])


def test_given_a_submitted_job_when_the_sdk_parses_every_answer_then_each_is_the_sdk_model(
    horde_double: HordeDouble,
):
    settings = _settings(horde_double)
    plan = horde.plan(ImageRequest(prompt="a cat", width=512, height=512), None, settings)
    with httpx.Client() as client:
        submitted = ImageGenerateAsyncResponse.model_validate(client.send(horde.build_request(plan, settings)).json())
        remote = RemoteRequest(str(submitted.id_))
        waiting = ImageGenerateCheckResponse.model_validate(client.send(horde.build_check(remote, settings)).json())
        done = ImageGenerateCheckResponse.model_validate(client.send(horde.build_check(remote, settings)).json())
        status = ImageGenerateStatusResponse.model_validate(client.send(horde.build_collect(remote, settings)).json())
        canceled = ImageGenerateStatusResponse.model_validate(client.send(horde.build_cancel(remote, settings)).json())

    assert (waiting.done, waiting.wait_time > 0, done.done) == (False, True, True)
    [generation] = status.generations
    assert generation.img.startswith(horde_double.storage.base_url) and generation.censored is False
    assert canceled.generations == status.generations  # a cancel answers with what was already made


@pytest.mark.parametrize("r2", [True, False], ids=["r2-link", "base64"])
def test_given_a_censored_generation_when_parsed_then_the_sdk_reads_the_censorship_metadata(
    horde_double: HordeDouble, r2: bool
):
    horde_double.checks_until_done, horde_double.r2 = 0, r2
    horde_double.censored, horde_double.censorship_metadata = True, True
    settings = _settings(horde_double)
    plan = horde.plan(ImageRequest(prompt="a cat", width=512, height=512), None, settings)
    with httpx.Client() as client:
        remote = RemoteRequest(client.send(horde.build_request(plan, settings)).json()["id"])
        status = ImageGenerateStatusResponse.model_validate(client.send(horde.build_collect(remote, settings)).json())

    [generation] = status.generations
    assert generation.censored is True
    assert [(entry.type_, entry.value) for entry in generation.gen_metadata or []] == [("censorship", "nsfw")]
    assert generation.img.startswith("http") is r2


@pytest.mark.parametrize(
    ("headers", "body", "rc"),
    [
        ({"apikey": "not-a-known-key"}, {"prompt": "a cat"}, "InvalidAPIKey"),
        ({}, {"prompt": "a cat", "params": {"width": 500}}, "InvalidSize"),
        ({}, {"prompt": "a cat", "params": {"steps": 80}}, "KudosUpfront"),
    ],
)
def test_given_a_refused_submit_when_parsed_then_the_sdk_error_model_reads_rc(
    horde_double: HordeDouble, headers: dict[str, str], body: dict[str, Any], rc: str
):
    answer = httpx.post(f"{horde_double.base_url}/generate/async", json=body, headers=headers)

    error = RequestErrorResponse.model_validate(answer.json())

    assert answer.status_code >= 400
    assert (error.rc, bool(error.message)) == (rc, True)
