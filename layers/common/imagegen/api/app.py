"""The API resolver: routers, error mapping, OpenAPI, and the request-size guard."""

from __future__ import annotations

import base64
import json
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aws_lambda_powertools.event_handler as event_handler
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagegen import __version__
from imagegen.api import batches, errors, images, keys, web, webhooks

MAX_BODY_BYTES = 64 * 1024

app = APIGatewayRestResolver(enable_validation=True)
app.include_router(images.router)
app.include_router(batches.router)
app.include_router(webhooks.router)
app.include_router(keys.router)
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

    document = json.loads(
        app.get_openapi_json_schema(
            title="imagegen",
            version=__version__,
            description=DESCRIPTION,
            security_schemes={"bearer": HTTPBearer(description="An imagegen API token")},
            security=[{"bearer": []}],
        )
    )
    # Powertools leaves out an empty per-route `security`, which would make the public routes inherit bearer auth.
    for path in PUBLIC_PATHS:
        for operation in document["paths"].get(path, {}).values():
            operation["security"] = []
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


def _body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(base64.b64decode(body, validate=False))
    return len(body.encode())


def resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if _body_size(event) > MAX_BODY_BYTES:
        # Refused before routing: nothing this large is parsed, validated or logged.
        body = {
            "error": {
                "code": "payload_too_large",
                "message": f"body: the request body is larger than {MAX_BODY_BYTES // 1024} KB",
                "details": [{"field": "body", "message": f"at most {MAX_BODY_BYTES} bytes"}],
            }
        }
        return {
            "statusCode": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "headers": {"Content-Type": content_types.APPLICATION_JSON},
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)
