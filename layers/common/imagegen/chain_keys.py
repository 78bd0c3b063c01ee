"""The chain's two key ports (chain.KeyResolver, chain.KeyHealth) over one keys.KeyResolver, renewed per invocation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from botocore.exceptions import ClientError

from imagegen.chain import ResolvedKey as ChainKey
from imagegen.keys import HealthStatus, KeyResolver

logger = logging.getLogger(__name__)


class ChainKeys:
    """Pass one instance as both `key_resolver=` and `key_health=` of the Chain.

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
    ) -> None:
        self._new_resolver = new_resolver
        self._max_age = max_age_seconds
        self._monotonic = monotonic
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

    def resolve(self, provider: str, user_id: str) -> ChainKey | None:
        resolved = self.resolver.resolve(user_id, provider)
        return None if resolved.source is None else ChainKey(resolved.source, resolved.key)

    def status(self, provider: str, key_source: str, user_id: str) -> str | None:
        resolved = self.resolver.resolve(user_id, provider)
        if resolved.source != key_source or resolved.health is None:
            return None
        return resolved.health.status

    def report(self, provider: str, key_source: str, user_id: str, status: str, detail: str) -> None:
        if self.resolver.resolve(user_id, provider).source != key_source:
            return  # the key changed since the run took it: the verdict is not about the current key
        try:
            self.resolver.mark(user_id, provider, cast(HealthStatus, status), detail, at=datetime.now(UTC))
        except ClientError as error:
            # A lost verdict only means the next run tries the key once more.
            code = error.response.get("Error", {}).get("Code")
            logger.warning("could not record key health", extra={"provider": provider, "error": code})
