"""The media proxy: answer a signed media URL inline, or from an S3 copy that outlives the provider's link."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final, Protocol

# Lambda answers at most 6 MB and API Gateway carries binary as base64 (4 bytes per 3): 4 MiB fits with room.
DEFAULT_INLINE_MAX_BYTES: Final = 4 * 1024 * 1024
INLINE_MAX_BYTES_LIMIT: Final = 4_500_000
DEFAULT_PRESIGN_TTL_SECONDS: Final = 900
CACHE_PREFIX: Final = "media/"


class MediaBody(Protocol):
    @property
    def content_type(self) -> str: ...

    @property
    def content_length(self) -> int | None: ...

    def iter_bytes(self) -> Iterator[bytes]:
        """The body in chunks; raises PayloadTooLarge past the fetch limit."""
        ...


class MediaSource(Protocol):
    """What the proxy needs of the safe fetcher (imagegen.media.fetch.SafeFetcher)."""

    def precheck(self, url: str) -> None:
        """Policy checks that need no network; raises UrlNotAllowed."""
        ...

    def stream(self, url: str) -> AbstractContextManager[MediaBody]:
        """Expiry check, DNS and address checks, then the upstream body."""
        ...


class MediaCachePort(Protocol):
    """Where bodies too large to answer inline are copied (imagegen.adapters.media_cache.MediaCache)."""

    def exists(self, key: str) -> bool: ...

    def presigned_url(self, key: str, ttl_seconds: int) -> str: ...

    def store(self, key: str, chunks: Iterable[bytes | bytearray], content_type: str) -> int:
        """Copy the chunks to `key` without holding the whole body; returns the byte count."""
        ...


@dataclass(frozen=True)
class InlineMedia:
    content_type: str
    data: bytes


@dataclass(frozen=True)
class CachedMedia:
    location: str  # presigned GET of the copy
    key: str
    from_cache: bool  # True when no upstream request was made


MediaAnswer = InlineMedia | CachedMedia


def cache_key(url: str) -> str:
    """The full URL, signature included, names the copy: the same link always maps to the same object."""
    return CACHE_PREFIX + hashlib.sha256(url.encode()).hexdigest()


class MediaProxy:
    def __init__(
        self,
        source: MediaSource,
        cache: MediaCachePort,
        *,
        inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES,
        presign_ttl_seconds: int = DEFAULT_PRESIGN_TTL_SECONDS,
    ) -> None:
        if not 0 < inline_max_bytes <= INLINE_MAX_BYTES_LIMIT:
            raise ValueError(f"inline_max_bytes must be 1..{INLINE_MAX_BYTES_LIMIT}")
        self._source = source
        self._cache = cache
        self._inline_max = inline_max_bytes
        self._ttl = presign_ttl_seconds

    def get(self, url: str) -> MediaAnswer:
        self._source.precheck(url)
        key = cache_key(url)
        # The copy is looked up before the link's expiry is read: serving it is the point once the link has died.
        if self._cache.exists(key):
            return CachedMedia(location=self._cache.presigned_url(key, self._ttl), key=key, from_cache=True)
        with self._source.stream(url) as body:
            source = body.iter_bytes()
            chunks: Iterator[bytes | bytearray] = source
            if body.content_length is None or body.content_length <= self._inline_max:
                head, overflowed = _read_up_to(source, self._inline_max)
                if not overflowed:
                    return InlineMedia(content_type=body.content_type, data=bytes(head))
                chunks = _prepend(head, source)
                del head  # the copy must not pin the first 4 MiB for the whole upload
            self._cache.store(key, chunks, body.content_type)
        return CachedMedia(location=self._cache.presigned_url(key, self._ttl), key=key, from_cache=False)


def _read_up_to(chunks: Iterator[bytes], limit: int) -> tuple[bytearray, bool]:
    """Read until the body ends or passes `limit`; the bytes read and whether it passed."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        if len(buffer) > limit:
            return buffer, True
    return buffer, False


def _prepend(first: bytearray, rest: Iterator[bytes]) -> Iterator[bytes | bytearray]:
    held = [first]
    del first  # only `held` refers to it, and it lets go once the consumer has it
    yield held.pop()
    yield from rest
