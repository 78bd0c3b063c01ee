"""The official `openai` client against POST /v1/images/generations on the local stack (the function URL's routes
on the gateway's port), and the same route in the Api function behind API Gateway (in process)."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
from imagegen.local import LocalStack
from PIL import Image

from tests.conftest import ROOT, Aws

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.doubles.local_stack"]

StartStack = Callable[..., LocalStack]
TOKEN = "tok-openai-0001"


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image


class Requests:
    """Counts the HTTP requests a client sends: the openai client retries some answers by itself."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def hook(self, request: Any) -> None:
        self.sent.append(f"{request.method} {request.url.path}")


@pytest.fixture
def sent() -> Requests:
    return Requests()


@pytest.fixture
def client_for(sent: Requests) -> Iterator[Callable[..., openai.OpenAI]]:
    clients: list[openai.OpenAI] = []

    def make(stack: LocalStack, token: str = TOKEN) -> openai.OpenAI:
        http_client = openai.DefaultHttpxClient(event_hooks={"request": [sent.hook]}, trust_env=False)
        client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=token, http_client=http_client)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def stack(local_stack_factory: StartStack) -> LocalStack:
    return local_stack_factory(
        env_overrides={
            "IMAGEGEN_PROVIDERS": "placeholder",
            "IMAGEGEN_LOCAL_TOKENS": f"alice:{TOKEN}",
            "IMAGEGEN_LOCAL_WORKER_CONCURRENCY": "2",
            "IMAGEGEN_LOCAL_VISIBILITY_TIMEOUT": "3",
        },
        run_schedules=False,
    )


def jobs(stack: LocalStack) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.url}/v1/images", headers={"Authorization": f"Bearer {TOKEN}"}, trust_env=False)
    return list(answer.json()["items"])


def test_given_the_local_stack_when_generating_b64_json_then_a_png_of_the_asked_size(stack, client_for):
    # Given the official client pointed at the stack, the API token as its key
    client = client_for(stack)

    # When it asks for an image as b64_json (its default here too)
    result = client.images.generate(model="gpt-image-1", prompt="a lighthouse at dusk", size="320x192")

    # Then the answer carries one decodable PNG of that size, made by one job of ours
    [image] = result.data
    assert image.b64_json is not None and image.url is None
    assert png(base64.b64decode(image.b64_json)).size == (320, 192)
    assert result.created > 0
    assert [job["request"]["prompt"] for job in jobs(stack)] == ["a lighthouse at dusk"]
    assert jobs(stack)[0]["provider"] == "placeholder"


def test_given_response_format_url_when_generating_then_the_url_works_without_a_token_for_an_hour(stack, client_for):
    client = client_for(stack)

    result = client.images.generate(prompt="a red kite", size="256x128", response_format="url")

    # Then the URL is fetched with no Authorization at all, and was signed for at least an hour
    [image] = result.data
    assert image.url is not None and image.b64_json is None
    fetched = httpx.get(image.url, trust_env=False)
    assert fetched.status_code == 200
    assert png(fetched.content).size == (256, 128)
    assert valid_for(image.url) >= 3600 - 60


def valid_for(url: str) -> float:
    """Seconds a presigned S3 URL was signed for: X-Amz-Expires (SigV4), or Expires as a Unix time (SigV2)."""
    query = parse_qs(urlsplit(url).query)
    if "X-Amz-Expires" in query:
        return float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0]) - time.time()


def test_given_n_2_when_generating_then_two_different_images_from_a_batch(stack, client_for):
    client = client_for(stack)

    result = client.images.generate(prompt="a fox in snow", n=2, size="128x128", model="placeholder")

    first, second = (base64.b64decode(image.b64_json or "") for image in result.data)
    assert png(first).size == png(second).size == (128, 128)
    assert first != second  # each image has its own seed
    made = jobs(stack)
    assert len(made) == 2
    assert {job["batch_id"] for job in made} != {None}
    assert len({job["request"]["seed"] for job in made}) == 2


def test_given_a_bad_request_when_generating_then_bad_request_error_with_our_message_and_no_retry(
    stack, client_for, sent
):
    client = client_for(stack)

    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(prompt="a cat", size="4096x4096")

    assert caught.value.status_code == 400
    assert caught.value.param == "size"  # type: ignore[attr-defined]
    assert "between 64 and 2048" in caught.value.message
    assert sent.sent == ["POST /v1/images/generations"]
    assert jobs(stack) == []


def test_given_stream_true_when_generating_then_bad_request_error(stack, client_for):
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(stack).images.generate(prompt="a cat", stream=True)

    assert caught.value.param == "stream"  # type: ignore[attr-defined]
    assert "not supported" in caught.value.message


def test_given_a_bad_token_when_generating_then_authentication_error(stack, client_for):
    with pytest.raises(openai.AuthenticationError) as caught:
        client_for(stack, token="not-a-token").images.generate(prompt="a cat")

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"  # type: ignore[attr-defined]
    assert caught.value.response.headers["www-authenticate"] == "Bearer"
    assert jobs(stack) == []


def test_given_no_authorization_header_when_posted_then_401_in_openai_shape(stack):
    answer = httpx.post(f"{stack.url}/v1/images/generations", json={"prompt": "a cat"}, trust_env=False)

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_given_a_chain_that_cannot_make_the_image_when_generating_then_502_once_with_the_reason(
    stack, client_for, sent
):
    # Given a model that names SiliconFlow, for which the local stack has no key
    client = client_for(stack)

    # When the job fails
    with pytest.raises(openai.InternalServerError) as caught:
        client.images.generate(prompt="a cat", model="siliconflow")

    # Then the client gets the reason, and does not retry (which would only fail the same way again)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert sent.sent == ["POST /v1/images/generations"]
    [job] = jobs(stack)
    assert job["status"] == "failed"
    assert job["id"] in caught.value.message
    assert caught.value.response.headers["x-imagegen-job-ids"] == job["id"]


def test_given_quota_used_up_when_generating_then_rate_limit_error_once_and_no_new_job(
    local_stack_factory, client_for, sent
):
    stack = local_stack_factory(
        env_overrides={"IMAGEGEN_LOCAL_TOKENS": f"alice:{TOKEN}", "IMAGEGEN_PROVIDERS": "placeholder"},
        parameter_overrides={"DailyImageQuota": "1"},
        run_schedules=False,
    )
    client = client_for(stack)
    client.images.generate(prompt="the one image of the day", size="64x64")

    with pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(prompt="one more", size="64x64")

    assert caught.value.status_code == 429
    assert caught.value.code == "quota_exceeded"  # type: ignore[attr-defined]
    assert caught.value.type == "insufficient_quota"  # type: ignore[attr-defined]
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert int(caught.value.response.headers["retry-after"]) > 0
    assert sent.sent == ["POST /v1/images/generations"] * 2
    assert len(jobs(stack)) == 1


def test_given_a_generation_still_running_at_the_wait_limit_then_504_with_the_job_ids_and_no_retry(
    local_stack_factory, client_for, sent
):
    # Given a stack whose workers are stopped (the job stays queued) and a 1 s wait
    stack = local_stack_factory(
        env_overrides={"IMAGEGEN_LOCAL_TOKENS": f"alice:{TOKEN}", "OPENAI_WAIT_SECONDS": "1"},
        run_workers=False,
        run_schedules=False,
    )

    # When the client asks for two images
    with pytest.raises(openai.InternalServerError) as caught:
        client_for(stack).images.generate(prompt="slow", n=2)

    # Then 504 names both jobs, in the message and a header, and the client did not send the request again
    ids = {job["id"] for job in jobs(stack)}
    assert caught.value.status_code == 504
    assert set(caught.value.response.headers["x-imagegen-job-ids"].split(",")) == ids
    assert all(job_id in caught.value.message for job_id in ids)
    assert sent.sent == ["POST /v1/images/generations"]
    assert len(ids) == 2


def test_given_the_function_url_when_asked_another_path_or_method_then_openai_shaped_404_and_405(stack):
    # GET on the path goes through API Gateway to the Api function, POST elsewhere to nothing: both in OpenAI's shape.
    headers = {"Authorization": f"Bearer {TOKEN}"}
    wrong_method = httpx.get(f"{stack.url}/v1/images/generations", headers=headers, trust_env=False)

    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert set(wrong_method.json()["error"]) == {"message", "type", "param", "code"}


def test_given_a_body_that_is_not_utf8_when_posted_then_400_invalid_json(stack):
    answer = httpx.post(
        f"{stack.url}/v1/images/generations",
        content='{"prompt": "café"}'.encode("latin-1"),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        trust_env=False,
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "message": "body: the request body is not UTF-8 encoded JSON",
        "type": "invalid_request_error",
        "param": "body",
        "code": "invalid_json",
    }


# --- the same route behind API Gateway, in the Api function ------------------------------------------------------


def test_given_the_api_function_when_the_worker_finishes_within_the_wait_then_200_with_the_image(
    call_api, run_worker, aws: Aws
):
    # Given a worker that runs the queued job while the route waits
    timer = threading.Timer(0.5, run_worker)
    timer.start()

    # When the route is called as API Gateway calls it, after the authorizer
    answer = call_api("POST", "/v1/images/generations", body={"prompt": "behind the gateway", "size": "96x64"})
    timer.join()

    # Then the image comes back inline
    assert answer.status == 200, answer.body
    assert png(base64.b64decode(answer.body["data"][0]["b64_json"])).size == (96, 64)
    assert answer.body["output_format"] == "png"


def test_given_the_api_function_when_the_wait_runs_out_then_504_points_at_the_function_url(
    call_api, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MAX_WAIT_SECONDS", "1")

    answer = call_api("POST", "/v1/images/generations", body={"prompt": "nobody works"})

    assert answer.status == 504
    assert answer.headers["x-should-retry"] == "false"
    assert "OpenAiBaseUrl" in answer.body["error"]["message"]
    assert answer.headers["x-imagegen-job-ids"] in answer.body["error"]["message"]


def test_given_the_api_function_when_a_field_is_nan_then_400_names_it(call_api):
    answer = call_api("POST", "/v1/images/generations", body='{"prompt": "x", "quality": NaN}')

    assert answer.status == 400
    assert answer.body["error"]["param"] == "quality"
    assert json.dumps(answer.body)  # standard JSON all the way


def test_given_the_sample_event_when_the_function_is_invoked_then_it_answers_an_image(local_stack_factory):
    # events/openai_generation.json is what `imagegen local invoke OpenAiFunction -e ...` and `sam local invoke` use.
    event = json.loads((ROOT / "events" / "openai_generation.json").read_text())
    stack = local_stack_factory(
        serve_http=False,
        run_schedules=False,
        env_overrides={
            "IMAGEGEN_LOCAL_TOKENS": "alice:igk_example-token-not-real",
            "IMAGEGEN_PROVIDERS": "placeholder",
        },
    )

    answer = stack.invoke("OpenAiFunction", event)

    assert answer["statusCode"] == 200, answer
    [image] = json.loads(answer["body"])["data"]
    assert png(base64.b64decode(image["b64_json"])).size == (256, 256)


def test_given_the_readme_example_when_run_against_the_stack_then_it_writes_the_png(stack, tmp_path, monkeypatch):
    # The README's snippet, with the printed URL and token replaced by this stack's.
    text = (ROOT / "README.md").read_text()
    [code] = [block for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "images.generate" in block]
    code = code.replace("http://127.0.0.1:3000", stack.url).replace('"igk_..."', repr(TOKEN))
    monkeypatch.chdir(tmp_path)

    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our own documentation's code

    assert png((tmp_path / "lighthouse.png").read_bytes()).size == (512, 512)
