"""Replicate double: predictions with `Prefer: wait`, get, cancel, the account call, FLUX schemas, RFC 7807 errors.

Follows PROVIDERS-ROUTES.md section 3 (replicate 1.0.7, replicate-python-beta's OpenAPI types). Paths are Replicate's:
the project's `REPLICATE_BASE_URL` is `double.base_url` (`…/v1`); the official client's `base_url` is `double.url`
(it adds `/v1` itself).

- `POST /v1/models/{owner}/{name}/predictions` (official model) and `POST /v1/predictions` with `version`
  (`versions` maps a version id to its model) → 201 prediction. With `Prefer: wait=N` (bare `wait` = 60 s) the
  prediction is answered finished when the model runs in `run_seconds` ≤ N; otherwise, or with no `Prefer`, it
  is `starting` with `output: null`. `sync_status` is the status of a finished sync answer ("succeeded"; set
  "processing" for the reading in which a done sync reply still says processing, 3.2).
- `GET /v1/predictions/{id}`: `starting` → `processing` → terminal after `polls_until_done` gets.
- `POST /v1/predictions/{id}/cancel` → the prediction, `canceled` unless already terminal; ids land in `cancels`.
- `GET /v1/account` → `{"type", "username", "name", "github_url"}` (the key check).

Inputs are checked against the FLUX schemas in 3.7 (`aspect_ratio` enum, `megapixels` "1"/"0.25", `num_outputs`
1-4, `num_inference_steps` 1-4 schnell / 1-50 dev, `guidance` 0-10 dev only, `output_format`, `output_quality`):
a bad value is 422 `{"title": "Input validation failed", "detail", "status": 422, "invalid_fields": [...]}` (shape
from public captures). Unknown inputs are dropped silently (3.5, the default); `strict_inputs = True` answers the
2026 Cog regression's 422 `{"detail": [{"loc": ["body", "input", k], "msg": "Unexpected field 'k'", ...}]}`.

Output: a list of `num_outputs` URLs on the storage double's replicate.delivery-like path
(`{storage}/replicate/xezq/<id>/out-0.webp`), or `data:` URIs when `output_kind = "data_uri"`. `fail_with = E005`
(or any text) makes predictions end `failed` with that `error`. Errors are RFC 7807: 401 Unauthenticated for a
missing or unknown token, 402 Insufficient credit for tokens in `out_of_credit`, and `throttle(retry_after)`
scripts a 429 (with or without `Retry-After`) on the next create.

Video models (Wan 2.2 text- and image-to-video) are predictions like any other: `double.video`
(tests/doubles/video_apps.py) checks their input and makes their output (a real MP4 on the replicate.delivery path).
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.doubles.images import picture
from tests.doubles.server import HttpDouble, Recorded, Reply
from tests.doubles.storage import StorageDouble
from tests.doubles.video_apps import ReplicateVideoModels

E005 = "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
UNAUTHENTICATED = {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}
INSUFFICIENT_CREDIT = {
    "title": "Insufficient credit",
    "detail": "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing to "
    "purchase credit. Once you purchase credit, please wait a few minutes before trying again.",
    "status": 402,
}
THROTTLED = {"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429}
ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
TERMINAL = ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class ModelSchema:
    steps: tuple[int, int]
    has_guidance: bool
    fields: frozenset[str] = frozenset(
        {
            "prompt",
            "aspect_ratio",
            "megapixels",
            "num_outputs",
            "num_inference_steps",
            "go_fast",
            "output_format",
            "output_quality",
            "disable_safety_checker",
            "seed",
        }
    )


FLUX_SCHNELL = ModelSchema(steps=(1, 4), has_guidance=False)
FLUX_DEV = ModelSchema(
    steps=(1, 50), has_guidance=True, fields=FLUX_SCHNELL.fields | {"guidance", "image", "prompt_strength"}
)
DEFAULT_MODELS = {"black-forest-labs/flux-schnell": FLUX_SCHNELL, "black-forest-labs/flux-dev": FLUX_DEV}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _invalid(field_name: str, description: str, kind: str = "invalid") -> dict[str, str]:
    return {"type": kind, "field": f"input.{field_name}", "description": description}


def _side(aspect: str, megapixels: str) -> tuple[int, int]:
    w, h = (int(part) for part in aspect.split(":"))
    area = (1024 * 1024) * (0.25 if megapixels == "0.25" else 1.0)
    scale = (area / (w * h)) ** 0.5
    # Replicate's FLUX sizes are multiples of 16.
    return max(16, round(w * scale / 16) * 16), max(16, round(h * scale / 16) * 16)


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    status: str = "starting"
    output: Any = None
    error: str | None = None
    gets: int = 0
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    completed_at: str | None = None


class ReplicateEngine:
    """Replicate's prediction API on any prefix (the direct double at /, the HF router at /replicate)."""

    def __init__(self, storage: StorageDouble, *, run_seconds: float = 2.0, polls_until_done: int = 2) -> None:
        self.storage = storage
        self.run_seconds = run_seconds
        self.polls_until_done = polls_until_done
        self.sync_status = "succeeded"
        self.output_kind = "url"
        self.strict_inputs = False
        self.fail_with: str | None = None
        self.models: dict[str, ModelSchema] = dict(DEFAULT_MODELS)
        self.versions: dict[str, str] = {
            uuid.uuid5(uuid.NAMESPACE_URL, model).hex * 2: model for model in DEFAULT_MODELS
        }
        self.predictions: dict[str, Prediction] = {}
        self.cancels: list[str] = []
        # Image bytes override (e.g. a blank image) for the next outputs.
        self.image_override: bytes | None = None
        # The Wan video models (tests/doubles/video_apps.py): their own inputs and output, the same predictions.
        self.video = ReplicateVideoModels(storage)

    def handle(self, request: Recorded, path: str, url_base: str) -> Reply:
        """`path` is the part after the prefix (starting /v1/...); `url_base` is what prediction URLs start with."""
        parts = path.strip("/").split("/")
        if request.method == "POST" and len(parts) == 5 and parts[:2] == ["v1", "models"] and parts[4] == "predictions":
            return self.create(request, f"{parts[2]}/{parts[3]}", None, url_base)
        if request.method == "POST" and parts == ["v1", "predictions"]:
            version = str((_json(request) or {}).get("version", "")).split(":")[-1]
            if version not in self.versions:
                return _problem(
                    422,
                    "Invalid version or not permitted",
                    "The specified version does not exist (or perhaps you don't have permission to use it?)",
                )
            return self.create(request, self.versions[version], version, url_base)
        if len(parts) >= 3 and parts[:2] == ["v1", "predictions"]:
            prediction = self.predictions.get(parts[2])
            if prediction is None:
                return _problem(404, "Not found", "The requested resource could not be found.")
            if request.method == "GET" and len(parts) == 3:
                return Reply.json(200, self._get(prediction, url_base))
            if request.method == "POST" and parts[3:] == ["cancel"]:
                self.cancels.append(prediction.id)
                if prediction.status not in TERMINAL:
                    prediction.status, prediction.completed_at = "canceled", _now()
                return Reply.json(200, self.body(prediction, url_base))
        return _problem(404, "Not found", "The requested resource could not be found.")

    def create(self, request: Recorded, model: str, version: str | None, url_base: str) -> Reply:
        schema = self.models.get(model)
        if schema is None and model not in self.video.models:
            return _problem(404, "Not found", "The requested resource could not be found.")
        body = _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return _problem(422, "Input validation failed", "- input: input is required")
        given = body["input"]
        if self.strict_inputs:
            fields = schema.fields if schema is not None else self.video.fields(model)
            extra = [k for k in given if k not in fields]
            if extra:
                detail = [
                    {"loc": ["body", "input", k], "msg": f"Unexpected field '{k}'", "type": "value_error.extra"}
                    for k in extra
                ]
                return Reply.json(422, {"detail": detail})
        invalid = self._invalid_fields(schema, given) if schema is not None else self.video.invalid(model, given)
        if invalid:
            text = "\n".join(f"- {item['field']}: {item['description']}" for item in invalid)
            return Reply.json(
                422, {"title": "Input validation failed", "detail": text, "status": 422, "invalid_fields": invalid}
            )
        prediction = Prediction(
            id=uuid.uuid4().hex[:26],
            model=model,
            version=version or "hidden",
            input=given,  # echoed as sent; unknown inputs are only left out of the generation
        )
        self.predictions[prediction.id] = prediction
        wait = _prefer_wait(request.headers.get("prefer"))
        if wait is not None and self.run_seconds <= wait:
            self._finish(prediction)
            if self.sync_status != "succeeded" and prediction.status == "succeeded":
                prediction.status = self.sync_status
        return Reply.json(201, self.body(prediction, url_base))

    @staticmethod
    def _invalid_fields(schema: ModelSchema, given: dict[str, Any]) -> list[dict[str, str]]:
        invalid = []
        if not isinstance(given.get("prompt"), str):
            invalid.append(_invalid("prompt", "prompt is required", "required"))
        if given.get("aspect_ratio", "1:1") not in ASPECT_RATIOS:
            invalid.append(
                _invalid(
                    "aspect_ratio", f"aspect_ratio must be one of the following: {', '.join(ASPECT_RATIOS)}", "enum"
                )
            )
        if str(given.get("megapixels", "1")) not in ("1", "0.25"):
            invalid.append(_invalid("megapixels", 'megapixels must be one of the following: "1", "0.25"', "enum"))
        if given.get("output_format", "webp") not in ("webp", "jpg", "png"):
            invalid.append(
                _invalid("output_format", 'output_format must be one of the following: "webp", "jpg", "png"', "enum")
            )
        ranges = {"num_outputs": (1, 4), "num_inference_steps": schema.steps, "output_quality": (0, 100)}
        if schema.has_guidance:
            ranges["guidance"] = (0, 10)
        for name, (low, high) in ranges.items():
            value = given.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high
            ):
                invalid.append(_invalid(name, f"{name} must be between {low} and {high}", "range"))
        return invalid

    def _finish(self, prediction: Prediction) -> None:
        prediction.started_at = prediction.started_at or _now()
        prediction.completed_at = _now()
        if self.fail_with is not None:
            prediction.status, prediction.error = "failed", self.fail_with
            return
        prediction.status = "succeeded"
        if prediction.model in self.video.models:
            prediction.output = self.video.output(prediction.input)
            return
        prediction.output = self._outputs(prediction)

    def _outputs(self, prediction: Prediction) -> list[str]:
        given = prediction.input
        fmt = given.get("output_format", "webp")
        width, height = _side(given.get("aspect_ratio", "1:1"), str(given.get("megapixels", "1")))
        mime = {"webp": "image/webp", "jpg": "image/jpeg", "png": "image/png"}[fmt]
        outputs = []
        for index in range(int(given.get("num_outputs", 1))):
            data = self.image_override or picture(
                width,
                height,
                f"{given['prompt']}:{given.get('seed')}:{index}",
                fmt={"jpg": "JPEG"}.get(fmt, fmt.upper()),
            )
            if self.output_kind == "data_uri":
                outputs.append(f"data:{mime};base64,{base64.b64encode(data).decode()}")
                continue
            name = f"xezq/{prediction.id}/out-{index}.{fmt}"
            self.storage.put(name, data, kind="replicate", content_type=mime)
            outputs.append(self.storage.mint_url("replicate", name))
        return outputs

    def _get(self, prediction: Prediction, url_base: str) -> dict[str, Any]:
        if prediction.status not in TERMINAL:
            prediction.gets += 1
            if prediction.gets >= self.polls_until_done:
                self._finish(prediction)
            else:
                prediction.status, prediction.started_at = "processing", prediction.started_at or _now()
        return self.body(prediction, url_base)

    def body(self, prediction: Prediction, url_base: str) -> dict[str, Any]:
        url = f"{url_base}/v1/predictions/{prediction.id}"
        done = prediction.status in TERMINAL
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": prediction.version,
            "input": prediction.input,
            "logs": "",
            "output": prediction.output,
            "data_removed": False,
            "error": prediction.error,
            "status": prediction.status,
            "created_at": prediction.created_at,
            "started_at": prediction.started_at,
            "completed_at": prediction.completed_at,
            "source": "api",
            "urls": {"get": url, "cancel": f"{url}/cancel", "web": f"https://replicate.com/p/{prediction.id}"},
            "metrics": {"predict_time": 1.5, "total_time": 2.0} if done else {},
        }


def _json(request: Recorded) -> Any:
    try:
        return request.json()
    except ValueError:
        return None


def _problem(status: int, title: str, detail: str) -> Reply:
    return Reply.json(status, {"title": title, "detail": detail, "status": status})


def _prefer_wait(prefer: str | None) -> float | None:
    """Seconds the client will wait: `wait` = 60 (Replicate's default), `wait=N` = N, else None."""
    for part in (prefer or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "wait":
            try:
                return float(value) if value else 60.0
            except ValueError:
                return None
    return None


class ReplicateDouble(ReplicateEngine, HttpDouble):
    """The engine's knobs (run_seconds, output_kind, fail_with, strict_inputs, sync_status, models, versions) and
    records (predictions, cancels) are the double's own attributes."""

    base_path = "/v1"

    def __init__(
        self, storage: StorageDouble, *, api_tokens: set[str], run_seconds: float = 2.0, polls_until_done: int = 2
    ) -> None:
        self.api_tokens = api_tokens
        self.out_of_credit: set[str] = set()
        ReplicateEngine.__init__(self, storage, run_seconds=run_seconds, polls_until_done=polls_until_done)
        HttpDouble.__init__(self)

    def throttle(self, retry_after: int | None = None) -> None:
        """The next create answers 429, with `Retry-After` when given (whether Replicate sends it is UNCONFIRMED)."""
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        self.server.enqueue(Reply.json(429, THROTTLED, headers), method="POST", path_contains="/predictions")

    def _handle(self, request: Recorded) -> Reply:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if token not in self.api_tokens:
            return Reply.json(401, UNAUTHENTICATED)
        if request.method == "GET" and request.path == "/v1/account":
            account = {
                "type": "user",
                "username": "alice",
                "name": "Alice Example",
                "github_url": "https://github.com/alice",
            }
            return Reply.json(200, account)
        if token in self.out_of_credit and request.method == "POST" and request.path.endswith("/predictions"):
            return Reply.json(402, INSUFFICIENT_CREDIT)
        return self.handle(request, request.path, self.url)
