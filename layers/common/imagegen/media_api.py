"""MediaProxy function wiring: its settings, the adapters built once per container, and the HTTP answers."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Self

import boto3
from aws_lambda_powertools.event_handler import Response
from botocore.config import Config
from pydantic import BaseModel, ConfigDict, Field

from imagegen.adapters.media_cache import MediaCache
from imagegen.fetch import DEFAULT_MAX_BYTES, FetchPolicy, SafeFetcher
from imagegen.media import (
    DEFAULT_INLINE_MAX_BYTES,
    DEFAULT_PRESIGN_TTL_SECONDS,
    INLINE_MAX_BYTES_LIMIT,
    InlineMedia,
    MediaAnswer,
    MediaProxy,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class MediaProxySettings(BaseModel):
    """The MediaProxy function's environment, validated once at cold start."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    bucket_name: Annotated[str, Field(alias="BUCKET_NAME", min_length=3, max_length=63)]
    allowed_hosts: Annotated[str | None, Field(alias="MEDIA_ALLOWED_HOSTS")] = None
    allow_private_networks: Annotated[bool, Field(alias="MEDIA_ALLOW_PRIVATE_NETWORKS")] = False
    max_bytes: Annotated[int, Field(alias="MEDIA_MAX_BYTES", gt=0, le=1024**3)] = DEFAULT_MAX_BYTES
    inline_max_bytes: Annotated[int, Field(alias="MEDIA_INLINE_MAX_BYTES", gt=0, le=INLINE_MAX_BYTES_LIMIT)] = (
        DEFAULT_INLINE_MAX_BYTES
    )
    presign_ttl_seconds: Annotated[int, Field(alias="MEDIA_PRESIGN_TTL_SECONDS", ge=60, le=43_200)] = (
        DEFAULT_PRESIGN_TTL_SECONDS
    )
    connect_timeout_seconds: Annotated[float, Field(alias="MEDIA_CONNECT_TIMEOUT_SECONDS", gt=0, le=30)] = 5.0
    read_timeout_seconds: Annotated[float, Field(alias="MEDIA_READ_TIMEOUT_SECONDS", gt=0, le=60)] = 15.0
    # Below API Gateway's 29 s integration limit, so the caller gets our 504 rather than the gateway's.
    total_timeout_seconds: Annotated[float, Field(alias="MEDIA_TOTAL_TIMEOUT_SECONDS", gt=0, le=60)] = 25.0
    aws_endpoint_url: Annotated[str | None, Field(alias="AWS_ENDPOINT_URL")] = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        return cls.model_validate(dict(environ))

    def fetch_policy(self) -> FetchPolicy:
        return FetchPolicy.from_settings(
            self.allowed_hosts,
            self.allow_private_networks,
            self.max_bytes,
            connect_timeout=self.connect_timeout_seconds,
            read_timeout=self.read_timeout_seconds,
            total_timeout=self.total_timeout_seconds,
        )


def build_media_proxy(settings: MediaProxySettings, *, s3_client: S3Client | None = None) -> MediaProxy:
    """The proxy with its adapters; `s3_client` for callers that already hold one."""
    if s3_client is None:
        # SigV4 presigned URLs work in every region; path-style keeps them valid on an emulator endpoint.
        config = Config(
            signature_version="s3v4", s3={"addressing_style": "path" if settings.aws_endpoint_url else "auto"}
        )
        s3_client = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, config=config)
    return MediaProxy(
        SafeFetcher(settings.fetch_policy()),
        MediaCache(settings.bucket_name, s3_client),
        inline_max_bytes=settings.inline_max_bytes,
        presign_ttl_seconds=settings.presign_ttl_seconds,
    )


def media_response(answer: MediaAnswer) -> Response[str]:
    if isinstance(answer, InlineMedia):
        response = Response(
            status_code=200,
            content_type=answer.content_type,
            body=base64.b64encode(answer.data).decode("ascii"),
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )
        # Encoded here rather than by Powertools (which does so for a bytes body): with validation enabled it
        # would first try to serialize the bytes as UTF-8 text.
        response.base64_encoded = True
        return response
    # The presigned URL is short-lived: nobody may keep the redirect.
    return Response(status_code=302, headers={"Location": answer.location, "Cache-Control": "no-store"}, body="")
