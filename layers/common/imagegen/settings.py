"""One settings model per function, read from the environment once at cold start."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr


class AwsSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    aws_region: str = Field("us-east-1", validation_alias=AliasChoices("aws_region", "aws_default_region"))
    # Set only locally (the embedded emulator) and in tests; in AWS, boto3 finds the real endpoints.
    aws_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        return cls.model_validate({key.lower(): value for key, value in environ.items() if value != ""})


class FunctionSettings(AwsSettings):
    table_name: str = Field(min_length=1)


class AuthorizerSettings(FunctionSettings):
    pass


class JobSettings(FunctionSettings):
    bucket_name: str = Field(min_length=1)
    queue_url: str = Field(min_length=1)
    job_ttl_days: int = Field(30, ge=1, le=3650)


class WebhookSettings(FunctionSettings):
    # The webhook queue; unset, no webhook is queued (jobs run as ever).
    webhook_queue_url: str | None = None
    # For local test doubles only: webhook URLs may be http and loopback/private (never metadata or link-local).
    media_allow_private_networks: bool = False
    # Seconds before each delivery attempt (comma-separated); the default is imagegen.webhooks.RETRY_DELAYS.
    webhook_retry_delays: str | None = Field(None, pattern=r"^\d{1,3}(,\d{1,3}){0,19}$")


class ApiSettings(JobSettings, WebhookSettings):
    max_wait_seconds: int = Field(25, ge=0, le=28)
    content_url_seconds: int = Field(300, ge=30, le=3600)


class FetchSettings(BaseModel):
    """How every fetch of an outside URL is checked: the media proxy's and the worker's (provider result URLs)."""

    # Host suffixes; empty means imagegen.fetch's defaults, a list replaces them.
    media_allowed_hosts: str | None = None
    # Local test doubles only: also admits plain http and loopback/private addresses (never metadata).
    media_allow_private_networks: bool = False
    media_max_bytes: int = Field(20 * 1024 * 1024, gt=0, le=1024**3)
    media_connect_timeout_seconds: float = Field(5.0, gt=0, le=30)
    media_read_timeout_seconds: float = Field(15.0, gt=0, le=60)
    # Below API Gateway's 29 s integration limit, so the caller gets our 504 rather than the gateway's.
    media_total_timeout_seconds: float = Field(25.0, gt=0, le=28)


class WorkerSettings(JobSettings, FetchSettings, WebhookSettings):
    job_lease_seconds: int = Field(150, ge=1)
    worker_deadline_seconds: int = Field(100, ge=1)
    job_max_receive_count: int = Field(4, ge=1)
    # Web grounding (grounding: "web"). Without a key the search is skipped with a warning on the job.
    tavily_api_key: SecretStr | None = None
    tavily_base_url: str = Field("https://api.tavily.com", pattern=r"^https?://\S+$")
    grounding_timeout_seconds: float = Field(8.0, gt=0, le=60)


class MediaProxySettings(AwsSettings, FetchSettings):
    """The MediaProxy function: no table, only the bucket that holds copies of large media."""

    bucket_name: str = Field(min_length=1)
    # Lambda answers at most 6 MB and base64 adds a third: 4.5 MB is the most that still fits.
    media_inline_max_bytes: int = Field(4 * 1024 * 1024, gt=0, le=4_500_000)
    media_presign_ttl_seconds: int = Field(900, ge=60, le=43_200)
