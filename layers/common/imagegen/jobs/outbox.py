"""The outbox: every side effect of a state change is written as a record in the same conditional write as the
change itself, performed right after it, and performed again by the sweeper until it is marked done.

A job's end has side effects (its quota unit back, its batch told, its webhook queued); so does a webhook attempt
that failed (the next attempt queued) and a redelivery on request. Each is an outbox item written in the
transaction that ends the job (or records the attempt), so an SQS or DynamoDB error right after the write cannot
lose it: the item stays until its effect succeeded, and the sweeper re-dispatches items older than a minute. Every
effect is idempotent (a refund once, a batch settled by set, a delivery created if absent, a duplicate webhook
message dropped by the attempt counter), so dispatching an item twice does nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from imagegen.clock import utcnow

logger = logging.getLogger(__name__)

OutboxKind = Literal["job_ended", "webhook_send"]
# The sweeper re-dispatches items not marked done this long after they were written: by then the dispatch that
# followed the write has succeeded or failed.
STALE_AFTER = timedelta(seconds=60)


class OutboxItem(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: OutboxKind
    user_id: str
    created_at: datetime
    # job_ended: which job ended (its effects are read from the job itself, which no longer changes).
    job_id: str | None = None
    # webhook_send: which attempt of which delivery series to queue, and when it is due.
    event_id: str | None = None
    series: int = 0
    attempt: int = 1
    due_at: datetime | None = None

    @property
    def key(self) -> str:
        """Unique per effect: one item per job end, one per attempt of a delivery series."""
        if self.kind == "job_ended":
            return f"job#{self.job_id}"
        return f"send#{self.event_id}#{self.series}#{self.attempt}"

    @classmethod
    def job_ended(cls, user_id: str, job_id: str, now: datetime) -> OutboxItem:
        return cls(kind="job_ended", user_id=user_id, job_id=job_id, created_at=now)

    @classmethod
    def webhook_send(
        cls, user_id: str, event_id: str, *, series: int, attempt: int, due_at: datetime, now: datetime
    ) -> OutboxItem:
        return cls(
            kind="webhook_send",
            user_id=user_id,
            event_id=event_id,
            series=series,
            attempt=attempt,
            due_at=due_at,
            created_at=now,
        )


class OutboxStore(Protocol):
    def stale(self, written_before: datetime, limit: int) -> list[OutboxItem]:
        """Items written before `written_before` and not marked done, oldest first."""
        ...

    def done(self, item: OutboxItem) -> None: ...


Effect = Callable[[OutboxItem], None]


@dataclass
class OutboxReport:
    stale: int = 0
    done: int = 0
    failed: int = 0


class Outbox:
    """Performs outbox items: right after the write that recorded them (dispatch), and from the sweeper (redispatch)."""

    def __init__(
        self,
        store: OutboxStore,
        effects: Mapping[str, Effect] | None = None,
        *,
        stale_after: timedelta = STALE_AFTER,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._effects = dict(effects or {})
        self._stale_after = stale_after
        self._clock = clock

    def on(self, kind: OutboxKind, effect: Effect) -> None:
        """Set the effect of one kind of item (effects that dispatch items of their own are made after the outbox)."""
        self._effects[kind] = effect

    def dispatch(self, item: OutboxItem) -> bool:
        """Perform the item's effect and mark it done; False (logged, never raised) when the effect failed: the item
        stays for the sweeper, and the write that recorded it stands."""
        effect = self._effects.get(item.kind)
        if effect is None:
            logger.error("no effect for outbox items of kind %s here; %s left for the sweeper", item.kind, item.key)
            return False
        try:
            effect(item)
            self._store.done(item)
        except Exception:
            logger.exception("outbox item %s of %s not done yet; the sweeper will retry it", item.key, item.user_id)
            return False
        return True

    def redispatch_stale(self, limit: int) -> OutboxReport:
        """Items older than `stale_after` (a minute) that are not done: their dispatch failed, or its process died."""
        report = OutboxReport()
        for item in self._store.stale(self._clock() - self._stale_after, limit):
            report.stale += 1
            if self.dispatch(item):
                report.done += 1
            else:
                report.failed += 1
        if report.stale:
            logger.warning(
                "outbox: %d stale items, %d done now, %d still failing", report.stale, report.done, report.failed
            )
        return report
