"""The REQUEST authorizer's logic: a bearer token resolves to a user id, or the request is refused."""

from __future__ import annotations

from typing import Any, Protocol

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)


class Tokens(Protocol):
    def resolve(self, token: str) -> str | None: ...


def bearer_token(headers: dict[str, str] | None) -> str | None:
    for name, value in (headers or {}).items():
        if name.lower() == "authorization":
            scheme, _, token = value.partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


def authorize(raw_event: dict[str, Any], tokens: Tokens) -> dict[str, Any]:
    event = APIGatewayAuthorizerRequestEvent(raw_event)
    token = bearer_token(event.headers)
    user_id = tokens.resolve(token) if token else None
    if user_id is None:
        # API Gateway turns exactly this message into a 401 (the UNAUTHORIZED gateway response).
        raise PermissionError("Unauthorized")
    arn = event.parsed_arn
    response = APIGatewayAuthorizerResponse(
        principal_id=user_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context={"user_id": user_id},
    )
    # The policy is cached per token for the TTL, so it must cover every route, not only this one.
    response.allow_all_routes()
    return response.asdict()
