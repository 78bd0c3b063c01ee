"""Provider and chain settings, parsed once from environment-style strings through the registry's specs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator


def csv(value: Any) -> Any:
    """ "a, b,c" -> ("a", "b", "c"); anything else is left for pydantic to judge."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def boolean(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def absolute_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value.rstrip("/")


# Environment values arrive as strings: "a, b" is a list, "true"/"off" a flag.
CsvTuple = Annotated[tuple[str, ...], BeforeValidator(csv)]
UrlStr = Annotated[str, AfterValidator(absolute_url)]
Flag = Annotated[bool, BeforeValidator(boolean)]


class _Settings(BaseModel):
    # Built on first use: a function that never reads provider settings (the authorizer) pays nothing for them.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class ServiceSettings(_Settings):
    """What every keyed service has: where its API is, and the deployment's key for it (if any)."""

    base_url: str
    api_key: SecretStr | None = None
    # How often the schedule re-checks a key of this provider; None: KEYCHECK_INTERVAL_SECONDS.
    key_check_interval_s: int | None = Field(default=None, ge=0)

    # Subclasses give base_url their own default; this validator still applies to it.
    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return absolute_url(value)

    @property
    def api_host(self) -> str:
        return urlsplit(self.base_url).netloc

    def with_key(self, key: SecretStr | None) -> ServiceSettings:
        """These settings with the key a run resolved (user, deployment, or none)."""
        return self.model_copy(update={"api_key": key})


class ProviderSettings(ServiceSettings):
    """An image provider's settings: models tried in order, and the per-attempt budget."""

    models: CsvTuple = ()
    # Per-attempt budget: image models are slow, so these are generous; the job deadline still caps them.
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # An attempt is not started with less time than this left before the job deadline.
    min_attempt_s: float = Field(default=3.0, ge=0)
    # With hedging on, until its latencies are known (then its observed p90): how long a link may stay silent before
    # a link of another provider starts alongside it.
    hedge_delay_s: float = Field(default=20.0, ge=0)
    # Calls a minute per key (and route) through the shared token bucket; 0: no limit of ours ({PROVIDER}_RPM).
    rpm: float = Field(default=0.0, ge=0)
    # A 503 "model is loading" is retried on the same link only when its estimated_time is at most this.
    max_loading_wait_s: float = Field(default=20.0, ge=0)

    def with_key(self, key: SecretStr | None) -> ProviderSettings:
        return self.model_copy(update={"api_key": key})


class RoutingSettings(ProviderSettings):
    """A routing provider's settings (Hugging Face's router): how long its catalog of routes is trusted."""

    # The schedule refreshes a stored catalog older than this; the worker re-reads one older than mapping_max_age_s.
    mapping_refresh_s: int = Field(default=3600, ge=60)
    mapping_max_age_s: int = Field(default=21600, ge=60)
    # How long one container trusts a catalog it read before asking the table again.
    mapping_cache_s: int = Field(default=60, ge=0)


def _default_chain() -> tuple[str, ...]:
    from imagegen.providers import DEFAULT_CHAIN

    return DEFAULT_CHAIN


class ChainSettings(_Settings):
    default_chain: CsvTuple = Field(default_factory=_default_chain)
    # On by default: a hedge goes to another provider, only after the running link's observed p90, and only within
    # hedge_budget (the fraction of extra provider calls hedging may add).
    hedge: Flag = True
    hedge_budget: float = Field(default=0.05, ge=0, le=1)
    # Same-link retries (429 Retry-After, 503 estimated_time) per link, and the longest wait honoured.
    max_retries: int = Field(default=2, ge=0, le=5)
    max_retry_wait_s: float = Field(default=10.0, ge=0)
    # Keep this much of the job deadline for storing the image after the chain returns.
    deadline_margin_s: float = Field(default=1.0, ge=0)
    # Breaker-class failures in a row, seen by one container, that open a breaker (see imagegen.breaker).
    breaker_threshold: int = Field(default=10, ge=1)
    breaker_cooldown_s: float = Field(default=60.0, gt=0)
    # How long a container trusts its read of a shared item (breaker, rate-limit bucket).
    shared_cache_s: float = Field(default=1.0, ge=0, le=10)
    # Learned timeouts: this multiple of the observed p95, never below the floor nor above the provider's *_TIMEOUT_S,
    # once latency_min_samples latencies are known.
    timeout_multiplier: float = Field(default=3.0, ge=1)
    timeout_floor_s: float = Field(default=5.0, gt=0)
    latency_min_samples: int = Field(default=10, ge=1)
    # A provider that hung (or was overtaken by a hedge long past its usual latency) goes last in this container for
    # this long, or until it answers.
    suspect_s: float = Field(default=30.0, ge=0)
    placeholder_hashes: CsvTuple = ()

    @field_validator("default_chain")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from imagegen.providers import PROVIDER_NAMES

        unknown = [name for name in value if name not in PROVIDER_NAMES]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; known: {list(PROVIDER_NAMES)}")
        return value


# The chain's own variables (the providers' come from their specs).
CHAIN_ENV = {
    "default_chain": "IMAGEGEN_PROVIDERS",
    "hedge": "IMAGEGEN_HEDGE",
    "hedge_budget": "IMAGEGEN_HEDGE_BUDGET",
    "breaker_threshold": "IMAGEGEN_BREAKER_THRESHOLD",
    "breaker_cooldown_s": "IMAGEGEN_BREAKER_COOLDOWN_S",
    "shared_cache_s": "IMAGEGEN_SHARED_CACHE_S",
    "timeout_multiplier": "IMAGEGEN_TIMEOUT_MULTIPLIER",
    "timeout_floor_s": "IMAGEGEN_TIMEOUT_FLOOR_S",
    "latency_min_samples": "IMAGEGEN_LATENCY_MIN_SAMPLES",
    "suspect_s": "IMAGEGEN_SUSPECT_S",
    "placeholder_hashes": "IMAGEGEN_PLACEHOLDER_HASHES",
}
# One variable for every image provider's hedge_delay_s.
HEDGE_DELAY_ENV = "IMAGEGEN_HEDGE_DELAY_S"


def _set(environ: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    values = {field: (environ.get(variable) or "").strip() for field, variable in names.items()}
    return {field: value for field, value in values.items() if value}


class ProvidersSettings(_Settings):
    """Every registered provider's settings by name, and the chain's."""

    providers: Mapping[str, ServiceSettings]
    chain: ChainSettings = Field(default_factory=ChainSettings)

    def for_provider(self, name: str) -> ServiceSettings:
        return self.providers[name]

    def image_provider(self, name: str) -> ProviderSettings:
        settings = self.providers[name]
        if not isinstance(settings, ProviderSettings):
            raise KeyError(f"{name} is not an image provider")
        return settings

    def configured_keys(self) -> list[SecretStr]:
        """Every deployment key in these settings: the chain scrubs each from what it stores."""
        return [settings.api_key for settings in self.providers.values() if settings.api_key is not None]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProvidersSettings:
        """Build from environment-style strings; unset or empty variables keep their defaults."""
        from imagegen.providers import REGISTRY

        shared: dict[str, Any] = {}
        hedge_delay = (environ.get(HEDGE_DELAY_ENV) or "").strip()
        if hedge_delay:
            shared["hedge_delay_s"] = hedge_delay
        providers = {
            name: spec.settings_from(environ, shared if issubclass(spec.settings, ProviderSettings) else None)
            for name, spec in REGISTRY.items()
        }
        return cls(providers=providers, chain=ChainSettings.model_validate(_set(environ, CHAIN_ENV)))

    @classmethod
    def defaults(cls) -> ProvidersSettings:
        return cls.from_environ({})
