"""The OpenAI-compatible route's pure parts: its body onto our requests, and our errors in its shape."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from imagegen.errors import Conflict, NotFound, QuotaExceeded, ValidationFailed
from imagegen.jobs.batch_models import BatchCreate
from imagegen.models import ErrorInfo, ImageInfo, ImageRequest, Job
from imagegen.openai_images import (
    SIZE_PATTERN,
    OpenAiError,
    OpenAiImages,
    chain_choice,
    from_domain,
    image_requests,
    image_size,
    parse_request,
)


def test_given_the_body_the_openai_client_sends_when_parsed_then_unused_fields_are_accepted_and_ignored():
    # Given what openai.images.generate sends from LibreChat, with fields of later API versions too
    body = {
        "model": "gpt-image-1",
        "prompt": "a lighthouse",
        "n": 1,
        "background": "auto",
        "output_format": "png",
        "quality": "auto",
        "size": "auto",
        "style": "vivid",
        "moderation": "low",
        "user": "u-1",
        "partial_images": 0,
        "some_future_field": {"x": [1, 2]},
    }

    # When it is parsed and mapped
    [request] = image_requests(parse_request(body), seed=7)

    # Then it is a 1024x1024 request on the default chain with our seed
    assert request.model_dump(exclude_none=True) == {
        "prompt": "a lighthouse",
        "width": 1024,
        "height": 1024,
        "seed": 7,
        "on_refusal": "stop",
        "grounding": "none",
    }


@pytest.mark.parametrize(
    ("model", "choice"),
    [
        (None, {}),
        ("dall-e-3", {}),
        ("DALL-E-2", {}),
        ("gpt-image-1", {}),
        ("gpt-image-2.5-flare", {}),
        ("chatgpt-image-latest", {}),
        ("placeholder", {"providers": ["placeholder"]}),
        ("siliconflow", {"providers": ["siliconflow"]}),
        ("black-forest-labs/FLUX.1-schnell", {"model": "black-forest-labs/FLUX.1-schnell"}),
        ("a model with spaces", {}),
        ("x" * 201, {}),
    ],
)
def test_given_a_model_name_when_mapped_then_it_picks_a_provider_a_model_or_the_default_chain(model, choice):
    assert chain_choice(model) == choice


def test_given_n_images_when_mapped_then_each_has_its_own_seed_and_the_same_size():
    requests = image_requests(parse_request({"prompt": "fox", "n": 4, "size": "768x512"}), seed=4_294_967_294)

    assert [request.seed for request in requests] == [4_294_967_294, 4_294_967_295, 0, 1]
    assert {(request.width, request.height) for request in requests} == {(768, 512)}


@pytest.mark.parametrize(
    ("size", "expected"),
    [(None, (1024, 1024)), ("auto", (1024, 1024)), ("64x2048", (64, 2048)), ("1536x1024", (1536, 1024))],
)
def test_given_a_size_when_read_then_width_and_height(size, expected):
    assert image_size(size) == expected


@pytest.mark.parametrize(
    ("size", "valid"),
    [
        ("auto", True),
        ("64x64", True),
        ("2048x2048", True),
        ("1000x999", True),
        ("63x512", False),
        ("2049x512", False),
        ("512x20480", False),
        ("0512x512", False),
        ("512*512", False),
        ("512x512 ", False),
        ("", False),
    ],
)
def test_given_the_size_pattern_when_matched_then_it_admits_exactly_64_to_2048_per_side(size, valid):
    assert (re.fullmatch(SIZE_PATTERN.strip("^$"), size) is not None) is valid


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({}, "prompt", "is required"),
        ({"prompt": ""}, "prompt", "must not be empty"),
        ({"prompt": "  "}, "prompt", "non-whitespace"),
        ({"prompt": "x" * 2001}, "prompt", "2000"),
        ({"prompt": 5}, "prompt", "string"),
        ({"prompt": "ok", "n": 0}, "n", "greater than or equal to 1"),
        ({"prompt": "ok", "n": 5}, "n", "less than or equal to 4"),
        ({"prompt": "ok", "n": "2"}, "n", "integer"),
        ({"prompt": "ok", "n": 1.5}, "n", "integer"),
        ({"prompt": "ok", "size": "4096x4096"}, "size", "between 64 and 2048"),
        ({"prompt": "ok", "size": "big"}, "size", 'e.g. "1024x768"'),
        ({"prompt": "ok", "response_format": "png"}, "response_format", "'b64_json' or 'url'"),
        ({"prompt": "ok", "stream": True}, "stream", "not supported"),
        ({"prompt": "ok", "stream": "yes"}, "stream", "False"),
        ([], "body", "JSON object"),
    ],
)
def test_given_a_bad_body_when_parsed_then_400_names_the_parameter(body, param, fragment):
    with pytest.raises(OpenAiError) as caught:
        parse_request(body)

    error = caught.value
    assert error.status == 400
    assert error.param == param
    assert fragment in error.message
    assert error.body() == {
        "error": {"message": error.message, "type": "invalid_request_error", "param": param, "code": error.code}
    }


def test_given_n_written_as_a_float_when_parsed_then_it_is_that_integer():
    assert parse_request({"prompt": "ok", "n": 2.0}).n == 2


def test_given_quota_exhausted_when_mapped_then_429_insufficient_quota_that_the_client_does_not_retry():
    error = from_domain(QuotaExceeded("daily image quota of 5 used up", headers={"Retry-After": "3600"}))

    assert (error.status, error.type, error.code) == (429, "insufficient_quota", "quota_exceeded")
    assert error.headers == {"Retry-After": "3600", "x-should-retry": "false"}


@pytest.mark.parametrize(
    ("domain", "status", "type_"),
    [
        (Conflict("Idempotency-Key was used with another body"), 400, "invalid_request_error"),
        (ValidationFailed("items.0.prompt: required"), 400, "invalid_request_error"),
        (NotFound("nothing"), 404, "invalid_request_error"),
    ],
)
def test_given_a_domain_error_when_mapped_then_never_409_and_the_shape_is_openai(domain, status, type_):
    error = from_domain(domain)

    assert (error.status, error.type) == (status, type_)
    assert error.body()["error"]["message"] == domain.message


# --- OpenAiImages with stand-ins for the job and batch services (the real ones run in tests/integration) ---------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Jobs:
    """JobService's part that OpenAiImages uses: jobs end as `outcomes` says, waits move the clock."""

    def __init__(self, clock: Clock, outcomes: list[dict[str, Any]], image_bytes: int = 1000) -> None:
        self.clock = clock
        self.outcomes = outcomes
        self.image_bytes = image_bytes
        self.created: list[ImageRequest] = []
        self.waits: list[float] = []
        self.read: list[str] = []

    def create(self, user_id: str, request: ImageRequest, key: str | None) -> tuple[Job, bool]:
        self.created.append(request)
        return self._job(len(self.created) - 1, "queued"), True

    def wait(self, user_id: str, job_id: str, seconds: float) -> Job:
        self.waits.append(seconds)
        index = int(job_id.removeprefix("img_"))
        outcome = self.outcomes[index]
        self.clock.now += outcome.get("takes", 1.0)
        return self._job(index, outcome["status"], outcome.get("error"))

    def content(self, user_id: str, job_id: str) -> tuple[bytes, str]:
        self.read.append(job_id)
        return b"\x89PNG" + job_id.encode(), "image/png"

    def content_url(self, user_id: str, job_id: str, expires_in: int | None = None) -> str:
        return f"https://bucket.example/{job_id}?X-Amz-Expires={expires_in}"

    def _job(self, index: int, status: str, error: ErrorInfo | None = None) -> Job:
        image = None
        if status == "succeeded":
            image = ImageInfo(
                url="/x", content_type="image/png", width=64, height=64, bytes=self.image_bytes, sha256="0"
            )
        return Job(
            id=f"img_{index}",
            status=status,  # type: ignore[arg-type]
            request=ImageRequest(prompt="p"),
            image=image,
            error=error,
            created_at=datetime(2026, 12, 2, tzinfo=UTC),
        )


class Batches:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    def create(self, user_id: str, body: BatchCreate, key: str | None) -> tuple[Any, bool]:
        items = [self.jobs.create(user_id, ImageRequest.model_validate(item), None)[0] for item in body.items]
        return SimpleNamespace(items=[SimpleNamespace(job_id=job.id) for job in items]), True


def images(jobs: Jobs, wait: float = 10) -> OpenAiImages:
    return OpenAiImages(
        jobs,  # type: ignore[arg-type]
        Batches(jobs),  # type: ignore[arg-type]
        wait_seconds=wait,
        url_seconds=3600,
        clock=lambda: 1_796_000_000.0,
        monotonic=jobs.clock,
        seeds=lambda: 41,
    )


def test_given_two_images_when_generated_then_one_batch_one_wait_budget_and_both_inline():
    clock = Clock()
    jobs = Jobs(clock, [{"status": "succeeded", "takes": 3}, {"status": "succeeded", "takes": 2}])

    result = images(jobs).generate("alice", {"prompt": "fox", "n": 2})

    assert [request.seed for request in jobs.created] == [41, 42]
    assert jobs.waits == [10, 7]  # the second job gets what the first left of the one budget
    assert [item["b64_json"] for item in result.data] == ["iVBOR2ltZ18w", "iVBOR2ltZ18x"]
    assert result.body() == {"created": 1_796_000_000, "data": result.data, "output_format": "png"}
    assert result.headers == {"x-imagegen-job-ids": "img_0,img_1"}


def test_given_url_when_generated_then_links_signed_for_the_configured_time_and_no_bytes_read():
    jobs = Jobs(Clock(), [{"status": "succeeded"}])

    result = images(jobs).generate("alice", {"prompt": "fox", "response_format": "url"})

    assert result.data == [{"url": "https://bucket.example/img_0?X-Amz-Expires=3600"}]
    assert jobs.read == []


def test_given_images_too_large_for_one_answer_when_b64_json_then_400_naming_the_jobs_before_reading_them():
    # Four images of 1.2 MB are 6.4 MB as base64: more than a Lambda answer holds.
    jobs = Jobs(Clock(), [{"status": "succeeded"}] * 4, image_bytes=1_200_000)

    with pytest.raises(OpenAiError) as caught:
        images(jobs).generate("alice", {"prompt": "fox", "n": 4})

    error = caught.value
    assert (error.status, error.code, error.param) == (400, "response_too_large", "response_format")
    assert "response_format=url" in error.message
    assert all(f"img_{index}" in error.message for index in range(4))
    assert error.headers == {"x-imagegen-job-ids": "img_0,img_1,img_2,img_3", "x-should-retry": "false"}
    assert jobs.read == []


def test_given_a_job_still_running_at_the_deadline_then_504_with_every_job_id_and_no_retry():
    jobs = Jobs(Clock(), [{"status": "succeeded", "takes": 4}, {"status": "running", "takes": 6}])

    with pytest.raises(OpenAiError) as caught:
        images(jobs, wait=10).generate("alice", {"prompt": "fox", "n": 2})

    error = caught.value
    assert (error.status, error.type, error.code) == (504, "server_error", "timeout")
    assert "img_1" in error.message and "img_0" not in error.message.split("jobs ")[1]
    assert error.headers == {"x-imagegen-job-ids": "img_0,img_1", "x-should-retry": "false"}


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (
            "failed",
            ErrorInfo(code="all_providers_failed", message="All 2 providers failed"),
            (502, "all_providers_failed"),
        ),
        ("failed", ErrorInfo(code="content_refused", message="refused"), (400, "content_policy_violation")),
        ("canceled", None, (410, "canceled")),
    ],
)
def test_given_a_job_that_ended_without_an_image_then_an_error_the_client_does_not_retry(status, error, expected):
    jobs = Jobs(Clock(), [{"status": status, "error": error}])

    with pytest.raises(OpenAiError) as caught:
        images(jobs).generate("alice", {"prompt": "fox"})

    assert (caught.value.status, caught.value.code) == expected
    assert caught.value.headers["x-should-retry"] == "false"
    assert "img_0" in caught.value.message
