"""store_video against the signed-storage double (through SafeFetcher.stream) and moto's S3 server.

A valid video lands byte for byte; an invalid one leaves nothing in the bucket, whether it fails at once or after the
last part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from imagegen.adapters.media_cache import MIN_PART_SIZE, MediaCache
from imagegen.errors import UpstreamError
from imagegen.media.fetch import SafeFetcher
from imagegen.media.video_check import InvalidVideo, VideoInfo
from imagegen.media.video_store import store_video

from tests.doubles import video
from tests.doubles.storage import StorageDouble

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.doubles.fixtures"]

KEY = "videos/vid_0001.mp4"


def fetch_and_store(fetcher: SafeFetcher, url: str, cache: MediaCache, key: str = KEY) -> VideoInfo:
    """What the video worker does with a provider's result link."""
    with fetcher.stream(url) as media:
        return store_video(media.iter_bytes(), key, media.content_type, cache)


def bucket_is_empty(s3: S3Client, bucket: str) -> bool:
    objects = s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return objects == 0 and not uploads


def stored(s3: S3Client, bucket: str, key: str = KEY) -> tuple[bytes, str]:
    answer = s3.get_object(Bucket=bucket, Key=key)
    return answer["Body"].read(), answer["ContentType"]


@pytest.fixture
def cache(s3_client: S3Client, media_bucket: str) -> MediaCache:
    return MediaCache(media_bucket, s3_client)


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("fast start, one PutObject", video.mp4(64, 48, frames=6, fps=10, seed="small")),
        ("moov last, multipart", video.mp4(64, 48, frames=6, fps=10, moov_first=False, mdat_padding=12 * 1024 * 1024)),
    ],
)
def test_given_a_valid_mp4_at_a_signed_link_when_stored_then_s3_holds_it_byte_for_byte(
    storage: StorageDouble,
    safe_fetcher: SafeFetcher,
    cache: MediaCache,
    s3_client: S3Client,
    media_bucket: str,
    label: str,
    data: bytes,
) -> None:
    # Given a real MP4 behind an OSS-style signed link, served as video/mp4
    storage.put("outputs/video.mp4", data, content_type="video/mp4")
    url = storage.mint_url("oss", "outputs/video.mp4", ttl_seconds=600)
    # When the worker streams it through the check into S3
    info = fetch_and_store(safe_fetcher, url, cache)
    # Then the stored object is the double's file, byte for byte, typed video/mp4, and the facts are the file's
    body, content_type = stored(s3_client, media_bucket)
    sha256 = hashlib.sha256(data).hexdigest()
    assert (hashlib.sha256(body).hexdigest(), content_type) == (sha256, "video/mp4"), label
    assert info == VideoInfo("video/mp4", 0.6, 64, 48, len(data), sha256)
    assert s3_client.list_multipart_uploads(Bucket=media_bucket).get("Uploads", []) == []


def test_given_a_webm_at_a_signed_link_when_stored_then_s3_holds_it_typed_video_webm(
    storage: StorageDouble, safe_fetcher: SafeFetcher, cache: MediaCache, s3_client: S3Client, media_bucket: str
) -> None:
    data = video.webm(96, 64, frames=8, fps=10, seed="webm")
    storage.put("clip.webm", data, content_type="video/webm")
    info = fetch_and_store(safe_fetcher, storage.mint_url("azure", "clip.webm"), cache, "videos/clip.webm")
    assert stored(s3_client, media_bucket, "videos/clip.webm") == (data, "video/webm")
    assert (info.content_type, info.duration_s, info.width, info.height, info.bytes) == (
        "video/webm",
        0.8,
        96,
        64,
        len(data),
    )


def test_given_an_html_page_served_as_video_mp4_when_stored_then_invalid_and_the_bucket_stays_empty(
    storage: StorageDouble, safe_fetcher: SafeFetcher, cache: MediaCache, s3_client: S3Client, media_bucket: str
) -> None:
    # Given the error page a broken CDN serves with Content-Type video/mp4
    storage.put("outputs/video.mp4", video.html_error_page(), content_type="video/mp4")
    # When the worker tries to store it
    with pytest.raises(InvalidVideo) as caught:
        fetch_and_store(safe_fetcher, storage.mint_url("oss", "outputs/video.mp4"), cache)
    # Then the check names why, and nothing is in the bucket: no object, no upload left open
    assert caught.value.reason == "the body is an HTML or XML document, not a video"
    assert bucket_is_empty(s3_client, media_bucket)


def zero_duration(moov_last_mp4: bytes) -> bytes:
    """The file with its movie and media headers saying 0 s (moov is last, so its boxes are the last matches)."""
    data = bytearray(moov_last_mp4)
    for kind in (b"mvhd", b"mdhd"):
        duration_at = data.rindex(kind) + 4 + 16  # version 0: flags, two times and the timescale come first
        data[duration_at : duration_at + 4] = bytes(4)
    return bytes(data)


BIG = 2 * MIN_PART_SIZE + 1024  # three parts: S3 has two of them by the time the body ends


@pytest.mark.parametrize(
    ("label", "data", "expected"),
    [
        (
            "cut short inside mdat",
            video.mp4(frames=6, mdat_padding=BIG)[:-1000],
            "truncated: the body ended at byte {size} inside box 'mdat' at byte ",
        ),
        (
            "zero duration, moov last",
            zero_duration(video.mp4(frames=6, moov_first=False, mdat_padding=BIG)),
            "zero duration (the movie header and its tracks say the video lasts 0 s)",
        ),
    ],
)
def test_given_a_large_video_found_invalid_only_at_its_end_when_stored_then_the_multipart_upload_is_aborted(
    storage: StorageDouble,
    safe_fetcher: SafeFetcher,
    cache: MediaCache,
    s3_client: S3Client,
    media_bucket: str,
    label: str,
    data: bytes,
    expected: str,
) -> None:
    # Given a video of three parts whose flaw shows only after its last byte
    storage.put("outputs/video.mp4", data, content_type="video/mp4")
    # When it is stored
    with pytest.raises(InvalidVideo) as caught:
        fetch_and_store(safe_fetcher, storage.mint_url("oss", "outputs/video.mp4"), cache)
    # Then the whole body was read (so parts had gone to S3), the reason says what is wrong, and the upload was
    # aborted: no object and no upload left open under the key
    (request,) = storage.requests
    assert (request.body_bytes_sent, request.client_aborted) == (len(data), False), label
    assert caught.value.reason.startswith(expected.format(size=len(data)))
    assert bucket_is_empty(s3_client, media_bucket)


def test_given_a_webm_served_as_video_mp4_when_stored_then_the_type_disagrees_and_nothing_is_stored(
    storage: StorageDouble, safe_fetcher: SafeFetcher, cache: MediaCache, s3_client: S3Client, media_bucket: str
) -> None:
    storage.put("clip.mp4", video.webm(), content_type="video/mp4")
    with pytest.raises(InvalidVideo) as caught:
        fetch_and_store(safe_fetcher, storage.mint_url("s3", "clip.mp4"), cache)
    assert caught.value.reason == "declared video/mp4 but the body is a WebM (Matroska) container"
    assert bucket_is_empty(s3_client, media_bucket)


def test_given_the_upstream_failing_after_two_parts_when_stored_then_its_error_comes_through_and_nothing_is_stored(
    cache: MediaCache, s3_client: S3Client, media_bucket: str
) -> None:
    # Given a valid MP4 whose connection breaks once two parts have gone to S3 (what MediaStream raises then)
    data = video.mp4(mdat_padding=BIG)

    def chunks() -> Iterator[bytes]:
        for start in range(0, 2 * MIN_PART_SIZE + 65536, 65536):
            yield data[start : start + 65536]
        raise UpstreamError("could not read from upstream storage.example")

    # When it is stored, Then that error comes through unchanged (not as an invalid video) and the upload is aborted
    with pytest.raises(UpstreamError) as caught:
        store_video(chunks(), KEY, "video/mp4", cache)
    assert type(caught.value) is UpstreamError
    assert bucket_is_empty(s3_client, media_bucket)
