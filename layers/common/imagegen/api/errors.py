"""Every error the API answers, in one shape: {"error": {"code", "message", "hint"?, "details"?}}."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from imagegen.errors import ImagegenError

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
# Route functions that only answer 405 for a path (so that a dynamic route does not take the path as an id): the
# methods they are registered for are not methods the path takes.
_REFUSALS: set[Callable[..., Any]] = set()


def refusal(func: F) -> F:
    _REFUSALS.add(func)
    return func


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    hint: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if hint:
        error["hint"] = hint
    if details is not None:
        error["details"] = details
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body={"error": error}, headers=headers
    )


def from_domain(error: ImagegenError) -> Response[Any]:
    return error_response(
        error.status, error.code, error.message, hint=error.hint, details=error.details, headers=error.headers
    )


def _field(loc: Sequence[Any]) -> str:
    # loc is ("body", "prompt") or ("query", "limit") or ("body", "extra", "lora"): name the field the client sent.
    parts = [str(part) for part in loc[1:] if not isinstance(part, int) or loc[0] != "body" or len(loc) > 2]
    return ".".join(parts) or str(loc[0])


def from_validation(errors: Sequence[dict[str, Any]]) -> Response[Any]:
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "invalid_json",
            "body: the request body is not valid JSON",
            hint="send a JSON object with Content-Type: application/json",
            details=[{"field": "body", "message": "not valid JSON"}],
        )
    fields = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "missing" and loc == ("body",):
            fields.append({"field": "body", "message": "a JSON object is required"})
            continue
        message = str(error.get("msg", "is not valid"))
        if error.get("type") == "extra_forbidden":
            message = "unknown field"
        fields.append({"field": _field(loc), "message": message})
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in fields[:5])
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", summary, details=fields)


def unsupported_content_type() -> Response[Any]:
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "body: this route reads JSON",
        hint="send the body with Content-Type: application/json",
        details=[{"field": "Content-Type", "message": "must be application/json"}],
    )


def unexpected(error: Exception) -> Response[Any]:
    # Never echo str(error): it may carry internals. The log has the stack; the client gets the request id.
    logger.exception("unhandled error")
    return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "something went wrong on our side")


def register(app: APIGatewayRestResolver) -> None:
    """Give a resolver the house error mapping: domain errors, validation, unknown routes, everything else."""
    app.exception_handler(ImagegenError)(from_domain)
    app.exception_handler(RequestValidationError)(lambda error: from_validation(error.errors()))
    app.exception_handler(RequestUnsupportedContentType)(lambda _: unsupported_content_type())
    app.exception_handler(Exception)(unexpected)

    @app.not_found
    def _not_found(_: NotFoundError) -> Response[Any]:
        event = app.current_event
        allowed = allowed_methods(app, event.path)
        if allowed:
            # RFC 9110: a known resource asked with a method it lacks is 405 with the methods it has, not a 404.
            methods = ", ".join(allowed)
            message = f"{event.path} does not take {event.http_method}; it takes {methods}"
            return error_response(405, "method_not_allowed", message, headers={"Allow": methods})
        return error_response(404, "not_found", f"no route {event.http_method} {event.path}")


def allowed_methods(app: APIGatewayRestResolver, path: str) -> list[str]:
    # Powertools keeps its routes in these two lists and offers no public way to ask which methods match a path.
    routes = app._static_routes + app._dynamic_routes
    return sorted({route.method for route in routes if route.func not in _REFUSALS and route.rule.match(path)})
