"""One settings model per function, read from the environment once at cold start."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from imagegen.providers.settings import CsvTuple, ProvidersSettings


class AwsSettings(BaseModel):
    # Built on first use: each function validates one of these models, and the others cost no import time.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    aws_region: str = Field("us-east-1", validation_alias=AliasChoices("aws_region", "aws_default_region"))
    # Set only locally (the embedded emulator) and in tests; in AWS, boto3 finds the real endpoints.
    aws_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        return cls.model_validate(cls._values(environ))

    @classmethod
    def _values(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        return {key.lower(): value for key, value in environ.items() if value != ""}


class FunctionSettings(AwsSettings):
    table_name: str = Field(min_length=1)


class KeySettings(FunctionSettings):
    """Where provider keys come from and how they are checked; every provider's own variables (keys, base URLs,
    models, timeouts) and the chain's are parsed once, through the provider registry, into `providers`."""

    providers: ProvidersSettings
    # Name of the Secrets Manager secret holding the deployment's keys (a JSON map); unset: keys from the env.
    provider_keys_secret: str | None = None
    provider_keys_max_age_seconds: int = Field(300, ge=0, le=86400)
    # KMS key that encrypts users' own keys; unset: PUT /v1/keys answers 503.
    keys_kms_key_id: str | None = None
    keycheck_timeout_seconds: float = Field(4.0, gt=0, le=20)
    # A key checked (conclusively or not) more recently than this is not checked again by the schedule (unless its
    # provider's settings say otherwise: Hugging Face's whoami-v2, HF_WHOAMI_INTERVAL_SECONDS).
    keycheck_interval_seconds: int = Field(3600, ge=0)

    @classmethod
    def _values(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        return {**super()._values(environ), "providers": ProvidersSettings.from_environ(environ)}

    def keycheck_intervals(self) -> dict[str, int]:
        """Per provider, how long a checked key is left alone by the schedule."""
        return {
            name: provider.key_check_interval_s
            for name, provider in self.providers.providers.items()
            if provider.key_check_interval_s is not None
        }


class JobSettings(FunctionSettings):
    bucket_name: str = Field(min_length=1)
    queue_url: str = Field(min_length=1)
    job_ttl_days: int = Field(30, ge=1, le=3650)


class WebhookSettings(FunctionSettings):
    # The webhook queue; unset, no webhook is queued (jobs run as ever).
    webhook_queue_url: str | None = None
    # For local test doubles only: webhook URLs may be http and loopback/private (never metadata or link-local).
    media_allow_private_networks: bool = False
    # Seconds before each delivery attempt (comma-separated, 1-20 of them); the default is Standard Webhooks'
    # schedule, imagegen.webhooks.deliveries.RETRY_SCHEDULE (0,5,300,1800,7200,18000,36000,36000).
    webhook_retry_schedule: str | None = Field(None, pattern=r"^\d{1,6}(,\d{1,6}){0,19}$")
    # Delivery records and outbox items live as long as the jobs they belong to.
    job_ttl_days: int = Field(30, ge=1, le=3650)


class VideoSettings(BaseModel):
    """The worker's video jobs: which providers make them, and how their results are fetched (larger and slower than
    images: the byte limit and the time one download may take)."""

    # The video chain (comma-separated provider names); unset: every provider that makes videos, in registry order.
    video_providers: CsvTuple | None = None
    video_max_bytes: int = Field(512 * 1024 * 1024, gt=0, le=5 * 1024**3)
    # One download, within what the job's run has left (WORKER_DEADLINE_SECONDS).
    video_fetch_timeout_seconds: float = Field(90.0, gt=0, le=900)

    @field_validator("video_providers")
    @classmethod
    def _makes_videos(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        from imagegen.providers import VIDEO_PROVIDER_NAMES

        unknown = [name for name in value or () if name not in VIDEO_PROVIDER_NAMES]
        if unknown:
            raise ValueError(f"{unknown} make no videos; video providers: {list(VIDEO_PROVIDER_NAMES)}")
        return value

    def video_chain(self) -> tuple[str, ...]:
        from imagegen.providers import DEFAULT_VIDEO_CHAIN

        return self.video_providers if self.video_providers is not None else DEFAULT_VIDEO_CHAIN


class ApiSettings(JobSettings, WebhookSettings, KeySettings, VideoSettings):
    max_wait_seconds: int = Field(25, ge=0, le=28)
    content_url_seconds: int = Field(300, ge=30, le=3600)
    # Images per user per UTC day; 0 (or unset) turns quotas off. The template's default is 200.
    daily_image_quota: int = Field(0, ge=0)
    # Images per user per minute (a batch counts each image); 0 (or unset) turns the limit off.
    images_per_minute: int = Field(0, ge=0)
    # What one video costs of the daily image quota (the per-minute limit counts a video as one request).
    video_quota_units: int = Field(10, ge=1, le=1000)


class FetchSettings(BaseModel):
    """How every fetch of an outside URL is checked: the media proxy's and the worker's (provider result URLs)."""

    # Host suffixes; empty means the safe fetcher's defaults, a list replaces them.
    media_allowed_hosts: str | None = None
    # Local test doubles only: also admits plain http and loopback/private addresses (never metadata).
    media_allow_private_networks: bool = False
    media_max_bytes: int = Field(20 * 1024 * 1024, gt=0, le=1024**3)
    media_connect_timeout_seconds: float = Field(5.0, gt=0, le=30)
    media_read_timeout_seconds: float = Field(15.0, gt=0, le=60)
    # Below API Gateway's 29 s integration limit, so the caller gets our 504 rather than the gateway's.
    media_total_timeout_seconds: float = Field(25.0, gt=0, le=28)


class WorkerSettings(JobSettings, FetchSettings, WebhookSettings, KeySettings, VideoSettings):
    job_lease_seconds: int = Field(150, ge=1)
    worker_deadline_seconds: int = Field(100, ge=1)
    job_max_receive_count: int = Field(4, ge=1)
    # The sweeper's bound on a job's life (ScheduledSettings): a job may wait for a cooling provider within it.
    job_max_age_seconds: int = Field(3600, ge=60)
    # Worker invocations at once (the event source's MaximumConcurrency): in one process (the local stack) they share
    # the provider client, whose pool holds a connection for each and one for its hedge.
    worker_max_concurrency: int = Field(20, ge=1, le=1000)
    # Web grounding (grounding: "web", Tavily's key and base URL in `providers`). Without a key the search is
    # skipped with a warning on the job.
    grounding_timeout_seconds: float = Field(8.0, gt=0, le=60)


class ScheduledSettings(WebhookSettings, KeySettings):
    queue_url: str = Field(min_length=1)
    job_max_receive_count: int = Field(4, ge=1)
    # A job still queued this long after it was created gets its message sent again.
    queued_requeue_seconds: int = Field(300, ge=1)
    # A job not finished this long after it was created is failed as stuck by the next sweep.
    job_max_age_seconds: int = Field(3600, ge=60)
    # Outbox items not done this long after they were written are dispatched again by the sweep.
    outbox_stale_seconds: int = Field(60, ge=0, le=3600)
    # Bounds on one run, so a run always ends well inside the function timeout.
    sweep_max_jobs: int = Field(500, ge=1)
    keycheck_max_per_run: int = Field(100, ge=0)


class MediaProxySettings(AwsSettings, FetchSettings):
    """The MediaProxy function: no table, only the bucket that holds copies of large media."""

    bucket_name: str = Field(min_length=1)
    # Lambda answers at most 6 MB and base64 adds a third: 4.5 MB is the most that still fits.
    media_inline_max_bytes: int = Field(4 * 1024 * 1024, gt=0, le=4_500_000)
    media_presign_ttl_seconds: int = Field(900, ge=60, le=43_200)
