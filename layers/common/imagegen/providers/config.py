"""Per-provider and chain settings, validated once from an environ mapping (keys are SecretStr)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from imagegen import __version__
from imagegen.models import PROVIDER_NAMES

DEFAULT_SILICONFLOW_MODELS = ("Kwai-Kolors/Kolors", "black-forest-labs/FLUX.1-schnell", "Qwen/Qwen-Image")
DEFAULT_HF_MODELS = ("black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell")
HORDE_ANON_KEY = "0000000000"
DEFAULT_CHAIN = ("siliconflow", "huggingface", "horde", "pollinations")
# Router providers whose payload this package speaks; others need their own adapter (see docs/providers.md).
SUPPORTED_HF_ROUTER_PROVIDERS = frozenset({"hf-inference"})


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProviderSettings(_Settings):
    base_url: str
    api_key: SecretStr | None = None
    models: tuple[str, ...] = ()
    # Per-attempt budget: image models are slow, so these are generous; the job deadline still caps them.
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # An attempt is not started with less time than this left before the job deadline.
    min_attempt_s: float = Field(default=3.0, ge=0)
    # With hedging on: how long this link may stay silent before the next link starts alongside it.
    hedge_delay_s: float = Field(default=20.0, ge=0)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @property
    def api_host(self) -> str:
        return urlsplit(self.base_url).netloc

    def with_key(self, key: SecretStr | None) -> ProviderSettings:
        """These settings with the key a run resolved (user, deployment, or none)."""
        return self.model_copy(update={"api_key": key})


class SiliconFlowSettings(ProviderSettings):
    base_url: str = "https://api.siliconflow.com/v1"
    models: tuple[str, ...] = DEFAULT_SILICONFLOW_MODELS
    timeout_s: float = Field(default=60.0, gt=0)


class HuggingFaceSettings(ProviderSettings):
    base_url: str = "https://router.huggingface.co"
    hub_url: str = "https://huggingface.co"
    models: tuple[str, ...] = DEFAULT_HF_MODELS
    timeout_s: float = Field(default=90.0, gt=0)
    # model -> router provider; models not listed use default_router_provider.
    router_providers: Mapping[str, str] = Field(default_factory=dict)
    default_router_provider: str = "hf-inference"
    # A 503 "model is loading" is retried on the same link only when its estimated_time is at most this.
    max_loading_wait_s: float = Field(default=20.0, ge=0)

    @field_validator("default_router_provider")
    @classmethod
    def _router_provider(cls, value: str) -> str:
        if value not in SUPPORTED_HF_ROUTER_PROVIDERS:
            raise ValueError(
                f"unsupported router provider {value!r}; supported: {sorted(SUPPORTED_HF_ROUTER_PROVIDERS)}"
            )
        return value

    @field_validator("router_providers")
    @classmethod
    def _router_providers(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for model, provider in value.items():
            if provider not in SUPPORTED_HF_ROUTER_PROVIDERS:
                raise ValueError(f"{model}: unsupported router provider {provider!r}")
        return dict(value)

    def router_provider(self, model: str) -> str:
        return self.router_providers.get(model, self.default_router_provider)


class HordeSettings(ProviderSettings):
    base_url: str = "https://aihorde.net/api/v2"
    api_key: SecretStr | None = SecretStr(HORDE_ANON_KEY)
    # The Horde blocks the default "unknown:0:unknown" agent on /generate/check: name:version:contact.
    client_agent: str = f"imagegen:{__version__}:unknown-contact"
    timeout_s: float = Field(default=20.0, gt=0)
    # Total time a queued Horde request may take before the chain cancels it and falls through.
    max_queue_s: float = Field(default=1200.0, gt=0)
    # Floor for the re-check delay; the Horde caches /check for 1 s and rate-limits /status to 10/min.
    min_check_delay_s: int = Field(default=2, ge=0, le=900)

    @property
    def anonymous(self) -> bool:
        return self.api_key is None or self.api_key.get_secret_value() == HORDE_ANON_KEY


class PollinationsSettings(ProviderSettings):
    # None: the keyless legacy host, or the gen gateway when a key is set (see base()).
    base_url: str = "https://image.pollinations.ai"
    explicit_base_url: bool = False
    models: tuple[str, ...] = ("flux",)
    timeout_s: float = Field(default=60.0, gt=0)

    @property
    def gen_mode(self) -> bool:
        return self.api_key is not None

    def with_key(self, key: SecretStr | None) -> ProviderSettings:
        # Without an explicit base URL the host follows the key: gen gateway with one, legacy host without.
        update: dict[str, Any] = {"api_key": key}
        if not self.explicit_base_url:
            update["base_url"] = "https://gen.pollinations.ai" if key is not None else "https://image.pollinations.ai"
        return self.model_copy(update=update)


class PlaceholderSettings(ProviderSettings):
    base_url: str = "http://placeholder.invalid"
    timeout_s: float = Field(default=5.0, gt=0)
    min_attempt_s: float = Field(default=0.0, ge=0)


class ChainSettings(_Settings):
    default_chain: tuple[str, ...] = DEFAULT_CHAIN
    hedge: bool = False
    # Same-link retries (429 Retry-After, 503 estimated_time) per link, and the longest wait honoured.
    max_retries: int = Field(default=2, ge=0, le=5)
    max_retry_wait_s: float = Field(default=10.0, ge=0)
    # Keep this much of the job deadline for storing the image after the chain returns.
    deadline_margin_s: float = Field(default=1.0, ge=0)
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=60.0, gt=0)
    placeholder_hashes: tuple[str, ...] = ()

    @field_validator("default_chain")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in PROVIDER_NAMES]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; known: {list(PROVIDER_NAMES)}")
        return value


class ProvidersSettings(_Settings):
    siliconflow: SiliconFlowSettings = SiliconFlowSettings()
    huggingface: HuggingFaceSettings = HuggingFaceSettings()
    horde: HordeSettings = HordeSettings()
    pollinations: PollinationsSettings = PollinationsSettings()
    placeholder: PlaceholderSettings = PlaceholderSettings()
    chain: ChainSettings = ChainSettings()

    def for_provider(self, name: str) -> ProviderSettings:
        settings = getattr(self, name, None)
        if not isinstance(settings, ProviderSettings):
            raise KeyError(name)
        return settings

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProvidersSettings:
        """Build from environment-style strings; unset or empty variables keep their defaults."""

        def get(name: str) -> str | None:
            value = environ.get(name)
            return value.strip() if value and value.strip() else None

        def put(target: dict[str, Any], key: str, name: str, convert: Any = None) -> None:
            value = get(name)
            if value is not None:
                target[key] = convert(value) if convert else value

        def csv(value: str) -> tuple[str, ...]:
            return tuple(item.strip() for item in value.split(",") if item.strip())

        def pairs(value: str) -> dict[str, str]:
            out: dict[str, str] = {}
            for item in csv(value):
                model, sep, provider = item.partition("=")
                if not sep:
                    raise ValueError(f"expected model=provider, got {item!r}")
                out[model.strip()] = provider.strip()
            return out

        def boolean(value: str) -> bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected a boolean, got {value!r}")

        sf: dict[str, Any] = {}
        put(sf, "api_key", "SILICONFLOW_API_KEY")
        put(sf, "base_url", "SILICONFLOW_BASE_URL")
        put(sf, "models", "SILICONFLOW_MODELS", csv)
        put(sf, "timeout_s", "SILICONFLOW_TIMEOUT_S")

        hf: dict[str, Any] = {}
        put(hf, "api_key", "HF_TOKEN")
        put(hf, "base_url", "HF_ROUTER_URL")
        put(hf, "hub_url", "HF_ENDPOINT")
        put(hf, "models", "HF_MODELS", csv)
        put(hf, "router_providers", "HF_ROUTER_PROVIDERS", pairs)
        put(hf, "default_router_provider", "HF_ROUTER_PROVIDER")
        put(hf, "timeout_s", "HF_TIMEOUT_S")

        horde: dict[str, Any] = {}
        put(horde, "api_key", "HORDE_API_KEY")
        put(horde, "base_url", "HORDE_BASE_URL")
        put(horde, "client_agent", "HORDE_CLIENT_AGENT")
        put(horde, "models", "HORDE_MODELS", csv)
        put(horde, "timeout_s", "HORDE_TIMEOUT_S")

        poll: dict[str, Any] = {}
        put(poll, "api_key", "POLLINATIONS_API_KEY")
        put(poll, "models", "POLLINATIONS_MODELS", csv)
        put(poll, "timeout_s", "POLLINATIONS_TIMEOUT_S")
        if get("POLLINATIONS_BASE_URL"):
            poll["base_url"] = get("POLLINATIONS_BASE_URL")
            poll["explicit_base_url"] = True
        elif "api_key" in poll:
            poll["base_url"] = "https://gen.pollinations.ai"

        chain: dict[str, Any] = {}
        put(chain, "default_chain", "IMAGEGEN_PROVIDERS", csv)
        put(chain, "hedge", "IMAGEGEN_HEDGE", boolean)
        put(chain, "breaker_threshold", "IMAGEGEN_BREAKER_THRESHOLD")
        put(chain, "breaker_cooldown_s", "IMAGEGEN_BREAKER_COOLDOWN_S")
        put(chain, "placeholder_hashes", "IMAGEGEN_PLACEHOLDER_HASHES", csv)

        hedge_delay = get("IMAGEGEN_HEDGE_DELAY_S")
        if hedge_delay is not None:
            for section in (sf, hf, horde, poll):
                section["hedge_delay_s"] = hedge_delay

        return cls(
            siliconflow=SiliconFlowSettings(**sf),
            huggingface=HuggingFaceSettings(**hf),
            horde=HordeSettings(**horde),
            pollinations=PollinationsSettings(**poll),
            chain=ChainSettings(**chain),
        )
