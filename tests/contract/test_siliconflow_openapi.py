"""The SiliconFlow double against the OpenAPI facts (PROVIDERS.md 1, PROVIDERS-ROUTES.md 4), one table.

SiliconFlow publishes no official Python SDK, so each row is a request as the API reference describes it and the
answer the reference documents: status, and the shape (field names and JSON types) of the body.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.doubles import video
from tests.doubles.keys import SF_KEY
from tests.doubles.siliconflow import MODEL_DOES_NOT_EXIST, SiliconFlowDouble

AUTH = {"authorization": f"Bearer {SF_KEY}"}


def _image_result(body: Any) -> None:
    assert set(body) == {"images", "timings", "seed"}
    assert isinstance(body["images"][0]["url"], str) and isinstance(body["timings"]["inference"], float)
    assert isinstance(body["seed"], int)


def _error_20015(body: Any) -> None:
    assert set(body) == {"code", "message", "data"} and body["code"] == 20015


def _model_list(expected: list[str]) -> Callable[[Any], None]:
    def check(body: Any) -> None:
        assert body["object"] == "list"
        assert all(set(item) == {"id", "object", "created", "owned_by"} for item in body["data"])
        assert sorted(item["id"] for item in body["data"]) == sorted(expected)

    return check


def _request_id(body: Any) -> None:
    assert set(body) == {"requestId"} and isinstance(body["requestId"], str)


@dataclass
class Row:
    name: str
    method: str
    path: str
    status: int
    check: Callable[[Any], None]
    body: dict[str, Any] | None = None
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=lambda: dict(AUTH))


KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a cat", "image_size": "1024x1024"}
KOLORS_ALL = {
    **KOLORS,
    "negative_prompt": "dog",
    "batch_size": 1,
    "seed": 7,
    "num_inference_steps": 20,
    "guidance_scale": 7.5,
}
QWEN_CFG = {
    "model": "Qwen/Qwen-Image",
    "prompt": "a cat",
    "image_size": "1328x1328",
    "cfg": 4.0,
    "num_inference_steps": 50,
}
SCHNELL = {"model": "black-forest-labs/FLUX.1-schnell", "prompt": "a cat"}
T2V = {"model": "Wan-AI/Wan2.2-T2V-A14B", "prompt": "a cat", "image_size": "1280x720"}
I2V = "Wan-AI/Wan2.2-I2V-A14B"
IMAGE_MODELS = [
    "Kwai-Kolors/Kolors",
    "Qwen/Qwen-Image",
    "Tongyi-MAI/Z-Image-Turbo",
    "black-forest-labs/FLUX.1-dev",
    "black-forest-labs/FLUX.1-schnell",
]
ROWS = [
    Row("kolors-every-field", "POST", "/v1/images/generations", 200, _image_result, KOLORS_ALL),
    Row("qwen-image-cfg", "POST", "/v1/images/generations", 200, _image_result, QWEN_CFG),
    Row("schnell-prompt-enhancement", "POST", "/v1/images/generations", 200, _image_result,
        {**SCHNELL, "image_size": "1024x1024", "prompt_enhancement": False}),
    Row("z-image-turbo", "POST", "/v1/images/generations", 200, _image_result,
        {"model": "Tongyi-MAI/Z-Image-Turbo", "prompt": "a cat", "image_size": "1024x1024", "seed": 1}),
    Row("schnell-refuses-steps", "POST", "/v1/images/generations", 400, _error_20015,
        {**SCHNELL, "num_inference_steps": 4}),
    Row("qwen-refuses-guidance-scale", "POST", "/v1/images/generations", 400, _error_20015,
        {"model": "Qwen/Qwen-Image", "prompt": "a cat", "guidance_scale": 7.5}),
    Row("unknown-model", "POST", "/v1/images/generations", 400, lambda body: _eq(body, MODEL_DOES_NOT_EXIST),
        {**KOLORS, "model": "black-forest-labs/FLUX.2-pro"}),
    Row("no-key", "POST", "/v1/images/generations", 401, lambda body: _eq(body, "Invalid token"), KOLORS, headers={}),
    Row("wrong-key", "GET", "/v1/models", 401, lambda body: _eq(body, "Invalid token"),
        headers={"authorization": "Bearer sk-other"}),
    Row("unknown-path", "GET", "/v1/nothing", 404, lambda body: _eq(body, "404 page not found")),
    Row("models-all", "GET", "/v1/models", 200, _model_list(
        [*IMAGE_MODELS, "Wan-AI/Wan2.2-T2V-A14B", "Wan-AI/Wan2.2-I2V-A14B", "Qwen/Qwen3-8B"])),
    Row("models-image", "GET", "/v1/models", 200, _model_list(IMAGE_MODELS), query={"type": "image"}),
    Row("models-text-to-image", "GET", "/v1/models", 200, _model_list(IMAGE_MODELS),
        query={"sub_type": "text-to-image"}),
    Row("models-video", "GET", "/v1/models", 200, _model_list(["Wan-AI/Wan2.2-T2V-A14B", "Wan-AI/Wan2.2-I2V-A14B"]),
        query={"type": "video"}),
    Row("models-text-to-video", "GET", "/v1/models", 200, _model_list(["Wan-AI/Wan2.2-T2V-A14B"]),
        query={"sub_type": "text-to-video"}),
    Row("video-submit-t2v", "POST", "/v1/video/submit", 200, _request_id, {**T2V, "negative_prompt": "dog", "seed": 3}),
    Row("video-submit-i2v", "POST", "/v1/video/submit", 200, _request_id,
        {**T2V, "model": I2V, "image": "data:image/png;base64,iVBORw0KGgo=", "image_size": "960x960"}),
    Row("video-i2v-needs-image", "POST", "/v1/video/submit", 400, lambda body: _eq(body["code"], 20012),
        {**T2V, "model": I2V}),
    Row("video-size-enum", "POST", "/v1/video/submit", 400, lambda body: _eq(body["code"], 20012),
        {**T2V, "image_size": "1024x1024"}),
    Row("video-unknown-field", "POST", "/v1/video/submit", 400, _error_20015, {**T2V, "duration": 5}),
    Row("video-status-unknown-id", "POST", "/v1/video/status", 400, lambda body: _eq(body["code"], 20012),
        {"requestId": "nope"}),
]  # fmt: skip


def _eq(actual: Any, expected: Any) -> None:
    assert actual == expected


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_given_a_request_from_the_api_reference_when_sent_then_the_double_answers_as_documented(
    siliconflow: SiliconFlowDouble, row: Row
):
    answer = httpx.request(
        row.method, f"{siliconflow.url}{row.path}", json=row.body, params=row.query, headers=row.headers
    )

    assert answer.status_code == row.status
    row.check(answer.json() if answer.headers.get("content-type", "").startswith("application/json") else answer.text)


@pytest.mark.parametrize(
    ("statuses", "kind", "content_type"),
    [
        (["InQueue", "InProgress", "Succeed"], "mp4", "video/mp4"),
        (["InProgress", "Succeed"], "webm", "video/webm"),
        (["InQueue", "Failed"], "mp4", None),
    ],
)
def test_given_a_submitted_video_when_polled_then_statuses_follow_and_the_result_is_a_real_video(
    siliconflow: SiliconFlowDouble, statuses: list[str], kind: str, content_type: str | None
):
    siliconflow.video_statuses, siliconflow.video_kind = statuses, kind
    request_id = httpx.post(f"{siliconflow.url}/v1/video/submit", json=T2V, headers=AUTH).json()["requestId"]

    answers = [
        httpx.post(f"{siliconflow.url}/v1/video/status", json={"requestId": request_id}, headers=AUTH).json()
        for _ in statuses
    ]

    assert [answer["status"] for answer in answers] == statuses
    last = answers[-1]
    if content_type is None:
        assert last["reason"] == siliconflow.video_failure_reason and last["results"] is None
        return
    assert set(last["results"]) == {"videos", "timings", "seed"}
    url = last["results"]["videos"][0]["url"]
    assert "Expires=" in url and "Signature=" in url  # a signed OSS link
    fetched = httpx.get(url)
    assert fetched.headers["content-type"] == content_type
    if kind == "mp4":
        assert video.mp4_duration_seconds(fetched.content) > 0
    else:
        assert fetched.content[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in fetched.content[:40]


def test_given_html_mode_when_the_video_is_fetched_then_an_html_page_comes_as_video_mp4(siliconflow: SiliconFlowDouble):
    siliconflow.video_statuses, siliconflow.video_kind = ["Succeed"], "html"
    request_id = httpx.post(f"{siliconflow.url}/v1/video/submit", json=T2V, headers=AUTH).json()["requestId"]

    answer = httpx.post(f"{siliconflow.url}/v1/video/status", json={"requestId": request_id}, headers=AUTH).json()
    fetched = httpx.get(answer["results"]["videos"][0]["url"])

    assert fetched.headers["content-type"] == "video/mp4"
    assert fetched.content.startswith(b"<!DOCTYPE html>")
    with pytest.raises(ValueError):
        video.mp4_duration_seconds(fetched.content)


def test_given_a_retired_model_when_listed_and_used_then_it_is_gone_in_both_with_the_chosen_status(
    siliconflow: SiliconFlowDouble,
):
    siliconflow.retire("Kwai-Kolors/Kolors")
    siliconflow.missing_model_status = 404

    listing = httpx.get(f"{siliconflow.url}/v1/models", params={"sub_type": "text-to-image"}, headers=AUTH).json()
    answer = httpx.post(f"{siliconflow.url}/v1/images/generations", json=KOLORS, headers=AUTH)

    assert "Kwai-Kolors/Kolors" not in [item["id"] for item in listing["data"]]
    assert (answer.status_code, answer.json()) == (404, MODEL_DOES_NOT_EXIST)


def test_given_broken_gzip_mode_when_a_client_reads_the_200_then_decoding_fails(siliconflow: SiliconFlowDouble):
    siliconflow.broken_gzip = True

    with pytest.raises(httpx.DecodingError):
        httpx.post(f"{siliconflow.url}/v1/images/generations", json=KOLORS, headers=AUTH)
    with httpx.stream("POST", f"{siliconflow.url}/v1/images/generations", json=KOLORS, headers=AUTH) as answer:
        head = (answer.status_code, answer.headers["content-encoding"])
        raw = b"".join(answer.iter_raw())

    assert head == (200, "gzip")
    with pytest.raises((OSError, EOFError, zlib.error)):
        gzip.decompress(raw)
