"""OpenAi function: POST /v1/images/generations on a Lambda function URL, where a generation may take minutes."""

import gc

gc.disable()  # loading makes long-lived objects only: no collection until they are frozen below (cold start)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from imagegen.api import openai_url

logger = Logger()
# Validated at cold start: a bad setting stops the function here, with its name, rather than on a request.
openai_url.settings()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return openai_url.handle(event)


gc.freeze()  # what was loaded stays out of every later collection (docs/architecture.md, "Cold start")
gc.enable()
