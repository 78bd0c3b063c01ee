"""Long-polling a job: reads back off, stop at the deadline, and stop as soon as the job ends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from imagegen.jobs.service import JobService
from imagegen.models import ImageRequest, JobRecord


class ScriptedStore:
    """Answers get() with the statuses given, one per read (the last one repeats)."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.reads = 0

    def get(self, user_id: str, job_id: str) -> JobRecord:
        status = self.statuses[min(self.reads, len(self.statuses) - 1)]
        self.reads += 1
        return JobRecord(
            id=job_id,
            status=status,  # type: ignore[arg-type]
            request=ImageRequest(prompt="p"),
            user_id=user_id,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _service(store: Any, clock: FakeTime) -> JobService:
    return JobService(store, queue=None, images=None, sleep=clock.sleep, monotonic=lambda: clock.now)  # type: ignore[arg-type]


def test_given_job_that_never_ends_when_waited_then_reads_back_off_until_the_deadline():
    clock = FakeTime()
    store = ScriptedStore(["running"])

    job = _service(store, clock).wait("alice", "img_1", seconds=2.5)

    assert job.status == "running"
    assert clock.sleeps[:20] == [0.05] * 20  # the first second: every 50 ms
    assert clock.sleeps[20:] == [0.1, 0.2, 0.4, 0.5]
    assert clock.now <= 2.5
    assert store.reads == len(clock.sleeps) + 1


def test_given_job_that_ends_on_third_read_when_waited_then_answer_comes_after_100_ms():
    clock = FakeTime()
    store = ScriptedStore(["queued", "running", "succeeded"])

    job = _service(store, clock).wait("alice", "img_1", seconds=25.0)

    assert job.status == "succeeded"
    assert clock.sleeps == [0.05, 0.05]
