"""Creating, reading, waiting on, canceling and retrying jobs: what the API routes call."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from imagegen.adapters.job_store import JobStore
from imagegen.errors import BadRequest, Conflict, ImagegenError, NotFound
from imagegen.ids import new_id
from imagegen.jobs.outbox import Outbox, OutboxItem
from imagegen.jobs.quota import QuotaFull, Quotas
from imagegen.messages import CancelMessage, GenerateMessage, Queue, QueueUnavailable
from imagegen.models import ImageRequest, Job, JobKindName, JobRecord, VideoJob, VideoRequest, utcnow

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


R = TypeVar("R", ImageRequest, VideoRequest)
P = TypeVar("P", Job, VideoJob)


@dataclass(frozen=True)
class JobKind(Generic[R, P]):
    """What makes image jobs and video jobs differ for the service: ids, shapes, where the result is, what it costs."""

    name: JobKindName
    id_prefix: str
    noun: str
    path: str
    request_type: type[R]
    public_type: type[P]
    # The URLs in a request that are checked before it is accepted, each with the field it came from.
    urls: Callable[[R], list[tuple[str, str]]]

    def owns(self, job_id: str) -> None:
        """NotFound for an id of another kind: one kind's routes never touch the other's jobs."""
        if not job_id.startswith(f"{self.id_prefix}_"):
            raise NotFound(f"no {self.noun} job with id {job_id[:64]}")

    def public(self, record: JobRecord) -> P:
        self.owns(record.id)
        return self.public_type.model_validate(record.model_dump(include=set(self.public_type.model_fields)))

    def request_of(self, record: JobRecord) -> R:
        if not isinstance(record.request, self.request_type):
            raise NotFound(f"no {self.noun} job with id {record.id}")
        return record.request

    def result_key(self, record: JobRecord) -> str | None:
        return record.video_key if self.name == "video" else record.image_key


def _image_urls(request: ImageRequest) -> list[tuple[str, str]]:
    return [(request.webhook_url, "webhook_url")] if request.webhook_url else []


def _video_urls(request: VideoRequest) -> list[tuple[str, str]]:
    urls = [(request.webhook_url, "webhook_url")] if request.webhook_url else []
    # The input image's URL is passed on to the provider, who fetches it: refused here if it could reach anything
    # the safe fetcher refuses (plain http, private or metadata addresses). A data URI is checked by the model.
    if request.image is not None and request.image.startswith(("https://", "http://")):
        urls.append((request.image, "image"))
    return urls


IMAGE_JOBS: JobKind[ImageRequest, Job] = JobKind("image", "img", "image", "/v1/images", ImageRequest, Job, _image_urls)
VIDEO_JOBS: JobKind[VideoRequest, VideoJob] = JobKind(
    "video", "vid", "video", "/v1/videos", VideoRequest, VideoJob, _video_urls
)


def request_hash(request: ImageRequest | VideoRequest) -> str:
    canonical = json.dumps(request.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class JobService(Generic[R, P]):
    """Jobs of one kind (images, or videos): IMAGE_JOBS by default."""

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
        kind: JobKind[R, P] = IMAGE_JOBS,  # type: ignore[assignment]
        quota_units: int = 1,
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
        self.kind: JobKind[R, P] = kind
        # Daily quota units one job takes (a video: VIDEO_QUOTA_UNITS); the per-minute limit counts it as one request.
        self._units = quota_units

    def check_webhook_url(self, url: str | None, field: str) -> None:
        if url is not None and self._url_check is not None:
            self._url_check(url, field)

    def create(self, user_id: str, request: R, idempotency_key: str | None = None) -> tuple[P, bool]:
        check_idempotency_key(idempotency_key)
        for url, field in self.kind.urls(request):
            self.check_webhook_url(url, field)
        digest = request_hash(request)
        day, charges = self._quota.charges(self._units, requests=1) if self._quota is not None else (None, [])
        if charges and idempotency_key is not None:
            # A replay returns the first job without touching the quota (even when the quota is used up).
            replayed = self._store.find_replay(user_id, idempotency_key, digest)
            if replayed is not None:
                return self._replayed(replayed), False
        record = JobRecord(
            id=new_id(self.kind.id_prefix),
            kind=self.kind.name,
            status="queued",
            request=request,
            user_id=user_id,
            created_at=self._clock(),
            request_hash=digest,
            quota_day=day,
            quota_units=self._units,
        )
        try:
            # The job, its idempotency marker and its quota units are one write: a create that loses a race with
            # its own retry gets that job back (even at the quota's limit), and a refused one leaves nothing.
            stored, created = self._store.create(record, idempotency_key, charges)
        except QuotaFull as full:
            raise self._refused(full) from None
        if created:
            self._enqueue(stored)
        return self._replayed(stored) if not created else self.kind.public(stored), created

    def _replayed(self, job: JobRecord) -> P:
        if job.kind != self.kind.name:
            # The key's first request made the other kind of job: same key, another body.
            raise Conflict(
                "Idempotency-Key was already used with a different request body",
                hint="use a new Idempotency-Key for a different request",
                details={"field": "Idempotency-Key"},
            )
        return self.kind.public(job)

    def _refused(self, full: QuotaFull) -> ImagegenError:
        assert self._quota is not None  # a charge was only made with quotas on
        return self._quota.refused(full.charge)

    def _enqueue(self, job: JobRecord) -> None:
        # The job is already durable; if SQS refuses, the sweeper re-enqueues jobs left queued too long.
        try:
            self._queue.send(GenerateMessage(user_id=job.user_id, job_id=job.id))
        except QueueUnavailable:
            logger.exception("could not enqueue job %s; the sweeper will pick it up", job.id)

    def get(self, user_id: str, job_id: str) -> P:
        self.kind.owns(job_id)
        return self.kind.public(self._store.get(user_id, job_id))

    def wait(self, user_id: str, job_id: str, seconds: float) -> P:
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

    def list(self, user_id: str, limit: int, cursor: str | None) -> tuple[list[P], str | None]:
        """One page of the user's jobs of this kind, newest first, and the next page's cursor."""
        records, next_cursor = self._store.list(user_id, limit, cursor, self.kind.name)
        return [self.kind.public(record) for record in records], next_cursor

    def content_url(self, user_id: str, job_id: str, expires_in: int | None = None) -> str:
        key = self._result_key(user_id, job_id)
        return self._images.presigned_url(key, expires_in or self._content_url_seconds)

    def content(self, user_id: str, job_id: str) -> tuple[bytes, str]:
        """The image's bytes and content type (the OpenAI-compatible route answers them inline)."""
        return self._images.read(self._result_key(user_id, job_id))

    def _result_key(self, user_id: str, job_id: str) -> str:
        self.kind.owns(job_id)
        job = self._store.get(user_id, job_id)
        key = self.kind.result_key(job)
        if job.status != "succeeded" or not key:
            noun = self.kind.noun
            raise Conflict(
                f"job {job_id} is {job.status}; its {noun} is available once it has succeeded",
                hint=f"poll GET {self.kind.path}/{{id}} until status is succeeded",
            )
        return key

    def cancel(self, user_id: str, job_id: str) -> P:
        self.kind.owns(job_id)
        job, changed = self._store.cancel_changed(user_id, job_id, now=self._clock())
        if changed and self._outbox is not None:
            # The job's end was written with its outbox item: a failure here leaves the item for the sweeper.
            self._outbox.dispatch(OutboxItem.job_ended(user_id, job_id, self._clock()))
        if job.chain_state:
            # A provider may still be working on it (async); the worker cancels the remote request, or, where the
            # provider has no cancel, only stops checking on it (a canceled job is never claimed again).
            try:
                self._queue.send(CancelMessage(user_id=user_id, job_id=job_id))
            except QueueUnavailable:
                logger.exception("could not queue remote cancel for job %s", job_id)
        return self.kind.public(job)

    def retry(self, user_id: str, job_id: str) -> P:
        self.kind.owns(job_id)
        job = self._store.get(user_id, job_id)
        if not job.terminal:
            raise Conflict(f"job {job_id} is {job.status}; only a finished job can be retried")
        new, _ = self.create(user_id, self.kind.request_of(job))
        return new
