"""Hugging Face router double: POST /{router provider}/models/{model}, {inputs, parameters} in, image bytes out.

The older hf-inference-only double, serving every model (`served=None`); kept for the tests written against it. It
plays the Hub's mapping too (`GET /api/models/{id}?expand[]=inferenceProviderMapping`: hf-inference, live, for any
model, so the chain's routing reaches the one route this double serves; point `HF_ENDPOINT` at `double.url`).
tests/doubles/hf_router.py is the whole router (every Inference Provider route, the Hub mapping, FLUX.1 refused
on hf-inference as production now does)."""

from __future__ import annotations

from typing import Any

from tests.doubles.images import picture
from tests.doubles.server import HttpDouble, Recorded, Reply

TASK_PARAMETERS = {"guidance_scale", "negative_prompt", "num_inference_steps", "width", "height", "scheduler", "seed"}
CREDITS = {
    "error": "You have exceeded your monthly included credits for Inference Providers. "
    "Subscribe to PRO to get 20x more monthly included credits."
}
NO_PERMISSION = {
    "error": "This authentication method does not have sufficient permissions to call Inference Providers on "
    "behalf of user double-user"
}


def loading(model: str, estimated_time: float) -> Reply:
    return Reply.json(503, {"error": f"Model {model} is currently loading", "estimated_time": estimated_time})


class HuggingFaceDouble(HttpDouble):
    def __init__(
        self,
        *,
        token: str,
        gated: set[str] | None = None,
        served: set[str] | None = None,
        reject_unknown_params: bool = True,
    ) -> None:
        self.token = token
        self.gated = gated or set()
        # None: every model is served; else others answer 404 like the router does for unserved models.
        self.served = served
        # PROVIDERS.md 2.5 leaves open whether unknown keys are rejected; True is the strict reading.
        self.reject_unknown_params = reject_unknown_params
        # Image bytes override (e.g. a blank image) for the next successful answers.
        self.image_override: bytes | None = None
        super().__init__()

    def _handle(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path.startswith("/api/models/"):
            model = request.path.removeprefix("/api/models/")
            entry = {"status": "live", "providerId": model, "task": "text-to-image", "isModelAuthor": False}
            return Reply.json(200, {"_id": "double", "id": model, "inferenceProviderMapping": {"hf-inference": entry}})
        prefix = "/hf-inference/models/"
        if request.method != "POST" or not request.path.startswith(prefix):
            return Reply.json(404, {"error": "Not Found"})
        model = request.path[len(prefix) :]
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return Reply.json(401, {"error": "Invalid username or password."})
        if request.headers["authorization"] != f"Bearer {self.token}":
            return Reply.json(401, {"error": "Invalid credentials in Authorization header"})
        if model in self.gated:
            message = (
                f"Access to model {model} is restricted. You must have access to it and be authenticated to access it."
            )
            return Reply.json(401, {"error": message}, {"x-error-code": "GatedRepo"})
        if self.served is not None and model not in self.served:
            return Reply.json(404, {"error": f"Model {model} is not served by hf-inference"})
        body: dict[str, Any] = request.json()
        parameters = body.get("parameters") or {}
        unknown = set(parameters) - TASK_PARAMETERS
        if self.reject_unknown_params and unknown:
            return Reply.json(400, {"error": [f"unexpected parameter: {name}" for name in sorted(unknown)]})
        width, height = int(parameters.get("width", 1024)), int(parameters.get("height", 1024))
        data = self.image_override or picture(width, height, f"{model}:{body.get('inputs')}:{parameters.get('seed')}")
        return Reply(200, data, {"content-type": "image/png"})
