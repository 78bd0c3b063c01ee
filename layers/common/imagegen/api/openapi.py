"""The OpenAPI document made true: Powertools' generated paths plus what it cannot know from the routes (each status
an operation really answers, with our error schema instead of HTTPValidationError; response headers; the 302s;
/v1/media, served by another function; and the OpenAI-compatible route, whose body is read by hand)."""

from __future__ import annotations

import copy
from typing import Any

from imagegen.models import NOT_BLANK_PATTERN, URL_SCHEMA_PATTERN
from imagegen.openai_images import MAX_IMAGES, MAX_PROMPT, SIZE_PATTERN, GenerationRequest

ERROR = {"$ref": "#/components/schemas/Error"}
OPENAI_ERROR = {"$ref": "#/components/schemas/OpenAiError"}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retried POST return the first answer's job (or batch) instead of a second one. A key used "
    "again with another body is a 409 (a 400 on the OpenAI-compatible route).",
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": 'Every error of the API: {"error": {"code", "message", "hint"?, "details"?}}.',
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "description": "stable, machine-readable (validation_error, ...)"},
                    "message": {"type": "string"},
                    "hint": {"type": "string", "description": "what to do about it"},
                    "details": {"description": "for validation errors, one {field, message} per field"},
                },
            }
        },
    },
    "OpenAiError": {
        "type": "object",
        "description": "The OpenAI-compatible route's errors, in OpenAI's shape.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string", "examples": ["invalid_request_error", "server_error"]},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    },
    "ContentLink": {
        "type": "object",
        "description": "The image's (or video's) presigned URL, for clients that cannot follow a redirect.",
        "required": ["url", "expires_in"],
        "properties": {"url": {"type": "string"}, "expires_in": {"type": "integer", "minimum": 0}},
    },
    "ImagesResponse": {
        "type": "object",
        "description": "OpenAI's ImagesResponse: one item per image, b64_json or url as asked.",
        "required": ["created", "data"],
        "properties": {
            "created": {"type": "integer", "description": "Unix time, seconds"},
            "data": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_IMAGES,
                "items": {
                    "type": "object",
                    "properties": {
                        "b64_json": {"type": "string", "contentEncoding": "base64"},
                        "url": {"type": "string", "description": "works without a token for at least an hour"},
                        "revised_prompt": {"type": "string"},
                    },
                },
            },
            "output_format": {"type": "string", "enum": ["png", "jpeg", "webp"]},
        },
    },
}

HEADERS: dict[str, Any] = {
    "Location": {"description": "Where the resource (or the image) is", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds before asking again: while a job or batch runs, or until the quota resets",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Idempotent-Replayed": {
        "description": "The Idempotency-Key was seen before: this is the first request's job or batch",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Preference-Applied": {
        "description": "Prefer: wait=N was honoured (N capped at 25)",
        "schema": {"type": "string", "pattern": "^wait=[0-9]+$"},
    },
    "WWW-Authenticate": {"description": "How to authenticate", "schema": {"type": "string"}},
    "Cache-Control": {"description": "How long the answer may be kept", "schema": {"type": "string"}},
    "X-Imagegen-Job-Ids": {
        "description": "The jobs this generation made, comma-separated (fetch them with GET /v1/images/{id})",
        "schema": {"type": "string"},
    },
    "X-Should-Retry": {
        "description": "false where an automatic retry would only make more jobs (the openai clients obey it)",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
}

ERROR_DESCRIPTIONS = {
    "400": "Bad input: a body that is not UTF-8 JSON (invalid_json), or a value refused for what it means "
    "(url_not_allowed, a cursor this API did not issue, a malformed Idempotency-Key)",
    "401": "Missing or invalid API token",
    "404": "Not found (also: someone else's)",
    "409": "Wrong state for this (the hint says what to wait for), or an Idempotency-Key reused with another body",
    "410": "The signed link has expired: regenerate the image",
    "413": "Request body over 64 KB (or media over the proxy's limit)",
    "414": "A request line longer than the gateway takes (a URL of tens of KB)",
    "415": "A body that is not Content-Type: application/json",
    "422": "Validation error: details names each field and why",
    "429": "Daily image quota used up (quota_exceeded; a video takes VIDEO_QUOTA_UNITS of it), or too many images "
    "this minute (rate_limited); Retry-After: seconds until it resets",
    "502": "The upstream failed or answered something unusable",
    "503": "A dependency of ours is unavailable; try again",
    "504": "The upstream did not answer in time",
}

# Statuses beyond the ones every operation of its kind answers (see _statuses).
EXTRA_STATUSES: dict[tuple[str, str], set[str]] = {
    ("get", "/v1/images"): {"400"},
    ("post", "/v1/images"): {"400", "409", "429"},
    ("get", "/v1/images/{job_id}/content"): {"409"},
    ("post", "/v1/images/{job_id}/cancel"): {"409"},
    ("post", "/v1/images/{job_id}/retry"): {"409", "429"},
    ("get", "/v1/videos"): {"400"},
    ("post", "/v1/videos"): {"400", "409", "429"},
    ("get", "/v1/videos/{job_id}/content"): {"409"},
    ("post", "/v1/videos/{job_id}/cancel"): {"409"},
    ("post", "/v1/videos/{job_id}/retry"): {"409", "429"},
    ("post", "/v1/batches"): {"400", "409", "429"},
    ("post", "/v1/batches/{batch_id}/retry"): {"409", "429"},
    ("put", "/v1/keys/{provider}"): {"503"},
    ("get", "/v1/webhooks/deliveries"): {"400"},
    ("post", "/v1/webhooks/deliveries/{delivery_id}/redeliver"): {"409"},
}

# Response headers: (method, path, status) -> {header: required}.
RESPONSE_HEADERS: dict[tuple[str, str, str], dict[str, bool]] = {
    ("post", "/v1/images", "202"): {
        "Location": True,
        "Retry-After": False,
        "Idempotent-Replayed": False,
        "Preference-Applied": False,
    },
    ("get", "/v1/images/{job_id}", "200"): {"Retry-After": False, "Preference-Applied": False},
    ("post", "/v1/images/{job_id}/cancel", "200"): {"Retry-After": False},
    ("post", "/v1/images/{job_id}/retry", "202"): {"Location": True, "Retry-After": False},
    ("post", "/v1/videos", "202"): {
        "Location": True,
        "Retry-After": False,
        "Idempotent-Replayed": False,
        "Preference-Applied": False,
    },
    ("get", "/v1/videos/{job_id}", "200"): {"Retry-After": False, "Preference-Applied": False},
    ("post", "/v1/videos/{job_id}/cancel", "200"): {"Retry-After": False},
    ("post", "/v1/videos/{job_id}/retry", "202"): {"Location": True, "Retry-After": False},
    ("post", "/v1/batches", "202"): {"Location": True, "Retry-After": False, "Idempotent-Replayed": False},
    ("get", "/v1/batches/{batch_id}", "200"): {"Retry-After": False},
    ("post", "/v1/batches/{batch_id}/retry", "202"): {"Location": True, "Retry-After": False},
    ("post", "/v1/batches/{batch_id}/cancel", "200"): {"Retry-After": False},
}

IDEMPOTENT_POSTS = ("/v1/images", "/v1/videos", "/v1/batches")
CONTENT_PATHS = {"/v1/images/{job_id}/content": "image", "/v1/videos/{job_id}/content": "video"}
OPENAI_PATH = "/v1/images/generations"
POWERTOOLS_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def complete(document: dict[str, Any], media: dict[str, Any]) -> dict[str, Any]:
    """`document` (the Api function's, as Powertools made it) with `media`'s paths (the MediaProxy function's) added
    and every operation's answers declared as they are."""
    out = copy.deepcopy(document)
    components = out.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, schema in (media.get("components") or {}).get("schemas", {}).items():
        schemas.setdefault(name, schema)
    for name in POWERTOOLS_SCHEMAS:
        schemas.pop(name, None)
    schemas.update(copy.deepcopy(SCHEMAS))
    components["headers"] = copy.deepcopy(HEADERS)
    out["paths"].update(copy.deepcopy(media.get("paths") or {}))
    for path, item in out["paths"].items():
        for method, operation in item.items():
            _declare(method, path, operation)
    if OPENAI_PATH in out["paths"]:
        out["paths"][OPENAI_PATH]["post"] = _openai_operation(out["paths"][OPENAI_PATH]["post"])
    _batch_items(schemas)
    return out


def _declare(method: str, path: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    # Powertools declares a 422 of its own shape on every operation, even those that validate nothing.
    responses.pop("422", None)
    for status in sorted(_statuses(method, path, operation)):
        response: dict[str, Any] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": ERROR}},
        }
        if status == "401":
            response["headers"] = {"WWW-Authenticate": _header("WWW-Authenticate", required=False)}
        if status == "429":
            response["headers"] = {"Retry-After": _header("Retry-After", required=True)}
        responses[status] = response
    for (m, p, status), headers in RESPONSE_HEADERS.items():
        if (m, p) == (method, path) and status in responses:
            responses[status]["headers"] = {
                name: _header(name, required=required) for name, required in headers.items()
            }
    if method == "post" and path in IDEMPOTENT_POSTS:
        operation.setdefault("parameters", []).append(dict(IDEMPOTENCY_KEY))
    if method == "get" and path in CONTENT_PATHS:
        responses["302"] = {
            "description": f"Redirect to a short-lived presigned URL of the {CONTENT_PATHS[path]} (no body)",
            "headers": {"Location": _header("Location", required=True), "Cache-Control": _header("Cache-Control")},
        }
        responses["200"] = {
            "description": "With Accept: application/json, the presigned URL as JSON instead of a redirect",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ContentLink"}}},
        }
    if (method, path) == ("get", "/v1/media"):
        _media_responses(responses)
        for parameter in operation.get("parameters") or []:
            if parameter.get("name") == "url":
                # The deployed proxy takes https only (the local stack also admits http, for test doubles).
                parameter["schema"]["pattern"] = "^https://"


def _statuses(method: str, path: str, operation: dict[str, Any]) -> set[str]:
    statuses = set(EXTRA_STATUSES.get((method, path), set()))
    parameters = operation.get("parameters") or []
    if operation.get("security") != []:
        statuses.add("401")
    if any(parameter.get("in") == "path" for parameter in parameters):
        statuses |= {"404", "414"}
    if "requestBody" in operation:
        statuses |= {"400", "413", "415", "422"}
    if any(parameter.get("in") == "query" for parameter in parameters):
        statuses |= {"414", "422"}
    return statuses


def _error(status: str) -> dict[str, Any]:
    return {"description": ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": ERROR}}}


def _header(name: str, *, required: bool = False) -> dict[str, Any]:
    header = copy.deepcopy(HEADERS[name])
    if required:
        header["required"] = True
    return header


def _media_responses(responses: dict[str, Any]) -> None:
    binary = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
    responses["200"] = {
        "description": "The media itself (up to the inline limit)",
        "headers": {"Cache-Control": _header("Cache-Control")},
        "content": {"image/*": binary, "video/*": binary},
    }
    responses["302"] = {
        "description": "Redirect to a short-lived copy in our storage (media over the inline limit)",
        "headers": {"Location": _header("Location", required=True), "Cache-Control": _header("Cache-Control")},
    }
    for status in ("400", "410", "413", "502", "503", "504"):
        responses[status] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": ERROR}},
        }


def _openai_operation(generated: dict[str, Any]) -> dict[str, Any]:
    body = GenerationRequest.model_json_schema()
    properties = body["properties"]
    properties["prompt"] = {"type": "string", "minLength": 1, "maxLength": MAX_PROMPT, "pattern": NOT_BLANK_PATTERN}
    properties["size"] = {
        "type": "string",
        "pattern": SIZE_PATTERN,
        "default": "auto",
        "description": '"auto" (1024x1024) or WIDTHxHEIGHT, each side 64-2048',
    }
    properties["model"] = {
        "type": "string",
        "description": "One of our providers (placeholder, siliconflow, ...) or a model they serve; OpenAI's names "
        "(dall-e-3, gpt-image-1, ...) and anything else get the default chain",
    }
    properties["stream"] = {
        "type": "boolean",
        "enum": [False],
        "description": "streaming is not supported: true is a 400",
    }
    body.pop("title", None)
    body["description"] = "The body the official openai client sends. Other OpenAI fields (quality, style, "
    "background, output_format, moderation, user, ...) and unknown fields are accepted and ignored."
    return {
        "summary": generated.get("summary"),
        "description": generated.get("description"),
        "operationId": generated.get("operationId"),
        "parameters": [dict(IDEMPOTENCY_KEY)],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": _openai_responses(),
    }


def _openai_responses() -> dict[str, Any]:
    error_statuses = {
        "400": "Bad request: a parameter (param names it), a body that is not UTF-8 JSON, a content refusal "
        "(content_policy_violation), or b64_json images too large for one response (response_too_large: use url)",
        "401": "Missing or invalid API token (invalid_api_key)",
        "410": "A job of the generation was canceled",
        "413": "Request body over 64 KB",
        "414": "A request line longer than the gateway takes (a URL of tens of KB)",
        "415": "A body that is not Content-Type: application/json",
        "429": "Daily image quota used up (insufficient_quota; Retry-After until the reset; not retried)",
        "502": "Every provider of the chain failed (the message says what each answered; not retried)",
        "504": "Still running at the wait limit: the message and X-Imagegen-Job-Ids name the jobs (not retried)",
    }
    job_ids = {"X-Imagegen-Job-Ids": _header("X-Imagegen-Job-Ids"), "X-Should-Retry": _header("X-Should-Retry")}
    responses: dict[str, Any] = {
        "200": {
            "description": "The images",
            "headers": {"X-Imagegen-Job-Ids": _header("X-Imagegen-Job-Ids", required=True)},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImagesResponse"}}},
        }
    }
    for status, description in error_statuses.items():
        headers = dict(job_ids)
        if status == "429":
            headers["Retry-After"] = _header("Retry-After", required=True)
        if status == "401":
            headers = {"WWW-Authenticate": _header("WWW-Authenticate")}
        responses[status] = {
            "description": description,
            "headers": headers,
            "content": {"application/json": {"schema": OPENAI_ERROR}},
        }
    return responses


def _batch_items(schemas: dict[str, Any]) -> None:
    """BatchCreate's items are objects merged with `defaults`, each then an image request: say so, including that
    a prompt must come from the item or from defaults."""
    batch = schemas.get("BatchCreate")
    request = schemas.get("ImageRequest")
    if batch is None or request is None:
        return
    partial = copy.deepcopy(request)
    partial.pop("required", None)
    partial.pop("title", None)
    partial["description"] = "Fields of an image request (ImageRequest); defaults and item are merged, item first."
    batch["properties"]["defaults"] = partial
    batch["properties"]["webhook_url"]["pattern"] = URL_SCHEMA_PATTERN
    items = batch["properties"]["items"]
    items["items"] = copy.deepcopy(partial)
    with_prompt = {"type": "object", "required": ["prompt"]}
    batch["anyOf"] = [
        {"required": ["defaults"], "properties": {"defaults": with_prompt}},
        {"properties": {"items": {"items": with_prompt}}},
    ]
