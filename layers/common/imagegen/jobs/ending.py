"""What happens when a job ends: the `job_ended` outbox item's effect, in the API (cancel), the worker and the sweeper
alike. The effects are read from the job itself, which no longer changes once it ended."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from imagegen.errors import NotFound
from imagegen.jobs.outbox import OutboxItem
from imagegen.jobs.quota import REFUNDED_STATUSES
from imagegen.models import JobRecord

logger = logging.getLogger(__name__)

JobEffect = Callable[[JobRecord], None]


class JobReader(Protocol):
    def get(self, user_id: str, job_id: str) -> JobRecord: ...


def has_side_effects(job: JobRecord) -> bool:
    """Whether a job's end needs an outbox item: a webhook, a batch to tell, or a quota unit to give back."""
    refund = job.status in REFUNDED_STATUSES and job.quota_day is not None
    return job.request.webhook_url is not None or job.batch_id is not None or refund


class JobEnded:
    """Performs a job's end effects in order (quota refund, batch, webhook), each idempotent. Every effect is tried
    even if an earlier one failed; then the first failure is raised, so the item stays for the sweeper."""

    def __init__(self, jobs: JobReader, effects: Sequence[JobEffect]) -> None:
        self._jobs = jobs
        self._effects = list(effects)

    def __call__(self, item: OutboxItem) -> None:
        if item.job_id is None:
            raise ValueError("a job_ended item names its job")
        try:
            job = self._jobs.get(item.user_id, item.job_id)
        except NotFound:
            logger.warning("job %s is no longer stored; its end has nothing left to do", item.job_id)
            return
        failures: list[Exception] = []
        for effect in self._effects:
            try:
                effect(job)
            except Exception as error:
                logger.exception("an effect of job %s's end failed; it is tried again later", job.id)
                failures.append(error)
        if failures:
            raise failures[0]
