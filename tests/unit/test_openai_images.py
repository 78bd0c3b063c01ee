"""The OpenAI-compatible route's pure parts: its body onto our requests, and our errors in its shape."""

from __future__ import annotations

import re

import pytest
from imagegen.errors import Conflict, NotFound, QuotaExceeded, ValidationFailed
from imagegen.openai_images import (
    SIZE_PATTERN,
    OpenAiError,
    chain_choice,
    from_domain,
    image_requests,
    image_size,
    parse_request,
)


def test_given_the_body_the_openai_client_sends_when_parsed_then_unused_fields_are_accepted_and_ignored():
    # Given what openai.images.generate sends from LibreChat, with fields of later API versions too
    body = {
        "model": "gpt-image-1",
        "prompt": "a lighthouse",
        "n": 1,
        "background": "auto",
        "output_format": "png",
        "quality": "auto",
        "size": "auto",
        "style": "vivid",
        "moderation": "low",
        "user": "u-1",
        "partial_images": 0,
        "some_future_field": {"x": [1, 2]},
    }

    # When it is parsed and mapped
    [request] = image_requests(parse_request(body), seed=7)

    # Then it is a 1024x1024 request on the default chain with our seed
    assert request.model_dump(exclude_none=True) == {
        "prompt": "a lighthouse",
        "width": 1024,
        "height": 1024,
        "seed": 7,
        "on_refusal": "stop",
        "grounding": "none",
    }


@pytest.mark.parametrize(
    ("model", "choice"),
    [
        (None, {}),
        ("dall-e-3", {}),
        ("DALL-E-2", {}),
        ("gpt-image-1", {}),
        ("gpt-image-2.5-flare", {}),
        ("chatgpt-image-latest", {}),
        ("placeholder", {"providers": ["placeholder"]}),
        ("siliconflow", {"providers": ["siliconflow"]}),
        ("black-forest-labs/FLUX.1-schnell", {"model": "black-forest-labs/FLUX.1-schnell"}),
        ("a model with spaces", {}),
        ("x" * 201, {}),
    ],
)
def test_given_a_model_name_when_mapped_then_it_picks_a_provider_a_model_or_the_default_chain(model, choice):
    assert chain_choice(model) == choice


def test_given_n_images_when_mapped_then_each_has_its_own_seed_and_the_same_size():
    requests = image_requests(parse_request({"prompt": "fox", "n": 4, "size": "768x512"}), seed=4_294_967_294)

    assert [request.seed for request in requests] == [4_294_967_294, 4_294_967_295, 0, 1]
    assert {(request.width, request.height) for request in requests} == {(768, 512)}


@pytest.mark.parametrize(
    ("size", "expected"),
    [(None, (1024, 1024)), ("auto", (1024, 1024)), ("64x2048", (64, 2048)), ("1536x1024", (1536, 1024))],
)
def test_given_a_size_when_read_then_width_and_height(size, expected):
    assert image_size(size) == expected


@pytest.mark.parametrize(
    ("size", "valid"),
    [
        ("auto", True),
        ("64x64", True),
        ("2048x2048", True),
        ("1000x999", True),
        ("63x512", False),
        ("2049x512", False),
        ("512x20480", False),
        ("0512x512", False),
        ("512*512", False),
        ("512x512 ", False),
        ("", False),
    ],
)
def test_given_the_size_pattern_when_matched_then_it_admits_exactly_64_to_2048_per_side(size, valid):
    assert (re.fullmatch(SIZE_PATTERN.strip("^$"), size) is not None) is valid


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({}, "prompt", "is required"),
        ({"prompt": ""}, "prompt", "must not be empty"),
        ({"prompt": "  "}, "prompt", "non-whitespace"),
        ({"prompt": "x" * 2001}, "prompt", "2000"),
        ({"prompt": 5}, "prompt", "string"),
        ({"prompt": "ok", "n": 0}, "n", "greater than or equal to 1"),
        ({"prompt": "ok", "n": 5}, "n", "less than or equal to 4"),
        ({"prompt": "ok", "n": "2"}, "n", "integer"),
        ({"prompt": "ok", "n": 1.5}, "n", "integer"),
        ({"prompt": "ok", "size": "4096x4096"}, "size", "between 64 and 2048"),
        ({"prompt": "ok", "size": "big"}, "size", 'e.g. "1024x768"'),
        ({"prompt": "ok", "response_format": "png"}, "response_format", "'b64_json' or 'url'"),
        ({"prompt": "ok", "stream": True}, "stream", "not supported"),
        ({"prompt": "ok", "stream": "yes"}, "stream", "False"),
        ([], "body", "JSON object"),
    ],
)
def test_given_a_bad_body_when_parsed_then_400_names_the_parameter(body, param, fragment):
    with pytest.raises(OpenAiError) as caught:
        parse_request(body)

    error = caught.value
    assert error.status == 400
    assert error.param == param
    assert fragment in error.message
    assert error.body() == {
        "error": {"message": error.message, "type": "invalid_request_error", "param": param, "code": error.code}
    }


def test_given_n_written_as_a_float_when_parsed_then_it_is_that_integer():
    assert parse_request({"prompt": "ok", "n": 2.0}).n == 2


def test_given_quota_exhausted_when_mapped_then_429_insufficient_quota_that_the_client_does_not_retry():
    error = from_domain(QuotaExceeded("daily image quota of 5 used up", headers={"Retry-After": "3600"}))

    assert (error.status, error.type, error.code) == (429, "insufficient_quota", "quota_exceeded")
    assert error.headers == {"Retry-After": "3600", "x-should-retry": "false"}


@pytest.mark.parametrize(
    ("domain", "status", "type_"),
    [
        (Conflict("Idempotency-Key was used with another body"), 400, "invalid_request_error"),
        (ValidationFailed("items.0.prompt: required"), 400, "invalid_request_error"),
        (NotFound("nothing"), 404, "invalid_request_error"),
    ],
)
def test_given_a_domain_error_when_mapped_then_never_409_and_the_shape_is_openai(domain, status, type_):
    error = from_domain(domain)

    assert (error.status, error.type) == (status, type_)
    assert error.body()["error"]["message"] == domain.message
