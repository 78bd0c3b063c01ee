"""Key health: when a key is due for a check, what a check's answer does to its record, and the scheduled run."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr

from imagegen.errors import ImagegenError
from imagegen.keys.types import (
    CheckResult,
    DeploymentHealthStore,
    DeploymentKeys,
    KeyHealth,
    UserKey,
    UserKeyStore,
)
from imagegen.models import utcnow
from imagegen.providers import KEY_PROVIDERS

if TYPE_CHECKING:
    from imagegen.messages import KeyCheckMessage

logger = logging.getLogger(__name__)


class KeyChecks(Protocol):
    def check(self, provider: str, key: SecretStr) -> CheckResult: ...


class HealthMetrics(Protocol):
    def key_checked(self, provider: str, source: str, status: str) -> None: ...


class UserKeyScan(Protocol):
    def scan_user_keys(self) -> Iterator[UserKey]:
        """Every stored user key (without secrets), page by page."""
        ...


@dataclass
class CheckReport:
    """What one scheduled run of the key checks did: statuses and counts, nothing secret."""

    deployment: dict[str, str] = field(default_factory=dict)
    user_checked: int = 0
    user_not_due: int = 0
    errors: int = 0
    stopped_early: bool = False


class HealthService:
    def __init__(
        self,
        checks: KeyChecks,
        user_keys: UserKeyStore,
        deployment_health: DeploymentHealthStore,
        metrics: HealthMetrics,
        *,
        interval_seconds: int,
        provider_intervals: Mapping[str, int] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._checks = checks
        self._user_keys = user_keys
        self._deployment_health = deployment_health
        self._metrics = metrics
        self._interval = interval_seconds
        # Providers whose check endpoint is rate-limited more strictly (Hugging Face's whoami-v2: once a day).
        self._intervals = dict(provider_intervals or {})
        self._clock = clock

    def due(self, provider: str, previous: KeyHealth | None, now: datetime) -> bool:
        if previous is None:
            return True
        last = previous.attempted_at or previous.checked_at
        interval = self._intervals.get(provider, self._interval)
        return now - last >= timedelta(seconds=interval)

    def check_user_key(self, key: UserKey, secret: SecretStr) -> KeyHealth:
        health = self._check(key.provider, secret, key.health, "user")
        # Conditional on the version: a key replaced or deleted meanwhile keeps its own record.
        self._user_keys.record_health(key.user_id, key.provider, key.version, health)
        return health

    def check_deployment_key(self, provider: str, secret: SecretStr, *, force: bool = False) -> KeyHealth:
        previous = self._deployment_health.deployment_health(provider, secret)
        if previous is not None and not force and not self.due(provider, previous, self._clock()):
            return previous
        health = self._check(provider, secret, previous, "deployment")
        self._deployment_health.record_deployment_health(provider, secret, health)
        return health

    def run_checks(
        self,
        deployment_keys: DeploymentKeys,
        user_keys: UserKeyScan,
        *,
        max_checks: int,
        deadline: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> CheckReport:
        """Check every deployment key, then user keys that are due, until `max_checks` or the monotonic deadline."""
        report = CheckReport()
        checks = 0
        for provider in KEY_PROVIDERS:
            try:
                secret = deployment_keys.get(provider)
                if secret is None:
                    report.deployment[provider] = "not_configured"
                    continue
                report.deployment[provider] = self.check_deployment_key(provider, secret).status
                checks += 1
            except ImagegenError as error:
                # One provider's failure (the secret unreadable) must not stop the other checks.
                logger.error("deployment key check for %s failed: %s", provider, error.code)
                report.deployment[provider] = "error"
                report.errors += 1
        now = self._clock()
        for key in user_keys.scan_user_keys():
            if checks >= max_checks or monotonic() >= deadline:
                report.stopped_early = True
                break
            if not self.due(key.provider, key.health, now):
                report.user_not_due += 1
                continue
            try:
                found = self._user_keys.decrypt(key.user_id, key.provider)
            except ImagegenError as error:
                logger.error("could not decrypt %s key of user %s: %s", key.provider, key.user_id, error.code)
                report.errors += 1
                continue
            if found is None:  # deleted since the scan read it
                continue
            stored, secret = found
            self.check_user_key(stored, secret)
            report.user_checked += 1
            checks += 1
        return report

    def _check(self, provider: str, secret: SecretStr, previous: KeyHealth | None, source: str) -> KeyHealth:
        result = self._checks.check(provider, secret)
        now = self._clock()
        self._metrics.key_checked(provider, source, result.status or "throttled")
        logger.info("%s key check for %s: %s", source, provider, result.status or "throttled (kept last status)")
        if result.status is not None:
            # A new listing replaces the old one and clears the gone marks; without one, the marks stand.
            gone = previous.gone if previous is not None and result.models is None else ()
            return KeyHealth(
                status=result.status,
                detail=result.detail,
                checked_at=now,
                attempted_at=now,
                models=result.models,
                gone=gone,
            )
        if previous is not None:
            return previous.model_copy(update={"attempted_at": now})
        # Nothing known yet and the check was refused: say so without calling the key bad.
        return KeyHealth(status="unreachable", detail=result.detail, checked_at=now, attempted_at=now)


class KeyRechecks:
    """The worker's answer to a `keycheck` message: check that one key now (a call marked it out of credit)."""

    def __init__(self, health: HealthService, user_keys: UserKeyStore, deployment_keys: DeploymentKeys) -> None:
        self._health = health
        self._user_keys = user_keys
        self._deployment_keys = deployment_keys

    def __call__(self, message: KeyCheckMessage) -> None:
        try:
            if message.source == "deployment":
                secret = self._deployment_keys.get(message.provider)
                if secret is not None:
                    status = self._health.check_deployment_key(message.provider, secret, force=True).status
                    logger.info("re-checked the deployment %s key: %s", message.provider, status)
                return
            found = self._user_keys.decrypt(message.user_id, message.provider)
            if found is not None:  # deleted since: nothing to check
                status = self._health.check_user_key(*found).status
                logger.info("re-checked a user's %s key: %s", message.provider, status)
        except ImagegenError as error:
            # The schedule checks it later all the same; the mark stands until then.
            logger.error("key re-check for %s failed: %s", message.provider, error.code)
