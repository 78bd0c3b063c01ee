"""The local stack's concurrent invocations each see their own request in Powertools' resolvers (imagegen.local)."""

from __future__ import annotations

import threading
from typing import Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.typing import LambdaContext
from imagegen.local.resolvers import isolate_resolvers

from tests.conftest import FakeLambdaContext, rest_event


def _resolve(app: APIGatewayRestResolver, path: str) -> dict[str, Any]:
    return app.resolve(rest_event("GET", path), cast(LambdaContext, FakeLambdaContext("ApiFunction")))


def test_given_two_invocations_of_one_resolver_at_once_when_both_answer_then_each_sees_its_own_request() -> None:
    # Given a module-level resolver (as imagegen.api.app is) with a route on an included Router that reads the
    # request only after the other invocation has started, on the isolated resolvers the local stack installs
    isolate_resolvers()
    app = APIGatewayRestResolver()
    router = Router()
    both_started = threading.Barrier(2, timeout=10)

    @router.get("/<name>")
    def who(name: str) -> dict[str, str]:
        both_started.wait()
        return {"arg": name, "path": router.current_event.path, "app_path": app.current_event.path}

    app.include_router(router)
    answers: dict[str, Any] = {}

    def invoke(name: str) -> None:
        answers[name] = _resolve(app, f"/{name}")

    # When two threads resolve different requests, each pausing inside its route until both are in
    threads = [threading.Thread(target=invoke, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    # Then each answer is its own request's, read through the app and through the router
    for name in ("alice", "bob"):
        assert answers[name]["statusCode"] == 200, answers[name]
        assert answers[name]["body"] == f'{{"arg":"{name}","path":"/{name}","app_path":"/{name}"}}'


def test_given_isolated_resolvers_when_one_thread_resolves_twice_then_nothing_is_left_from_the_first() -> None:
    # Given the isolation installed twice (idempotent) and a resolver answering two requests on one thread
    isolate_resolvers()
    isolate_resolvers()
    app = APIGatewayRestResolver()

    @app.get("/<name>")
    def who(name: str) -> dict[str, Any]:
        return {"path": app.current_event.path, "context": sorted(app.context)}

    # When it answers /a and then /b
    first = _resolve(app, "/a")
    second = _resolve(app, "/b")

    # Then each saw its own path, and the route context was cleared in between (only this request's keys)
    assert '"path":"/a"' in first["body"] and '"path":"/b"' in second["body"]
    assert app.context == {}
