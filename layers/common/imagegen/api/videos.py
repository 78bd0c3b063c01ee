"""Routes for /v1/videos: create, list, read, long-poll, download, cancel, retry (the image routes' life cycle)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from imagegen import wiring
from imagegen.api.context import header, location, user_id
from imagegen.api.images import content_response, job_response, waited
from imagegen.errors import NotFound
from imagegen.ids import VIDEO_ID_PATTERN
from imagegen.models import VideoJob, VideoJobPage, VideoRequest

router = Router()
_VIDEO_ID = re.compile(VIDEO_ID_PATTERN)


def _video_id(value: str) -> str:
    if not _VIDEO_ID.fullmatch(value):
        raise NotFound(f"no video job with id {value[:64]}")
    return value


def _location(job: VideoJob) -> str:
    return location(router.current_event.raw_event, f"/v1/videos/{job.id}")


@router.post(
    "/v1/videos",
    summary="Create a video job",
    description="Queues a video job (text-to-video, or image-to-video with `image`) and answers 202 with it. The "
    "provider is asked again by delayed checks until the video is made; it is then streamed into storage and "
    "checked as a real MP4 or WebM. A video takes VIDEO_QUOTA_UNITS units of the daily image quota (default 10). "
    "`Idempotency-Key` makes a retried POST return the same job; `Prefer: wait=N` (N ≤ 25) holds the answer.",
    responses={202: {"description": "The video job", "content": {"application/json": {"model": VideoJob}}}},
)
def create_video(request: VideoRequest) -> Response[VideoJob]:
    user = user_id(router.current_event.raw_event)
    key = header(router.current_event.headers, "idempotency-key")
    service = wiring.video_service()
    job, created = service.create(user, request, key)
    job, applied = waited(service, job, user, router.current_event.headers)
    headers = {"Location": _location(job), **applied}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return job_response(job, 202, headers)


@router.get("/v1/videos", summary="List your video jobs, newest first")
def list_videos(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> VideoJobPage:
    items, next_cursor = wiring.video_service().list(user_id(router.current_event.raw_event), limit, cursor)
    return VideoJobPage(items=items, next_cursor=next_cursor)


@router.get("/v1/videos/<job_id>", summary="Get a video job; `Prefer: wait=N` long-polls until it ends")
def get_video(job_id: str) -> Response[VideoJob]:
    user = user_id(router.current_event.raw_event)
    service = wiring.video_service()
    job, applied = waited(service, service.get(user, _video_id(job_id)), user, router.current_event.headers)
    return job_response(job, headers=applied)


@router.get(
    "/v1/videos/<job_id>/content",
    summary="Redirect to the video (a short-lived presigned URL); 409 until the job has succeeded",
    responses={302: {"description": "Redirect to the video"}},
)
def get_video_content(job_id: str) -> Response[Any]:
    url = wiring.video_service().content_url(user_id(router.current_event.raw_event), _video_id(job_id))
    return content_response(url, router.current_event.headers)


@router.post(
    "/v1/videos/<job_id>/cancel",
    summary="Cancel a video job (idempotent); checks on the provider stop (SiliconFlow has no remote cancel)",
)
def cancel_video(job_id: str) -> Response[VideoJob]:
    return job_response(wiring.video_service().cancel(user_id(router.current_event.raw_event), _video_id(job_id)))


@router.post(
    "/v1/videos/<job_id>/retry",
    summary="Start a new video job from a finished job's request",
    responses={202: {"description": "The new video job", "content": {"application/json": {"model": VideoJob}}}},
)
def retry_video(job_id: str) -> Response[VideoJob]:
    job = wiring.video_service().retry(user_id(router.current_event.raw_event), _video_id(job_id))
    return job_response(job, 202, {"Location": _location(job)})
