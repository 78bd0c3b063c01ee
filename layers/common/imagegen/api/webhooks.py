"""Routes for /v1/webhooks: the caller's signing secret, and its rotation."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from imagegen import wiring
from imagegen.api.context import user_id
from imagegen.webhooks import SecretView, WebhookSecrets

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
