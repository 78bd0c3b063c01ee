"""Gives each local invocation its own view of Powertools' REST resolvers, as Lambda's one-request process does.

Powertools keeps the request being answered where a process shares it: the event and Lambda context on the
`BaseRouter` class, the matched route and its arguments in the resolver's `context` dict, and the resolvers
themselves are module-level objects of the `imagegen` package. Lambda runs one invocation per process at a time, so
that is safe there. The local stack runs concurrent invocations as threads of one process: two requests at once read
each other's event (a request with a valid token answered 401 because it saw a public route's event) or lose the
matched route (`KeyError: '_route'`), and two first `/openapi.json` requests build the schema over each other.

`isolate_resolvers()` makes those attributes per thread (an invocation runs on one thread from start to end) and
the schema build one at a time. It changes nothing for a single thread, which is all Lambda ever has.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_STATE = threading.local()
_SCHEMA_LOCK = threading.RLock()
_MARK = "_imagegen_isolated"


def _mine() -> dict[tuple[int, str], Any]:
    values: dict[tuple[int, str], Any] | None = getattr(_STATE, "values", None)
    if values is None:
        values = _STATE.values = {}
    return values


class _PerThread:
    """A data descriptor: each thread reads what it set on that object, else `default()` (stored for the thread)."""

    def __init__(self, name: str, default: Callable[[], Any]) -> None:
        self.name = name
        self.default = default

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        values = _mine()
        key = (id(obj), self.name)
        if key not in values:
            values[key] = self.default()
        return values[key]

    def __set__(self, obj: object, value: Any) -> None:
        _mine()[(id(obj), self.name)] = value


def isolate_resolvers() -> None:
    """Idempotent. Per thread: every REST resolver's event, Lambda context and route context; schema builds in turn."""
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

    if getattr(ApiGatewayResolver, _MARK, False):
        return
    resolve = ApiGatewayResolver.resolve
    schema = ApiGatewayResolver.get_openapi_schema

    def isolated_resolve(self: Any, event: dict[str, Any], context: Any) -> Any:
        # Powertools assigns the event to the BaseRouter class, which every thread shares; each resolver instance
        # (and each Router included in it) reads it through the instance, so this thread's copy is what they see.
        self.current_event = self._to_proxy_event(getattr(event, "raw_event", event))
        self.lambda_context = context
        return resolve(self, event, context)

    def serialized_schema(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _SCHEMA_LOCK:
            return schema(self, *args, **kwargs)

    # Set on the resolver class, ahead of BaseRouter's class attributes in the lookup order.
    ApiGatewayResolver.current_event = _PerThread("current_event", lambda: None)  # type: ignore[assignment]
    ApiGatewayResolver.lambda_context = _PerThread("lambda_context", lambda: None)  # type: ignore[assignment]
    ApiGatewayResolver.context = _PerThread("context", dict)  # type: ignore[assignment]
    ApiGatewayResolver.resolve = isolated_resolve  # type: ignore[method-assign,assignment]
    ApiGatewayResolver.get_openapi_schema = serialized_schema  # type: ignore[method-assign]
    setattr(ApiGatewayResolver, _MARK, True)
