"""SiliconFlow double: image generation, the model listing, video submit/status, and the failure modes found in review.

Follows PROVIDERS.md section 1 and PROVIDERS-ROUTES.md section 4. Base URL `double.base_url` (…/v1); every route
needs `Authorization: Bearer <api_key>` (else 401 `"Invalid token"`); unknown routes answer 404 `404 page not found`.

- `POST /v1/images/generations`: per-model fields (`MODEL_FIELDS`; `strict_params` answers 400 code 20015 for any
  other field) → `{"images": [{"url"}], "timings", "seed"}` (`result_shape = "data"` for the `data[]` variant), the
  image on the storage double as an OSS-style signed link (`url_style`, `url_ttl`).
- A model that is not live (not in `models`, or retired with `retire(model)`) answers "Model does not exist":
  `missing_model_status = 400` (the documented code 20012 body, default) or 404 (same body), the two readings of
  issue 10.
- `GET /v1/user/info`: the key check's answer (tests/doubles/keycheck.py's "ok" one, reused).
- `GET /v1/models[?type=&sub_type=]` → `{"object": "list", "data": [{"id", "object": "model", "created": 0,
  "owned_by": ""}]}`: the live image models (`models`) with their types (`MODEL_TYPES`), the video models, and a
  chat model, filtered as SiliconFlow filters (`sub_type` works without `type`; image-to-video has no sub_type).
- `broken_gzip = True` (or `server.enqueue(broken_gzip_reply())` for one answer): a 200 with `Content-Encoding: gzip`
  and a body that is not gzip, which httpx raises as `DecodingError` (the classification-hardening case).
- `POST /v1/video/submit` (`model` in `VIDEO_MODELS`, `prompt`, `image_size` in 1280x720/720x1280/960x960, `image`
  required for I2V, `negative_prompt`, `seed`) → `{"requestId"}`. `POST /v1/video/status` `{"requestId"}` walks
  `video_statuses` one step per call (default InQueue → InProgress → Succeed; the last one repeats); Succeed has
  `results.videos[0].url`, a signed OSS link valid `video_url_ttl` (600 s, the shorter of the two documented
  lifetimes) to a real MP4 from tests/doubles/video.py; "Failed" carries `video_failure_reason`. `video_kind`
  "mp4" | "webm" | "html" (an HTML error page served as `video/mp4`); `video_override` replaces the bytes.
  `video_statuses = ["Failed"]` fails at once. Videos made: `videos[request_id]`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from tests.doubles import video
from tests.doubles.images import picture
from tests.doubles.keycheck import ANSWERS as KEYCHECK_ANSWERS
from tests.doubles.server import HttpDouble, Recorded, Reply
from tests.doubles.storage import Kind, StorageDouble

# Which body fields each model accepts (PROVIDERS.md 1.2); strict mode answers 400 for any other field.
# Z-Image-Turbo's fields are UNCONFIRMED (no official page): the Kolors-like core set.
MODEL_FIELDS: dict[str, set[str]] = {
    "Kwai-Kolors/Kolors": {
        "negative_prompt",
        "image_size",
        "batch_size",
        "seed",
        "num_inference_steps",
        "guidance_scale",
    },
    "Qwen/Qwen-Image": {"negative_prompt", "image_size", "seed", "num_inference_steps", "cfg"},
    "black-forest-labs/FLUX.1-schnell": {"image_size", "seed", "prompt_enhancement"},
    "black-forest-labs/FLUX.1-dev": {"image_size", "seed", "num_inference_steps"},
    "Tongyi-MAI/Z-Image-Turbo": {"negative_prompt", "image_size", "seed", "num_inference_steps"},
}
# (type, sub_type) of each model in the listing; sub_type None: listed under its type only.
MODEL_TYPES: dict[str, tuple[str, str | None]] = {
    **{model: ("image", "text-to-image") for model in MODEL_FIELDS},
    "Qwen/Qwen-Image-Edit": ("image", "image-to-image"),
    "Wan-AI/Wan2.2-T2V-A14B": ("video", "text-to-video"),
    "Wan-AI/Wan2.2-I2V-A14B": ("video", None),
    "Qwen/Qwen3-8B": ("text", "chat"),
}
VIDEO_MODELS = {"Wan-AI/Wan2.2-T2V-A14B", "Wan-AI/Wan2.2-I2V-A14B"}
VIDEO_SIZES = {"1280x720": (1280, 720), "720x1280": (720, 1280), "960x960": (960, 960)}
VIDEO_FIELDS = {"model", "prompt", "image_size", "negative_prompt", "image", "seed"}
ROUTES = {
    ("GET", "/v1/user/info"),
    ("GET", "/v1/models"),
    ("POST", "/v1/images/generations"),
    ("POST", "/v1/video/submit"),
    ("POST", "/v1/video/status"),
}

RATE_LIMITED = {
    "message": "Request was rejected due to rate limiting. If you want more, please contact contact@siliconflow.cn",
    "data": None,
}
OVERLOADED = {"code": 50505, "message": "Model service overloaded. Please try again later.", "data": None}
MODEL_DOES_NOT_EXIST = {"code": 20012, "message": "Model does not exist. Please check it carefully.", "data": None}


def bad_request(message: str, code: int = 20015) -> Reply:
    return Reply.json(400, {"code": code, "message": message, "data": None})


def broken_gzip_reply() -> Reply:
    """A 200 that says gzip and is not: a gzip magic number, then bytes no inflater accepts."""
    body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff\xfe\xfd this is not deflate data"
    return Reply(200, body, {"content-type": "application/json", "content-encoding": "gzip"})


@dataclass
class VideoJob:
    request_id: str
    payload: dict[str, Any]
    status_calls: int = 0
    url: str | None = None


class SiliconFlowDouble(HttpDouble):
    base_path = "/v1"

    def __init__(
        self,
        storage: StorageDouble,
        *,
        api_key: str,
        url_style: Kind = "oss",
        url_ttl: int = 3600,
        result_shape: str = "images",
        strict_params: bool = True,
        models: set[str] | None = None,
    ) -> None:
        self.storage = storage
        self.api_key = api_key
        # Other keys the double accepts (users' own keys), and an answer per key that replaces the normal one (a key
        # at its rate limit: 429s for that key only, as SiliconFlow counts limits per account).
        self.other_keys: set[str] = set()
        self.answer_for_key: dict[str, Reply] = {}
        self.url_style = url_style
        self.url_ttl = url_ttl
        self.result_shape = result_shape
        self.strict_params = strict_params
        self.models = models if models is not None else set(MODEL_FIELDS)
        self.missing_model_status = 400
        self.broken_gzip = False
        # Image bytes override (e.g. a blank image) for the next successful answers.
        self.image_override: bytes | None = None
        self.video_models = set(VIDEO_MODELS)
        self.video_statuses = ["InQueue", "InProgress", "Succeed"]
        self.video_failure_reason = "content moderation: the prompt was rejected"
        self.video_kind = "mp4"
        self.video_override: bytes | None = None
        self.video_url_ttl = 600
        self.videos: dict[str, VideoJob] = {}
        super().__init__()

    def retire(self, model: str) -> None:
        """The model leaves the listing and its generations answer "Model does not exist"."""
        self.models.discard(model)
        self.video_models.discard(model)

    def listed(self, type_: str | None = None, sub_type: str | None = None) -> list[str]:
        live = self.models | self.video_models | {m for m, (t, _) in MODEL_TYPES.items() if t == "text"}
        return [
            model
            for model in sorted(live)
            if (type_ is None or MODEL_TYPES.get(model, ("image", None))[0] == type_)
            and (sub_type is None or MODEL_TYPES.get(model, ("image", "text-to-image"))[1] == sub_type)
        ]

    def _handle(self, request: Recorded) -> Reply:
        route = (request.method, request.path)
        if route not in ROUTES:
            return Reply.text(404, "404 page not found")
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        if key not in {self.api_key, *self.other_keys, *self.answer_for_key}:
            return Reply.json(401, "Invalid token")
        if key in self.answer_for_key:
            return self.answer_for_key[key]
        if route == ("GET", "/v1/user/info"):
            return Reply.json(*KEYCHECK_ANSWERS["siliconflow"]["ok"])
        if route == ("GET", "/v1/models"):
            data = [
                {"id": model, "object": "model", "created": 0, "owned_by": ""}
                for model in self.listed(request.query.get("type") or None, request.query.get("sub_type") or None)
            ]
            return Reply.json(200, {"object": "list", "data": data})
        if route == ("POST", "/v1/images/generations"):
            return self._generate(request.json())
        if route == ("POST", "/v1/video/submit"):
            return self._video_submit(request.json())
        return self._video_status(request.json())

    def _generate(self, body: dict[str, Any]) -> Reply:
        model = body.get("model")
        if model not in self.models:
            return Reply.json(self.missing_model_status, MODEL_DOES_NOT_EXIST)
        if self.strict_params:
            extra = set(body) - {"model", "prompt"} - MODEL_FIELDS.get(model, set())
            if extra:
                return bad_request(f"unsupported parameter(s): {sorted(extra)}")
        if self.broken_gzip:
            return broken_gzip_reply()
        width, height = (int(v) for v in str(body.get("image_size", "1024x1024")).split("x"))
        data = self.image_override or picture(width, height, f"{model}:{body.get('prompt')}:{body.get('seed')}")
        url = self._store("png", data, "image/png", self.url_ttl)
        payload: dict[str, Any] = {"timings": {"inference": 1.25}, "seed": body.get("seed", 42)}
        payload[self.result_shape] = [{"url": url}]
        return Reply.json(200, payload, {"x-siliconcloud-trace-id": uuid.uuid4().hex})

    def _store(self, extension: str, data: bytes, content_type: str, ttl: int) -> str:
        # Named like SiliconFlow's OSS results (PROVIDERS.md 1.3): the slashes stay percent-encoded in the link.
        name = f"outputs%2F{time.strftime('%Y%m%d')}%2F{uuid.uuid4().hex}.{extension}"
        self.storage.put(name, data, kind=self.url_style, content_type=content_type)
        return self.storage.mint_url(self.url_style, name, ttl)

    def _video_submit(self, body: Any) -> Reply:
        if not isinstance(body, dict):
            return bad_request("request body must be a JSON object", 20012)
        model = body.get("model")
        if model not in self.video_models:
            return Reply.json(self.missing_model_status, MODEL_DOES_NOT_EXIST)
        extra = set(body) - VIDEO_FIELDS
        if self.strict_params and extra:
            return bad_request(f"unsupported parameter(s): {sorted(extra)}")
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            return bad_request("prompt is required", 20012)
        if body.get("image_size") not in VIDEO_SIZES:
            return bad_request(f"image_size must be one of {sorted(VIDEO_SIZES)}", 20012)
        if "I2V" in str(model) and not body.get("image"):
            return bad_request("image is required for image-to-video models", 20012)
        job = VideoJob(uuid.uuid4().hex, body)
        self.videos[job.request_id] = job
        return Reply.json(200, {"requestId": job.request_id}, {"x-siliconcloud-trace-id": uuid.uuid4().hex})

    def _video_status(self, body: Any) -> Reply:
        job = self.videos.get(str((body or {}).get("requestId"))) if isinstance(body, dict) else None
        if job is None:
            return bad_request("requestId not found", 20012)
        job.status_calls += 1
        status = self.video_statuses[min(job.status_calls, len(self.video_statuses)) - 1]
        answer: dict[str, Any] = {"status": status, "reason": "", "results": None}
        if status == "InQueue":
            answer["position"] = 2
        elif status == "Failed":
            answer["reason"] = self.video_failure_reason
        elif status == "Succeed":
            if job.url is None:
                job.url = self._store_video(job)
            seed = job.payload.get("seed", 42)
            answer["results"] = {"videos": [{"url": job.url}], "timings": {"inference": 95.5}, "seed": seed}
        return Reply.json(200, answer)

    def _store_video(self, job: VideoJob) -> str:
        width, height = VIDEO_SIZES[job.payload["image_size"]]
        # Small frames keep the file tiny; the container says what a player needs (and the duration is real).
        small = (width // 20 // 2 * 2, height // 20 // 2 * 2)
        if self.video_kind == "html":
            return self._store("mp4", video.html_error_page(), "video/mp4", self.video_url_ttl)
        if self.video_kind == "webm":
            data = self.video_override or video.webm(*small, seed=job.payload["prompt"])
            return self._store("webm", data, "video/webm", self.video_url_ttl)
        data = self.video_override or video.mp4(*small, seed=job.payload["prompt"])
        return self._store("mp4", data, "video/mp4", self.video_url_ttl)
