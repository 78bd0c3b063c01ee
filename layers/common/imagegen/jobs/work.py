"""One queue message's worth of work: claim the job, run the chain, store the image, settle the job."""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from imagegen.adapters.job_store import ClaimRefused, JobStore, LeaseLost
from imagegen.generation import (
    ChainOutcome,
    ChainPending,
    ChainSucceeded,
    ChainWaiting,
    GeneratedImage,
    GeneratedVideo,
    Generator,
    RunContext,
)
from imagegen.grounding import GroundingResult, apply, ground
from imagegen.jobs.ending import has_side_effects
from imagegen.jobs.outbox import Outbox, OutboxItem
from imagegen.media.imaging import fit_to_size
from imagegen.messages import CancelMessage, CheckMessage, GenerateMessage, KeyCheckMessage, Queue, Unreadable
from imagegen.models import ErrorInfo, ImageInfo, ImageRequest, JobRecord, VideoInfo, VideoRequest, Waiting, utcnow

if TYPE_CHECKING:
    from imagegen.jobs.video_chain import VideoChains

logger = logging.getLogger(__name__)


class RetryLater(Exception):
    """Leave the message on the queue: it comes back after the visibility timeout."""


class Images(Protocol):
    def put(self, user_id: str, job_id: str, data: bytes, content_type: str) -> str: ...

    def delete(self, key: str) -> None: ...


class Grounder(Protocol):
    def __call__(self, request: ImageRequest) -> GroundingResult: ...


def _ungrounded(request: ImageRequest) -> GroundingResult:
    # No search configured: a request that asks for grounding gets the "no key" warning, never a failure.
    return ground(request, None)


@dataclass(frozen=True)
class WorkerConfig:
    lease_seconds: int
    deadline_seconds: int
    max_receive_count: int
    # A job not finished this long after it was created is failed by the sweeper: a job may wait for a cooling
    # provider until a run started then could still end in time. None: jobs never wait (they fail as before).
    max_age_seconds: int | None = None


# What a run needs besides its own deadline: the delayed message's arrival, the claim, storing the image.
WAIT_SLACK_S = 30
# SQS holds a message 15 minutes at most: a longer wait is sent on again when it comes back early.
SQS_MAX_DELAY_S = 900
# Attempts kept from the runs before a wait (a long wait through many cool-downs must not grow the job without end).
EARLIER_ATTEMPTS = 40


class Worker:
    def __init__(
        self,
        store: JobStore,
        images: Images,
        queue: Queue,
        generator: Generator,
        config: WorkerConfig,
        *,
        outbox: Outbox | None = None,
        grounder: Grounder = _ungrounded,
        rechecks: Callable[[KeyCheckMessage], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        videos: VideoChains | None = None,
    ) -> None:
        self._store = store
        self._images = images
        self._queue = queue
        self._generator = generator
        self._config = config
        self._outbox = outbox
        self._grounder = grounder
        self._rechecks = rechecks
        self._clock = clock
        self._monotonic = monotonic
        # The chain over the providers' video parts (imagegen.jobs.video_chain), for video jobs.
        self._videos = videos

    def handle(
        self,
        message: GenerateMessage | CheckMessage | CancelMessage | KeyCheckMessage | Unreadable,
        *,
        receive_count: int,
        remaining_seconds: float,
    ) -> None:
        if isinstance(message, Unreadable):
            # Retrying cannot make it readable: acknowledged and dropped, with the reason (never the body) logged.
            logger.error("dropping a message that is no job message (%s)", message.reason)
            return
        if isinstance(message, CancelMessage):
            self._cancel_remote(message.user_id, message.job_id)
            return
        if isinstance(message, KeyCheckMessage):
            if self._rechecks is not None:
                self._rechecks(message)
            return
        if isinstance(message, GenerateMessage) and self._still_waiting(message):
            return
        job = self._claim(message)
        if job is None:
            return
        lease = job.lease_token or ""
        try:
            if isinstance(message, GenerateMessage) and not job.chain_state:
                job = self._ground(job)
            self._settle(job, lease, self._run(job, message, remaining_seconds))
        except LeaseLost:
            # Canceled while we worked (or a sweeper handed it on): our result is discarded, and so is any image
            # it stored (see _discard_image).
            logger.info("job %s changed hands while running; result discarded", job.id)
        except Exception as error:
            if receive_count >= self._config.max_receive_count:
                logger.exception("job %s failed on its last delivery", job.id)
                self._fail_last_delivery(job, lease, error)
                return
            logger.exception("job %s failed on delivery %d; it will be redelivered", job.id, receive_count)
            self._store.release(job.user_id, job.id, lease, now=self._clock())
            raise

    def _run(self, job: JobRecord, message: GenerateMessage | CheckMessage, remaining_seconds: float) -> ChainOutcome:
        budget = min(self._config.deadline_seconds, max(1.0, remaining_seconds - 10))
        ctx = RunContext(
            job_id=job.id,
            user_id=job.user_id,
            deadline=self._monotonic() + budget,
            latest_start=self._latest_start(job),
            # Attempts a waiting job's earlier runs made (a resumed async run keeps its own in its state).
            earlier=tuple(job.attempts[-EARLIER_ATTEMPTS:]) if not job.chain_state else (),
        )
        generator, request = self._generator_for(job)
        # Saved progress at an async provider is resumed whichever message brought the job here: a generate message
        # redelivered because the check message could not be sent must not submit the remote job a second time.
        if isinstance(message, CheckMessage) or job.chain_state:
            return generator.resume(request, job.chain_state, ctx)
        return generator.start(request, ctx)

    def _generator_for(self, job: JobRecord) -> tuple[Generator, ImageRequest]:
        """The chain a job runs on, and the request as that chain reads it."""
        if isinstance(job.request, VideoRequest):
            if self._videos is None:
                raise RuntimeError("this worker was built without the video chain")
            return self._videos, job.request.portable()
        return self._generator, apply(job.request, job.grounding)

    def _claim(self, message: GenerateMessage | CheckMessage) -> JobRecord | None:
        now, lease_seconds = self._clock(), self._config.lease_seconds
        user_id, job_id = message.user_id, message.job_id
        try:
            if isinstance(message, CheckMessage):
                return self._store.claim_check(
                    user_id, job_id, message.check_token, now=now, lease_seconds=lease_seconds
                )
            return self._store.claim(user_id, job_id, now=now, lease_seconds=lease_seconds)
        except ClaimRefused as refused:
            if refused.job.terminal or isinstance(message, CheckMessage):
                # A duplicate or late delivery: the job is done, or a newer check owns it.
                logger.info("job %s is %s; message acknowledged without work", job_id, refused.job.status)
                return None
            raise RetryLater(f"job {job_id} is held by another worker") from refused

    def _ground(self, job: JobRecord) -> JobRecord:
        """Search the subject before the chain runs (grounding: "web"); the result and any warning go on the job."""
        if not isinstance(job.request, ImageRequest) or job.request.grounding != "web":
            return job
        result = self._grounder(job.request)
        return job.model_copy(update={"grounding": result.info, "warnings": [*job.warnings, *result.warnings]})

    def _park(self, job: JobRecord, lease: str, outcome: ChainPending, now: datetime) -> None:
        """Store the pending state under a new check token, and send the check message that alone may resume it."""
        check_token = uuid.uuid4().hex
        parked = job.model_copy(
            update={
                "chain_state": outcome.state,
                "attempts": outcome.attempts,
                "lease_token": check_token,
                # Long enough that neither a redelivery nor the sweeper takes the job before its check is due.
                "lease_until": now + timedelta(seconds=outcome.delay_seconds + self._config.lease_seconds),
            }
        )
        self._store.park(parked, lease)
        self._queue.send(
            CheckMessage(user_id=job.user_id, job_id=job.id, check_token=check_token),
            delay_seconds=outcome.delay_seconds,
        )

    def _settle(self, job: JobRecord, lease: str, outcome: ChainOutcome) -> None:
        now = self._clock()
        if isinstance(outcome, ChainPending):
            self._park(job, lease, outcome, now)
            return
        if isinstance(outcome, ChainWaiting):
            self._wait(job, lease, outcome)
            return
        if isinstance(outcome, ChainSucceeded):
            done = job.model_copy(
                update={
                    "status": "succeeded",
                    "provider": outcome.image.provider,
                    "model": outcome.image.model,
                    "attempts": outcome.attempts,
                    "warnings": [*job.warnings, *outcome.warnings],
                    **self._result(job, outcome.image),
                }
            )
        else:
            done = job.model_copy(update={"status": "failed", "attempts": outcome.attempts, "error": outcome.error})
        try:
            self._finish(done, lease, now)
        except LeaseLost:
            stored = done.image_key or done.video_key
            if stored:
                self._discard_image(done.user_id, done.id, stored)
            raise

    # --- waiting for a provider to reopen (DESIGN.md "Wait, don't fail") ------------------------------------------

    def _latest_start(self, job: JobRecord) -> float | None:
        if self._config.max_age_seconds is None:
            return None
        needs = self._config.deadline_seconds + WAIT_SLACK_S
        return job.created_at.timestamp() + self._config.max_age_seconds - needs

    def _wait(self, job: JobRecord, lease: str, outcome: ChainWaiting) -> None:
        """Back to `queued` with `waiting`, and a generate message for the moment the first provider reopens. The job
        is due for the sweeper only after then (its active sort key is `until`), so it is not taken for stuck."""
        until = datetime.fromtimestamp(outcome.until, UTC)
        waiting = job.model_copy(
            update={
                "status": "queued",
                "waiting": Waiting(reason=outcome.reason, until=until),
                "attempts": outcome.attempts,
                "warnings": list(dict.fromkeys([*job.warnings, *outcome.warnings])),
                "chain_state": {},
                "lease_token": None,
                "lease_until": until,
                # Each run of a waiting job is a delivery of its own: the sweeper counts vanished work afresh.
                "deliveries": 0,
            }
        )
        self._store.park(waiting, lease)
        message = GenerateMessage(user_id=job.user_id, job_id=job.id, not_before=outcome.until)
        self._queue.send(message, delay_seconds=self._delay_until(outcome.until))
        logger.info("job %s waits until %s (%s)", job.id, until.isoformat(), outcome.reason)

    def _delay_until(self, until: float) -> int:
        return max(0, min(SQS_MAX_DELAY_S, math.ceil(until - self._clock().timestamp())))

    def _still_waiting(self, message: GenerateMessage) -> bool:
        """A wait longer than SQS's 15 minutes: the message came back early and goes out again for the rest."""
        if message.not_before is None or self._delay_until(message.not_before) <= 1:
            return False
        self._queue.send(message, delay_seconds=self._delay_until(message.not_before))
        return True

    def _result(self, job: JobRecord, result: GeneratedImage | GeneratedVideo) -> dict[str, object]:
        """The job's fields that say where its result is stored, and what it is."""
        if isinstance(result, GeneratedVideo):
            # The chain stored it already, checked, while it streamed in (imagegen.media.video_results).
            video = VideoInfo(
                url=f"/v1/videos/{job.id}/content",
                content_type="video/webm" if result.content_type == "video/webm" else "video/mp4",
                width=result.width,
                height=result.height,
                duration_s=result.duration_s,
                bytes=result.bytes,
                sha256=result.sha256,
            )
            return {"video_key": result.key, "video": video}
        # The provider made the nearest size it takes; the job gets exactly the size it asked for.
        final = fit_to_size(result.data, job.request.size[0], job.request.size[1])
        key = self._images.put(job.user_id, job.id, final.data, final.content_type)
        image = ImageInfo(
            url=f"/v1/images/{job.id}/content",
            content_type=final.content_type,
            width=final.width,
            height=final.height,
            bytes=len(final.data),
            sha256=hashlib.sha256(final.data).hexdigest(),
            source_width=final.source_width,
            source_height=final.source_height,
        )
        return {"image_key": key, "image": image}

    def _discard_image(self, user_id: str, job_id: str, key: str) -> None:
        """The job ended without us (canceled, or failed by the sweeper): the image (or video) we stored belongs to
        no job.

        A job another worker took over keeps it: that worker writes the same key, and may already have.
        """
        current = self._store.get(user_id, job_id)
        if current.status in ("canceled", "failed"):
            self._images.delete(key)

    def _finish(self, job: JobRecord, lease: str, now: datetime) -> None:
        final = job.model_copy(update={"completed_at": now, "lease_token": None, "lease_until": None})
        # The job's end and the record of its side effects are one write: an error after it loses nothing.
        ended = OutboxItem.job_ended(job.user_id, job.id, now) if has_side_effects(final) else None
        self._store.finish(final, lease, ended)
        if ended is not None and self._outbox is not None:
            self._outbox.dispatch(ended)

    def _fail_last_delivery(self, job: JobRecord, lease: str, error: Exception) -> None:
        failed = job.model_copy(
            update={
                "status": "failed",
                "error": ErrorInfo(
                    code="worker_error",
                    message=f"the worker failed on each of {self._config.max_receive_count} deliveries "
                    f"({type(error).__name__})",
                    hint="retry the job; if it keeps failing, the service logs name the cause",
                ),
            }
        )
        try:
            self._finish(failed, lease, self._clock())
        except LeaseLost:
            logger.info("job %s changed hands before it could be failed", job.id)

    def _cancel_remote(self, user_id: str, job_id: str) -> None:
        job = self._store.get(user_id, job_id)
        if job.status != "canceled" or not job.chain_state:
            return
        if job.kind != "video" or self._videos is None:
            self._generator.cancel(job.chain_state)
            return
        self._videos.cancel(job.chain_state)
        note = self._videos.cancel_note(job.chain_state)
        if note is not None:
            self._store.add_warning(user_id, job_id, note, status="canceled")
