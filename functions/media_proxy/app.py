"""MediaProxy function: GET /v1/media?url= fetches an allowed signed media URL without adding auth."""

import gc

gc.disable()  # loading makes long-lived objects only: no collection until they are frozen below (cold start)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from imagegen.api.media_proxy import resolve

logger = Logger()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(event, context)


gc.freeze()  # what was loaded stays out of every later collection (docs/architecture.md, "Cold start")
gc.enable()
