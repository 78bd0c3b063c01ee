"""fal.ai double: the queue (submit, status, result, cancel), the sync host and a key-check call, with `Key` auth.

Follows PROVIDERS-ROUTES.md section 2 (fal-client 1.0.3, fal-js types, fal docs). Three loopback servers, as fal
has three hosts:

- `queue_url` (https://queue.fal.run): `POST /{owner}/{alias}[/{subpath}]` → `{"request_id", "response_url",
  "status_url", "cancel_url", "gateway_request_id", "status": "IN_QUEUE", "queue_position"}`. The three URLs DROP
  the sub-path (`fal-ai/flux/dev` → `{queue_url}/fal-ai/flux/requests/{id}`). `GET {base}/status[?logs=1]` answers
  IN_QUEUE (`queue_position`) for `in_queue_polls` calls, IN_PROGRESS (`logs`) for `in_progress_polls` more, then
  COMPLETED (`metrics.inference_time`); `GET {base}` is the output (400 "Request is still in progress" before);
  `PUT {base}/cancel` records the cancel in `cancels` and answers 202 `CANCELLATION_REQUESTED` (queued or
  running), 400 `ALREADY_COMPLETED`, 404 `NOT_FOUND` (fal names these values; the HTTP code of each is
  UNCONFIRMED, 202 is the one a third party reports). A cancelled request's result answers 400.
- `run_url` (https://fal.run): `POST /{app}` runs at once and answers the output (the sync API).
- `api_url` (https://api.fal.ai): `GET /v1/storage/settings`, the cheapest authenticated call the facts name
  (`{"expiration_duration_seconds", "initial_acl"}`): the key check.

Auth on every host: `Authorization: Key <key>`. Unknown key → 401 `{"detail": "No user found for Key ID and
Secret"}`; a `Key` with no `:` when the accepted keys have one → 401 "Invalid Key Authorization header format...";
`locked = LOCKED_EXHAUSTED` (or another LOCKED_* text) → 403 `{"detail": "User is locked. Reason: ..."}`.

Inputs are checked against fal's FLUX schema (section 2.4, `FalApps`): a wrong type or value is 422
`{"detail": [{"loc", "msg", "type"}]}`. Whether fal ignores unknown keys (`negative_prompt`, `scheduler`) is
UNCONFIRMED: `unknown_fields="reject"` (the default, the strict reading: 422 `extra_forbidden`) or "ignore". On the
queue the check runs when the app does, as there: the submit is accepted and the result answers 422.

Output (section 2.5): `{"images": [{"url", "width", "height", "content_type"}], "timings": {"inference"},
"seed", "has_nsfw_concepts": [bool], "prompt"}`; the image is a real JPEG/PNG of the asked size on the storage
double's fal CDN path (`{storage}/fal/files/<bucket>/<id>.jpg`, public like v3.fal.media). `nsfw = True` flags
every image and, like fal's safety checker, serves a black one (what a flagged image holds is UNCONFIRMED).
Scripted failures: `double.server.enqueue(Reply...)` (queue host), `double.run_server.enqueue(...)` (sync host).

Video apps (Wan 2.2 text- and image-to-video) run on the same queue and sync host: `double.apps.video`
(tests/doubles/video_apps.py) checks their input and makes their output (a real MP4 on the fal CDN path).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from tests.doubles.images import blank, picture
from tests.doubles.server import DoubleServer, HttpDouble, Recorded, Reply
from tests.doubles.storage import StorageDouble
from tests.doubles.video_apps import FalVideoApps

LOCKED_EXHAUSTED = "Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
LOCKED_TOP_UP = "TOP_UP."
LOCKED_ADMIN = "Admin lock. Please contact support@fal.ai"
NO_USER = {"detail": "No user found for Key ID and Secret"}
BAD_KEY_FORMAT = {"detail": "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'."}

# fal's named sizes (fal-js ImageSize enum) in pixels.
IMAGE_SIZES = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}


@dataclass(frozen=True)
class FluxSchema:
    """fal FLUX inputs (PROVIDERS-ROUTES.md 2.4); `steps` and the others are (low, high) inclusive."""

    steps: tuple[int, int]
    default_steps: int
    guidance: tuple[float, float] = (1.0, 20.0)
    fields: frozenset[str] = frozenset(
        {
            "prompt",
            "image_size",
            "num_inference_steps",
            "guidance_scale",
            "seed",
            "num_images",
            "enable_safety_checker",
            "output_format",
            "acceleration",
            "sync_mode",
        }
    )


# flux/dev step range is UNCONFIRMED (a third party says 0-50): 1-50 here.
FLUX_DEV = FluxSchema(steps=(1, 50), default_steps=28)
FLUX_SCHNELL = FluxSchema(steps=(1, 12), default_steps=4)
DEFAULT_APPS = {"fal-ai/flux/dev": FLUX_DEV, "fal-ai/flux/schnell": FLUX_SCHNELL}


def _issue(loc: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", loc], "msg": msg, "type": kind}


class FalApps:
    """What a fal FLUX app does with its input: the schema check and the output (shared with the HF router)."""

    def __init__(self, storage: StorageDouble, *, unknown_fields: str = "reject") -> None:
        self.storage = storage
        self.unknown_fields = unknown_fields
        self.apps: dict[str, FluxSchema] = dict(DEFAULT_APPS)
        self.nsfw = False
        # Image bytes override (e.g. a blank image) for the next outputs.
        self.image_override: bytes | None = None
        # The Wan video apps (tests/doubles/video_apps.py): their own inputs and output, the same queue.
        self.video = FalVideoApps(storage)

    def problems(self, schema: FluxSchema, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            return [_issue("__root__", "value is not a valid dict", "type_error.dict")]
        issues = []
        if not isinstance(body.get("prompt"), str):
            issues.append(_issue("prompt", "field required", "missing"))
        if self.unknown_fields == "reject":
            issues += [
                _issue(k, "Extra inputs are not permitted", "extra_forbidden") for k in body if k not in schema.fields
            ]
        size = body.get("image_size", "landscape_4_3")
        if isinstance(size, dict):
            if not all(
                isinstance(size.get(side, 512), int) and 1 <= size.get(side, 512) <= 14142
                for side in ("width", "height")
            ):
                issues.append(_issue("image_size", "width and height must be integers", "type_error.integer"))
        elif size not in IMAGE_SIZES:
            issues.append(_issue("image_size", f"value is not a valid enumeration member: {size!r}", "enum"))
        ranges: dict[str, tuple[float, float]] = {
            "num_inference_steps": schema.steps,
            "guidance_scale": schema.guidance,
            "num_images": (1, 4),
        }
        for name, (low, high) in ranges.items():
            value = body.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high
            ):
                issues.append(_issue(name, f"ensure this value is between {low} and {high}", "value_error.number"))
        if body.get("output_format", "jpeg") not in ("jpeg", "png"):
            issues.append(_issue("output_format", "value is not a valid enumeration member", "enum"))
        if body.get("acceleration", "none") not in ("none", "regular", "high"):
            issues.append(_issue("acceleration", "value is not a valid enumeration member", "enum"))
        return issues

    def output(self, body: dict[str, Any]) -> dict[str, Any]:
        size = body.get("image_size", "landscape_4_3")
        width, height = (
            (size.get("width", 512), size.get("height", 512)) if isinstance(size, dict) else IMAGE_SIZES[size]
        )
        fmt = "png" if body.get("output_format") == "png" else "jpeg"
        seed = int(body.get("seed", random.randrange(1 << 31)))
        images = []
        for index in range(int(body.get("num_images", 1))):
            if self.nsfw:
                data = blank(width, height, fmt=fmt.upper())
            else:
                data = self.image_override or picture(
                    width, height, f"{body['prompt']}:{seed}:{index}", fmt=fmt.upper()
                )
            name = f"files/{uuid.uuid4().hex[:8]}/{uuid.uuid4().hex}.{'png' if fmt == 'png' else 'jpg'}"
            self.storage.put(name, data, kind="fal", content_type=f"image/{fmt}")
            images.append(
                {
                    "url": self.storage.mint_url("fal", name),
                    "width": width,
                    "height": height,
                    "content_type": f"image/{fmt}",
                }
            )
        return {
            "images": images,
            "timings": {"inference": 0.42},
            "seed": seed,
            "has_nsfw_concepts": [self.nsfw] * len(images),
            "prompt": body["prompt"],
        }

    def run(self, app: str, body: Any) -> Reply:
        """The sync answer: the output, or the 422 a schema problem gets."""
        if app in self.video.apps:
            problems = self.video.problems(app, body, unknown_fields=self.unknown_fields)
            if problems:
                return Reply.json(422, {"detail": problems}, _request_id())
            return Reply.json(200, self.video.output(body, nsfw=self.nsfw), _request_id())
        schema = self.apps.get(app)
        if schema is None:
            return Reply.json(404, {"detail": f"Application '{app}' not found"})
        issues = self.problems(schema, body)
        if issues:
            return Reply.json(422, {"detail": issues}, _request_id())
        return Reply.json(200, self.output(body), _request_id())


def _request_id() -> dict[str, str]:
    return {"x-fal-request-id": str(uuid.uuid4())}


@dataclass
class FalRequest:
    id: str
    app: str  # owner/alias/subpath as submitted
    base: str  # owner/alias: what the request URLs keep
    body: Any
    status_calls: int = 0
    canceled: bool = False
    result_calls: int = 0
    # The answer is made once and kept, as fal keeps a finished request's output.
    result: Reply | None = None


class FalDouble(HttpDouble):
    def __init__(
        self,
        storage: StorageDouble,
        *,
        keys: set[str],
        in_queue_polls: int = 1,
        in_progress_polls: int = 1,
        unknown_fields: str = "reject",
    ) -> None:
        self.keys = keys
        self.in_queue_polls = in_queue_polls
        self.in_progress_polls = in_progress_polls
        self.apps = FalApps(storage, unknown_fields=unknown_fields)
        self.locked: str | None = None
        self.requests: dict[str, FalRequest] = {}
        self.cancels: list[str] = []
        self.run_server = DoubleServer(lambda request: self._auth(request) or self._run(request))
        self.api_server = DoubleServer(lambda request: self._auth(request) or self._api(request))
        super().__init__()

    # knobs that live on the shared app engine
    @property
    def nsfw(self) -> bool:
        return self.apps.nsfw

    @nsfw.setter
    def nsfw(self, value: bool) -> None:
        self.apps.nsfw = value

    @property
    def unknown_fields(self) -> str:
        return self.apps.unknown_fields

    @unknown_fields.setter
    def unknown_fields(self, value: str) -> None:
        self.apps.unknown_fields = value

    @property
    def queue_url(self) -> str:
        return self.server.url

    @property
    def run_url(self) -> str:
        return self.run_server.url

    @property
    def api_url(self) -> str:
        return self.api_server.url

    def close(self) -> None:
        self.run_server.close()
        self.api_server.close()
        super().close()

    def _auth(self, request: Recorded) -> Reply | None:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Key ") if auth.startswith("Key ") else None
        if key not in self.keys:
            if key is not None and ":" not in key and any(":" in known for known in self.keys):
                return Reply.json(401, BAD_KEY_FORMAT)
            return Reply.json(401, NO_USER)
        if self.locked:
            return Reply.json(403, {"detail": f"User is locked. Reason: {self.locked}"})
        return None

    def _run(self, request: Recorded) -> Reply:
        if request.method != "POST":
            return Reply.json(405, {"detail": "Method Not Allowed"})
        return self.apps.run(request.path.strip("/"), _json_or_none(request))

    def _api(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path == "/v1/storage/settings":
            return Reply.json(200, {"expiration_duration_seconds": None, "initial_acl": "public"})
        return Reply.json(404, {"detail": "Not Found"})

    def _handle(self, request: Recorded) -> Reply:
        refused = self._auth(request)
        if refused is not None:
            return refused
        parts = request.path.strip("/").split("/")
        if len(parts) >= 4 and parts[2] == "requests":
            fal_request = self.requests.get(parts[3])
            if fal_request is None or fal_request.base != "/".join(parts[:2]):
                return Reply.json(404, {"detail": "Request not found", "status": "NOT_FOUND"})
            return self._follow_up(fal_request, request, parts[4:])
        if request.method == "POST" and len(parts) >= 2:
            return self._submit(request, "/".join(parts))
        return Reply.json(404, {"detail": "Not Found"})

    def _submit(self, request: Recorded, app: str) -> Reply:
        if app not in self.apps.apps and app not in self.apps.video.apps:
            return Reply.json(404, {"detail": f"Application '{app}' not found"})
        base = "/".join(app.split("/")[:2])
        fal_request = FalRequest(str(uuid.uuid4()), app, base, _json_or_none(request))
        self.requests[fal_request.id] = fal_request
        url = f"{self.queue_url}/{base}/requests/{fal_request.id}"
        return Reply.json(
            200,
            {
                "status": "IN_QUEUE",
                "request_id": fal_request.id,
                "response_url": url,
                "status_url": f"{url}/status",
                "cancel_url": f"{url}/cancel",
                "gateway_request_id": fal_request.id,
                "queue_position": self.in_queue_polls,
            },
            _request_id(),
        )

    def _state(self, fal_request: FalRequest) -> str:
        if fal_request.canceled or fal_request.status_calls > self.in_queue_polls + self.in_progress_polls:
            return "COMPLETED"
        return "IN_QUEUE" if fal_request.status_calls <= self.in_queue_polls else "IN_PROGRESS"

    def _follow_up(self, fal_request: FalRequest, request: Recorded, rest: list[str]) -> Reply:
        url = f"{self.queue_url}/{fal_request.base}/requests/{fal_request.id}"
        if rest == ["status"] and request.method == "GET":
            fal_request.status_calls += 1
            state = self._state(fal_request)
            logs = [] if request.query.get("logs", "").lower() in ("1", "true") else None
            if state == "IN_QUEUE":
                position = max(0, self.in_queue_polls - fal_request.status_calls)
                return Reply.json(200, {"status": state, "queue_position": position, "response_url": url})
            if state == "IN_PROGRESS":
                return Reply.json(200, {"status": state, "logs": logs, "response_url": url})
            body: dict[str, Any] = {
                "status": state,
                "logs": logs,
                "metrics": {"inference_time": 0.42},
                "response_url": url,
            }
            if fal_request.canceled:
                body.update(error="Request was cancelled", error_type="request_cancelled")
            return Reply.json(200, body)
        if rest == ["cancel"] and request.method == "PUT":
            self.cancels.append(fal_request.id)
            if self._state(fal_request) == "COMPLETED" and not fal_request.canceled:
                return Reply.json(400, {"status": "ALREADY_COMPLETED"})
            fal_request.canceled = True
            return Reply.json(202, {"status": "CANCELLATION_REQUESTED"})
        if not rest and request.method == "GET":
            fal_request.result_calls += 1
            if fal_request.canceled:
                return Reply.json(400, {"detail": "Request was cancelled"})
            if self._state(fal_request) != "COMPLETED":
                return Reply.json(400, {"detail": "Request is still in progress"})
            if fal_request.result is None:
                fal_request.result = self.apps.run(fal_request.app, fal_request.body)
            return fal_request.result
        return Reply.json(405, {"detail": "Method Not Allowed"})


def _json_or_none(request: Recorded) -> Any:
    try:
        return request.json()
    except ValueError:
        return None
