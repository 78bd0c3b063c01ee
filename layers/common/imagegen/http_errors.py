"""The one place that turns errors into HTTP answers: {"error": {"code", "message", "hint"?, "details"?}}."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from imagegen.errors import ImagegenError

logger = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, *, hint: str | None = None, details: Any = None
) -> Response[str]:
    error: dict[str, Any] = {"code": code, "message": message}
    if hint is not None:
        error["hint"] = hint
    if details is not None:
        error["details"] = details
    return Response(status_code=status, content_type="application/json", body=json.dumps({"error": error}))


def domain_error_response(exc: ImagegenError) -> Response[str]:
    return error_response(exc.status, exc.code, exc.message, hint=exc.hint, details=exc.details)


def validation_error_response(errors: Sequence[Any]) -> Response[str]:
    """422 naming each field and why; the rejected values are left out (a signed URL is a credential)."""
    details = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": error.get("type"),
        }
        for error in errors
    ]
    where = "; ".join(f"{_field(d['loc'])}: {d['msg']}" for d in details) or "invalid request"
    return error_response(422, "validation_error", where, details=details)


def register_error_handlers(app: ApiGatewayResolver) -> None:
    @app.exception_handler(ImagegenError)
    def _domain(exc: ImagegenError) -> Response[str]:
        logger.info("request failed: %s %s", exc.status, exc.code)
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    def _validation(exc: RequestValidationError) -> Response[str]:
        return validation_error_response(exc.errors())

    @app.not_found
    def _not_found(_: NotFoundError) -> Response[str]:
        return error_response(404, "not_found", "no such route")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        # The exception text may carry a URL or a key: it goes to the log, never to the caller.
        logger.exception("unexpected error")
        return error_response(500, "internal_error", "internal error")


def _field(loc: list[str]) -> str:
    # ["query", "url"] reads better as "url (query)".
    return f"{loc[-1]} ({loc[0]})" if len(loc) >= 2 else ".".join(loc) or "request"
