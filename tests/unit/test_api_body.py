"""Request bodies read strictly: what imagegen.api.body accepts as JSON, and how it names what it refuses."""

from __future__ import annotations

import base64
import json

import pytest
from imagegen.api.body import NOT_FINITE, TOO_LONG, BadNumbers, BodyNotUtf8, body_text, json_or_unlabelled, loads


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ('{"a": NaN}', [("a", NOT_FINITE)]),
        ('{"a": {"b": [1, Infinity]}}', [("a.b.1", NOT_FINITE)]),
        ("[-Infinity]", [("0", NOT_FINITE)]),
        ("NaN", [("body", NOT_FINITE)]),
        ('{"a": 1e400, "b": -1e999}', [("a", NOT_FINITE), ("b", NOT_FINITE)]),
        ('{"a": ' + "9" * 65 + "}", [("a", TOO_LONG)]),
        ('{"a": -' + "9" * 5000 + "}", [("a", TOO_LONG)]),
    ],
)
def test_given_numbers_json_lacks_when_loaded_then_each_is_named(text, problems):
    with pytest.raises(BadNumbers) as caught:
        loads(text)

    assert caught.value.problems == problems


def test_given_standard_json_when_loaded_then_it_is_what_json_loads_gives():
    text = '{"prompt": "café", "n": 2, "scale": 1.5e10, "big": ' + "9" * 64 + ', "list": [true, null]}'

    assert loads(text) == json.loads(text)


def test_given_malformed_json_when_loaded_then_a_decode_error_as_usual():
    with pytest.raises(json.JSONDecodeError):
        loads("{not json")


@pytest.mark.parametrize(
    ("event", "text"),
    [
        ({"body": '{"a": 1}', "isBase64Encoded": False}, '{"a": 1}'),
        ({"body": base64.b64encode('{"a": "é"}'.encode()).decode(), "isBase64Encoded": True}, '{"a": "é"}'),
        ({"body": None}, None),
        ({"body": ""}, None),
        ({}, None),
    ],
)
def test_given_an_event_body_when_read_then_the_text_the_client_sent(event, text):
    assert body_text(event) == text


def test_given_bytes_that_are_not_utf8_when_read_then_body_not_utf8():
    event = {"body": base64.b64encode("café".encode("latin-1")).decode(), "isBase64Encoded": True}

    with pytest.raises(BodyNotUtf8):
        body_text(event)


@pytest.mark.parametrize(
    ("content_type", "json_body"),
    [
        (None, True),
        ("", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("text/plain", False),
        ("multipart/form-data", False),
        ("application/x-www-form-urlencoded", False),
    ],
)
def test_given_a_content_type_when_checked_then_only_json_or_none_is_read_as_json(content_type, json_body):
    assert json_or_unlabelled(content_type) is json_body
