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


class RateLimited(QuotaExceeded):
    """Too many images in one minute for one user: the per-minute limit, which resets within the minute."""

    code = "rate_limited"


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


class LinkExpired(ImagegenError):
    """A signed URL whose signature has run out: only regenerating the image gives a fresh one."""

    status = 410
    code = "expired"

    def __init__(self, message: str, *, hint: str | None = "regenerate the image", details: Any = None) -> None:
        super().__init__(message, hint=hint, details=details)


class UnsupportedMediaType(UpstreamError):
    """The upstream answered 200 with something that is not an image or a video (an HTML login page, JSON)."""

    code = "unsupported_media_type"


class TooManyRedirects(UpstreamError):
    code = "too_many_redirects"
