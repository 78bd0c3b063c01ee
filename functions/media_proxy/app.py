"""MediaProxy λ: GET /v1/media?url= answers an allowed signed media URL inline or with a 302 to an S3 copy."""

import os
from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from imagegen.http_errors import register_error_handlers
from imagegen.media import MediaProxy
from imagegen.media_api import MediaProxySettings, build_media_proxy, media_response

logger = Logger()
tracer = Tracer()
app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)


@cache
def media_proxy() -> MediaProxy:
    return build_media_proxy(MediaProxySettings.from_environ(os.environ))


# No response capture: the body is the image and the Location a presigned URL, neither belongs in a trace.
@app.get("/v1/media")
@tracer.capture_method(capture_response=False)
def get_media(url: Annotated[str, Query(min_length=1, max_length=8192)]) -> Response[str]:
    return media_response(media_proxy().get(url))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
