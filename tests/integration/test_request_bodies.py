"""Request bodies on every JSON route: bytes that are not UTF-8, non-finite numbers, integers written as 512.0."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ApiAnswer, Aws, FakeLambdaContext, load_function, rest_event

pytestmark = pytest.mark.integration

LATIN1_BODY = '{"prompt": "café au lait"}'.encode("latin-1")  # é is 0xE9: not UTF-8


@pytest.fixture
def call_raw(aws: Aws) -> Callable[..., ApiAnswer]:
    """The Api function on an event whose body is raw bytes, base64-encoded as API Gateway passes every body on
    (BinaryMediaTypes */*)."""
    handler = load_function("api").lambda_handler

    def call(method: str, path: str, body: bytes, **kwargs: Any) -> ApiAnswer:
        event = rest_event(method, path, **kwargs)
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True
        raw = handler(event, FakeLambdaContext("ApiFunction"))
        return ApiAnswer(status=raw["statusCode"], headers=raw.get("headers") or {}, body=json.loads(raw["body"]))

    return call


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/images"), ("POST", "/v1/batches"), ("PUT", "/v1/keys/horde")],
)
def test_given_a_latin1_body_when_posted_to_a_json_route_then_400_invalid_json_naming_body(call_raw, method, path):
    # Given a body in Latin-1 (its é is the byte 0xE9, which is not UTF-8)
    # When it is sent to a route that reads JSON
    answer = call_raw(method, path, LATIN1_BODY)

    # Then the answer is 400 invalid_json naming the body, not a 500
    assert answer.status == 400, answer.body
    assert answer.body["error"]["code"] == "invalid_json"
    assert answer.body["error"]["details"] == [{"field": "body", "message": "not UTF-8 encoded JSON"}]
    assert "UTF-8" in answer.body["error"]["message"]


def test_given_a_utf8_body_sent_base64_when_created_then_it_is_read_as_json(call_raw):
    answer = call_raw("POST", "/v1/images", '{"prompt": "café au lait"}'.encode())

    assert answer.status == 202, answer.body
    assert answer.body["request"]["prompt"] == "café au lait"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"prompt": "ok", "extra": {"lora_scale": NaN}}', "extra.lora_scale"),
        ('{"prompt": "ok", "extra": {"strength": Infinity}}', "extra.strength"),
        ('{"prompt": "ok", "extra": {"strength": -Infinity}}', "extra.strength"),
        ('{"prompt": "ok", "guidance": NaN}', "guidance"),
        ('{"prompt": "ok", "extra": {"big": 1e400}}', "extra.big"),
    ],
)
def test_given_a_non_finite_number_when_created_then_422_names_the_field_and_no_job_exists(
    call_api, aws: Aws, text, field
):
    # Given a body with NaN or an infinity, which Python's json module would accept
    # When it is posted
    answer = call_api("POST", "/v1/images", body=text)

    # Then it is refused naming the field, and nothing was stored or queued
    assert answer.status == 422, answer.body
    assert answer.body["error"]["code"] == "validation_error"
    assert [item["field"] for item in answer.body["error"]["details"]] == [field]
    assert aws.receive() == []
    assert call_api("GET", "/v1/images").body["items"] == []


def test_given_a_non_finite_number_in_a_batch_item_when_created_then_422_names_item_and_field(call_api):
    text = '{"items": [{"prompt": "a"}, {"prompt": "b", "extra": {"x": NaN}}]}'

    answer = call_api("POST", "/v1/batches", body=text)

    assert answer.status == 422, answer.body
    assert [item["field"] for item in answer.body["error"]["details"]] == ["items.1.extra.x"]


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(9_007_199_254_740_991, True), (9_007_199_254_740_992, False), (-1e16, False), (1.5e15, True), (0.25, True)],
)
def test_given_numbers_in_extra_when_created_then_only_those_within_bounds_are_accepted(call_api, value, accepted):
    answer = call_api("POST", "/v1/images", body={"prompt": "ok", "extra": {"scale": value}})

    if accepted:
        assert answer.status == 202, answer.body
        assert answer.body["request"]["extra"] == {"scale": value}
    else:
        assert answer.status == 422, answer.body
        # Named as the other checks on extra's values are: the field, and the key in the message.
        [detail] = answer.body["error"]["details"]
        assert detail["field"] == "extra"
        assert "'scale'" in detail["message"]


def test_given_a_stored_job_when_listed_then_its_json_is_standard(call_api):
    # Given a job whose extra holds the largest accepted numbers
    call_api("POST", "/v1/images", body={"prompt": "ok", "extra": {"a": 9_007_199_254_740_991, "b": -1.5e15}})

    # When the list is read
    answer = call_api("GET", "/v1/images")

    # Then the body parses with a parser that refuses NaN and infinities
    def refuse(constant: str) -> None:
        raise ValueError(constant)

    items = json.loads(json.dumps(answer.body), parse_constant=refuse)["items"]
    assert items[0]["request"]["extra"] == {"a": 9_007_199_254_740_991, "b": -1.5e15}


@pytest.mark.parametrize(("field", "value"), [("width", 512.0), ("height", 768.0), ("steps", 30.0), ("seed", 7.0)])
def test_given_an_integer_written_as_a_float_when_created_then_it_is_that_integer(call_api, field, value):
    # JSON Schema calls 512.0 an integer; a client that serialises numbers as floats must not be refused.
    answer = call_api("POST", "/v1/images", body={"prompt": "ok", field: value})

    assert answer.status == 202, answer.body
    assert answer.body["request"][field] == int(value)
    assert isinstance(answer.body["request"][field], int)


@pytest.mark.parametrize("value", ["512", 512.5, True])
def test_given_a_string_fraction_or_bool_for_an_integer_when_created_then_422(call_api, value):
    answer = call_api("POST", "/v1/images", body={"prompt": "ok", "width": value})

    assert answer.status == 422, answer.body
    assert answer.body["error"]["details"][0]["field"] == "width"


def test_given_a_bad_default_that_every_item_overrides_when_batch_created_then_422_names_the_default(
    call_api, aws: Aws
):
    # Given defaults whose prompt is too long, though each item brings its own (found by schemathesis)
    body = {"defaults": {"prompt": "x" * 2001, "width": 512}, "items": [{"prompt": "a"}, {"prompt": "b"}]}

    # When the batch is created
    answer = call_api("POST", "/v1/batches", body=body)

    # Then it is refused naming defaults.prompt, and nothing was queued
    assert answer.status == 422, answer.body
    assert [item["field"] for item in answer.body["error"]["details"]] == ["defaults.prompt"]
    assert aws.receive() == []
