"""The pure parts of webhook deliveries: the retry schedule, what a delivery shows of its URL, which job ends need
an outbox item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from imagegen.jobs.ending import has_side_effects
from imagegen.models import ImageRequest, JobRecord
from imagegen.webhooks.deliveries import RETRY_SCHEDULE, next_delay, parse_schedule, url_host


def test_given_the_default_schedule_when_summed_then_eight_attempts_over_about_27_hours():
    assert len(RETRY_SCHEDULE) == 8
    assert timedelta(hours=27) < timedelta(seconds=sum(RETRY_SCHEDULE)) < timedelta(hours=28)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0,2,4,8", (0, 2, 4, 8)), ("0", (0,)), (" 0, 5 ,300", (0, 5, 300))],
)
def test_given_a_schedule_setting_when_parsed_then_seconds_before_each_attempt(text, expected):
    assert parse_schedule(text) == expected


@pytest.mark.parametrize("text", ["", "0,,5", "-1,5", "5s", ",".join(["1"] * 21), "0,172801"])
def test_given_a_bad_schedule_setting_when_parsed_then_refused_naming_the_variable(text):
    with pytest.raises(ValueError, match="WEBHOOK_RETRY_SCHEDULE"):
        parse_schedule(text)


def test_given_an_attempt_when_the_next_delay_is_asked_then_the_schedule_or_a_longer_retry_after():
    schedule = (0, 5, 300)

    assert next_delay(schedule, 1, None) == 5
    assert next_delay(schedule, 1, 60) == 60  # Retry-After lengthens the wait
    assert next_delay(schedule, 2, 1) == 300  # never shortens it
    assert next_delay(schedule, 2, 10**9) == 36_000  # and is capped at 10 hours
    assert next_delay(schedule, 3, None) is None  # the last attempt was made


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://hooks.example.com/in?token=secret", "hooks.example.com"),
        ("https://hooks.example.com:443/x", "hooks.example.com"),
        ("https://hooks.example.com:8443/x#frag", "hooks.example.com:8443"),
        ("http://127.0.0.1:9000/hook", "127.0.0.1:9000"),
        ("https://[::1]:99999/x", "(invalid URL)"),
    ],
)
def test_given_a_webhook_url_when_a_delivery_shows_it_then_only_the_host(url, host):
    assert url_host(url) == host


def _job(**fields: object) -> JobRecord:
    base: dict[str, object] = {
        "id": "img_1",
        "status": "succeeded",
        "request": ImageRequest(prompt="p"),
        "user_id": "alice",
        "created_at": datetime.now(UTC),
    }
    return JobRecord.model_validate({**base, **fields})


@pytest.mark.parametrize(
    ("fields", "needs"),
    [
        ({}, False),
        ({"request": ImageRequest(prompt="p", webhook_url="https://example.com/h")}, True),
        ({"batch_id": "bat_1"}, True),
        ({"status": "failed", "quota_day": "2026-12-02"}, True),
        ({"status": "canceled", "quota_day": "2026-12-02"}, True),
        ({"status": "succeeded", "quota_day": "2026-12-02"}, False),
        ({"status": "failed"}, False),
    ],
)
def test_given_a_job_that_ended_when_asked_then_an_outbox_item_only_for_a_webhook_a_batch_or_a_refund(fields, needs):
    assert has_side_effects(_job(**fields)) is needs
