"""One run of the scheduled function: sweep stuck jobs first, then check keys until the run's budget is spent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from imagegen.catalogs import RouteMaps
from imagegen.jobs.sweeper import Sweeper
from imagegen.keys.health import HealthService, UserKeyScan
from imagegen.keys.types import DeploymentKeys

logger = logging.getLogger(__name__)

# Catalog reads per run (Hugging Face's provider mappings): one GET or two each, so a run stays short.
CATALOG_FETCHES_PER_RUN = 20


class RunMetrics(Protocol):
    def count(self, name: str, value: int) -> None: ...


class ScheduledRun:
    def __init__(
        self,
        sweeper: Sweeper,
        health: HealthService,
        deployment_keys: DeploymentKeys,
        user_keys: UserKeyScan,
        metrics: RunMetrics,
        *,
        max_key_checks: int,
        check_timeout_seconds: float,
        catalogs: RouteMaps | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sweeper = sweeper
        self._health = health
        self._deployment_keys = deployment_keys
        self._user_keys = user_keys
        self._metrics = metrics
        self._max_key_checks = max_key_checks
        self._check_timeout = check_timeout_seconds
        self._catalogs = catalogs
        self._monotonic = monotonic

    def run(self, budget_seconds: float) -> dict[str, Any]:
        """Sweep, then check keys; stops checking when `budget_seconds` are used. Returns counts, nothing secret."""
        # A check started just before the deadline may run for its whole timeout: stop starting them in time.
        deadline = self._monotonic() + budget_seconds - self._check_timeout
        # The sweep goes first: it is what bounds how long a client can wait for a job.
        sweep = self._sweeper.sweep()
        outbox = self._sweeper.redispatch_outbox()
        checks = self._health.run_checks(
            self._deployment_keys,
            self._user_keys,
            max_checks=self._max_key_checks,
            deadline=deadline,
            monotonic=self._monotonic,
        )
        # Then the routing catalogs, with what is left: a stale one only slows the first job that needs it.
        catalogs = (
            self._catalogs.refresh_due(deadline=deadline, max_fetches=CATALOG_FETCHES_PER_RUN)
            if self._catalogs is not None
            else None
        )
        errors = checks.errors + sweep.send_errors + outbox.failed + (catalogs.failed if catalogs else 0)
        for name, value in (
            ("JobsRequeued", sweep.requeued),
            ("JobsFailedStuck", sweep.failed),
            ("OutboxRedispatched", outbox.done),
            ("ScheduledErrors", errors),
        ):
            self._metrics.count(name, value)
        report = {
            "sweep": asdict(sweep),
            "outbox": asdict(outbox),
            "keys": asdict(checks),
            "catalogs": asdict(catalogs) if catalogs else None,
        }
        logger.info("scheduled run done: %s", report)
        return report
