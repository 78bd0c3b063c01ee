"""Routes for /v1/batches: create, read, retry the failed items, cancel the rest."""

from __future__ import annotations

import re

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from imagegen import wiring
from imagegen.api.context import header, location, user_id
from imagegen.errors import NotFound
from imagegen.ids import BATCH_ID_PATTERN
from imagegen.jobs.batch_models import Batch, BatchCreate

router = Router()
_BATCH_ID = re.compile(BATCH_ID_PATTERN)
# How soon a client should poll again while a batch runs.
POLL_AFTER_SECONDS = 2


def _batch_id(value: str) -> str:
    if not _BATCH_ID.fullmatch(value):
        raise NotFound(f"no batch with id {value[:64]}")
    return value


def _batch_response(batch: Batch, status: int = 200, headers: dict[str, str] | None = None) -> Response[Batch]:
    out = dict(headers or {})
    if batch.status == "running":
        out["Retry-After"] = str(POLL_AFTER_SECONDS)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=batch, headers=out)


@router.post(
    "/v1/batches",
    summary="Create a batch of image jobs that run in parallel",
    description="Each item is `defaults` merged with the item's fields, validated as an image request; one bad "
    "item rejects the whole batch (422 names `items.<index>.<field>`). 1-50 items. `Idempotency-Key` makes a "
    "retried POST return the same batch.",
    responses={202: {"description": "The batch", "content": {"application/json": {"model": Batch}}}},
)
def create_batch(body: BatchCreate) -> Response[Batch]:
    user = user_id(router.current_event.raw_event)
    key = header(router.current_event.headers, "idempotency-key")
    batch, created = wiring.batch_service().create(user, body, key)
    headers = {"Location": location(router.current_event.raw_event, f"/v1/batches/{batch.id}")}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return _batch_response(batch, 202, headers)


@router.get("/v1/batches/<batch_id>", summary="A batch: status, progress, counts per status, each item's job")
def get_batch(batch_id: str) -> Response[Batch]:
    return _batch_response(wiring.batch_service().get(user_id(router.current_event.raw_event), _batch_id(batch_id)))


@router.post(
    "/v1/batches/<batch_id>/retry",
    summary="Re-run the failed items (new jobs take their places); 409 when none failed",
    responses={202: {"description": "The batch", "content": {"application/json": {"model": Batch}}}},
)
def retry_batch(batch_id: str) -> Response[Batch]:
    batch = wiring.batch_service().retry(user_id(router.current_event.raw_event), _batch_id(batch_id))
    return _batch_response(
        batch, 202, {"Location": location(router.current_event.raw_event, f"/v1/batches/{batch.id}")}
    )


@router.post("/v1/batches/<batch_id>/cancel", summary="Cancel every item that has not ended (idempotent)")
def cancel_batch(batch_id: str) -> Response[Batch]:
    return _batch_response(wiring.batch_service().cancel(user_id(router.current_event.raw_event), _batch_id(batch_id)))
