"""Per-user limits on images: a daily quota and a per-minute rate, each a counter charged in the same transaction
that writes the jobs (all or nothing); a failed or canceled job gives its daily unit back, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal, Protocol

from imagegen.errors import ImagegenError, QuotaExceeded, RateLimited
from imagegen.models import JobRecord, utcnow

logger = logging.getLogger(__name__)

REFUNDED_STATUSES = frozenset({"failed", "canceled"})


@dataclass(frozen=True)
class QuotaCharge:
    """`units` taken from one of a user's counters (`pk=USER#{user}`, `sk=counter`), only if that keeps it within
    `limit`: written by the job and batch stores in the transaction that writes the jobs."""

    counter: str
    units: int
    limit: int
    resets_at: datetime
    window: Literal["day", "minute"]

    @property
    def expires_at(self) -> datetime:
        # Counters outlive their window a little, for support questions, then DynamoDB's TTL removes them.
        return self.resets_at + timedelta(days=2)


class QuotaFull(Exception):
    """A create's transaction was refused because `charge` did not fit; nothing was written."""

    def __init__(self, charge: QuotaCharge) -> None:
        super().__init__(charge.counter)
        self.charge = charge


class QuotaStore(Protocol):
    def refund_once(self, user_id: str, job_id: str, day: str, *, now: datetime, units: int = 1) -> bool:
        """Give back the units a job holds, unless that job was refunded before; True if this call refunded."""
        ...


def quota_day(now: datetime) -> str:
    return now.date().isoformat()


def next_reset(now: datetime) -> datetime:
    """Quotas reset at 00:00 UTC."""
    return datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=now.tzinfo)


class Quotas:
    """What a create charges: `daily_limit` images per UTC day and `per_minute_limit` per minute (0: off)."""

    def __init__(self, daily_limit: int, per_minute_limit: int = 0, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._daily = daily_limit
        self._per_minute = per_minute_limit
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """Whether the daily quota is on (the unit a job holds is then refunded when it fails)."""
        return self._daily > 0

    def charges(self, units: int, requests: int | None = None) -> tuple[str | None, list[QuotaCharge]]:
        """The day the units come from (None when the daily quota is off) and the counters to charge: `units` from the
        daily quota, `requests` (default: as many as units) from the per-minute limit. A video takes
        VIDEO_QUOTA_UNITS from the day and one from the minute: the minute bounds how fast a user sends requests to
        providers, and a video is one request. Units that could never fit are refused at once (429), before anything
        is written."""
        now = self._clock()
        charges: list[QuotaCharge] = []
        day = None
        if self._daily > 0:
            day = quota_day(now)
            charges.append(QuotaCharge(f"QUOTA#{day}", units, self._daily, next_reset(now), "day"))
        if self._per_minute > 0:
            minute = now.replace(second=0, microsecond=0)
            counter = f"RATE#{minute.isoformat(timespec='minutes')}"
            per_minute = units if requests is None else requests
            charges.append(QuotaCharge(counter, per_minute, self._per_minute, minute + timedelta(minutes=1), "minute"))
        for charge in charges:
            if units > charge.limit:
                raise self.refused(charge)
        return day, charges

    def refused(self, charge: QuotaCharge) -> ImagegenError:
        """The 429 for a charge that did not fit: `quota_exceeded` for the day, `rate_limited` for the minute."""
        now = self._clock()
        retry_after = max(1, int((charge.resets_at - now).total_seconds()))
        details: dict[str, object] = {"limit": charge.limit, "resets_at": charge.resets_at.isoformat()}
        if charge.units > 1:
            details["requested"] = charge.units
        headers = {"Retry-After": str(retry_after)}
        if charge.window == "minute":
            details["window"] = "minute"
            return RateLimited(
                f"at most {charge.limit} images a minute; try again in {retry_after} s",
                hint="spread requests out, or ask the operator for a higher per-minute limit",
                details=details,
                headers=headers,
            )
        resets = charge.resets_at.isoformat()
        if charge.units == 1:
            message = f"daily image quota of {charge.limit} used up; it resets at {resets}"
        else:
            message = f"daily image quota of {charge.limit} has no room for {charge.units} more images; it resets at "
            message += resets
        return QuotaExceeded(message, hint="try again after the reset", details=details, headers=headers)


class QuotaRefunds:
    """A job-end effect (imagegen.jobs.outbox): failed and canceled jobs give their units back (a video's
    VIDEO_QUOTA_UNITS, as charged), once, however often the job's end is dispatched."""

    def __init__(self, store: QuotaStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock

    def __call__(self, job: JobRecord) -> None:
        if job.status not in REFUNDED_STATUSES or job.quota_day is None:
            return
        if self._store.refund_once(job.user_id, job.id, job.quota_day, now=self._clock(), units=job.quota_units):
            logger.info("%d quota unit(s) of job %s refunded (%s)", job.quota_units, job.id, job.status)
