"""The per-user daily image quota: reserve a unit per job, refund it exactly once if the job fails or is canceled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Protocol

from imagegen.errors import QuotaExceeded
from imagegen.models import JobRecord, utcnow

logger = logging.getLogger(__name__)

REFUNDED_STATUSES = frozenset({"failed", "canceled"})


class QuotaStore(Protocol):
    def reserve(self, user_id: str, day: str, limit: int, *, units: int, expires_at: datetime) -> bool:
        """Take `units` of `day` if that keeps the total within `limit` (atomically); False when they do not fit."""
        ...

    def release(self, user_id: str, day: str, *, units: int) -> None:
        """Give back units that no job holds (the create that reserved them failed or lost a race)."""
        ...

    def refund_once(self, user_id: str, job_id: str, day: str, *, now: datetime) -> bool:
        """Give back the unit a job holds, unless that job was refunded before; True if this call refunded."""
        ...


def quota_day(now: datetime) -> str:
    return now.date().isoformat()


def next_reset(now: datetime) -> datetime:
    """Quotas reset at 00:00 UTC."""
    return datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=now.tzinfo)


class DailyQuota:
    def __init__(self, store: QuotaStore, daily_limit: int, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._limit = daily_limit
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._limit > 0

    def reserve(self, user_id: str, units: int = 1) -> str | None:
        """The day the units were taken from, None when quotas are off; 429 `quota_exceeded` when they do not fit
        (a batch takes one unit per image, all or none)."""
        if not self.enabled:
            return None
        now = self._clock()
        day, resets = quota_day(now), next_reset(now)
        # Counters outlive their day a little, for support questions, then DynamoDB's TTL removes them.
        expires_at = resets + timedelta(days=2)
        if units <= self._limit and self._store.reserve(user_id, day, self._limit, units=units, expires_at=expires_at):
            return day
        retry_after = max(1, int((resets - now).total_seconds()))
        details: dict[str, object] = {"limit": self._limit, "resets_at": resets.isoformat()}
        if units == 1:
            message = f"daily image quota of {self._limit} used up; it resets at {resets.isoformat()}"
        else:
            message = f"daily image quota of {self._limit} has no room for {units} more images; it resets at " + (
                resets.isoformat()
            )
            details["requested"] = units
        raise QuotaExceeded(
            message,
            hint="try again after the reset",
            details=details,
            headers={"Retry-After": str(retry_after)},
        )

    def release(self, user_id: str, day: str | None, units: int = 1) -> None:
        if day is not None:
            self._store.release(user_id, day, units=units)


class QuotaRefunds:
    """A terminal-job listener (Worker `on_terminal`, JobService.cancel, the sweeper): failed and canceled jobs
    give their unit back, once, however often the terminal state is reported."""

    def __init__(self, store: QuotaStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock

    def __call__(self, job: JobRecord) -> None:
        if job.status not in REFUNDED_STATUSES or job.quota_day is None:
            return
        if self._store.refund_once(job.user_id, job.id, job.quota_day, now=self._clock()):
            logger.info("quota unit of job %s refunded (%s)", job.id, job.status)
