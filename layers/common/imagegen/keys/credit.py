"""Key-wide marks need key-wide evidence: one request refused for credit (a 402, Horde's KudosUpfront for an expensive
request) fails that attempt only. Refusals from `jobs` different jobs within `window_s` mark the key out of credit,
and the mark asks for a key check `recheck_s` later (a delayed `keycheck` message the worker answers), so a key that
has credit after all is back within minutes, not at the next hourly check."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from imagegen.keys.types import KeySource


@dataclass(frozen=True)
class CreditPolicy:
    jobs: int = 3
    window_s: float = 600.0
    recheck_s: int = 120


class CreditEvidence(Protocol):
    """Refusals per provider and key scope (imagegen.adapters.credit_evidence in DynamoDB: one write per refusal)."""

    def add(self, provider: str, scope: str, job_id: str, now: float, window_s: float) -> int:
        """Record one job's refusal; how many different jobs were refused within the window, this one included."""
        ...

    def clear(self, provider: str, scope: str) -> None: ...


# Asks for a key check soon: (user id, provider, key source, delay in seconds).
Recheck = Callable[[str, str, KeySource, int], None]


class MemoryCreditEvidence:
    """In one process (unit tests, tools)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, provider: str, scope: str, job_id: str, now: float, window_s: float) -> int:
        with self._lock:
            jobs = self.seen.setdefault((provider, scope), {})
            jobs[job_id] = now
            return sum(1 for at in jobs.values() if at >= now - window_s)

    def clear(self, provider: str, scope: str) -> None:
        with self._lock:
            self.seen.pop((provider, scope), None)


def distinct_recent(entries: Iterable[str], now: float, window_s: float) -> int:
    """Entries "epoch|job id": how many different jobs within the window."""
    jobs = set()
    for entry in entries:
        at, _, job = entry.partition("|")
        try:
            if float(at) >= now - window_s and job:
                jobs.add(job)
        except ValueError:
            continue
    return len(jobs)
