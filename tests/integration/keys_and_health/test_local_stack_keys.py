"""The repository's template on the local stack: the KMS key, the secret and the scheduled function are wired."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, rest_event
from tests.doubles.keycheck import KeyCheckDouble
from tests.doubles.local_stack import StartStack

pytest_plugins = ["tests.doubles.local_stack"]
pytestmark = pytest.mark.integration

USER_KEY = "sk-LocalStackUserKey000001"


def test_given_the_template_on_the_local_stack_when_a_key_is_put_and_the_schedule_event_replayed_then_it_is_checked(
    local_stack_factory: StartStack, keycheck: KeyCheckDouble
):
    stack = local_stack_factory(
        serve_http=False,
        run_workers=False,
        run_schedules=False,
        env_overrides={
            "IMAGEGEN_PROVIDERS": "placeholder",
            "KEYCHECK_INTERVAL_SECONDS": "0",
            "IMAGEGEN_LOCAL_TOKENS": "alice:igk_example-token-not-real",
            **keycheck.env,
        },
    )
    put = stack.invoke("ApiFunction", rest_event("PUT", "/v1/keys/siliconflow", body={"api_key": USER_KEY}))
    event = json.loads((ROOT / "events" / "scheduled_event.json").read_text())

    report = stack.invoke("ScheduledFunction", event)

    assert put["statusCode"] == 200
    assert json.loads(put["body"])["health"]["status"] == "ok"
    assert report["keys"]["user_checked"] == 1
    assert report["keys"]["errors"] == 0
    assert report["sweep"] == {"examined": 0, "requeued": 0, "failed": 0, "send_errors": 0}
    assert [seen.key for seen in keycheck.seen] == [USER_KEY, USER_KEY]
