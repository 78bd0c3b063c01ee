"""The images API in-process against moto's server: create, read, list, download, cancel, retry, bad input."""

from __future__ import annotations

import io
import json
import threading
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT, Aws

pytestmark = pytest.mark.integration
EVENTS = ROOT / "events"


def test_given_valid_request_when_created_then_202_with_location_and_one_queued_message(call_api, aws: Aws):
    answer = call_api("POST", "/v1/images", body={"prompt": "a red fox", "width": 512, "height": 512})

    assert answer.status == 202
    job = answer.body
    assert job["status"] == "queued"
    assert job["id"].startswith("img_")
    assert answer.headers["Location"] == f"/api/v1/images/{job['id']}"  # the stage prefix, as deployed
    assert answer.headers["Retry-After"] == "2"
    assert job["request"]["prompt"] == "a red fox"
    assert job["request"]["width"] == 512
    messages = aws.receive()
    assert [json.loads(m["Body"]) for m in messages] == [{"kind": "generate", "user_id": "alice", "job_id": job["id"]}]


def test_given_job_processed_when_read_then_succeeded_with_image_and_content_redirects_to_png(
    call_api, run_worker, aws: Aws
):
    created = call_api("POST", "/v1/images", body={"prompt": "a lighthouse at dusk", "width": 320, "height": 192})

    outcome = run_worker()
    job = call_api("GET", f"/v1/images/{created.body['id']}").body

    assert outcome["batchItemFailures"] == []
    assert job["status"] == "succeeded"
    assert job["provider"] == "placeholder"
    assert [a["outcome"] for a in job["attempts"]] == ["succeeded"]
    assert job["image"]["content_type"] == "image/png"
    assert (job["image"]["width"], job["image"]["height"]) == (320, 192)
    assert job["started_at"] and job["completed_at"]
    content = call_api("GET", f"/v1/images/{job['id']}/content")
    assert content.status == 302
    with urllib.request.urlopen(content.headers["Location"]) as response:
        data = response.read()
    assert len(data) == job["image"]["bytes"]
    assert Image.open(io.BytesIO(data)).size == (320, 192)


def test_given_job_not_finished_when_content_requested_then_409(call_api):
    created = call_api("POST", "/v1/images", body={"prompt": "a cat"})

    answer = call_api("GET", f"/v1/images/{created.body['id']}/content")

    assert answer.status == 409
    assert answer.body["error"]["code"] == "conflict"


def test_given_alice_job_when_bob_reads_cancels_or_retries_then_404(call_api):
    job_id = call_api("POST", "/v1/images", body={"prompt": "private"}).body["id"]

    for method, path in (
        ("GET", f"/v1/images/{job_id}"),
        ("GET", f"/v1/images/{job_id}/content"),
        ("POST", f"/v1/images/{job_id}/cancel"),
        ("POST", f"/v1/images/{job_id}/retry"),
    ):
        answer = call_api(method, path, user="bob")
        assert (path, answer.status, answer.body["error"]["code"]) == (path, 404, "not_found")
    assert call_api("GET", "/v1/images", user="bob").body == {"items": [], "next_cursor": None}


def test_given_three_jobs_when_listed_with_limit_then_newest_first_and_cursor_pages(call_api):
    ids = [call_api("POST", "/v1/images", body={"prompt": f"p{n}"}).body["id"] for n in range(3)]

    first = call_api("GET", "/v1/images", query={"limit": "2"}).body
    second = call_api("GET", "/v1/images", query={"limit": "2", "cursor": first["next_cursor"]}).body

    assert [job["id"] for job in first["items"]] == [ids[2], ids[1]]
    assert [job["id"] for job in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None


def test_given_forged_cursor_when_listed_then_400_names_cursor(call_api):
    import base64

    forged = base64.urlsafe_b64encode(json.dumps({"pk": {"S": "USER#bob"}, "sk": {"S": "JOB#x"}}).encode()).decode()

    for cursor in (forged, "not-base64!!"):
        answer = call_api("GET", "/v1/images", query={"cursor": cursor})
        assert answer.status == 400
        assert answer.body["error"]["details"] == {"field": "cursor"}


def test_given_same_idempotency_key_when_posted_twice_then_same_job_and_one_message(call_api, aws: Aws):
    body = {"prompt": "a teapot"}
    first = call_api("POST", "/v1/images", body=body, headers={"Idempotency-Key": "order-42"})
    second = call_api("POST", "/v1/images", body=body, headers={"Idempotency-Key": "order-42"})

    assert (first.status, second.status) == (202, 202)
    assert second.body["id"] == first.body["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(aws.receive()) == 1


def test_given_racing_posts_with_one_idempotency_key_then_all_get_one_job(call_api, aws: Aws):
    results: list[str] = []

    def post() -> None:
        answer = call_api("POST", "/v1/images", body={"prompt": "race"}, headers={"Idempotency-Key": "race-1"})
        results.append(answer.body["id"])

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 6
    assert len(set(results)) == 1
    assert len(call_api("GET", "/v1/images").body["items"]) == 1


def test_given_reused_idempotency_key_with_other_body_then_409_names_header(call_api):
    call_api("POST", "/v1/images", body={"prompt": "one"}, headers={"Idempotency-Key": "k1"})

    answer = call_api("POST", "/v1/images", body={"prompt": "two"}, headers={"Idempotency-Key": "k1"})

    assert answer.status == 409
    assert answer.body["error"]["details"] == {"field": "Idempotency-Key"}


def test_given_prefer_wait_when_job_finishes_meanwhile_then_answer_is_terminal(call_api, run_worker):
    job_id = call_api("POST", "/v1/images", body={"prompt": "wait for me", "width": 64, "height": 64}).body["id"]
    timer = threading.Timer(0.6, run_worker)
    timer.start()

    answer = call_api("GET", f"/v1/images/{job_id}", headers={"Prefer": "wait=10"})
    timer.join()

    assert answer.body["status"] == "succeeded"
    assert answer.headers["Preference-Applied"] == "wait=10"
    assert "Retry-After" not in answer.headers


def test_given_prefer_wait_when_nothing_happens_then_answer_after_wait_still_queued(call_api):
    job_id = call_api("POST", "/v1/images", body={"prompt": "nobody works"}).body["id"]

    answer = call_api("GET", f"/v1/images/{job_id}", headers={"Prefer": "wait=1"})

    assert answer.status == 200
    assert answer.body["status"] == "queued"
    assert answer.headers["Retry-After"] == "2"


def test_given_queued_job_when_canceled_twice_then_canceled_and_worker_does_nothing(call_api, run_worker, aws: Aws):
    job_id = call_api("POST", "/v1/images", body={"prompt": "never mind"}).body["id"]

    first = call_api("POST", f"/v1/images/{job_id}/cancel")
    second = call_api("POST", f"/v1/images/{job_id}/cancel")
    run_worker()

    assert (first.status, second.status) == (200, 200)
    assert second.body["status"] == "canceled"
    assert call_api("GET", f"/v1/images/{job_id}").body["status"] == "canceled"
    assert aws.client("s3").list_objects_v2(Bucket=aws.bucket).get("KeyCount") == 0


def test_given_succeeded_job_when_canceled_then_409(call_api, run_worker):
    job_id = call_api("POST", "/v1/images", body={"prompt": "done", "width": 64, "height": 64}).body["id"]
    run_worker()

    answer = call_api("POST", f"/v1/images/{job_id}/cancel")

    assert answer.status == 409


def test_given_canceled_job_when_retried_then_new_queued_job_with_same_request(call_api):
    job = call_api("POST", "/v1/images", body={"prompt": "again", "seed": 7}).body
    call_api("POST", f"/v1/images/{job['id']}/cancel")

    answer = call_api("POST", f"/v1/images/{job['id']}/retry")

    assert answer.status == 202
    assert answer.body["id"] != job["id"]
    assert answer.body["status"] == "queued"
    assert answer.body["request"] == job["request"]


def test_given_queued_job_when_retried_then_409(call_api):
    job_id = call_api("POST", "/v1/images", body={"prompt": "still going"}).body["id"]

    assert call_api("POST", f"/v1/images/{job_id}/retry").status == 409


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"prompt": ""}, 422, "prompt"),
        ({"prompt": "   "}, 422, "prompt"),
        ({"prompt": "x" * 2001}, 422, "prompt"),
        ({"prompt": "ok", "width": 10}, 422, "width"),
        ({"prompt": "ok", "height": 99999}, 422, "height"),
        ({"prompt": "ok", "width": "1024"}, 422, "width"),
        ({"prompt": 5}, 422, "prompt"),
        ({"prompt": "ok", "colour": "red"}, 422, "colour"),
        ({"prompt": "ok", "providers": ["dalle"]}, 422, "providers.0"),
        ({"prompt": "ok", "providers": ["horde", "horde"]}, 422, "providers"),
        ({"prompt": "ok", "extra": {"lora": {"nested": 1}}}, 422, "extra.lora"),
        ({"prompt": "ok", "on_refusal": "maybe"}, 422, "on_refusal"),
        ({}, 422, "prompt"),
        ([], 422, "body"),
        ("{not json", 400, "body"),
    ],
)
def test_given_bad_body_when_created_then_4xx_names_the_field(call_api, body, status, field):
    answer = call_api("POST", "/v1/images", body=body)

    assert answer.status == status
    fields = [item["field"] for item in answer.body["error"]["details"]]
    assert any(name == field or name.startswith(field + ".") for name in fields), fields
    assert "Traceback" not in json.dumps(answer.body)


def test_given_body_over_64kb_when_created_then_413_names_body(call_api):
    answer = call_api("POST", "/v1/images", body={"prompt": "x", "negative_prompt": "y" * 70_000})

    assert answer.status == 413
    assert answer.body["error"]["code"] == "payload_too_large"
    assert answer.body["error"]["details"][0]["field"] == "body"


def test_given_no_body_when_created_then_422_names_body(call_api):
    answer = call_api("POST", "/v1/images", body=None)

    assert answer.status == 422
    assert answer.body["error"]["details"][0]["field"] == "body"


@pytest.mark.parametrize("job_id", ["img_01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope", "img_" + "x" * 300])
def test_given_unknown_id_when_read_then_404(call_api, job_id):
    answer = call_api("GET", f"/v1/images/{job_id}")

    assert answer.status == 404
    assert answer.body["error"]["code"] == "not_found"


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_given_bad_limit_when_listed_then_422_names_limit(call_api, limit):
    answer = call_api("GET", "/v1/images", query={"limit": limit})

    assert answer.status == 422
    assert answer.body["error"]["details"][0]["field"] == "limit"


def test_given_no_authorizer_context_when_called_then_401(call_api):
    answer = call_api("GET", "/v1/images", user=None)

    assert answer.status == 401
    assert answer.body["error"]["code"] == "unauthorized"


def test_given_unknown_route_when_called_then_404_json(call_api):
    answer = call_api("GET", "/v1/nothing-here")

    assert answer.status == 404
    assert answer.body["error"]["code"] == "not_found"


def test_given_public_routes_when_called_then_health_and_openapi_answer(call_api):
    health = call_api("GET", "/v1/health", user=None, resource="/v1/health")
    spec = call_api("GET", "/openapi.json", user=None, resource="/openapi.json")

    assert health.status == 200
    assert health.body["status"] == "ok"
    assert spec.status == 200
    assert spec.body["openapi"].startswith("3.1")
    assert {"/v1/images", "/v1/images/{job_id}", "/v1/images/{job_id}/content"} <= set(spec.body["paths"])
    assert "ImageRequest" in spec.body["components"]["schemas"]


def test_given_event_files_when_replayed_then_each_is_handled(call_api, aws: Aws):
    # events/ holds the samples `imagegen local invoke` and `sam local invoke` use; they must stay valid.
    from tests.conftest import FakeLambdaContext, load_function

    handler = load_function("api").lambda_handler
    event = json.loads(Path(EVENTS / "api_create_image.json").read_text())

    raw = handler(event, FakeLambdaContext("ApiFunction"))

    assert raw["statusCode"] == 202


def test_given_docs_route_when_called_then_swagger_ui_embeds_the_spec_with_bearer_auth(call_api):
    answer = call_api("GET", "/docs", user=None, resource="/docs")
    spec = call_api("GET", "/openapi.json", user=None, resource="/openapi.json").body

    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "SwaggerUIBundle" in answer.body
    assert '"/v1/images"' in answer.body
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearer": []}]
    assert spec["paths"]["/v1/health"]["get"]["security"] == []
