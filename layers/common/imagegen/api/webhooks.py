"""Routes for /v1/webhooks: the caller's signing secret and its rotation; the deliveries, listed and redelivered."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from imagegen import wiring
from imagegen.api.context import user_id
from imagegen.webhooks import SecretView, WebhookSecrets
from imagegen.webhooks.deliveries import DeliveryPage, DeliveryView

router = Router()
# The answer carries a secret: no cache along the way may keep it.
_NO_STORE = {"Cache-Control": "no-store"}


def _secret_response(view: SecretView) -> Response[SecretView]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=view, headers=_NO_STORE)


@router.get(
    "/v1/webhooks/secret",
    summary="Your webhook signing secret (whsec_...), created on first use",
    description="Verify `webhook-signature` with it: see docs/webhooks.md. After a rotation the previous secret "
    "still signs, as a second signature, until `previous_valid_until`.",
)
def get_webhook_secret() -> Response[SecretView]:
    secret = wiring.webhook_secrets().current(user_id(router.current_event.raw_event))
    return _secret_response(WebhookSecrets.view(secret))


@router.post(
    "/v1/webhooks/secret/rotate", summary="Replace your webhook signing secret; the old one signs for 24 h more"
)
def rotate_webhook_secret() -> Response[SecretView]:
    secret = wiring.webhook_secrets().rotate(user_id(router.current_event.raw_event))
    return _secret_response(WebhookSecrets.view(secret))


@router.get(
    "/v1/webhooks/deliveries",
    summary="Your webhook deliveries: one per event, newest first within a status",
    description="`status` picks `pending` (attempts remain; `next_attempt_at` says when), `succeeded` or `failed` "
    "(every attempt failed, or the receiver answered 410). Without it, all of them, grouped by status. A delivery "
    "shows its URL's host only. Kept as long as the job or batch it tells of.",
)
def list_webhook_deliveries(
    status: Annotated[Literal["pending", "succeeded", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> DeliveryPage:
    return wiring.webhook_deliveries().list(user_id(router.current_event.raw_event), status, limit, cursor)


@router.post(
    "/v1/webhooks/deliveries/<delivery_id>/redeliver",
    summary="Send a delivery again: same webhook-id and body, a fresh series of attempts",
    description="For a `failed` (or `succeeded`) delivery: it becomes `pending` and is attempted again at once, then "
    "on the retry schedule. 409 while it is still pending.",
    responses={
        202: {"description": "The delivery, pending again", "content": {"application/json": {"model": DeliveryView}}}
    },
)
def redeliver_webhook(delivery_id: str) -> Response[DeliveryView]:
    view = wiring.webhook_deliveries().redeliver(user_id(router.current_event.raw_event), delivery_id)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=view)
