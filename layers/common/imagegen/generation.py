"""What the worker asks of the provider chain, and the three ways a run can end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from imagegen.models import Attempt, ErrorInfo, ImageRequest


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    provider: str
    model: str | None


@dataclass(frozen=True)
class GeneratedVideo:
    """A video the chain stored while it streamed in (a video job's run): where it is, and what its check read."""

    key: str
    content_type: str
    width: int | None
    height: int | None
    duration_s: float
    bytes: int
    sha256: str
    provider: str
    model: str | None


Generated = GeneratedImage | GeneratedVideo


@dataclass(frozen=True)
class ChainSucceeded:
    image: Generated
    attempts: list[Attempt]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChainPending:
    """An async provider accepted the job: store `state` on the job and check again after `delay_seconds`."""

    state: dict[str, Any]
    delay_seconds: int
    attempts: list[Attempt]


@dataclass(frozen=True)
class ChainFailed:
    error: ErrorInfo
    attempts: list[Attempt]


@dataclass(frozen=True)
class ChainWaiting:
    """Every link left is cooling down or rate-limited, and the job has time: run it again at `until` (epoch s)."""

    reason: str
    until: float
    attempts: list[Attempt]
    warnings: list[str] = field(default_factory=list)


ChainOutcome = ChainSucceeded | ChainPending | ChainFailed | ChainWaiting


@dataclass(frozen=True)
class RunContext:
    """Who the run is for and how long it may take (monotonic deadline, seconds).

    `latest_start` (epoch s): the last moment a new run of the job can still finish before the job's own deadline;
    None: the run may not wait (it fails when every link is cooling down). `earlier` are the attempts of the job's
    earlier runs (before it waited), kept in front of this run's."""

    job_id: str
    user_id: str
    deadline: float
    latest_start: float | None = None
    earlier: tuple[Attempt, ...] = ()


class Generator(Protocol):
    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        """Run the chain from its first link."""
        ...

    def resume(self, request: ImageRequest, state: dict[str, Any], ctx: RunContext) -> ChainOutcome:
        """Continue a run that an async provider left pending."""
        ...

    def cancel(self, state: dict[str, Any]) -> None:
        """Cancel a remote request that a pending run left open (best effort)."""
        ...
