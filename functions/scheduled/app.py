"""Scheduled function (EventBridge): sweep stuck jobs, then check deployment and user keys."""

import gc

gc.disable()  # loading makes long-lived objects only: no collection until they are frozen below (cold start)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from imagegen import wiring

logger = Logger()
# Seconds left unused at the end of a run, so a run never meets the function timeout mid-write.
SAFETY_MARGIN_SECONDS = 10


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    budget = context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
    return wiring.scheduled_run().run(budget_seconds=max(0.0, budget))


gc.freeze()  # what was loaded stays out of every later collection (docs/architecture.md, "Cold start")
gc.enable()
