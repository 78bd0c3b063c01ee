"""The chain's key port over a KeyResolver that is renewed per invocation (decrypted keys live that long only)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from imagegen.keys.credit import CreditEvidence, CreditPolicy, MemoryCreditEvidence, Recheck
from imagegen.keys.resolver import KeyResolver
from imagegen.keys.types import HealthStatus, KeySource, ResolvedKey

logger = logging.getLogger(__name__)


class ChainKeys:
    """Pass one instance as the Chain's `keys=`.

    Decrypted user keys are cached for one invocation: the worker calls `begin_invocation()` per Lambda
    invocation; `max_age_seconds` bounds the cache even if nobody does, so a deleted or replaced key is never
    used for long.
    """

    def __init__(
        self,
        new_resolver: Callable[[], KeyResolver],
        *,
        max_age_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        credit: CreditEvidence | None = None,
        credit_policy: CreditPolicy | None = None,
        recheck: Recheck | None = None,
    ) -> None:
        self._new_resolver = new_resolver
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._credit = credit or MemoryCreditEvidence()
        self._credit_policy = credit_policy or CreditPolicy()
        self._recheck = recheck
        self.begin_invocation()

    def begin_invocation(self) -> None:
        self._resolver = self._new_resolver()
        self._born = self._monotonic()

    @property
    def resolver(self) -> KeyResolver:
        """The current invocation's resolver (its `mark()` records what a real call learned about a key)."""
        if self._monotonic() - self._born > self._max_age:
            self.begin_invocation()
        return self._resolver

    def resolve(self, user_id: str, provider: str) -> ResolvedKey:
        return self.resolver.resolve(user_id, provider)

    def report(self, user_id: str, provider: str, key_source: str, status: HealthStatus, detail: str) -> None:
        """What a real call learned about the key a run used (a 401: invalid; a 402: out_of_credit)."""
        if self.resolver.resolve(user_id, provider).source != key_source:
            return  # the key changed since the run took it: the verdict is not about the current key
        try:
            self.resolver.mark(user_id, provider, status, detail, at=datetime.now(UTC))
        except ClientError as error:
            # A lost verdict only means the next run tries the key once more.
            code = error.response.get("Error", {}).get("Code")
            logger.warning("could not record key health", extra={"provider": provider, "error": code})

    def payment_refused(self, user_id: str, provider: str, key_source: str, job_id: str, detail: str) -> None:
        """One job's request refused for credit: evidence only. Refusals from enough different jobs within the window
        mark the key out of credit and ask for a key check soon (which clears the mark if the key has credit)."""
        resolved = self.resolver.resolve(user_id, provider)
        if resolved.source != key_source or resolved.scope is None or resolved.source not in ("user", "deployment"):
            return
        policy, now = self._credit_policy, self._wall_clock()
        try:
            jobs = self._credit.add(provider, resolved.scope, job_id, now, policy.window_s)
            if jobs < policy.jobs:
                return
            window = int(policy.window_s // 60)
            verdict = f"{detail} for {jobs} different jobs within {window} minutes; a key check follows"
            self.resolver.mark(user_id, provider, "out_of_credit", verdict, at=datetime.now(UTC))
            self._credit.clear(provider, resolved.scope)
        except ClientError as error:
            # Lost evidence only means the key is marked a refusal later (or by the next key check).
            code = error.response.get("Error", {}).get("Code")
            logger.warning("could not record a refusal for credit", extra={"provider": provider, "error": code})
            return
        source: KeySource = resolved.source
        if self._recheck is not None:
            self._recheck(user_id, provider, source, policy.recheck_s)

    def model_gone(self, user_id: str, provider: str, key_source: str, model: str) -> None:
        """The provider said `model` does not exist for the run's key: later runs skip it until the next listing."""
        if self.resolver.resolve(user_id, provider).source != key_source:
            return
        try:
            self.resolver.mark_gone(user_id, provider, model, at=datetime.now(UTC))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            logger.warning("could not mark a model gone", extra={"provider": provider, "error": code})
