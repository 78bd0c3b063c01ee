"""Creating, reading, waiting on, canceling and retrying jobs: what the API routes call."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from imagegen.adapters.job_store import JobStore
from imagegen.errors import BadRequest, Conflict, ImagegenError
from imagegen.ids import new_id
from imagegen.jobs.outbox import Outbox, OutboxItem
from imagegen.jobs.quota import QuotaFull, Quotas
from imagegen.messages import CancelMessage, GenerateMessage, Queue
from imagegen.models import ImageRequest, Job, JobPage, JobRecord, utcnow

logger = logging.getLogger(__name__)

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# Long-poll reads: every 50 ms for the first second (quick jobs are seen at once), then backing off to 500 ms
# (a slow job costs a few reads a second, not twenty).
WAIT_POLL_FIRST_SECONDS = 0.05
WAIT_POLL_FAST_FOR_SECONDS = 1.0
WAIT_POLL_MAX_SECONDS = 0.5


class Presigner(Protocol):
    def presigned_url(self, key: str, expires_in: int) -> str: ...

    def read(self, key: str) -> tuple[bytes, str]:
        """The stored image's bytes and content type."""
        ...


UrlCheck = Callable[[str, str], None]
"""(url, field name) -> None, or raises UrlNotAllowed naming the field: the SSRF check for webhook URLs."""


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest(
            "Idempotency-Key must be 1-255 printable ASCII characters without spaces",
            details={"field": "Idempotency-Key"},
        )


def request_hash(request: ImageRequest) -> str:
    canonical = json.dumps(request.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class JobService:
    def __init__(
        self,
        store: JobStore,
        queue: Queue,
        images: Presigner,
        *,
        content_url_seconds: int = 300,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        outbox: Outbox | None = None,
        url_check: UrlCheck | None = None,
        quota: Quotas | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._images = images
        self._content_url_seconds = content_url_seconds
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._outbox = outbox
        self._url_check = url_check
        self._quota = quota

    def check_webhook_url(self, url: str | None, field: str) -> None:
        if url is not None and self._url_check is not None:
            self._url_check(url, field)

    def create(self, user_id: str, request: ImageRequest, idempotency_key: str | None = None) -> tuple[Job, bool]:
        check_idempotency_key(idempotency_key)
        self.check_webhook_url(request.webhook_url, "webhook_url")
        digest = request_hash(request)
        day, charges = self._quota.charges(1) if self._quota is not None else (None, [])
        if charges and idempotency_key is not None:
            # A replay returns the first job without touching the quota (even when the quota is used up).
            replayed = self._store.find_replay(user_id, idempotency_key, digest)
            if replayed is not None:
                return replayed.public(), False
        record = JobRecord(
            id=new_id("img"),
            status="queued",
            request=request,
            user_id=user_id,
            created_at=self._clock(),
            request_hash=digest,
            quota_day=day,
        )
        try:
            # The job, its idempotency marker and its quota units are one write: a create that loses a race with
            # its own retry gets that job back (even at the quota's limit), and a refused one leaves nothing.
            stored, created = self._store.create(record, idempotency_key, charges)
        except QuotaFull as full:
            raise self._refused(full) from None
        if created:
            self._enqueue(stored)
        return stored.public(), created

    def _refused(self, full: QuotaFull) -> ImagegenError:
        assert self._quota is not None  # a charge was only made with quotas on
        return self._quota.refused(full.charge)

    def _enqueue(self, job: JobRecord) -> None:
        # The job is already durable; if SQS refuses, the sweeper re-enqueues jobs left queued too long.
        try:
            self._queue.send(GenerateMessage(user_id=job.user_id, job_id=job.id))
        except Exception:
            logger.exception("could not enqueue job %s; the sweeper will pick it up", job.id)

    def get(self, user_id: str, job_id: str) -> Job:
        return self._store.get(user_id, job_id).public()

    def wait(self, user_id: str, job_id: str, seconds: float) -> Job:
        """The job once it is terminal, or as it is after `seconds`."""
        started = self._monotonic()
        deadline = started + seconds
        pause = WAIT_POLL_FIRST_SECONDS
        job = self.get(user_id, job_id)
        while not job.terminal and self._monotonic() + pause <= deadline:
            self._sleep(pause)
            if self._monotonic() - started >= WAIT_POLL_FAST_FOR_SECONDS:
                pause = min(pause * 2, WAIT_POLL_MAX_SECONDS)
            job = self.get(user_id, job_id)
        return job

    def list(self, user_id: str, limit: int, cursor: str | None) -> JobPage:
        return self._store.list(user_id, limit, cursor)

    def content_url(self, user_id: str, job_id: str, expires_in: int | None = None) -> str:
        key = self._image_key(user_id, job_id)
        return self._images.presigned_url(key, expires_in or self._content_url_seconds)

    def content(self, user_id: str, job_id: str) -> tuple[bytes, str]:
        """The image's bytes and content type (the OpenAI-compatible route answers them inline)."""
        return self._images.read(self._image_key(user_id, job_id))

    def _image_key(self, user_id: str, job_id: str) -> str:
        job = self._store.get(user_id, job_id)
        if job.status != "succeeded" or not job.image_key:
            raise Conflict(
                f"job {job_id} is {job.status}; its image is available once it has succeeded",
                hint="poll GET /v1/images/{id} until status is succeeded",
            )
        return job.image_key

    def cancel(self, user_id: str, job_id: str) -> Job:
        job, changed = self._store.cancel_changed(user_id, job_id, now=self._clock())
        if changed and self._outbox is not None:
            # The job's end was written with its outbox item: a failure here leaves the item for the sweeper.
            self._outbox.dispatch(OutboxItem.job_ended(user_id, job_id, self._clock()))
        if job.chain_state:
            # A provider may still be working on it (async); the worker cancels the remote request.
            try:
                self._queue.send(CancelMessage(user_id=user_id, job_id=job_id))
            except Exception:
                logger.exception("could not queue remote cancel for job %s", job_id)
        return job.public()

    def retry(self, user_id: str, job_id: str) -> Job:
        job = self._store.get(user_id, job_id)
        if not job.terminal:
            raise Conflict(f"job {job_id} is {job.status}; only a finished job can be retried")
        new, _ = self.create(user_id, job.request)
        return new
