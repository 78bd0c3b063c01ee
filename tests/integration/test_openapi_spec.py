"""/openapi.json says what the API does: a valid OpenAPI 3.1 document whose statuses, error shapes, headers and
routes are the ones the functions answer (tests/fuzz checks the same against the running stack)."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.integration

METHODS = {"get", "put", "post", "delete", "patch"}
OPENAI = "/v1/images/generations"


@pytest.fixture
def spec(call_api) -> dict[str, Any]:
    answer = call_api("GET", "/openapi.json", user=None, resource="/openapi.json")
    assert answer.status == 200
    return dict(answer.body)


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_given_the_document_when_validated_then_it_is_openapi_3_1(spec):
    validate(spec)

    assert spec["openapi"].startswith("3.1")


def test_given_every_operation_when_read_then_no_powertools_error_shape_remains(spec):
    text = repr(spec)

    assert "HTTPValidationError" not in text
    assert "ValidationError" not in spec["components"]["schemas"]
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                expected = "OpenAiError" if path == OPENAI else "Error"
                assert schema == {"$ref": f"#/components/schemas/{expected}"}, (method, path, status)


def test_given_the_error_schema_when_read_then_it_is_the_house_shape(spec):
    error = spec["components"]["schemas"]["Error"]["properties"]["error"]

    assert error["required"] == ["code", "message"]
    assert set(error["properties"]) == {"code", "message", "hint", "details"}


def test_given_each_kind_of_operation_when_read_then_it_declares_the_statuses_it_answers(spec):
    for method, path, operation in operations(spec):
        statuses = set(operation["responses"])
        public = operation.get("security") == []
        parameters = operation.get("parameters") or []
        assert public or "401" in statuses, (method, path)
        if any(parameter["in"] == "path" for parameter in parameters):
            assert "404" in statuses, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= statuses, (method, path)
            assert path == OPENAI or "422" in statuses, (method, path)
    images = spec["paths"]["/v1/images"]
    assert {"400", "409", "429"} <= set(images["post"]["responses"])
    assert "400" in images["get"]["responses"]  # a cursor this API did not issue
    assert "409" in spec["paths"]["/v1/images/{job_id}/content"]["get"]["responses"]
    assert "429" in spec["paths"]["/v1/batches"]["post"]["responses"]
    assert set(spec["paths"]["/v1/health"]["get"]["responses"]) == {"200"}


def test_given_the_content_route_when_read_then_302_has_a_location_and_no_body(spec):
    responses = spec["paths"]["/v1/images/{job_id}/content"]["get"]["responses"]

    assert "content" not in responses["302"]
    assert responses["302"]["headers"]["Location"]["required"] is True
    assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ContentLink"}


def test_given_the_create_routes_when_read_then_their_headers_are_declared(spec):
    created = spec["paths"]["/v1/images"]["post"]["responses"]["202"]["headers"]
    waited = spec["paths"]["/v1/images/{job_id}"]["get"]["responses"]["200"]["headers"]
    quota = spec["paths"]["/v1/images"]["post"]["responses"]["429"]["headers"]

    assert set(created) == {"Location", "Retry-After", "Idempotent-Replayed", "Preference-Applied"}
    assert created["Location"]["required"] is True
    assert set(waited) == {"Retry-After", "Preference-Applied"}
    assert quota["Retry-After"] == {
        "description": spec["components"]["headers"]["Retry-After"]["description"],
        "schema": {"type": "integer", "minimum": 0},
        "required": True,
    }
    parameters = spec["paths"]["/v1/images"]["post"]["parameters"]
    assert [parameter["name"] for parameter in parameters] == ["Idempotency-Key"]


def test_given_the_media_proxy_when_read_then_its_route_is_in_the_same_document(spec):
    media = spec["paths"]["/v1/media"]["get"]

    assert {"200", "302", "400", "401", "410", "502", "504"} <= set(media["responses"])
    assert set(media["responses"]["200"]["content"]) == {"image/*", "video/*"}
    assert media["responses"]["302"]["headers"]["Location"]["required"] is True
    assert [parameter["name"] for parameter in media["parameters"]] == ["url"]


def test_given_the_openai_route_when_read_then_its_body_and_answers_are_openais(spec):
    operation = spec["paths"][OPENAI]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]

    assert body["required"] == ["prompt"]
    assert body["properties"]["n"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 4}
    assert body["properties"]["stream"]["enum"] == [False]
    assert body["additionalProperties"] is True  # quality, style, user, ... are accepted and ignored
    assert {"200", "400", "401", "429", "502", "504"} <= set(operation["responses"])
    assert operation["responses"]["504"]["headers"]["X-Imagegen-Job-Ids"]["schema"] == {"type": "string"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ImagesResponse"
    }


def test_given_the_image_request_schema_when_read_then_it_states_what_validation_checks(spec):
    request = spec["components"]["schemas"]["ImageRequest"]["properties"]

    assert request["width"] == {"type": "integer", "minimum": 64, "maximum": 2048, "default": 1024, "title": "Width"}
    assert request["providers"]["uniqueItems"] is True
    assert request["extra"]["propertyNames"] == {"minLength": 1, "maxLength": 64}
    numbers = request["extra"]["additionalProperties"]["anyOf"][1:3]
    assert all(number["maximum"] == 2**53 - 1 for number in numbers)


def test_given_a_method_a_path_lacks_when_called_then_405_with_allow(call_api):
    answer = call_api("DELETE", "/v1/images")

    assert answer.status == 405
    assert answer.headers["Allow"] == "GET, POST"
    assert answer.body["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded"])
def test_given_a_body_that_is_not_json_when_posted_then_415(call_api, content_type):
    answer = call_api("POST", "/v1/images", body='{"prompt": "x"}', headers={"Content-Type": content_type})

    assert answer.status == 415
    assert answer.body["error"]["code"] == "unsupported_media_type"


def test_given_jobs_and_providers_when_read_then_waiting_breakers_and_latencies_are_declared(spec):
    schemas = spec["components"]["schemas"]
    # Image and video jobs both say what a queued job waits for, and until when
    for name in ("Job", "VideoJob"):
        waiting = schemas[name]["properties"]["waiting"]
        assert {"$ref": "#/components/schemas/Waiting"} in waiting["anyOf"], name
    assert set(schemas["Waiting"]["required"]) == {"reason", "until"}
    assert schemas["Waiting"]["properties"]["until"]["format"] == "date-time"
    # /v1/providers: each breaker's state and until when it refuses calls, and p50/p95 of the observed latencies
    assert set(schemas["BreakerState"]["properties"]["state"]["enum"]) == {"closed", "open", "half_open"}
    assert "open_until" in schemas["BreakerState"]["properties"]
    assert {"p50_ms", "p95_ms", "samples"} <= set(schemas["LatencyView"]["properties"])
