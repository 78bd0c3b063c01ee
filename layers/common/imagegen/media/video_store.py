"""Stores a provider's video in S3 as it streams in, checked on the way: only a valid video appears under its key."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from imagegen.adapters.media_cache import MediaCache
from imagegen.media.video_check import VideoCheck, VideoInfo


def store_video(
    stream_chunks: Iterable[bytes | bytearray], key: str, declared_type: str, cache: MediaCache
) -> VideoInfo:
    """Copy the chunks to `key` (multipart, at most two parts in memory) and return what the check found.

    The check sits in the chunk iterator that `MediaCache.store` consumes, so it fails inside that loop: as soon as
    the bytes show the problem (an HTML page, a wrong type, an impossible size), else after the last chunk (a
    truncated body, no movie header, zero duration) but before the single PutObject or CompleteMultipartUpload.
    MediaCache.store aborts the upload on any error from its iterator, so an invalid video never becomes visible
    under `key` and nothing needs deleting. Raises InvalidVideo, or whatever the chunks raise (size limit, upstream
    failure, timeout), or ServiceUnavailable from S3.
    """
    check = VideoCheck(declared_type)  # an unusable declared type fails here, before any byte is read
    cache.store(key, _checked(stream_chunks, check), check.declared_type)
    return check.info


def _checked(chunks: Iterable[bytes | bytearray], check: VideoCheck) -> Iterator[bytes | bytearray]:
    for chunk in chunks:
        check.feed(chunk)  # before the chunk is passed on: a chunk that shows the body is wrong never reaches S3
        yield chunk
    check.finish()
