"""AI Horde double: async submit, check loop (wait_time, done after N checks), status once done, DELETE cancel.

Its answers parse with horde-sdk's strict response models (tests/contract/test_horde_sdk.py)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.doubles.images import picture
from tests.doubles.server import HttpDouble, Recorded, Reply
from tests.doubles.storage import StorageDouble

ANON = "0000000000"


def error(status: int, rc: str, message: str) -> Reply:
    return Reply.json(status, {"message": message, "rc": rc})


@dataclass
class HordeJob:
    id: str
    payload: dict[str, Any]
    checks: int = 0
    status_calls: int = 0
    canceled: bool = False
    generations: list[dict[str, Any]] = field(default_factory=list)


class HordeDouble(HttpDouble):
    base_path = "/api/v2"

    def __init__(
        self,
        storage: StorageDouble,
        *,
        api_keys: set[str] | None = None,
        checks_until_done: int = 2,
        wait_time: int = 30,
        censored: bool = False,
        censorship_metadata: bool = False,
        faulted: bool = False,
        is_possible: bool = True,
        r2: bool = True,
        kudos_upfront_steps: int | None = 40,
    ) -> None:
        self.storage = storage
        self.api_keys = (api_keys or set()) | {ANON}
        self.checks_until_done = checks_until_done
        self.wait_time = wait_time
        self.censored = censored
        self.censorship_metadata = censorship_metadata
        self.faulted = faulted
        self.is_possible = is_possible
        self.r2 = r2
        # Anonymous requests above this many steps need kudos the anonymous user does not have.
        self.kudos_upfront_steps = kudos_upfront_steps
        self.jobs: dict[str, HordeJob] = {}
        # Image bytes override (e.g. a blank image) for the next successful answers.
        self.image_override: bytes | None = None
        super().__init__()

    def _handle(self, request: Recorded) -> Reply:
        path = request.path.removeprefix("/api/v2")
        key = request.headers.get("apikey", ANON)
        if key not in self.api_keys:
            return error(
                401,
                "InvalidAPIKey",
                "No user matching sent API Key. Have you remembered to register at https://stablehorde.net/register ?",
            )
        if path == "/generate/async" and request.method == "POST":
            return self._submit(request.json(), anonymous=key == ANON)
        for prefix, kind in (("/generate/check/", "check"), ("/generate/status/", "status")):
            if path.startswith(prefix):
                job = self.jobs.get(path[len(prefix) :])
                if job is None:
                    return error(404, "RequestNotFound", "Request not found")
                if kind == "check":
                    return self._check(job)
                if request.method == "DELETE":
                    # The full status as it stood, finished images included (PROVIDERS.md 3.3); then it stops.
                    body = self._status_body(job, include=True)
                    job.canceled = True
                    return Reply.json(200, body)
                return self._status(job)
        return error(404, "NotFound", "not found")

    def _submit(self, payload: dict[str, Any], *, anonymous: bool) -> Reply:
        params = payload.get("params") or {}
        for side in ("width", "height"):
            value = int(params.get(side, 512))
            if value % 64 or not 64 <= value <= 3072:
                return error(400, "InvalidSize", "Invalid image size. Width and height must be a multiple of 64")
        if not isinstance(params.get("seed", ""), str):
            return error(400, "BadRequest", "Input payload validation failed: seed is not of type 'string'")
        if (
            anonymous
            and self.kudos_upfront_steps is not None
            and int(params.get("steps", 30)) > self.kudos_upfront_steps
        ):
            return error(
                403,
                "KudosUpfront",
                "Due to heavy demand, for requests over 1024x1024 or over 50 steps, "
                "the client needs to already have the required kudos.",
            )
        job = HordeJob(id=str(uuid.uuid4()), payload=payload)
        self.jobs[job.id] = job
        return Reply.json(202, {"id": job.id, "kudos": 12.0})

    def _flags(self, job: HordeJob) -> dict[str, Any]:
        done = job.checks >= self.checks_until_done and not self.faulted and not job.canceled
        return {
            "finished": 1 if done else 0,
            "processing": 0 if done else 1,
            "restarted": 0,
            "waiting": 0,
            "done": done,
            "faulted": self.faulted,
            "wait_time": 0 if done else self.wait_time,
            "queue_position": 0 if done else 3,
            "kudos": 12.0,
            "is_possible": self.is_possible,
        }

    def _check(self, job: HordeJob) -> Reply:
        job.checks += 1
        return Reply.json(200, self._flags(job))

    def _status_body(self, job: HordeJob, *, include: bool) -> dict[str, Any]:
        body = {**self._flags(job), "generations": [], "shared": False}
        if include and body["done"]:
            if not job.generations:
                params = job.payload.get("params") or {}
                width, height = int(params.get("width", 512)), int(params.get("height", 512))
                data = self.image_override or picture(width, height, job.payload.get("prompt", ""), fmt="WEBP")
                gen_id = str(uuid.uuid4())
                if self.r2:
                    # R2 presigned GET of `<generation id>.webp`, valid 30 minutes (PROVIDERS.md 3.3).
                    self.storage.put(f"{gen_id}.webp", data, kind="s3", content_type="image/webp")
                    img = self.storage.mint_url("s3", f"{gen_id}.webp", 1800)
                else:
                    img = base64.b64encode(data).decode()
                metadata = [{"type": "censorship", "value": "nsfw", "ref": None}] if self.censorship_metadata else []
                job.generations.append(
                    {
                        "img": img,
                        "seed": "1234",
                        "id": gen_id,
                        "censored": self.censored,
                        "gen_metadata": metadata,
                        "worker_id": str(uuid.uuid4()),
                        "worker_name": "double-worker",
                        "model": "AlbedoBase XL (SDXL)",
                        "state": "censored" if self.censored else "ok",
                    }
                )
            body["generations"] = job.generations
        return body

    def _status(self, job: HordeJob) -> Reply:
        job.status_calls += 1
        return Reply.json(200, self._status_body(job, include=True))
