"""POST /v1/images/generations (OpenAI's images API), answered alike behind API Gateway and on the function URL."""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from imagegen import wiring
from imagegen.api import body, errors
from imagegen.api.context import header, user_id
from imagegen.errors import Unauthorized
from imagegen.openai_images import OpenAiError, OpenAiImages

logger = logging.getLogger(__name__)

PATH = "/v1/images/generations"
# Methods a client might try on the path; POST is the only one served (405 names it).
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# The same bound as the rest of the API: nothing larger is parsed (an OpenAI body is a prompt and a few options).
MAX_BODY_BYTES = 64 * 1024
# A `url` answer works without our token for at least an hour (Open WebUI and others fetch it later).
URL_SECONDS = 3600
# Where a generation longer than API Gateway allows is served: the template's output of that name.
LONG_WAIT_HINT = "the OpenAiBaseUrl stack output (a Lambda function URL) waits for slow generations"

router = Router()


def unauthorized() -> Response[Any]:
    response = error_response(
        OpenAiError(401, "missing or invalid API token: send Authorization: Bearer <api token>", code="invalid_api_key")
    )
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def error_response(error: OpenAiError) -> Response[Any]:
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(error.body()),
        headers=error.headers,
    )


def method_not_allowed() -> Response[Any]:
    response = error_response(OpenAiError(405, f"{PATH} takes POST only", code="method_not_allowed"))
    response.headers["Allow"] = "POST"
    return response


def read_body(event: dict[str, Any], headers: dict[str, str] | None) -> Any:
    """The JSON body, or OpenAiError 400: not UTF-8, not JSON, or a number JSON does not have (NaN, 1e400)."""
    raw = body.raw_body(event)
    if raw and not body.json_or_unlabelled(header(headers, "content-type")):
        message = "Content-Type: the body must be JSON (application/json)"
        raise OpenAiError(415, message, param="Content-Type", code="unsupported_media_type")
    if len(raw or b"") > MAX_BODY_BYTES:
        raise OpenAiError(413, f"body: the request body is larger than {MAX_BODY_BYTES // 1024} KB", param="body")
    try:
        text = body.body_text(event)
        return body.loads(text) if text else None
    except body.BodyNotUtf8:
        message = "body: the request body is not UTF-8 encoded JSON"
        raise OpenAiError(400, message, param="body", code="invalid_json") from None
    except json.JSONDecodeError:
        raise OpenAiError(400, "body: the request body is not valid JSON", param="body", code="invalid_json") from None
    except body.BadNumbers as exc:
        path, reason = exc.problems[0]
        raise OpenAiError(400, f"{path}: {reason}", param=path, code="invalid_value") from None


def generations(
    user: str,
    event: dict[str, Any],
    headers: dict[str, str] | None,
    *,
    wait_seconds: float,
    url_seconds: int,
    hint: str | None = None,
) -> Response[Any]:
    """Runs one OpenAI-style generation for `user` and answers in OpenAI's shapes, whatever happens."""
    try:
        images = OpenAiImages(
            wiring.job_service(),
            wiring.batch_service(),
            wait_seconds=wait_seconds,
            url_seconds=url_seconds,
            base_url_hint=hint,
        )
        result = images.generate(user, read_body(event, headers), header(headers, "idempotency-key"))
    except OpenAiError as error:
        return error_response(error)
    except Exception:
        # Never str(error): it may carry internals. Nothing was promised, so the client may retry.
        logger.exception("OpenAI-compatible generation failed")
        return error_response(OpenAiError(500, "something went wrong on our side", type_="server_error"))
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(result.body()),
        headers=result.headers,
    )


@router.post(
    PATH,
    summary="OpenAI-compatible image generation (the official openai client's images.generate)",
    description="Runs the normal job (n = 1) or batch (n > 1) and waits for it. Behind API Gateway the wait is at "
    "most 25 s; the OpenAiBaseUrl output (a Lambda function URL) waits for slow generations. Errors use OpenAI's "
    'shape {"error": {"message", "type", "param", "code"}}.',
)
def create_generation() -> Response[Any]:
    event = router.current_event
    try:
        user = user_id(event.raw_event)
    except Unauthorized:
        return unauthorized()
    wait = wiring.api_settings().max_wait_seconds
    return generations(
        user, event.raw_event, event.headers, wait_seconds=wait, url_seconds=URL_SECONDS, hint=LONG_WAIT_HINT
    )


@router.route(PATH, method=OTHER_METHODS, include_in_schema=False)
@errors.refusal
def other_methods() -> Response[Any]:
    # Registered so that GET /v1/images/generations is not read as a job id by GET /v1/images/<job_id>.
    return method_not_allowed()
