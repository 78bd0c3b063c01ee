"""A video job's result, from the provider's link into the jobs bucket: streamed, checked on the way, never held whole.

The chain of a video job calls `VideoResults.store` where an image job's chain downloads and validates an image
(imagegen.chain.ports.VideoResults). What the provider's link gives is fetched by the safe fetcher (allowlisted
hosts, no Authorization header, video-sized byte and time limits), passed through the container check and copied to
S3 by multipart upload under `videos/{user}/{job}.{mp4|webm}` (a redelivered job writes the same key). A body that is
not a real video, a link that expired or a download that fails fails the link: the chain falls through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from imagegen.errors import ImagegenError, ServiceUnavailable
from imagegen.generation import GeneratedVideo, RunContext
from imagegen.media.video_check import MP4, WEBM, InvalidVideo
from imagegen.media.video_store import store_video
from imagegen.providers.base import FallThrough, ImageBytes, ProviderError, ProviderResult, ResultUrl

if TYPE_CHECKING:
    from imagegen.adapters.media_cache import MediaCache
    from imagegen.media.fetch import SafeFetcher

logger = logging.getLogger(__name__)

EXTENSIONS = {MP4: "mp4", WEBM: "webm"}
# Left of the run's deadline for writing the job after the video is stored.
STORE_MARGIN_S = 2.0

FetcherFor = Callable[[float], "SafeFetcher"]
"""seconds -> a safe fetcher whose whole fetch ends within them (the video policy, its total timeout capped)."""


def video_key(user_id: str, job_id: str, content_type: str) -> str:
    return f"videos/{user_id}/{job_id}.{EXTENSIONS.get(content_type.split(';', 1)[0].strip().lower(), 'bin')}"


class VideoResults:
    """imagegen.chain.ports.VideoResults into one bucket."""

    def __init__(
        self, cache: MediaCache, fetcher_for: FetcherFor, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._cache = cache
        self._fetcher_for = fetcher_for
        self._monotonic = monotonic

    def store(
        self, result: ProviderResult, ctx: RunContext, provider: str, model: str | None
    ) -> GeneratedVideo | ProviderError:
        """The stored video, or the link's failure. Raises ServiceUnavailable when our own storage fails: that is
        no fault of the provider's, and the job's delivery is retried (it resumes at the same check)."""
        remaining = ctx.deadline - self._monotonic() - STORE_MARGIN_S
        if remaining < 1:
            return FallThrough("timeout", "no time left to fetch the video before the job's deadline")
        try:
            if isinstance(result, ResultUrl):
                with self._fetcher_for(remaining).stream(result.url) as media:
                    return self._store(media.iter_bytes(), media.content_type, ctx, provider, model)
            if isinstance(result, ImageBytes):
                # An inline result (a data: URI): already in memory, checked and stored the same way.
                return self._store([result.data], result.content_type or "", ctx, provider, model)
        except InvalidVideo as exc:
            logger.info("video result refused", extra={"provider": provider, "reason": exc.reason})
            return FallThrough("invalid_video", exc.reason, status_code=200)
        except ServiceUnavailable:
            raise
        except ImagegenError as exc:
            # The signed link failed, not the provider's API; never show the URL (it carries a signature).
            error_class = "expired" if exc.status == 410 else "result_fetch"
            return FallThrough(error_class, f"video download failed: {exc.code}", status_code=exc.status)
        return FallThrough("bad_response", f"the result is no video link ({type(result).__name__})")

    def _store(
        self, chunks: Iterable[bytes], declared: str, ctx: RunContext, provider: str, model: str | None
    ) -> GeneratedVideo:
        key = video_key(ctx.user_id, ctx.job_id, declared)
        info = store_video(chunks, key, declared, self._cache)
        return GeneratedVideo(
            key=key,
            content_type=info.content_type,
            width=info.width,
            height=info.height,
            duration_s=info.duration_s,
            bytes=info.bytes,
            sha256=info.sha256,
            provider=provider,
            model=model,
        )
