"""Adapters and services built once per container from the function's settings; tests call reset()."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from imagegen.adapters.image_store import ImageStore
from imagegen.adapters.job_queue import JobQueue
from imagegen.adapters.job_store import JobStore
from imagegen.adapters.media_cache import MediaCache
from imagegen.adapters.quota_store import DynamoQuotaStore
from imagegen.adapters.tokens import TokenStore
from imagegen.generation import Generator
from imagegen.jobs import JobService
from imagegen.media import MediaProxy
from imagegen.models import utcnow
from imagegen.offline import PlaceholderGenerator
from imagegen.quota import DailyQuota, QuotaRefunds
from imagegen.settings import (
    ApiSettings,
    AuthorizerSettings,
    FunctionSettings,
    JobSettings,
    KeySettings,
    MediaProxySettings,
    ScheduledSettings,
    WorkerSettings,
)
from imagegen.work import Worker, WorkerConfig

if TYPE_CHECKING:
    import httpx
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient

    from imagegen.adapters.deployment_keys import SecretDeploymentKeys
    from imagegen.adapters.key_store import KeyStore
    from imagegen.chain_keys import ChainKeys
    from imagegen.chain_status import ChainStatus
    from imagegen.key_health import HealthService
    from imagegen.keys import DeploymentKeys, KeyResolver
    from imagegen.scheduled import ScheduledRun
    from imagegen.user_keys import UserKeyService

# Explicit timeouts and bounded retries: a slow AWS call must not eat the whole Lambda timeout.
_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


def dynamodb(settings: FunctionSettings) -> DynamoDBClient:
    return _dynamodb(settings.aws_region, settings.aws_endpoint_url)


@cache
def _dynamodb(region: str, endpoint: str | None) -> DynamoDBClient:
    return boto3.client("dynamodb", region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)


@cache
def _s3(region: str, endpoint: str | None) -> S3Client:
    return boto3.client("s3", region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)


@cache
def _sqs(region: str, endpoint: str | None) -> SQSClient:
    return boto3.client("sqs", region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)


@cache
def _kms(region: str, endpoint: str | None) -> KMSClient:
    return boto3.client("kms", region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)


@cache
def _secretsmanager(region: str, endpoint: str | None) -> SecretsManagerClient:
    return boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint, config=_AWS_CONFIG)


@cache
def _keycheck_client(timeout_seconds: float) -> httpx.Client:
    from imagegen.keycheck import new_client

    return new_client(timeout_seconds)


@cache
def _secret_keys(name: str, max_age: int, region: str, endpoint: str | None) -> SecretDeploymentKeys:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from imagegen.adapters.deployment_keys import SecretDeploymentKeys

    # Cached per container: the Powertools provider's own cache (max_age) must outlive one invocation.
    return SecretDeploymentKeys(name, SecretsProvider(boto3_client=_secretsmanager(region, endpoint)), max_age=max_age)


def deployment_keys(settings: KeySettings) -> DeploymentKeys:
    """One Secrets Manager secret when PROVIDER_KEYS_SECRET is set; else the environment (local, tests)."""
    from imagegen.adapters.deployment_keys import EnvDeploymentKeys

    if settings.provider_keys_secret:
        return _secret_keys(
            settings.provider_keys_secret,
            settings.provider_keys_max_age_seconds,
            settings.aws_region,
            settings.aws_endpoint_url,
        )
    return EnvDeploymentKeys(settings)


# Key, health and schedule modules are imported where they are used: the Authorizer, Worker and MediaProxy cold
# starts should not pay for them.


def key_store(settings: KeySettings) -> KeyStore:
    from imagegen.adapters.key_store import KeyStore

    region, endpoint = settings.aws_region, settings.aws_endpoint_url
    return KeyStore(settings.table_name, _dynamodb(region, endpoint), _kms(region, endpoint), settings.keys_kms_key_id)


def key_resolver(settings: KeySettings) -> KeyResolver:
    """A fresh resolver: it caches decrypted user keys, so build one per invocation (or per job run)."""
    from imagegen.keys import KeyResolver

    store = key_store(settings)
    return KeyResolver(store, deployment_keys(settings), store)


def chain_keys(settings: KeySettings) -> ChainKeys:
    """The chain's key ports: pass the result as both key_resolver= and key_health= of providers.wiring.build_chain,
    and call its begin_invocation() once per worker invocation."""
    # Imported here: the chain (and httpx with it) is the worker's business, not every function's cold start.
    from imagegen.chain_keys import ChainKeys

    return ChainKeys(lambda: key_resolver(settings))


def health_service(settings: KeySettings, *, clock: Callable[[], datetime] = utcnow) -> HealthService:
    # Imported here: httpx is for the functions that check keys (Api, Scheduled), not every cold start.
    from imagegen.adapters.metrics import EmfMetrics
    from imagegen.key_health import HealthService
    from imagegen.keycheck import KeyChecker, KeyCheckUrls

    store = key_store(settings)
    urls = KeyCheckUrls(
        siliconflow=settings.siliconflow_base_url,
        huggingface=settings.hf_endpoint,
        horde=settings.horde_base_url,
        pollinations=settings.pollinations_gen_url,
        tavily=settings.tavily_base_url,
    )
    return HealthService(
        KeyChecker(_keycheck_client(settings.keycheck_timeout_seconds), urls),
        store,
        store,
        EmfMetrics(),
        interval_seconds=settings.keycheck_interval_seconds,
        hf_interval_seconds=settings.hf_whoami_interval_seconds,
        clock=clock,
    )


def quota_refunds(settings: FunctionSettings) -> QuotaRefunds:
    return QuotaRefunds(DynamoQuotaStore(settings.table_name, dynamodb(settings)))


def _job_adapters(settings: JobSettings) -> tuple[JobStore, JobQueue, ImageStore]:
    region, endpoint = settings.aws_region, settings.aws_endpoint_url
    return (
        JobStore(settings.table_name, _dynamodb(region, endpoint), ttl_seconds=settings.job_ttl_days * 86400),
        JobQueue(settings.queue_url, _sqs(region, endpoint)),
        ImageStore(settings.bucket_name, _s3(region, endpoint)),
    )


@cache
def api_settings() -> ApiSettings:
    return ApiSettings.from_env(os.environ)


@cache
def job_service() -> JobService:
    settings = api_settings()
    store, queue, images = _job_adapters(settings)
    quota = DailyQuota(DynamoQuotaStore(settings.table_name, dynamodb(settings)), settings.daily_image_quota)
    return JobService(
        store,
        queue,
        images,
        content_url_seconds=settings.content_url_seconds,
        quota=quota,
        on_terminal=[quota_refunds(settings)],
    )


@cache
def user_key_service() -> UserKeyService:
    from imagegen.user_keys import UserKeyService

    settings = api_settings()
    return UserKeyService(key_store(settings), health_service(settings))


@cache
def chain_status() -> ChainStatus:
    from imagegen.adapters.breakers import DynamoBreakers
    from imagegen.chain_status import ChainStatus

    settings = api_settings()
    return ChainStatus(
        lambda: key_resolver(settings),
        DynamoBreakers(settings.table_name, dynamodb(settings), cooldown_seconds=settings.imagegen_breaker_cooldown_s),
        settings.provider_order,
    )


@cache
def token_store() -> TokenStore:
    settings = AuthorizerSettings.from_env(os.environ)
    return TokenStore(settings.table_name, dynamodb(settings))


def generator(settings: WorkerSettings) -> Generator:
    return PlaceholderGenerator()


@cache
def worker() -> Worker:
    settings = WorkerSettings.from_env(os.environ)
    store, queue, images = _job_adapters(settings)
    config = WorkerConfig(
        lease_seconds=settings.job_lease_seconds,
        deadline_seconds=settings.worker_deadline_seconds,
        max_receive_count=settings.job_max_receive_count,
    )
    return Worker(store, images, queue, generator(settings), config, on_terminal=[quota_refunds(settings)])


@cache
def scheduled_run() -> ScheduledRun:
    from imagegen.adapters.metrics import EmfMetrics
    from imagegen.scheduled import ScheduledRun
    from imagegen.sweeper import SweepConfig, Sweeper

    settings = ScheduledSettings.from_env(os.environ)
    region, endpoint = settings.aws_region, settings.aws_endpoint_url
    refunds = quota_refunds(settings)
    sweeper = Sweeper(
        JobStore(settings.table_name, _dynamodb(region, endpoint), ttl_seconds=settings.job_ttl_days * 86400),
        JobQueue(settings.queue_url, _sqs(region, endpoint)),
        SweepConfig(
            max_receive_count=settings.job_max_receive_count,
            queued_requeue_seconds=settings.queued_requeue_seconds,
            max_jobs=settings.sweep_max_jobs,
            max_age_seconds=settings.job_max_age_seconds,
        ),
        on_terminal=[refunds],
    )
    return ScheduledRun(
        sweeper,
        health_service(settings),
        deployment_keys(settings),
        key_store(settings),
        EmfMetrics(),
        max_key_checks=settings.keycheck_max_per_run,
        check_timeout_seconds=settings.keycheck_timeout_seconds,
    )


@cache
def media_proxy() -> MediaProxy:
    # Imported here: only the MediaProxy function needs httpx, and the other functions' cold starts should not pay.
    from imagegen.fetch import FetchPolicy, SafeFetcher

    settings = MediaProxySettings.from_env(os.environ)
    policy = FetchPolicy.from_settings(
        settings.media_allowed_hosts,
        settings.media_allow_private_networks,
        settings.media_max_bytes,
        connect_timeout=settings.media_connect_timeout_seconds,
        read_timeout=settings.media_read_timeout_seconds,
        total_timeout=settings.media_total_timeout_seconds,
    )
    return MediaProxy(
        SafeFetcher(policy),
        MediaCache(settings.bucket_name, _s3(settings.aws_region, settings.aws_endpoint_url)),
        inline_max_bytes=settings.media_inline_max_bytes,
        presign_ttl_seconds=settings.media_presign_ttl_seconds,
    )


def reset() -> None:
    """Forget every cached setting and client (the environment changed: tests, the local stack)."""
    for cached in (
        _dynamodb,
        _s3,
        _sqs,
        _kms,
        _secretsmanager,
        _keycheck_client,
        _secret_keys,
        api_settings,
        job_service,
        token_store,
        worker,
        user_key_service,
        chain_status,
        scheduled_run,
        media_proxy,
    ):
        cached.cache_clear()
