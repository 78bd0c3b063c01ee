"""Authorizer function: resolves `Authorization: Bearer <token>` to a user id for API Gateway."""

import gc

gc.disable()  # loading makes long-lived objects only: no collection until they are frozen below (cold start)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from imagegen import wiring
from imagegen.auth import authorize

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize(event, wiring.token_store())


gc.freeze()  # what was loaded stays out of every later collection (docs/architecture.md, "Cold start")
gc.enable()
