"""The MediaProxy function's resolver: GET /v1/media?url= answered inline or with a 302 to an S3 copy."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagegen import wiring
from imagegen.api import errors
from imagegen.media import InlineMedia, MediaAnswer

app = APIGatewayRestResolver(enable_validation=True)


@app.get(
    "/v1/media",
    summary="Fetch an image or video from an allowed signed storage URL, without adding auth",
    responses={
        200: {"description": "the media itself (up to the inline limit)"},
        302: {"description": "redirect to a short-lived copy in our storage (larger media)"},
        410: {"description": "the signed link has expired: regenerate the image"},
    },
)
def get_media(
    url: Annotated[str, Query(min_length=1, max_length=8192, description="the signed URL, percent-encoded")],
) -> Response[str]:
    return media_response(wiring.media_proxy().get(url))


def media_response(answer: MediaAnswer) -> Response[str]:
    if isinstance(answer, InlineMedia):
        response = Response(
            status_code=200,
            content_type=answer.content_type,
            body=base64.b64encode(answer.data).decode("ascii"),
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )
        # Encoded here rather than by Powertools (which does so for a bytes body): with validation enabled it
        # would first try to serialize the bytes as UTF-8 text.
        response.base64_encoded = True
        return response
    # The presigned URL is short-lived: nobody may keep the redirect.
    return Response(status_code=302, headers={"Location": answer.location, "Cache-Control": "no-store"}, body="")


errors.register(app)


def resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
