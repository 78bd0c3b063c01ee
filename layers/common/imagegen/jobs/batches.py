"""Batches: many image jobs from one request, run in parallel, read, retried and canceled as one."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from imagegen.adapters.batch_store import BatchRaced, BatchStore
from imagegen.adapters.job_store import JobStore
from imagegen.errors import Conflict, ImagegenError, ValidationFailed
from imagegen.ids import new_id
from imagegen.jobs.batch_models import Batch, BatchCreate, BatchItem, BatchRecord, BatchStatus, StatusCounts
from imagegen.jobs.quota import QuotaFull, Quotas
from imagegen.jobs.service import IMAGE_JOBS, JobService, check_idempotency_key, request_hash
from imagegen.messages import GenerateMessage, Queue, QueueUnavailable
from imagegen.models import ErrorInfo, ImageRequest, Job, JobRecord, utcnow

if TYPE_CHECKING:
    from imagegen.webhooks.deliveries import Delivery

logger = logging.getLogger(__name__)


class BatchEvents(Protocol):
    """Builds a batch's webhook delivery, and queues its first attempt (imagegen.webhooks.events.WebhookEvents)."""

    def batch_delivery(self, batch: Batch, record: BatchRecord) -> Delivery: ...

    def send_first(self, delivery: Delivery) -> None: ...


# ---------------------------------------------------------------------------------------------------------------
# Validation: each item is the defaults merged with its overrides, validated as a whole image request.


def item_requests(body: BatchCreate) -> list[ImageRequest]:
    """One ImageRequest per item; every bad field of every item is reported at once (422), or none is created.

    A field that is wrong because of `defaults` is named once as `defaults.<field>`, not once per item;
    a field an item set (or that is missing from both) is named `items.<index>.<field>`.
    """
    requests: list[ImageRequest] = []
    problems: list[dict[str, str]] = []
    seen: set[str] = set()
    # The defaults are checked on their own first (index None): a bad default is refused even if every item sets it.
    own: tuple[int | None, dict[str, Any]] = (None, {} if "prompt" in body.defaults else {"prompt": "-"})
    for index, overrides in [own, *enumerate(body.items)]:
        try:
            request = ImageRequest.model_validate({**body.defaults, **overrides})
        except ValidationError as error:
            for problem in error.errors():
                loc = [str(part) for part in problem.get("loc", ())]
                top = loc[0] if loc else ""
                from_defaults = top in body.defaults and top not in overrides
                field = ".".join(["defaults", *loc] if from_defaults else ["items", str(index), *loc])
                if field in seen:
                    continue
                seen.add(field)
                message = "unknown field" if problem.get("type") == "extra_forbidden" else str(problem.get("msg"))
                problems.append({"field": field, "message": message})
        else:
            if index is not None:
                requests.append(request)
    if problems:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        if len(problems) > 5:
            summary += f" (and {len(problems) - 5} more)"
        raise ValidationFailed(summary, details=problems)
    return requests


def batch_hash(requests: list[ImageRequest], webhook_url: str | None) -> str:
    """Same items, same order, same webhook: the same batch, however the body spelled its defaults."""
    canonical = json.dumps({"items": [request_hash(r) for r in requests], "webhook_url": webhook_url})
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# The batch as a client sees it, built from the record and its jobs.


def batch_status(counts: StatusCounts, total: int) -> BatchStatus:
    """running until every item is terminal; then succeeded (all), canceled (all), failed (none succeeded),
    or partial (some succeeded, some did not)."""
    if counts.queued or counts.running:
        return "running"
    if counts.succeeded == total:
        return "succeeded"
    if counts.canceled == total:
        return "canceled"
    if counts.succeeded == 0:
        return "failed"
    return "partial"


def _missing(job_id: str, record: BatchRecord) -> Job:
    # Only reachable if a job item vanished (its TTL ran out before the batch's); say so instead of failing the read.
    return Job(
        id=job_id,
        status="failed",
        request=ImageRequest(prompt="(unavailable)"),
        batch_id=record.id,
        error=ErrorInfo(code="job_missing", message=f"job {job_id} is no longer stored"),
        created_at=record.created_at,
    )


def build_batch(record: BatchRecord, jobs: dict[str, JobRecord]) -> Batch:
    items = [
        BatchItem.of(index, IMAGE_JOBS.public(jobs[job_id]) if job_id in jobs else _missing(job_id, record))
        for index, job_id in enumerate(record.job_ids)
    ]
    tally: dict[str, int] = {}
    for item in items:
        tally[item.status] = tally.get(item.status, 0) + 1
    counts = StatusCounts(**tally)
    total = len(items)
    done = counts.succeeded + counts.failed + counts.canceled
    status = batch_status(counts, total)
    finished = [item.completed_at for item in items if item.completed_at is not None]
    return Batch(
        id=record.id,
        status=status,
        progress=f"{done}/{total}",
        total=total,
        counts=counts,
        items=items,
        webhook_url=record.webhook_url,
        retries=record.round,
        created_at=record.created_at,
        completed_at=max(finished) if status != "running" and finished else None,
    )


def _generate(job: JobRecord) -> GenerateMessage:
    return GenerateMessage(user_id=job.user_id, job_id=job.id)


class BatchService:
    def __init__(
        self,
        jobs: JobStore,
        batches: BatchStore,
        queue: Queue,
        job_service: JobService,
        *,
        clock: Callable[[], datetime] = utcnow,
        quota: Quotas | None = None,
    ) -> None:
        self._jobs = jobs
        self._batches = batches
        self._queue = queue
        self._job_service = job_service
        self._clock = clock
        self._quota = quota

    def create(self, user_id: str, body: BatchCreate, idempotency_key: str | None = None) -> tuple[Batch, bool]:
        check_idempotency_key(idempotency_key)
        requests = item_requests(body)
        digest = batch_hash(requests, body.webhook_url)
        if idempotency_key is not None:
            earlier = self._batches.find_replay(user_id, idempotency_key, digest)
            if earlier is not None:
                return self._view(earlier), False
        self._check_urls(body, requests)
        now = self._clock()
        batch_id = new_id("bat")
        # One quota unit per image, all or none, taken in the same write as the jobs.
        day, charges = self._quota.charges(len(requests)) if self._quota is not None else (None, [])
        records = [
            JobRecord(
                id=new_id("img"),
                status="queued",
                request=request,
                batch_id=batch_id,
                user_id=user_id,
                created_at=now,
                request_hash=request_hash(request),
                quota_day=day,
            )
            for request in requests
        ]
        record = BatchRecord(
            id=batch_id,
            user_id=user_id,
            job_ids=[job.id for job in records],
            webhook_url=body.webhook_url,
            created_at=now,
            request_hash=digest,
        )
        try:
            # The batch, its jobs, its idempotency marker and its quota units appear together or not at all: a
            # racing create that loses (same key, same or other body) leaves nothing behind.
            stored, created = self._batches.create(record, idempotency_key, records, charges)
        except QuotaFull as full:
            raise self._refused(full) from None
        if not created:
            return self._view(stored), False
        # Enqueued only once the batch exists, so no job can end before its batch does.
        self._enqueue(records)
        return build_batch(stored, {job.id: job for job in records}), True

    def _refused(self, full: QuotaFull) -> ImagegenError:
        assert self._quota is not None  # a charge was only made with quotas on
        return self._quota.refused(full.charge)

    def _check_urls(self, body: BatchCreate, requests: list[ImageRequest]) -> None:
        self._job_service.check_webhook_url(body.webhook_url, "webhook_url")
        checked: set[str] = set()
        for index, (overrides, request) in enumerate(zip(body.items, requests, strict=True)):
            url = request.webhook_url
            if url is None or url in checked:
                continue
            checked.add(url)
            field = f"items.{index}.webhook_url" if "webhook_url" in overrides else "defaults.webhook_url"
            self._job_service.check_webhook_url(url, field)

    def _enqueue(self, records: list[JobRecord]) -> None:
        # The jobs are durable already; if SQS refuses, the sweeper re-enqueues jobs left queued too long.
        try:
            self._queue.send_many([_generate(job) for job in records])
        except QueueUnavailable:
            logger.exception("could not enqueue %d batch jobs; the sweeper will pick them up", len(records))

    def get(self, user_id: str, batch_id: str) -> Batch:
        return self._view(self._batches.get(user_id, batch_id))

    def _view(self, record: BatchRecord) -> Batch:
        return build_batch(record, self._jobs.get_many(record.user_id, record.job_ids))

    def retry(self, user_id: str, batch_id: str) -> Batch:
        """New jobs for the failed items only; they take those items' places. Canceled items stay canceled."""
        record = self._batches.get(user_id, batch_id)
        jobs = self._jobs.get_many(user_id, record.job_ids)
        now = self._clock()
        replacements: dict[int, JobRecord] = {}
        for index, job_id in enumerate(record.job_ids):
            old = jobs.get(job_id)
            if old is not None and old.status == "failed":
                replacements[index] = JobRecord(
                    id=new_id("img"),
                    status="queued",
                    request=old.request,
                    batch_id=record.id,
                    user_id=user_id,
                    created_at=now,
                    request_hash=old.request_hash,
                )
        if not replacements:
            raise Conflict(
                f"batch {batch_id} has no failed items to retry",
                hint="only failed items are retried; canceled and succeeded items are left as they are",
            )
        new_ids = [replacements[i].id if i in replacements else job_id for i, job_id in enumerate(record.job_ids)]
        day, charges = self._quota.charges(len(replacements)) if self._quota is not None else (None, [])
        fresh = [job.model_copy(update={"quota_day": day}) for job in replacements.values()]
        try:
            updated = self._batches.replace_jobs(record, new_ids, fresh, charges)
        except BatchRaced as raced:
            raise Conflict(
                f"batch {batch_id} changed while it was being retried", hint="read the batch and retry again"
            ) from raced
        except QuotaFull as full:
            raise self._refused(full) from None
        self._enqueue(fresh)
        return build_batch(updated, {**jobs, **{job.id: job for job in fresh}})

    def cancel(self, user_id: str, batch_id: str) -> Batch:
        """Cancel every item that has not ended yet; ended items are left as they are (idempotent)."""
        record = self._batches.get(user_id, batch_id)
        jobs = self._jobs.get_many(user_id, record.job_ids)
        for job_id in record.job_ids:
            job = jobs.get(job_id)
            if job is None or job.terminal:
                continue
            try:
                self._job_service.cancel(user_id, job_id)
            except Conflict:
                # It ended on its own between our read and the cancel: that is the outcome we report.
                logger.info("batch %s: job %s ended before it could be canceled", batch_id, job_id)
        return self._view(record)


class BatchTracker:
    """A job-end effect (imagegen.jobs.outbox): records the job on its batch and, when that was the batch's last
    item, claims the round and records the batch's webhook delivery, once."""

    def __init__(self, batches: BatchStore, jobs: JobStore, events: BatchEvents | None = None) -> None:
        self._batches = batches
        self._jobs = jobs
        self._events = events

    def __call__(self, job: JobRecord) -> None:
        if job.batch_id is None:
            return
        record = self._batches.settle(job.user_id, job.batch_id, job.id)
        # A job that a retry replaced settles late without effect; a batch completes when all current items settled.
        if record is None or job.id not in record.job_ids or not record.complete:
            return
        if self._events is None or record.webhook_url is None or record.notified_round == record.round:
            return
        batch = build_batch(record, self._jobs.get_many(record.user_id, record.job_ids))
        delivery = self._events.batch_delivery(batch, record)
        # Several last items can race here (or one job's end be dispatched twice): one conditional write wins, and
        # it writes the delivery with the claim.
        if self._batches.claim_notification(record, delivery, delivery.first_send(delivery.created_at)):
            self._events.send_first(delivery)
