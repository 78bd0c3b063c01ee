"""Function URLs on the local gateway: the routes a template gives them, the 2.0 events, and the answers."""

from __future__ import annotations

import base64
import json

import pytest
from imagegen.local.cfn import Context, TemplateError
from imagegen.local.function_urls import FunctionUrlRoute, UrlResultError, function_url_routes, url_event, url_response

ROUTE = FunctionUrlRoute("POST", "/v1/images/generations", "OpenAiFunction", "abc123")


def _context() -> Context:
    return Context(region="us-east-1", stack_name="s", parameters={})


def _resources(metadata: dict | None, url: dict | None = None) -> dict:
    props = {"CodeUri": "functions/openai", "Handler": "app.lambda_handler"}
    if url is not None:
        props["FunctionUrlConfig"] = url
    resource = {"Type": "AWS::Serverless::Function", "Properties": props}
    if metadata is not None:
        resource["Metadata"] = metadata
    return {"OpenAiFunction": resource, "Other": {"Type": "AWS::Serverless::Function", "Properties": {}}}


def test_given_a_function_url_with_routes_when_read_then_each_route_is_served_by_that_function():
    context = _context()
    resources = _resources({"LocalGateway": {"Routes": ["post /v1/a", "GET /v1/b"]}}, {"AuthType": "NONE"})

    routes = function_url_routes(resources, context)

    assert [(r.method, r.path, r.function) for r in routes] == [
        ("POST", "/v1/a", "OpenAiFunction"),
        ("GET", "/v1/b", "OpenAiFunction"),
    ]
    assert len({r.url_id for r in routes}) == 1


def test_given_no_function_url_or_no_routes_when_read_then_nothing_is_served():
    context = _context()

    assert function_url_routes(_resources({"LocalGateway": {"Routes": ["POST /v1/a"]}}), context) == []
    assert function_url_routes(_resources(None, {"AuthType": "NONE"}), context) == []


def test_given_a_malformed_route_when_read_then_a_template_error():
    with pytest.raises(TemplateError):
        function_url_routes(_resources({"LocalGateway": {"Routes": ["POST"]}}, {"AuthType": "NONE"}), _context())


def test_given_a_json_request_when_turned_into_an_event_then_it_is_payload_2_0_as_lambda_sends_it():
    event = url_event(
        "post",
        "/v1/images/generations?a=1&a=2&b=",
        [("Content-Type", "application/json"), ("X-Tag", "x"), ("x-tag", "y"), ("Cookie", "c1=1; c2=2")],
        b'{"prompt": "caf\xc3\xa9"}',
        source_ip="127.0.0.9",
        route=ROUTE,
        region="eu-west-1",
    )

    assert event["version"] == "2.0"
    assert (event["rawPath"], event["rawQueryString"]) == ("/v1/images/generations", "a=1&a=2&b=")
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["headers"]["x-tag"] == "x,y"
    assert event["headers"]["host"] == "abc123.lambda-url.eu-west-1.on.aws"
    assert event["cookies"] == ["c1=1", "c2=2"]
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.9"
    assert (event["body"], event["isBase64Encoded"]) == ('{"prompt": "café"}', False)


@pytest.mark.parametrize(
    ("content_type", "body"), [("application/octet-stream", b"\x00\x01"), ("application/json", b"caf\xe9")]
)
def test_given_binary_or_undecodable_bytes_when_turned_into_an_event_then_base64(content_type, body):
    event = url_event("POST", "/x", [("Content-Type", content_type)], body, source_ip="1", route=ROUTE, region="r")

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_given_a_proxy_result_when_answered_then_status_headers_cookies_and_body():
    status, headers, body = url_response(
        {
            "statusCode": 201,
            "headers": {"X-A": "1"},
            "cookies": ["s=1"],
            "body": base64.b64encode(b"\x89PNG").decode(),
            "isBase64Encoded": True,
        }
    )

    assert (status, headers, body) == (201, [("X-A", "1"), ("Set-Cookie", "s=1")], b"\x89PNG")


def test_given_a_result_without_status_when_answered_then_json_with_200_as_lambda_does():
    assert url_response({"ok": True}) == (
        200,
        [("Content-Type", "application/json")],
        json.dumps({"ok": True}).encode(),
    )


@pytest.mark.parametrize(
    "result",
    [{"statusCode": "200"}, {"statusCode": 200, "body": 5}, {"statusCode": 200, "body": "%", "isBase64Encoded": True}],
)
def test_given_a_malformed_result_when_answered_then_an_error(result):
    with pytest.raises(UrlResultError):
        url_response(result)
