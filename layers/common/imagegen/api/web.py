"""GET / (the web page) and GET /assets/{name} (its script, style and icon): public, the page asks for a token."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from imagegen import wiring
from imagegen.api.context import location
from imagegen.errors import NotFound

router = Router()

ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
# The page is public and renders user text (prompts): no inline script, nothing loaded from elsewhere, and the
# token can only be sent back to this API (connect-src 'self'). Images come from presigned storage URLs.
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Presigned image URLs carry a signature: no Referer takes the page's address anywhere.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@cache
def _file(name: str) -> str:
    return resources.files("imagegen.web").joinpath(name).read_text(encoding="utf-8")


def content_security_policy(storage_endpoint: str | None) -> str:
    """img-src and media-src allow https: (presigned S3 URLs, whatever the bucket's host style) and, where the API
    signs URLs for a custom storage endpoint (the local emulator on http://127.0.0.1:<port>), that endpoint's origin."""
    images = ["'self'", "https:"]
    if storage_endpoint:
        parts = urlsplit(storage_endpoint)
        if parts.scheme in ("http", "https") and parts.netloc:
            images.append(f"{parts.scheme}://{parts.netloc}")
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {' '.join(images)}",
            # Videos play from the same presigned storage URLs as images.
            f"media-src {' '.join(images)}",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


@router.get("/", summary="The web page", security=[], include_in_schema=False)
def page() -> Response[str]:
    # Behind a stage (/prod) the page's links need the same prefix as the API's own Location headers.
    base = location(router.current_event.raw_event, "")
    body = _file("index.html").replace("{{base}}", html.escape(base, quote=True))
    headers: dict[str, Any] = {
        **_SECURITY_HEADERS,
        "Content-Security-Policy": content_security_policy(wiring.api_settings().aws_endpoint_url),
        "Cache-Control": "no-cache",
    }
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=body, headers=headers)


@router.get("/assets/<name>", summary="The web page's script, style and icon", security=[], include_in_schema=False)
def asset(name: str) -> Response[str]:
    content_type = ASSETS.get(name)
    if content_type is None:
        raise NotFound(f"no asset named {name[:64]}")
    headers = {**_SECURITY_HEADERS, "Cache-Control": "public, max-age=300"}
    return Response(status_code=200, content_type=content_type, body=_file(name), headers=headers)
