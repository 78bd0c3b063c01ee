"""Video jobs against moto's server and the SiliconFlow double: submit, delayed checks, streamed storage, fall-through,
cancel, quota units and signed webhooks.

The worker runs in-process (wiring.worker(), as the handler builds it); each check message is the one the worker
queued, read back from the job it parked (its check token), so no test waits for SQS's delay.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from imagegen import wiring
from imagegen.adapters.job_store import JobStore
from imagegen.messages import CheckMessage, read_job_message
from imagegen.models import JobRecord
from PIL import Image
from standardwebhooks.webhooks import Webhook

from tests.conftest import Aws
from tests.doubles.keys import SF_KEY
from tests.doubles.siliconflow import SiliconFlowDouble
from tests.doubles.storage import StorageDouble
from tests.doubles.webhook_receiver import Receiver
from tests.integration.test_webhooks import Hooks, hooks, receiver  # noqa: F401 - fixtures

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration

T2V = "Wan-AI/Wan2.2-T2V-A14B"
I2V = "Wan-AI/Wan2.2-I2V-A14B"


@pytest.fixture
def video_env(aws: Aws, siliconflow_double: SiliconFlowDouble, monkeypatch: pytest.MonkeyPatch) -> SiliconFlowDouble:
    """SiliconFlow pointed at its double; result links on loopback admitted (as the local stack admits them)."""
    for name, value in {
        "SILICONFLOW_API_KEY": SF_KEY,
        "SILICONFLOW_BASE_URL": siliconflow_double.base_url,
        "SILICONFLOW_TIMEOUT_S": "2",
        "MEDIA_ALLOW_PRIVATE_NETWORKS": "true",
    }.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    return siliconflow_double


def _store(aws: Aws) -> JobStore:
    return JobStore(aws.table, aws.client("dynamodb"), ttl_seconds=86400)


def _job(aws: Aws, job_id: str, user: str = "alice") -> JobRecord:
    return _store(aws).get(user, job_id)


class Worker:
    """The worker as SQS would drive it: the generate message from the queue, then each check as it comes due."""

    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self.checks = 0

    def generate(self) -> None:
        for message in self.aws.receive():
            wiring.worker().handle(read_job_message(message["Body"]), receive_count=1, remaining_seconds=100)
            self.aws.client("sqs").delete_message(QueueUrl=self.aws.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def check(self, job_id: str, user: str = "alice") -> JobRecord:
        """Deliver the check message the parked job waits for (the one it holds the token of)."""
        token = _job(self.aws, job_id, user).lease_token
        assert token is not None
        message = CheckMessage(user_id=user, job_id=job_id, check_token=token)
        wiring.worker().handle(message, receive_count=1, remaining_seconds=100)
        self.checks += 1
        return _job(self.aws, job_id, user)

    def until_done(self, job_id: str, limit: int = 10) -> JobRecord:
        job = _job(self.aws, job_id)
        while not job.terminal and self.checks < limit:
            job = self.check(job_id)
        return job


@pytest.fixture
def worker(aws: Aws) -> Worker:
    return Worker(aws)


def _stored(aws: Aws, key: str) -> bytes:
    return bytes(aws.client("s3").get_object(Bucket=aws.bucket, Key=key)["Body"].read())


def _bucket_keys(aws: Aws) -> list[str]:
    return [item["Key"] for item in aws.client("s3").list_objects_v2(Bucket=aws.bucket).get("Contents", [])]


def _png_data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 30, 90)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class TestVideoJobThroughChecks:
    def test_given_siliconflow_queued_then_in_progress_then_succeed_when_checked_then_the_stored_mp4_is_the_doubles(
        self, call_api: Callable[..., Any], video_env: SiliconFlowDouble, worker: Worker, aws: Aws
    ) -> None:
        # Given a video job (the double answers InQueue, InProgress, then Succeed with a signed MP4 link)
        created = call_api("POST", "/v1/videos", body={"prompt": "a paper boat on a river", "seed": 7})
        assert created.status == 202, created.body
        job_id = created.body["id"]
        assert job_id.startswith("vid_") and created.headers["Location"] == f"/api/v1/videos/{job_id}"

        # When the worker submits it, and then takes each check message as it comes due
        worker.generate()
        parked = _job(aws, job_id)
        job = worker.until_done(job_id)

        # Then: pending at SiliconFlow between checks, one status call per check, no sleeping worker
        assert (parked.status, parked.attempts[-1].outcome) == ("running", "pending")
        assert parked.attempts[-1].message == "queued at siliconflow; checking again in 2 s"
        (remote,) = video_env.videos.values()
        assert (worker.checks, remote.status_calls) == (3, 3)
        assert remote.payload == {
            "model": T2V,
            "prompt": "a paper boat on a river",
            "image_size": "1280x720",
            "seed": 7,
        }
        assert (job.status, job.provider, job.model) == ("succeeded", "siliconflow", T2V)
        assert job.attempts[-1].message == "done after 3 check(s)"
        # And the stored video is byte for byte the double's, with what its container says
        assert remote.url is not None
        original = httpx.get(remote.url).content
        assert job.video_key == f"videos/alice/{job_id}.mp4"
        assert _stored(aws, job.video_key) == original
        video = call_api("GET", f"/v1/videos/{job_id}").body["video"]
        assert video == {
            "url": f"/v1/videos/{job_id}/content",
            "content_type": "video/mp4",
            "width": 64,
            "height": 36,
            "duration_s": video["duration_s"],
            "bytes": len(original),
            "sha256": hashlib.sha256(original).hexdigest(),
        }
        assert video["duration_s"] > 0
        assert "image" not in call_api("GET", f"/v1/videos/{job_id}").body

    def test_given_a_succeeded_video_when_its_content_is_asked_then_a_presigned_link_to_the_same_bytes(
        self, call_api: Callable[..., Any], video_env: SiliconFlowDouble, worker: Worker, aws: Aws
    ) -> None:
        job_id = call_api("POST", "/v1/videos", body={"prompt": "fog"}).body["id"]
        early = call_api("GET", f"/v1/videos/{job_id}/content")
        worker.generate()
        worker.until_done(job_id)

        redirect = call_api("GET", f"/v1/videos/{job_id}/content")
        as_json = call_api("GET", f"/v1/videos/{job_id}/content", headers={"Accept": "application/json"})

        assert (early.status, early.body["error"]["code"]) == (409, "conflict")
        assert "video is available once it has succeeded" in early.body["error"]["message"]
        assert redirect.status == 302
        downloaded = httpx.get(redirect.headers["Location"]).content
        assert hashlib.sha256(downloaded).hexdigest() == _job(aws, job_id).video.sha256  # type: ignore[union-attr]
        assert as_json.status == 200 and as_json.body["url"].startswith("http")

    def test_given_an_input_image_when_the_job_runs_then_the_image_to_video_model_gets_it(
        self, call_api: Callable[..., Any], video_env: SiliconFlowDouble, worker: Worker, aws: Aws
    ) -> None:
        image = _png_data_uri()
        job_id = call_api(
            "POST", "/v1/videos", body={"prompt": "it moves", "image": image, "width": 720, "height": 1280}
        ).body["id"]

        worker.generate()
        job = worker.until_done(job_id)

        (remote,) = video_env.videos.values()
        assert (remote.payload["model"], remote.payload["image"], remote.payload["image_size"]) == (
            I2V,
            image,
            "720x1280",
        )
        assert (job.status, job.model) == ("succeeded", I2V)

    def test_given_a_size_siliconflow_does_not_list_when_the_job_runs_then_the_closest_is_made_and_said(
        self, call_api: Callable[..., Any], video_env: SiliconFlowDouble, worker: Worker, aws: Aws
    ) -> None:
        job_id = call_api("POST", "/v1/videos", body={"prompt": "square-ish", "image_size": "1000x900"}).body["id"]

        worker.generate()
        job = worker.until_done(job_id)

        (remote,) = video_env.videos.values()
        assert remote.payload["image_size"] == "960x960"
        assert "siliconflow: size 1000x900 -> 960x960" in job.warnings


class TestFailures:
    def test_given_an_html_page_served_as_mp4_when_checked_then_it_fails_validation_and_the_next_model_serves(
        self, call_api: Callable[..., Any], video_env: SiliconFlowDouble, worker: Worker, aws: Aws, monkeypatch
    ) -> None:
        # Given two text-to-video models, and the first video the double makes an HTML error page as video/mp4
        second = "Wan-AI/Wan2.1-T2V-14B-720P"
        video_env.video_models.add(second)
        monkeypatch.setenv("SILICONFLOW_VIDEO_MODELS", f"{T2V},{second}")
        wiring.reset()
        video_env.video_kind = "html"
        job_id = call_api("POST", "/v1/videos", body={"prompt": "a broken CDN"}).body["id"]

        # When the first model's video is checked (the link falls through to the second model, submitted at once)
        worker.generate()
        for _ in range(3):
            failed_over = worker.check(job_id)
        video_env.video_kind = "mp4"
        job = worker.until_done(job_id)

        # Then the HTML is refused with its reason, nothing of it was stored, and the second model's video is
        first = failed_over.attempts[0]
        assert (first.model, first.outcome, first.error_class) == (T2V, "failed", "invalid_video")
        assert first.message == "the body is an HTML or XML document, not a video"
        assert [a.outcome for a in failed_over.attempts] == ["failed", "pending"]
        assert (job.status, job.model) == ("succeeded", second)
        assert _bucket_keys(aws) == [f"videos/alice/{job_id}.mp4"]
        assert _stored(aws, f"videos/alice/{job_id}.mp4")[4:8] == b"ftyp"

    def test_given_siliconflow_fails_the_video_when_checked_then_the_job_fails_with_its_reason_and_is_refunded(
        self, call_api: Callable[..., Any], video_env: SiliconFlowDouble, worker: Worker, aws: Aws, monkeypatch
    ) -> None:
        monkeypatch.setenv("DAILY_IMAGE_QUOTA", "10")
        wiring.reset()
        video_env.video_statuses = ["InQueue", "Failed"]
        job_id = call_api("POST", "/v1/videos", body={"prompt": "rejected"}).body["id"]
        full = call_api("POST", "/v1/images", body={"prompt": "no room", "width": 64, "height": 64})

        worker.generate()
        job = worker.until_done(job_id)
        after = call_api("POST", "/v1/images", body={"prompt": "room again", "width": 64, "height": 64})

        assert (full.status, full.body["error"]["code"]) == (429, "quota_exceeded")
        assert (job.status, job.error.code if job.error else None) == ("failed", "all_providers_failed")
        last = job.attempts[-1]
        assert (last.error_class, last.message) == (
            "faulted",
            "SiliconFlow failed the video: content moderation: the prompt was rejected",
        )
        assert after.status == 202
        assert _bucket_keys(aws) == []


class TestCancel:
    def test_given_a_video_waiting_at_siliconflow_when_canceled_then_checks_stop_and_the_job_says_why(
        self, call_api: Callable[..., Any], video_env: SiliconFlowDouble, worker: Worker, aws: Aws
    ) -> None:
        # Given a video job submitted and checked once (InQueue)
        job_id = call_api("POST", "/v1/videos", body={"prompt": "never mind"}).body["id"]
        worker.generate()
        pending = worker.check(job_id)
        token = pending.lease_token
        assert token is not None

        # When it is canceled, the worker takes the cancel message, and the check it waited for comes due
        canceled = call_api("POST", f"/v1/videos/{job_id}/cancel")
        worker.generate()
        wiring.worker().handle(
            CheckMessage(user_id="alice", job_id=job_id, check_token=token), receive_count=1, remaining_seconds=100
        )

        # Then SiliconFlow is asked nothing more, and the job says the request may still run there
        (remote,) = video_env.videos.values()
        assert remote.status_calls == 1
        assert canceled.status == 200 and canceled.body["status"] == "canceled"
        job = call_api("GET", f"/v1/videos/{job_id}").body
        assert job["status"] == "canceled"
        assert job["warnings"] == [
            "siliconflow offers no way to cancel a video request: checks on it stopped, and it may still run to its "
            "end there (billed as the provider bills it); its result is not fetched"
        ]
        assert _bucket_keys(aws) == []


class TestWebhook:
    def test_given_a_video_job_with_a_webhook_when_it_succeeds_then_video_succeeded_arrives_signed(
        self,
        call_api: Callable[..., Any],
        video_env: SiliconFlowDouble,
        worker: Worker,
        hooks: Hooks,  # noqa: F811
        receiver: Receiver,  # noqa: F811
    ) -> None:
        secret = call_api("GET", "/v1/webhooks/secret").body["secret"]
        job_id = call_api(
            "POST", "/v1/videos", body={"prompt": "signed", "webhook_url": f"{receiver.url}/video-hook"}
        ).body["id"]

        worker.generate()
        worker.until_done(job_id)
        hooks.drain()

        [post] = receiver.at("/video-hook")
        payload = Webhook(secret).verify(post.body, dict(post.headers))
        assert (payload["type"], payload["data"]["id"], payload["data"]["status"]) == (
            "video.succeeded",
            job_id,
            "succeeded",
        )
        assert payload["data"]["video"]["content_type"] == "video/mp4"
        assert post.headers["webhook-id"] == f"msg_{job_id}"
        listed = call_api("GET", "/v1/webhooks/deliveries").body["items"]
        assert [(d["event_type"], d["job_id"]) for d in listed] == [("video.succeeded", job_id)]


class TestRequests:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"prompt": "x", "steps": 4}, "steps"),
            ({"prompt": "x", "width": 1280}, "height"),
            ({"prompt": "x", "image_size": "1280x720", "width": 1280, "height": 720}, "image_size"),
            ({"prompt": "x", "image_size": "12x7"}, "image_size"),
            ({"prompt": "x", "image": "data:image/png;base64,AAAA"}, "image"),
            ({"prompt": "x", "image": "data:image/gif;base64,R0lGODlh"}, "image"),
            ({"prompt": "x", "image": "ftp://example.com/a.png"}, "image"),
            ({"prompt": "x", "image": "data:image/png;base64," + "A" * 60_000}, "image"),
            ({"prompt": "x", "providers": ["horde"]}, "providers"),
            ({"prompt": "  "}, "prompt"),
        ],
    )
    def test_given_a_bad_video_request_when_posted_then_422_names_the_field(
        self, call_api: Callable[..., Any], body: dict[str, Any], field: str
    ) -> None:
        answer = call_api("POST", "/v1/videos", body=body)

        assert answer.status == 422, answer.body
        assert answer.body["error"]["code"] == "validation_error"
        assert field in {detail["field"].split(".")[0] for detail in answer.body["error"]["details"]}

    def test_given_an_image_url_on_a_private_address_when_posted_then_400_names_image_and_no_job(
        self, call_api: Callable[..., Any], aws: Aws
    ) -> None:
        answer = call_api("POST", "/v1/videos", body={"prompt": "x", "image": "https://127.0.0.1/cat.png"})

        assert answer.status == 400
        assert (answer.body["error"]["code"], answer.body["error"]["details"][0]["field"]) == (
            "url_not_allowed",
            "image",
        )
        assert answer.body["error"]["hint"] == "image must be an https URL that reaches a public address"
        assert aws.receive() == []

    def test_given_image_and_video_jobs_when_listed_and_read_then_each_kind_sees_only_its_own(
        self, call_api: Callable[..., Any]
    ) -> None:
        video = call_api("POST", "/v1/videos", body={"prompt": "v"}).body["id"]
        image = call_api("POST", "/v1/images", body={"prompt": "i", "width": 64, "height": 64}).body["id"]

        videos = call_api("GET", "/v1/videos").body
        images = call_api("GET", "/v1/images").body

        assert [job["id"] for job in videos["items"]] == [video]
        assert [job["id"] for job in images["items"]] == [image]
        assert call_api("GET", f"/v1/images/{video}").status == 404
        assert call_api("GET", f"/v1/videos/{image}").status == 404
        assert call_api("GET", f"/v1/videos/{video}", user="bob").status == 404
        assert call_api("POST", f"/v1/images/{video}/cancel").status == 404

    def test_given_a_retried_post_with_the_same_idempotency_key_then_the_same_video_job(
        self, call_api: Callable[..., Any], aws: Aws
    ) -> None:
        body = {"prompt": "once"}
        first = call_api("POST", "/v1/videos", body=body, headers={"Idempotency-Key": "k-1"})
        second = call_api("POST", "/v1/videos", body=body, headers={"Idempotency-Key": "k-1"})
        image = call_api("POST", "/v1/images", body={"prompt": "once"}, headers={"Idempotency-Key": "k-1"})

        assert (first.status, second.status) == (202, 202)
        assert second.body["id"] == first.body["id"]
        assert second.headers["Idempotent-Replayed"] == "true"
        assert image.status == 409
        assert len(aws.receive()) == 1

    def test_given_a_daily_quota_when_videos_are_made_then_each_takes_ten_units(
        self, call_api: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DAILY_IMAGE_QUOTA", "25")
        wiring.reset()

        answers = [call_api("POST", "/v1/videos", body={"prompt": f"v{n}"}) for n in range(3)]
        images = [call_api("POST", "/v1/images", body={"prompt": f"i{n}", "width": 64, "height": 64}) for n in range(6)]

        assert [a.status for a in answers] == [202, 202, 429]
        assert answers[2].body["error"]["code"] == "quota_exceeded"
        assert answers[2].body["error"]["details"]["requested"] == 10
        assert [a.status for a in images] == [202] * 5 + [429]

    def test_given_a_finished_video_job_when_retried_then_a_new_job_with_the_same_request(
        self, call_api: Callable[..., Any], video_env: SiliconFlowDouble, worker: Worker
    ) -> None:
        job_id = call_api("POST", "/v1/videos", body={"prompt": "again", "image_size": "960x960"}).body["id"]
        running = call_api("POST", f"/v1/videos/{job_id}/retry")
        worker.generate()
        worker.until_done(job_id)

        retried = call_api("POST", f"/v1/videos/{job_id}/retry")

        assert running.status == 409
        assert retried.status == 202 and retried.body["id"] != job_id
        assert retried.body["request"] == call_api("GET", f"/v1/videos/{job_id}").body["request"]


def test_given_no_siliconflow_key_when_a_video_job_runs_then_it_fails_saying_which_key_videos_need(
    call_api: Callable[..., Any], aws: Aws, worker: Worker
) -> None:
    job_id = call_api("POST", "/v1/videos", body={"prompt": "no key"}).body["id"]

    worker.generate()

    job = call_api("GET", f"/v1/videos/{job_id}").body
    assert (job["status"], job["error"]["code"]) == ("failed", "no_providers_configured")
    assert job["error"]["hint"] == (
        "Set SILICONFLOW_API_KEY, or store your own key (PUT /v1/keys/{provider}): videos need one"
    )
    assert [(a["provider"], a["outcome"], a["error_class"]) for a in job["attempts"]] == [
        ("siliconflow", "skipped", "no_key")
    ]


class CancelAtTheEnd(JobStore):
    """Stands for a client's cancel that lands while the worker stores the video: just before the job's end is
    written."""

    def finish(self, job: JobRecord, lease_token: str, ended: Any = None) -> JobRecord:
        if job.kind == "video":
            self.cancel(job.user_id, job.id, now=job.completed_at or job.created_at)
        return super().finish(job, lease_token, ended)


def test_given_a_cancel_that_lands_while_the_video_is_stored_when_the_job_ends_then_the_video_is_deleted(
    call_api: Callable[..., Any], video_env: SiliconFlowDouble, aws: Aws, storage: StorageDouble
) -> None:
    # Given a video job whose worker is built on a store where the cancel wins the race with the job's end
    from imagegen.jobs.work import Worker as JobWorker
    from imagegen.jobs.work import WorkerConfig

    settings = wiring.worker_settings()
    store = CancelAtTheEnd(aws.table, aws.client("dynamodb"), ttl_seconds=86400)
    _, queue, images = wiring._job_adapters(settings)
    config = WorkerConfig(lease_seconds=60, deadline_seconds=30, max_receive_count=3)
    worker = JobWorker(
        store, images, queue, wiring.generator(settings), config, videos=wiring.video_generator(settings)
    )
    job_id = call_api("POST", "/v1/videos", body={"prompt": "too late"}).body["id"]
    for message in aws.receive():
        worker.handle(read_job_message(message["Body"]), receive_count=1, remaining_seconds=100)

    # When its checks run to Succeed (the video is stored, then the job's end finds it canceled)
    for _ in range(3):
        token = _job(aws, job_id).lease_token
        assert token is not None
        worker.handle(
            CheckMessage(user_id="alice", job_id=job_id, check_token=token), receive_count=1, remaining_seconds=100
        )

    # Then the video was fetched (and streamed into the bucket), the job stays canceled, and the video it no longer
    # owns is gone from the bucket
    (remote,) = video_env.videos.values()
    assert remote.status_calls == 3
    assert [r.status for r in storage.requests if r.name.endswith(".mp4")] == [200]
    job = call_api("GET", f"/v1/videos/{job_id}").body
    assert (job["status"], job["video"]) == ("canceled", None)
    assert _bucket_keys(aws) == []
