"""Typed domain errors; the API maps each to one HTTP status in one place."""

from __future__ import annotations

from typing import Any


class ImagegenError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, hint: str | None = None, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details
        # Response headers that belong with this error (Retry-After on a 429).
        self.headers = headers


class BadRequest(ImagegenError):
    status = 400
    code = "bad_request"


class ValidationFailed(ImagegenError):
    status = 422
    code = "validation_error"


class Unauthorized(ImagegenError):
    status = 401
    code = "unauthorized"


class NotFound(ImagegenError):
    status = 404
    code = "not_found"


class Conflict(ImagegenError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ImagegenError):
    status = 413
    code = "payload_too_large"


class QuotaExceeded(ImagegenError):
    status = 429
    code = "quota_exceeded"


class UpstreamError(ImagegenError):
    status = 502
    code = "upstream_error"


class UpstreamTimeout(ImagegenError):
    status = 504
    code = "upstream_timeout"


class ServiceUnavailable(ImagegenError):
    status = 503
    code = "service_unavailable"


class UrlNotAllowed(ImagegenError):
    status = 400
    code = "url_not_allowed"
