"""A video job's result from the provider's link into S3 (imagegen.media.video_results): the storage double serves the
link, the safe fetcher reads it, the container check passes or refuses it, moto's S3 keeps it, or nothing."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from imagegen.adapters.media_cache import MediaCache
from imagegen.errors import ServiceUnavailable
from imagegen.generation import GeneratedVideo, RunContext
from imagegen.media.fetch import FetchPolicy, SafeFetcher
from imagegen.media.video_results import VideoResults
from imagegen.providers.base import FallThrough, ImageBytes, ResultUrl

from tests.doubles import video
from tests.doubles.storage import StorageDouble

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration

POLICY = FetchPolicy(allow_private_networks=True, max_bytes=64 * 1024 * 1024, total_timeout=30.0)


def _results(s3_client: Any, bucket: str, policy: FetchPolicy = POLICY) -> VideoResults:
    return VideoResults(
        MediaCache(bucket, s3_client), lambda seconds: SafeFetcher(replace(policy, total_timeout=min(30.0, seconds)))
    )


def _ctx(seconds: float = 60.0) -> RunContext:
    return RunContext(job_id="vid_01JD0000000000000000000000", user_id="alice", deadline=time.monotonic() + seconds)


def _keys(s3_client: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


class TestVideoResults:
    def test_given_a_signed_webm_link_when_stored_then_the_bytes_and_what_the_container_says(
        self, storage: StorageDouble, s3_client: Any, media_bucket: str
    ) -> None:
        data = video.webm(96, 54, frames=8, fps=4, seed="results")
        storage.put("v.webm", data, kind="oss", content_type="video/webm")

        stored = _results(s3_client, media_bucket).store(
            ResultUrl(storage.mint_url("oss", "v.webm", 600)), _ctx(), "siliconflow", "Wan-AI/Wan2.2-T2V-A14B"
        )

        assert isinstance(stored, GeneratedVideo)
        key = "videos/alice/vid_01JD0000000000000000000000.webm"
        assert (stored.key, stored.content_type, stored.width, stored.height) == (key, "video/webm", 96, 54)
        assert (stored.duration_s, stored.bytes, stored.sha256) == (2.0, len(data), hashlib.sha256(data).hexdigest())
        assert (stored.provider, stored.model) == ("siliconflow", "Wan-AI/Wan2.2-T2V-A14B")
        assert s3_client.get_object(Bucket=media_bucket, Key=key)["Body"].read() == data
        assert [r.headers.get("authorization") for r in storage.requests] == [None]

    @pytest.mark.parametrize(
        ("body", "content_type", "reason"),
        [
            (video.html_error_page(), "video/mp4", "the body is an HTML or XML document, not a video"),
            (video.mp4(32, 18, frames=4, fps=4, seed="x"), "image/png", "declared type image/png is not video/mp4"),
            (video.mp4(32, 18, frames=4, fps=4, seed="x"), "video/webm", "declared video/webm but the body is an MP4"),
        ],
    )
    def test_given_a_link_that_serves_no_video_of_its_type_when_stored_then_invalid_video_and_nothing_in_s3(
        self, storage: StorageDouble, s3_client: Any, media_bucket: str, body: bytes, content_type: str, reason: str
    ) -> None:
        storage.put("bad.mp4", body, kind="oss", content_type=content_type)

        failed = _results(s3_client, media_bucket).store(
            ResultUrl(storage.mint_url("oss", "bad.mp4", 600)), _ctx(), "siliconflow", None
        )

        assert isinstance(failed, FallThrough)
        assert (failed.error_class, failed.status_code) == ("invalid_video", 200)
        assert reason in failed.message
        assert _keys(s3_client, media_bucket) == []

    def test_given_a_link_the_storage_says_has_expired_when_stored_then_expired_without_the_url(
        self, storage: StorageDouble, s3_client: Any, media_bucket: str
    ) -> None:
        storage.put("late.mp4", video.mp4(32, 18, frames=4, fps=4, seed="late"), kind="oss", content_type="video/mp4")
        url = storage.mint_url("oss", "late.mp4", 600)
        storage.advance_clock(3600)

        failed = _results(s3_client, media_bucket).store(ResultUrl(url), _ctx(), "siliconflow", None)

        assert isinstance(failed, FallThrough)
        assert (failed.error_class, failed.status_code) == ("expired", 410)
        assert failed.message == "video download failed: expired"
        assert _keys(s3_client, media_bucket) == []

    def test_given_a_video_over_the_byte_limit_when_stored_then_result_fetch_and_nothing_in_s3(
        self, storage: StorageDouble, s3_client: Any, media_bucket: str
    ) -> None:
        storage.put(
            "big.mp4",
            video.mp4(32, 18, frames=4, fps=4, seed="b", mdat_padding=70_000),
            kind="oss",
            content_type="video/mp4",
        )
        small = replace(POLICY, max_bytes=50_000)

        failed = _results(s3_client, media_bucket, small).store(
            ResultUrl(storage.mint_url("oss", "big.mp4", 600)), _ctx(), "siliconflow", None
        )

        assert isinstance(failed, FallThrough)
        assert (failed.error_class, failed.status_code, failed.message) == (
            "result_fetch",
            413,
            "video download failed: payload_too_large",
        )
        assert _keys(s3_client, media_bucket) == []

    def test_given_an_inline_video_when_stored_then_checked_and_stored_like_a_link(
        self, s3_client: Any, media_bucket: str
    ) -> None:
        data = video.mp4(32, 18, frames=4, fps=4, seed="inline")

        stored = _results(s3_client, media_bucket).store(ImageBytes(data, "video/mp4"), _ctx(), "fal", None)

        assert isinstance(stored, GeneratedVideo) and stored.key.endswith(".mp4")
        assert s3_client.get_object(Bucket=media_bucket, Key=stored.key)["Body"].read() == data

    def test_given_no_time_left_in_the_run_when_stored_then_timeout_without_a_fetch(
        self, storage: StorageDouble, s3_client: Any, media_bucket: str
    ) -> None:
        storage.put("v.mp4", video.mp4(32, 18, frames=4, fps=4, seed="t"), kind="oss", content_type="video/mp4")

        failed = _results(s3_client, media_bucket).store(
            ResultUrl(storage.mint_url("oss", "v.mp4", 600)), _ctx(seconds=2.5), "siliconflow", None
        )

        assert isinstance(failed, FallThrough) and failed.error_class == "timeout"
        assert storage.requests == []

    def test_given_our_bucket_failing_when_stored_then_the_error_is_ours_and_not_the_providers(
        self, storage: StorageDouble, s3_client: Any
    ) -> None:
        storage.put("v.mp4", video.mp4(32, 18, frames=4, fps=4, seed="s3"), kind="oss", content_type="video/mp4")

        with pytest.raises(ServiceUnavailable):
            _results(s3_client, "no-such-bucket-here").store(
                ResultUrl(storage.mint_url("oss", "v.mp4", 600)), _ctx(), "siliconflow", None
            )
        with pytest.raises(ClientError):
            s3_client.head_bucket(Bucket="no-such-bucket-here")
