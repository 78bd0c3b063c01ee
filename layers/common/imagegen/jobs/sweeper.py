"""The stuck-job sweeper: re-queue jobs whose work vanished, fail those that keep vanishing, so every job ends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from imagegen.adapters.active_jobs import ActiveJobs
from imagegen.jobs.outbox import Outbox, OutboxItem, OutboxReport
from imagegen.messages import CheckMessage, GenerateMessage, Queue, QueueUnavailable
from imagegen.models import ErrorInfo, JobRecord, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepConfig:
    max_receive_count: int
    queued_requeue_seconds: int
    max_jobs: int
    # The hard stop: a job not finished this long after it was created is failed by the next sweep, whatever its
    # counters say and even under a live lease. It is what makes "every job ends" one stated bound.
    max_age_seconds: int = 3600


@dataclass
class SweepReport:
    examined: int = 0
    requeued: int = 0
    failed: int = 0
    send_errors: int = 0


class Sweeper:
    def __init__(
        self,
        store: ActiveJobs,
        queue: Queue,
        config: SweepConfig,
        *,
        outbox: Outbox | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._queue = queue
        self._config = config
        self._outbox = outbox
        self._clock = clock

    def sweep(self) -> SweepReport:
        now = self._clock()
        report = SweepReport()
        for job in self._store.due_active(now, self._config.max_jobs):
            report.examined += 1
            verdict = self._verdict(job, now)
            if verdict == "wait":
                continue
            if verdict == "requeue":
                self._requeue(job, now, report)
            else:
                self._fail(job, verdict, now, report)
        # Leased or parked jobs are few (at most the worker concurrency plus async waits): read them all, fail the
        # ones past the maximum age. Their workers' results are discarded, as after a cancel.
        cutoff = now - timedelta(seconds=self._config.max_age_seconds)
        for job in self._store.leased_active(now, self._config.max_jobs):
            if job.status == "running" and job.lease_token is not None and job.created_at <= cutoff:
                report.examined += 1
                self._fail(job, self._too_old(job, now), now, report, even_if_leased=True)
        return report

    def _waiting(self, job: JobRecord, now: datetime) -> bool:
        """A job waiting for a provider to reopen is not stuck while its delayed message can still come."""
        grace = timedelta(seconds=self._config.queued_requeue_seconds)
        return job.waiting is not None and now < job.waiting.until + grace

    @staticmethod
    def _too_old(job: JobRecord, now: datetime) -> str:
        return f"it was still {job.status} {int((now - job.created_at).total_seconds())} s after it was created"

    def _verdict(self, job: JobRecord, now: datetime) -> str:
        """'wait', 'requeue', or the reason the job is failed as stuck."""
        limit = self._config.max_receive_count
        age = now - job.created_at
        too_old = age >= timedelta(seconds=self._config.max_age_seconds)
        old = self._too_old(job, now)
        if job.status == "queued":
            if too_old:
                return old
            if age < timedelta(seconds=self._config.queued_requeue_seconds) or self._waiting(job, now):
                return "wait"
            if job.requeues >= limit:
                return f"it stayed queued; it was re-queued {job.requeues} times and no worker took it"
            return "requeue"
        if job.status != "running" or job.lease_token is None or (job.lease_until and job.lease_until > now):
            return "wait"
        if too_old:
            return old
        # A job an async provider left pending counts a delivery per status check, so for it only the
        # sweeper's own re-queues say that its work keeps vanishing.
        if job.deliveries >= limit and not job.chain_state:
            return f"the worker stopped without finishing it on each of {job.deliveries} deliveries"
        if job.requeues >= limit:
            return f"its work vanished again after {job.requeues} re-queues"
        return "requeue"

    def _requeue(self, job: JobRecord, now: datetime, report: SweepReport) -> None:
        if not self._store.mark_requeued(job, now=now):
            return  # a worker or a cancel moved it on since it was read
        message: CheckMessage | GenerateMessage
        if job.status == "running" and job.chain_state and job.lease_token:
            # Pending at an async provider: resume the remote request instead of starting a second one.
            message = CheckMessage(user_id=job.user_id, job_id=job.id, check_token=job.lease_token)
        else:
            # The worker's claim is conditional, so a duplicate of a message still in flight is harmless.
            message = GenerateMessage(user_id=job.user_id, job_id=job.id)
        try:
            self._queue.send(message)
        except QueueUnavailable:
            # Counted as a re-queue all the same: a queue that keeps refusing still ends the job within the bound.
            logger.exception("could not re-queue job %s; the next sweep tries again", job.id)
            report.send_errors += 1
            return
        logger.info("re-queued %s job %s (%s)", job.status, job.id, message.kind)
        report.requeued += 1

    def _fail(
        self, job: JobRecord, reason: str, now: datetime, report: SweepReport, *, even_if_leased: bool = False
    ) -> None:
        error = ErrorInfo(
            code="stuck",
            message=f"the job did not finish: {reason}",
            hint=f"retry it with POST /v1/images/{job.id}/retry",
        )
        ended = OutboxItem.job_ended(job.user_id, job.id, now)
        failed = self._store.fail_stuck(job, error, now=now, ended=ended, even_if_leased=even_if_leased)
        if failed is None:
            return
        logger.warning("failed stuck job %s: %s", job.id, reason)
        report.failed += 1
        if self._outbox is not None:
            self._outbox.dispatch(ended)

    def redispatch_outbox(self) -> OutboxReport:
        """Outbox items older than a minute that are not done (an SQS or DynamoDB error right after the write that
        recorded them, or a process that died there): their effects again, at most `max_jobs` of them per run."""
        if self._outbox is None:
            return OutboxReport()
        return self._outbox.redispatch_stale(self._config.max_jobs)
