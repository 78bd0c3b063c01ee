"""Routes for /v1/images: create, list, read, long-poll, download, cancel, retry."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from imagegen import wiring
from imagegen.api.context import header, location, prefer_wait, user_id
from imagegen.errors import NotFound
from imagegen.ids import JOB_ID_PATTERN
from imagegen.models import ImageRequest, Job, JobPage, VideoJob

if TYPE_CHECKING:
    from imagegen.jobs.service import JobService

router = Router()
_JOB_ID = re.compile(JOB_ID_PATTERN)
# How soon a client should poll again while a job runs.
POLL_AFTER_SECONDS = 2


def _job_id(value: str) -> str:
    if not _JOB_ID.fullmatch(value):
        raise NotFound(f"no image job with id {value[:64]}")
    return value


J = TypeVar("J", Job, VideoJob)


def job_response(job: J, status: int = 200, headers: dict[str, str] | None = None) -> Response[J]:
    out = dict(headers or {})
    if not job.terminal:
        out["Retry-After"] = str(POLL_AFTER_SECONDS)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=job, headers=out)


def content_response(url: str, headers: dict[str, str] | None) -> Response[Any]:
    """302 to the stored result's presigned URL; as JSON for a client that asks for it (Accept: application/json)."""
    # A browser's fetch cannot read a cross-origin 302, and an <img> or <video> cannot send the token: a page asks
    # for the URL as JSON and sets it as the element's src. The 302 stays the default.
    accept = header(headers, "accept") or ""
    if any(part.split(";")[0].strip().lower() == "application/json" for part in accept.split(",")):
        body = {"url": url, "expires_in": wiring.api_settings().content_url_seconds}
        return Response(
            status_code=200,
            content_type=content_types.APPLICATION_JSON,
            body=body,
            headers={"Cache-Control": "private, no-store"},
        )
    return Response(status_code=302, headers={"Location": url, "Cache-Control": "private, max-age=60"}, body="")


def waited(service: JobService[Any, J], job: J, user: str, headers: dict[str, str] | None) -> tuple[J, dict[str, str]]:
    """The job after `Prefer: wait=N` (the job as it is when the wait ends), and the header saying it was honoured."""
    wait = prefer_wait(headers, wiring.api_settings().max_wait_seconds)
    if wait is None or job.terminal:
        return job, {}
    return service.wait(user, job.id, wait), {"Preference-Applied": f"wait={wait}"}


def _waited(job: Job, user: str) -> tuple[Job, dict[str, str]]:
    return waited(wiring.job_service(), job, user, router.current_event.headers)


@router.post(
    "/v1/images",
    summary="Create an image job",
    description="Queues a job and answers 202 with it. `Idempotency-Key` makes a retried POST return the same job; "
    "`Prefer: wait=N` (N ≤ 25) holds the answer until the job ends or N seconds pass.",
    responses={202: {"description": "The job", "content": {"application/json": {"model": Job}}}},
)
def create_image(request: ImageRequest) -> Response[Job]:
    user = user_id(router.current_event.raw_event)
    key = header(router.current_event.headers, "idempotency-key")
    job, created = wiring.job_service().create(user, request, key)
    job, applied = _waited(job, user)
    headers = {"Location": location(router.current_event.raw_event, f"/v1/images/{job.id}"), **applied}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return job_response(job, 202, headers)


@router.get("/v1/images", summary="List your jobs, newest first")
def list_images(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> JobPage:
    items, next_cursor = wiring.job_service().list(user_id(router.current_event.raw_event), limit, cursor)
    return JobPage(items=items, next_cursor=next_cursor)


@router.get("/v1/images/<job_id>", summary="Get a job; `Prefer: wait=N` long-polls until it ends")
def get_image(job_id: str) -> Response[Job]:
    user = user_id(router.current_event.raw_event)
    job, applied = _waited(wiring.job_service().get(user, _job_id(job_id)), user)
    return job_response(job, headers=applied)


@router.get(
    "/v1/images/<job_id>/content",
    summary="Redirect to the image (a short-lived presigned URL); 409 until the job has succeeded",
    responses={302: {"description": "Redirect to the image"}},
)
def get_image_content(job_id: str) -> Response[Any]:
    url = wiring.job_service().content_url(user_id(router.current_event.raw_event), _job_id(job_id))
    return content_response(url, router.current_event.headers)


@router.post("/v1/images/<job_id>/cancel", summary="Cancel a job (idempotent)")
def cancel_image(job_id: str) -> Response[Job]:
    return job_response(wiring.job_service().cancel(user_id(router.current_event.raw_event), _job_id(job_id)))


@router.post(
    "/v1/images/<job_id>/retry",
    summary="Start a new job from a finished job's request",
    responses={202: {"description": "The new job", "content": {"application/json": {"model": Job}}}},
)
def retry_image(job_id: str) -> Response[Job]:
    job = wiring.job_service().retry(user_id(router.current_event.raw_event), _job_id(job_id))
    return job_response(job, 202, {"Location": location(router.current_event.raw_event, f"/v1/images/{job.id}")})
