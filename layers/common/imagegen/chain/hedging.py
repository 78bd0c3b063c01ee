"""Hedged requests: when a link stays silent past its observed p90, a link of another provider starts beside it (two at
most), within the hedge budget; the first valid image wins and the other call is abandoned, its result discarded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imagegen.chain.attempt import LinkResult, LinkRunner
from imagegen.chain.links import Run, Skip, earlier_skip, link_is_async
from imagegen.models import Attempt
from imagegen.providers.base import ProviderError, Refused

if TYPE_CHECKING:
    from imagegen.chain.ports import ChainDeps
    from imagegen.generation import ChainOutcome

Absorb = Callable[[Run, int, LinkResult], "ChainOutcome | None"]
# What the run learns from a failed link (a provider or route ruled out); safe to call again for the same link.
Failed = Callable[[Run, int, ProviderError], None]
# Turns a routing provider's link into its routes before it is looked at (chain.core.Chain.expand).
Expand = Callable[[Run, int], None]


@dataclass
class _InFlight:
    index: int
    started: float
    stop: threading.Event


@dataclass
class _Round:
    """The links started so far from one hedged stretch: those in flight and those that have answered."""

    next_index: int
    running: dict[Future[LinkResult], _InFlight] = field(default_factory=dict)
    results: dict[int, LinkResult] = field(default_factory=dict)
    # No hedge for the link in flight (no other provider left to start, or no budget): wait for its answer.
    held: bool = False


class Hedge:
    def __init__(self, deps: ChainDeps, runner: LinkRunner, absorb: Absorb, failed: Failed, expand: Expand) -> None:
        self.deps = deps
        self.runner = runner
        self.absorb = absorb
        self.failed = failed
        self.expand = expand

    def run(self, run: Run, start: int) -> tuple[ChainOutcome | None, int]:
        """Run links from `start`; a final outcome, or None and the index of the first link not started yet."""
        state = _Round(next_index=start)
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="imagegen-hedge")
        try:
            while state.running or self._can_launch(run, state):
                if not state.running:
                    self._launch(executor, run, state)
                done, _ = wait(state.running, timeout=self._hedge_timeout(run, state), return_when=FIRST_COMPLETED)
                if not done:
                    if self._hedge_target(run, state):
                        self.deps.metrics.count("ProviderHedges")
                        self._launch(executor, run, state)
                    else:
                        state.held = True
                    continue
                self._collect(run, state, done)
                outcome = self._settle_if_decided(run, state)
                if outcome is not None:
                    return outcome, state.next_index
        finally:
            # Losers are not joined: each is bounded by its own timeout and its result is ignored.
            executor.shutdown(wait=False, cancel_futures=True)
        return self._absorb_all(run, state), state.next_index

    def _can_launch(self, run: Run, state: _Round) -> bool:
        index = state.next_index
        if len(state.running) >= 2 or index >= len(run.links):
            return False
        self.expand(run, index)
        return not self._is_async(run, index)

    def _is_async(self, run: Run, index: int) -> bool:
        link = run.links[index]
        return link_is_async(self.deps.registry[link.provider], link)

    def _launch(self, executor: ThreadPoolExecutor, run: Run, state: _Round) -> None:
        stop = threading.Event()
        future = executor.submit(self.runner.try_link, run, state.next_index, stop)
        state.running[future] = _InFlight(state.next_index, self.deps.clock(), stop)
        state.next_index += 1
        state.held = False
        run.cursor = state.next_index

    def _hedge_timeout(self, run: Run, state: _Round) -> float | None:
        """How long to wait for an answer before a hedge starts beside the link in flight (None: no hedge)."""
        if state.held or len(state.running) != 1:
            return None
        (first,) = state.running.values()
        link = run.links[first.index]
        delay = self.runner.gates.hedge_delay(link, link.model)
        return max(0.0, first.started + delay - self.deps.clock())

    def _hedge_target(self, run: Run, state: _Round) -> bool:
        """Bring the first link of another provider (or route) that could be tried now to the front, if the budget
        allows a hedge: never the same provider's next model, never a link that would queue or be skipped."""
        busy = {run.links[flight.index].breaker_name for flight in state.running.values()}
        index = state.next_index
        while index < len(run.links):
            if run.links[index].breaker_name not in busy:
                self.expand(run, index)
                if self._could_start(run, index, busy):
                    if not self.deps.hedge_budget.try_spend():
                        return False
                    run.links.insert(state.next_index, run.links.pop(index))
                    return True
            index += 1
        return False

    def _could_start(self, run: Run, index: int, busy: set[str]) -> bool:
        link = run.links[index]
        key = run.keys.get(link.provider)
        if link.breaker_name in busy or self._is_async(run, index) or earlier_skip(run, link) is not None:
            return False
        return key is not None and not isinstance(key, Skip) and self.runner.gates.looks_open(link, key)

    def _collect(self, run: Run, state: _Round, done: set[Future[LinkResult]]) -> None:
        for future in done:
            finished = state.running.pop(future)
            result = state.results[finished.index] = future.result()
            # Record what the failure rules out now, so links not yet started skip that provider or route.
            if result.error is not None:
                self.failed(run, finished.index, result.error)

    def _settle_if_decided(self, run: Run, state: _Round) -> ChainOutcome | None:
        """A winner (the first valid image) or a refusal ends the stretch: the links still in flight are stopped."""
        winner = next((i for i in sorted(state.results) if state.results[i].image is not None), None)
        if winner is not None:
            self._note_overdue(run, state)
            lost = f"hedged; {run.links[winner].provider} answered first, this result is discarded"
            self._stop_others(run, state, "hedge_lost", lost)
            return self._absorb_all(run, state)
        refused = any(isinstance(result.error, Refused) for result in state.results.values())
        if refused and run.request.on_refusal != "fallback":
            self._stop_others(run, state, "refusal_stop", "stopped: an earlier link refused")
            return self._absorb_all(run, state)
        return None

    def _note_overdue(self, run: Run, state: _Round) -> None:
        """A loser silent half again past its p99 is hanging: later runs in this container try it last for a while."""
        now = self.deps.clock()
        for flight in state.running.values():
            link = run.links[flight.index]
            if self.runner.gates.overdue(link, link.model, now - flight.started):
                self.deps.suspects.suspect(link.breaker_name)

    def _stop_others(self, run: Run, state: _Round, error_class: str, message: str) -> None:
        """Tell every link still in flight to stop, and record it as canceled with why."""
        for flight in state.running.values():
            flight.stop.set()
            link = run.links[flight.index]
            canceled = Attempt(
                provider=link.provider,
                model=link.model,
                route=link.route_name,
                outcome="canceled",
                error_class=error_class,
                message=message,
                latency_ms=int((self.deps.clock() - flight.started) * 1000),
            )
            state.results[flight.index] = LinkResult(attempts=[canceled])
        state.running.clear()

    def _absorb_all(self, run: Run, state: _Round) -> ChainOutcome | None:
        for index in sorted(state.results):
            outcome = self.absorb(run, index, state.results.pop(index))
            if outcome is not None:
                return outcome
        return None
