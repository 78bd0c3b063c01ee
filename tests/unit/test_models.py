"""Request validation, ids and small parsers: pure, no network."""

from __future__ import annotations

import pytest
from imagegen.api.context import location, prefer_wait
from imagegen.api.errors import from_validation
from imagegen.ids import JOB_ID_PATTERN, new_id, ulid
from imagegen.jobs.service import request_hash
from imagegen.models import ImageRequest
from pydantic import ValidationError


def test_given_minimal_request_when_parsed_then_defaults_apply():
    request = ImageRequest.model_validate({"prompt": "a fox"})

    assert (request.width, request.height, request.on_refusal, request.grounding) == (1024, 1024, "stop", "none")
    assert request.providers is None


def test_given_full_request_when_parsed_then_every_field_kept():
    body = {
        "prompt": "p",
        "negative_prompt": "n",
        "width": 768,
        "height": 512,
        "steps": 20,
        "guidance": 3.5,
        "seed": 9,
        "model": "black-forest-labs/FLUX.1-dev",
        "providers": ["huggingface", "horde"],
        "extra": {"lora": "x"},
        "hedge": True,
        "on_refusal": "fallback",
        "grounding": "web",
        "webhook_url": "https://example.com/hook",
    }

    assert ImageRequest.model_validate(body).model_dump(exclude_none=True) == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "p", "seed": -1}, "seed"),
        ({"prompt": "p", "steps": 0}, "steps"),
        ({"prompt": "p", "guidance": 31}, "guidance"),
        ({"prompt": "p", "model": "has space"}, "model"),
        ({"prompt": "p", "providers": []}, "providers"),
        ({"prompt": "p", "extra": {"": 1}}, "extra"),
        ({"prompt": "p", "extra": {"k": "v" * 501}}, "extra"),
        ({"prompt": "p", "webhook_url": "ftp://x"}, "webhook_url"),
        ({"prompt": "p", "hedge": "yes"}, "hedge"),
    ],
)
def test_given_bad_field_when_parsed_then_error_names_it(body, field):
    with pytest.raises(ValidationError) as caught:
        ImageRequest.model_validate(body)

    assert caught.value.errors()[0]["loc"][0] == field


def test_given_validation_errors_when_mapped_then_fields_are_dotted_paths():
    errors = [
        {"loc": ("body", "extra", "lora"), "msg": "Input should be a valid string", "type": "string_type"},
        {"loc": ("body", "colour"), "msg": "Extra inputs are not permitted", "type": "extra_forbidden"},
        {"loc": ("query", "limit"), "msg": "Input should be greater than or equal to 1", "type": "greater_than_equal"},
    ]

    response = from_validation(errors)

    assert response.status_code == 422
    assert response.body["error"]["details"] == [
        {"field": "extra.lora", "message": "Input should be a valid string"},
        {"field": "colour", "message": "unknown field"},
        {"field": "limit", "message": "Input should be greater than or equal to 1"},
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("wait=10", 10), ("respond-async, wait=5", 5), ("wait=100", 25), ("WAIT=3", 3), ("wait=x", None), (None, None)],
)
def test_given_prefer_header_when_parsed_then_wait_is_capped(value, expected):
    headers = {"Prefer": value} if value is not None else {}

    assert prefer_wait(headers, cap=25) == expected


def test_given_ids_made_in_order_when_sorted_then_order_is_kept():
    import re

    ids = [ulid(now_ms=1_700_000_000_000 + n) for n in range(50)]

    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    assert re.fullmatch(JOB_ID_PATTERN, new_id("img"))


def test_given_same_request_in_other_key_order_when_hashed_then_equal():
    one = ImageRequest.model_validate({"prompt": "p", "width": 512, "seed": 1})
    two = ImageRequest.model_validate({"seed": 1, "width": 512, "prompt": "p"})
    other = ImageRequest.model_validate({"prompt": "p", "width": 512, "seed": 2})

    assert request_hash(one) == request_hash(two) != request_hash(other)


@pytest.mark.parametrize(
    ("request_path", "route_path", "expected"),
    [
        ("/api/v1/images", "/v1/images", "/api/v1/images/img_1"),  # deployed: the stage name
        ("/images/v1/images", "/v1/images", "/images/v1/images/img_1"),  # custom domain base path
        ("/v1/images", "/v1/images", "/v1/images/img_1"),  # local stack at the root
        (None, "/v1/images", "/v1/images/img_1"),
    ],
)
def test_given_request_paths_when_linking_then_location_keeps_the_prefix_the_client_used(
    request_path, route_path, expected
):
    event = {"path": route_path, "requestContext": {"path": request_path}}

    assert location(event, "/v1/images/img_1") == expected
