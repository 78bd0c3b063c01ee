"""The API resolver: routers, error mapping, OpenAPI, and the guards on request bodies (size, UTF-8, JSON)."""

from __future__ import annotations

import json
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aws_lambda_powertools.event_handler as event_handler
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagegen import __version__
from imagegen.api import batches, body, errors, images, keys, openai, videos, web, webhooks
from imagegen.api.context import header
from imagegen.errors import ValidationFailed

MAX_BODY_BYTES = 64 * 1024


def strict_json(text: str) -> Any:
    """Every JSON body is read here (Powertools' validation calls it): NaN and infinities are a 422 naming the field."""
    try:
        return body.loads(text)
    except body.BadNumbers as exc:
        details = [{"field": path, "message": reason} for path, reason in exc.problems]
        summary = "; ".join(f"{item['field']}: {item['message']}" for item in details[:5])
        raise ValidationFailed(summary, details=details) from None


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=strict_json)
app.include_router(images.router)
app.include_router(videos.router)
app.include_router(batches.router)
app.include_router(webhooks.router)
app.include_router(keys.router)
app.include_router(openai.router)
app.include_router(web.router)
# Served without the authorizer (template.yaml: Auth: Authorizer: NONE).
PUBLIC_PATHS = ("/v1/health", "/openapi.json", "/docs", "/", "/assets/{name}")
DESCRIPTION = (
    "Image generation with provider fallbacks. Every route but /v1/health, /openapi.json and /docs "
    "needs `Authorization: Bearer <api token>`."
)


@app.get("/v1/health", summary="Liveness", security=[])
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


# The OpenAPI document is built on first request, not at import: Powertools' OpenAPI models cost about 0.25 s
# of every cold start (enable_swagger() would load them eagerly), and almost no invocation serves the docs.
@cache
def openapi_document() -> str:
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    from imagegen.api import media_proxy, openapi

    def generated(resolver: APIGatewayRestResolver) -> dict[str, Any]:
        return dict(
            json.loads(
                resolver.get_openapi_json_schema(
                    title="imagegen",
                    version=__version__,
                    description=DESCRIPTION,
                    security_schemes={"bearer": HTTPBearer(description="An imagegen API token")},
                    security=[{"bearer": []}],
                )
            )
        )

    # /v1/media is served by the MediaProxy function, behind the same API and authorizer: one document for both.
    document = openapi.complete(generated(app), generated(media_proxy.app))
    # Powertools leaves out an empty per-route `security`, which would make the public routes inherit bearer auth.
    for path in PUBLIC_PATHS:
        for operation in document["paths"].get(path, {}).values():
            operation["security"] = []
            operation["responses"].pop("401", None)
    return json.dumps(document)


@app.get("/openapi.json", summary="This API's OpenAPI 3.1 document", security=[], include_in_schema=False)
def openapi() -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_document())


@app.get("/docs", summary="Swagger UI", security=[], include_in_schema=False)
def docs() -> Response[str]:
    from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

    ui = Path(event_handler.__file__).parent / "openapi" / "swagger_ui"
    html = generate_swagger_html(
        openapi_document().replace("</", "<\\/"),
        (ui / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (ui / "swagger-ui.min.css").read_text(encoding="utf-8"),
        "",
        None,
    )
    return Response(status_code=200, content_type=content_types.TEXT_HTML, body=html)


errors.register(app)


def _refused(status: int, code: str, message: str, detail: str, hint: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "details": [{"field": "body", "message": detail}]}
    if hint:
        error["hint"] = hint
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": error}),
        "isBase64Encoded": False,
    }


def resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # All refused before routing: nothing this large, of another type or undecodable is parsed, validated or logged.
    raw = body.raw_body(event)
    # The OpenAI-compatible route answers in OpenAI's shape, this one included (imagegen.api.openai.read_body).
    if (
        raw
        and not body.json_or_unlabelled(header(event.get("headers"), "content-type"))
        and event.get("path") != openai.PATH
    ):
        # Every body this API reads is JSON; Powertools would try forms and multipart (and fail on a bad boundary).
        return _refused(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "body: this API reads JSON bodies only",
            "send Content-Type: application/json",
            hint="send the body as JSON with Content-Type: application/json",
        )
    if len(raw or b"") > MAX_BODY_BYTES:
        return _refused(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "payload_too_large",
            f"body: the request body is larger than {MAX_BODY_BYTES // 1024} KB",
            f"at most {MAX_BODY_BYTES} bytes",
        )
    try:
        body.body_text(event)
    except body.BodyNotUtf8:
        # API Gateway passes every body on base64-encoded (BinaryMediaTypes */*), bytes as the client sent them.
        return _refused(
            HTTPStatus.BAD_REQUEST,
            "invalid_json",
            "body: the request body is not valid JSON: its bytes are not UTF-8",
            "not UTF-8 encoded JSON",
            hint="send JSON encoded as UTF-8 with Content-Type: application/json",
        )
    return app.resolve(event, context)
