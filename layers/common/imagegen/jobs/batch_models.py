"""Batch shapes: the create body, the batch as a client sees it, and the record the store keeps."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from imagegen.models import ErrorInfo, ImageInfo, Job, JobStatus, StrictModel

MAX_BATCH_ITEMS = 50

BatchStatus = Literal["running", "succeeded", "failed", "partial", "canceled"]


# Built on first use (the first batch request, or the first batch webhook), not at every API cold start.
_DEFERRED = ConfigDict(defer_build=True)


class BatchCreate(StrictModel):
    """`defaults` and each item are plain objects here: they are merged, then validated as an ImageRequest each."""

    model_config = _DEFERRED  # merged with StrictModel's: still strict, unknown fields refused

    defaults: dict[str, Any] = {}
    items: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]
    webhook_url: Annotated[str | None, Field(max_length=2048, pattern=r"^https?://\S+$")] = None


class StatusCounts(BaseModel):
    model_config = _DEFERRED

    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0


class BatchItem(BaseModel):
    model_config = _DEFERRED

    """One item of a batch: its position and a summary of the job that currently stands for it."""

    index: int
    job_id: str
    status: JobStatus
    provider: str | None = None
    model: str | None = None
    image: ImageInfo | None = None
    error: ErrorInfo | None = None
    warnings: list[str] = []
    created_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def of(cls, index: int, job: Job) -> BatchItem:
        return cls(
            index=index,
            job_id=job.id,
            status=job.status,
            provider=job.provider,
            model=job.model,
            image=job.image,
            error=job.error,
            warnings=job.warnings,
            created_at=job.created_at,
            completed_at=job.completed_at,
        )


class Batch(BaseModel):
    model_config = _DEFERRED

    id: str
    status: BatchStatus
    progress: str
    total: int
    counts: StatusCounts
    items: list[BatchItem]
    webhook_url: str | None = None
    retries: int = 0
    created_at: datetime
    completed_at: datetime | None = None


class BatchRecord(BaseModel):
    model_config = _DEFERRED

    """The batch item in the table: which jobs stand for its items (in order), and completion bookkeeping."""

    id: str
    user_id: str
    job_ids: list[str]
    webhook_url: str | None = None
    created_at: datetime
    # Bumped by every retry; a batch webhook fires at most once per round (see BatchStore.claim_notification).
    round: int = 0
    # Job ids that have reached a terminal state (a set: a repeated notice for one job counts once).
    settled: frozenset[str] = frozenset()
    notified_round: int | None = None
    request_hash: str | None = None

    @property
    def complete(self) -> bool:
        return all(job_id in self.settled for job_id in self.job_ids)
