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


ChainOutcome = ChainSucceeded | ChainPending | ChainFailed


@dataclass(frozen=True)
class RunContext:
    """Who the run is for and how long it may take (monotonic deadline, seconds)."""

    job_id: str
    user_id: str
    deadline: float


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
