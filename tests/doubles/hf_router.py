"""Hugging Face router + Hub double: the provider mapping, whoami-v2, and each Inference Provider's text-to-image route.

Follows PROVIDERS-ROUTES.md section 1 (huggingface_hub 2.4.0, hub-docs, huggingface.js) and PROVIDERS.md 2. One
loopback server plays both hosts, told apart by path: point `HF_ROUTER_URL` and `HF_ENDPOINT` at `double.url`.

Hub (https://huggingface.co):
- `GET /api/models/{repo_id}?expand=inferenceProviderMapping` (huggingface_hub) or `?expand[]=…` (hub-docs,
  huggingface.js) → `{"_id", "id", "inferenceProviderMapping": {provider: {"status", "providerId", "task",
  "isModelAuthor", ...}}}` in the configured order. Which spelling the Hub reads is UNCONFIRMED: both by default;
  `expand_params = {"expand"}` (or `{"expand[]"}`) honours one only, the other then gets the plain model info.
  Without expand: the model info (`pipeline_tag`, `tags`, `gated`, ...), which huggingface_hub's hf-inference
  helper reads. Unknown repo → 404 `X-Error-Code: RepoNotFound`. Mappings: `models[repo].mapping` (a list of
  `Mapping`), preset by `default_models()`; `set_status(repo, provider, status)` flips one entry.
- `GET /api/whoami-v2`: the answers of tests/doubles/keycheck.py (reused, not redefined).

Router (https://router.huggingface.co), `Authorization: Bearer hf_…` (a token in `tokens`):
- no header → 401 "Invalid username or password."; unknown token → 401 "Invalid credentials in Authorization
  header" (router text UNCONFIRMED); token in `no_permission` → 403 "…does not have sufficient permissions to call
  Inference Providers…"; in `out_of_credit` → 402 credits text; provider in `payg_disabled` → 402 "Pay-as-you go
  is not enabled for provider X yet.".
- A providerId the mapping does not list for that provider → 404 (body UNCONFIRMED: `{"error": "..."}`). A listed
  one is served whatever its `status` (live, staging, error): the status is for clients to filter on.
- `POST /fal-ai/{providerId}`: fal's sync app (tests/doubles/fal.py `FalApps`: fal's FLUX schema, unknown keys
  422 by default, `fal.unknown_fields = "ignore"` for the other reading) → `images[0].url` on the storage double.
- `POST /replicate/v1/models/{owner}/{name}/predictions` (`Prefer: wait`), `/replicate/v1/predictions` with a
  version, `GET /replicate/v1/predictions/{id}`, cancel: tests/doubles/replicate.py's engine (`replicate`):
  unknown inputs dropped, `replicate.strict_inputs = True` for the Cog regression's 422.
- `POST /nscale/v1/images/generations` and `POST /together/v1/images/generations`: OpenAI-style, base64
  `data[0].b64_json`; fields outside each one's set (`NSCALE_FIELDS`, `TOGETHER_FIELDS`) → 400.
- `POST /wavespeed/api/v3/{providerId}` → `data.urls.get` = `https://api.wavespeed.ai/api/v3/predictions/{id}/result`
  (clients GET its path under `/wavespeed`): `processing` for `wavespeed_polls - 1` polls, then `completed` with
  `outputs[0]`; `wavespeed_error` makes it `failed`.
- `POST /zai-org/api/paas/v4/async/images/generations` → `{"id", "task_status": "PROCESSING"}`; `GET
  /zai-org/api/paas/v4/async-result/{id}` → SUCCESS with `image_result[0].url` after `zai_polls` polls.
- `POST /hf-inference/models/{model}` (`{inputs, parameters}` → raw PNG): served only for models mapped to
  hf-inference. FLUX.1-dev and FLUX.1-schnell answer 404, as production does now; `hf_inference_gone[model] = 410`
  gives the "deprecated and no longer supported" answer instead. tests/doubles/huggingface.py keeps the older,
  hf-inference-only double that serves every model.
Scripted failures per route: `fail_route("fal-ai", Reply.json(503, ...), Reply(..., delay=30))`.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.doubles.fal import FalApps
from tests.doubles.huggingface import CREDITS, TASK_PARAMETERS
from tests.doubles.images import picture
from tests.doubles.keycheck import ANSWERS as KEYCHECK_ANSWERS
from tests.doubles.replicate import ReplicateEngine
from tests.doubles.server import HttpDouble, Recorded, Reply
from tests.doubles.storage import StorageDouble

DEV = "black-forest-labs/FLUX.1-dev"
SCHNELL = "black-forest-labs/FLUX.1-schnell"
SD3 = "stabilityai/stable-diffusion-3-medium-diffusers"
GLM = "zai-org/GLM-Image"
ROUTES = ("fal-ai", "replicate", "nscale", "together", "wavespeed", "zai-org", "hf-inference")
NSCALE_FIELDS = {"model", "prompt", "response_format", "size", "n", "seed", "negative_prompt", "guidance_scale"}
TOGETHER_FIELDS = {
    "model",
    "prompt",
    "response_format",
    "width",
    "height",
    "steps",
    "seed",
    "n",
    "negative_prompt",
    "guidance_scale",
    "disable_safety_checker",
}
DEPRECATED_410 = "The requested model is deprecated and no longer supported by provider hf-inference"


def no_permission(user: str = "double-user") -> dict[str, str]:
    return {
        "error": "This authentication method does not have sufficient permissions to call Inference Providers on "
        f"behalf of user {user}"
    }


@dataclass
class Mapping:
    provider: str
    provider_id: str
    status: str = "live"
    task: str = "text-to-image"
    extra: dict[str, Any] = field(default_factory=dict)  # adapter, adapterWeightsPath, type

    def as_json(self) -> dict[str, Any]:
        entry = {"status": self.status, "providerId": self.provider_id, "task": self.task, "isModelAuthor": False}
        return {**entry, **self.extra}


@dataclass
class HubModel:
    id: str
    mapping: list[Mapping]
    pipeline_tag: str = "text-to-image"
    gated: str | bool = False


def default_models() -> dict[str, HubModel]:
    """The mappings PROVIDERS-ROUTES.md 1.4 gives (FLUX.1-dev: fal-ai first, as the Hub lists it)."""
    return {
        DEV: HubModel(
            DEV,
            [
                Mapping("fal-ai", "fal-ai/flux/dev"),
                Mapping("replicate", "black-forest-labs/flux-dev"),
                Mapping("wavespeed", "wavespeed-ai/flux-dev"),
            ],
            gated="auto",
        ),
        SCHNELL: HubModel(
            SCHNELL,
            [
                Mapping("fal-ai", "fal-ai/flux/schnell"),
                Mapping("replicate", "black-forest-labs/flux-schnell"),
                Mapping("wavespeed", "wavespeed-ai/flux-schnell"),
                Mapping("nscale", SCHNELL),
                Mapping("together", SCHNELL),
            ],
        ),
        SD3: HubModel(SD3, [Mapping("hf-inference", SD3)]),
        GLM: HubModel(GLM, [Mapping("zai-org", "glm-image")]),
    }


@dataclass
class _Job:
    """A wavespeed or zai-org task: done after `polls_left` more polls."""

    model: str
    width: int
    height: int
    prompt: str
    polls_left: int
    url: str | None = None


class HfRouterDouble(HttpDouble):
    def __init__(self, storage: StorageDouble, *, tokens: set[str]) -> None:
        self.storage = storage
        self.tokens = tokens
        self.no_permission: set[str] = set()
        self.out_of_credit: set[str] = set()
        self.payg_disabled: set[str] = set()
        self.models = default_models()
        self.expand_params = {"expand", "expand[]"}
        self.fal = FalApps(storage)
        self.replicate = ReplicateEngine(storage, run_seconds=2.0)
        self.hf_inference_gone: dict[str, int] = {DEV: 404, SCHNELL: 404}
        self.reject_unknown_params = True  # hf-inference: PROVIDERS.md 2.5 leaves it open; strict reading
        self.wavespeed_polls = 1
        self.wavespeed_error: str | None = None
        self.zai_polls = 1
        self.jobs: dict[str, _Job] = {}
        # Image bytes override (e.g. a blank image) for base64 and raw answers.
        self.image_override: bytes | None = None
        super().__init__()

    # configuration --------------------------------------------------------------------------------------------

    def set_status(self, repo: str, provider: str, status: str) -> None:
        for entry in self.models[repo].mapping:
            if entry.provider == provider:
                entry.status = status

    def fail_route(self, provider: str, *replies: Reply) -> None:
        """The next requests on this router provider's route get these replies (status, body, delay) first."""
        self.server.enqueue(*replies, path_prefix=f"/{provider}/")

    def calls(self, route: str) -> list[Recorded]:
        """Requests on one router provider's route (or "hub" for the Hub's)."""
        prefix = "/api/" if route == "hub" else f"/{route}/"
        return [r for r in self.server.requests if r.path.startswith(prefix)]

    def _mapped(self, provider: str, provider_id: str) -> bool:
        return any(
            entry.provider == provider and entry.provider_id == provider_id
            for model in self.models.values()
            for entry in model.mapping
        )

    # dispatch -------------------------------------------------------------------------------------------------

    def _handle(self, request: Recorded) -> Reply:
        if request.path.startswith("/api/"):
            return self._hub(request)
        provider, _, rest = request.path.lstrip("/").partition("/")
        if provider not in ROUTES:
            return Reply.json(404, {"error": "Not Found"})
        refused = self._router_auth(request, provider)
        if refused is not None:
            return refused
        handler = {
            "fal-ai": self._fal,
            "replicate": self._replicate,
            "nscale": self._openai_images,
            "together": self._openai_images,
            "wavespeed": self._wavespeed,
            "zai-org": self._zai,
            "hf-inference": self._hf_inference,
        }[provider]
        return handler(request, provider, rest)

    def _router_auth(self, request: Recorded, provider: str) -> Reply | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return Reply.json(401, {"error": "Invalid username or password."})
        token = auth.removeprefix("Bearer ")
        if token not in self.tokens:
            return Reply.json(401, {"error": "Invalid credentials in Authorization header"})
        if token in self.no_permission:
            return Reply.json(403, no_permission())
        if token in self.out_of_credit:
            return Reply.json(402, CREDITS)
        if provider in self.payg_disabled:
            return Reply.json(402, {"error": f"Pay-as-you go is not enabled for provider {provider} yet."})
        return None

    # Hub ------------------------------------------------------------------------------------------------------

    def _hub(self, request: Recorded) -> Reply:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if request.path == "/api/whoami-v2":
            status, body = KEYCHECK_ANSWERS["huggingface"]["ok" if token in self.tokens else "invalid"]
            return Reply.json(status, body)
        if auth and token not in self.tokens:
            return Reply.json(401, {"error": "Invalid credentials in Authorization header"})
        repo = request.path.removeprefix("/api/models/")
        model = self.models.get(repo)
        if model is None or not request.path.startswith("/api/models/"):
            return Reply.json(404, {"error": "Repository not found"}, {"x-error-code": "RepoNotFound"})
        expand = [value for name in sorted(self.expand_params) for value in request.query_all(name)]
        if "inferenceProviderMapping" in expand:
            mapping = {entry.provider: entry.as_json() for entry in model.mapping}
            return Reply.json(
                200,
                {"_id": uuid.uuid5(uuid.NAMESPACE_URL, repo).hex[:24], "id": repo, "inferenceProviderMapping": mapping},
            )
        return Reply.json(200, self._model_info(model))

    @staticmethod
    def _model_info(model: HubModel) -> dict[str, Any]:
        return {
            "_id": uuid.uuid5(uuid.NAMESPACE_URL, model.id).hex[:24],
            "id": model.id,
            "modelId": model.id,
            "author": model.id.split("/")[0],
            "sha": uuid.uuid5(uuid.NAMESPACE_DNS, model.id).hex,
            "private": False,
            "gated": model.gated,
            "disabled": False,
            "downloads": 1000,
            "likes": 100,
            "library_name": "diffusers",
            "tags": ["diffusers", "safetensors", model.pipeline_tag],
            "pipeline_tag": model.pipeline_tag,
            "createdAt": "2024-08-01T00:00:00.000Z",
            "lastModified": "2025-08-01T00:00:00.000Z",
            "siblings": [],
        }

    # routes ---------------------------------------------------------------------------------------------------

    def _not_served(self, provider: str, provider_id: str) -> Reply:
        return Reply.json(404, {"error": f"Model {provider_id} is not supported by provider {provider}."})

    def _fal(self, request: Recorded, provider: str, provider_id: str) -> Reply:
        if not self._mapped(provider, provider_id):
            return self._not_served(provider, provider_id)
        return self.fal.run(provider_id, _json(request))

    def _replicate(self, request: Recorded, provider: str, rest: str) -> Reply:
        parts = rest.split("/")
        if len(parts) == 5 and parts[1] == "models" and not self._mapped(provider, f"{parts[2]}/{parts[3]}"):
            return self._not_served(provider, f"{parts[2]}/{parts[3]}")
        return self.replicate.handle(request, f"/{rest}", f"{self.url}/replicate")

    def _openai_images(self, request: Recorded, provider: str, rest: str) -> Reply:
        if request.method != "POST" or rest != "v1/images/generations":
            return Reply.json(404, {"error": "Not Found"})
        body = _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return _openai_error(400, "prompt is required", "prompt")
        if not self._mapped(provider, str(body.get("model"))):
            return self._not_served(provider, str(body.get("model")))
        allowed = NSCALE_FIELDS if provider == "nscale" else TOGETHER_FIELDS
        unknown = sorted(set(body) - allowed)
        if unknown:
            return _openai_error(400, f"Unrecognized request argument supplied: {', '.join(unknown)}", unknown[0])
        if provider == "nscale":
            width, height = _size(body.get("size"), "x")
        else:
            width, height = int(body.get("width", 1024)), int(body.get("height", 1024))
        data = self.image_override or picture(width, height, f"{provider}:{body['prompt']}:{body.get('seed')}")
        if body.get("response_format") not in ("b64_json", "base64"):
            return _openai_error(400, "Only base64 responses are served by this double", "response_format")
        item = {"index": 0, "b64_json": base64.b64encode(data).decode()}
        return Reply.json(
            200,
            {
                "id": uuid.uuid4().hex,
                "created": int(time.time()),
                "model": body["model"],
                "object": "list",
                "data": [item],
            },
        )

    def _hf_inference(self, request: Recorded, provider: str, rest: str) -> Reply:
        model = rest.removeprefix("models/")
        if model in self.hf_inference_gone and self.hf_inference_gone[model] == 410:
            return Reply.json(410, {"error": DEPRECATED_410})
        if model in self.hf_inference_gone or not self._mapped(provider, model):
            return self._not_served(provider, model)
        body = _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
            return Reply.json(400, {"error": ["inputs: field required"]})
        parameters = body.get("parameters") or {}
        unknown = set(parameters) - TASK_PARAMETERS
        if self.reject_unknown_params and unknown:
            return Reply.json(400, {"error": [f"unexpected parameter: {name}" for name in sorted(unknown)]})
        width, height = int(parameters.get("width", 1024)), int(parameters.get("height", 1024))
        data = self.image_override or picture(width, height, f"{model}:{body['inputs']}:{parameters.get('seed')}")
        return Reply(200, data, {"content-type": "image/png"})

    def _store(self, job: _Job) -> str:
        name = f"outputs/{uuid.uuid4().hex}.png"
        data = self.image_override or picture(job.width, job.height, f"{job.model}:{job.prompt}")
        self.storage.put(name, data, kind="public", content_type="image/png")
        return self.storage.mint_url("public", name)

    def _wavespeed(self, request: Recorded, provider: str, rest: str) -> Reply:
        parts = rest.split("/")
        if request.method == "GET" and parts[:3] == ["api", "v3", "predictions"] and parts[4:] == ["result"]:
            job = self.jobs.get(parts[3])
            if job is None:
                return Reply.json(404, {"code": 404, "message": "prediction not found", "data": None})
            job.polls_left -= 1
            status = "processing" if job.polls_left > 0 else ("failed" if self.wavespeed_error else "completed")
            if status == "completed" and job.url is None:
                job.url = self._store(job)
            return Reply.json(200, _wavespeed_body(parts[3], job, status, self.wavespeed_error))
        provider_id = rest.removeprefix("api/v3/")
        if request.method != "POST" or not self._mapped(provider, provider_id):
            return self._not_served(provider, provider_id)
        body = _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return Reply.json(400, {"code": 400, "message": "prompt is required", "data": None})
        width, height = int(body.get("width", 0)), int(body.get("height", 0))
        if not (width and height):
            width, height = _size(body.get("size"), "*")
        job_id = uuid.uuid4().hex
        self.jobs[job_id] = _Job(provider_id, width, height, body["prompt"], self.wavespeed_polls)
        return Reply.json(200, _wavespeed_body(job_id, self.jobs[job_id], "created", None))

    def _zai(self, request: Recorded, provider: str, rest: str) -> Reply:
        if request.method == "GET" and rest.startswith("api/paas/v4/async-result/"):
            job_id = rest.rsplit("/", 1)[-1]
            job = self.jobs.get(job_id)
            if job is None:
                return Reply.json(404, {"error": {"code": "1210", "message": "task not found"}})
            job.polls_left -= 1
            if job.polls_left > 0:
                return Reply.json(200, {"id": job_id, "model": job.model, "task_status": "PROCESSING"})
            job.url = job.url or self._store(job)
            return Reply.json(
                200, {"id": job_id, "model": job.model, "task_status": "SUCCESS", "image_result": [{"url": job.url}]}
            )
        body = _json(request)
        if request.method != "POST" or rest != "api/paas/v4/async/images/generations" or not isinstance(body, dict):
            return Reply.json(404, {"error": {"code": "404", "message": "Not Found"}})
        if not self._mapped(provider, str(body.get("model"))):
            return self._not_served(provider, str(body.get("model")))
        width, height = _size(body.get("size"), "x")
        job_id = uuid.uuid4().hex
        self.jobs[job_id] = _Job(str(body["model"]), width, height, str(body.get("prompt")), self.zai_polls)
        return Reply.json(
            200, {"id": job_id, "request_id": job_id, "model": body["model"], "task_status": "PROCESSING"}
        )


def _wavespeed_body(job_id: str, job: _Job, status: str, error: str | None) -> dict[str, Any]:
    data = {
        "id": job_id,
        "model": job.model,
        "outputs": [job.url] if status == "completed" else [],
        "urls": {"get": f"https://api.wavespeed.ai/api/v3/predictions/{job_id}/result"},
        "has_nsfw_contents": [False] if status == "completed" else [],
        "status": status,
        "created_at": "2026-12-02T10:00:00.000Z",
        "error": error if status == "failed" else "",
        "timings": {"inference": 800 if status == "completed" else 0},
    }
    return {"code": 200, "message": "success", "data": data}


def _size(value: Any, separator: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in str(value).split(separator))
    except ValueError:
        return 1024, 1024
    return width, height


def _openai_error(status: int, message: str, param: str) -> Reply:
    return Reply.json(
        status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    )


def _json(request: Recorded) -> Any:
    try:
        return request.json()
    except ValueError:
        return None
