"""What one container remembers between runs, in memory only: the providers that just hung, and the hedges it spent."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class Suspects:
    """Providers (or routes) that timed out, refused connections, or stayed silent long past their usual latency
    while a hedge overtook them: later runs in this container try their links after the others' until they answer
    again or `hold_s` passes. Nothing is skipped, only reordered, and nothing is written anywhere."""

    def __init__(self, hold_s: float = 30.0, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self._monotonic = monotonic
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def suspect(self, name: str) -> None:
        with self._lock:
            self._until[name] = self._monotonic() + self.hold_s

    def cleared(self, name: str) -> None:
        with self._lock:
            self._until.pop(name, None)

    def current(self) -> frozenset[str]:
        now = self._monotonic()
        with self._lock:
            return frozenset(name for name, until in self._until.items() if until > now)


class HedgeBudget:
    """At most `fraction` extra provider calls from hedging over the last `window_s` seconds of this container's calls.

    Every provider call earns the fraction of a hedge; a hedge spends one. Counted per container: with Lambda's
    containers reused job after job, each keeps to the budget, so the deployment does too."""

    def __init__(
        self, fraction: float = 0.05, window_s: float = 600.0, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.fraction = fraction
        self.window_s = window_s
        self._monotonic = monotonic
        self._calls: deque[float] = deque()
        self._hedges: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, now: float) -> None:
        edge = now - self.window_s
        for times in (self._calls, self._hedges):
            while times and times[0] < edge:
                times.popleft()

    def called(self) -> None:
        now = self._monotonic()
        with self._lock:
            self._trim(now)
            self._calls.append(now)

    def try_spend(self) -> bool:
        """Take one hedge if it keeps hedges within the fraction of calls; the hedge's own call is counted too."""
        now = self._monotonic()
        with self._lock:
            self._trim(now)
            # Integers, so a budget of exactly one hedge in 20 calls is not lost to rounding.
            if (len(self._hedges) + 1) * 1_000_000 > round(self.fraction * 1_000_000) * len(self._calls):
                return False
            self._hedges.append(now)
            return True

    @property
    def counts(self) -> tuple[int, int]:
        with self._lock:
            self._trim(self._monotonic())
            return len(self._calls), len(self._hedges)
