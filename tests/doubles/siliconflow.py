"""SiliconFlow double: POST /v1/images/generations, Bearer auth, per-model parameter checks, signed result URLs."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.doubles.images import picture
from tests.doubles.server import HttpDouble, Recorded, Reply
from tests.doubles.storage import Kind, StorageDouble

# Which body fields each model accepts (PROVIDERS.md 1.2); strict mode answers 400 for any other field.
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
}

RATE_LIMITED = {
    "message": "Request was rejected due to rate limiting. If you want more, please contact contact@siliconflow.cn",
    "data": None,
}
OVERLOADED = {"code": 50505, "message": "Model service overloaded. Please try again later.", "data": None}


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
        self.url_style = url_style
        self.url_ttl = url_ttl
        self.result_shape = result_shape
        self.strict_params = strict_params
        self.models = models if models is not None else set(MODEL_FIELDS)
        # Image bytes override (e.g. a blank image) for the next successful answers.
        self.image_override: bytes | None = None
        super().__init__()

    def _handle(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path != "/v1/images/generations":
            return Reply.text(404, "404 page not found")
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply.json(401, "Invalid token")
        body: dict[str, Any] = request.json()
        model = body.get("model")
        if model not in self.models:
            return Reply.json(
                400, {"code": 20012, "message": "Model does not exist. Please check it carefully.", "data": None}
            )
        if self.strict_params:
            extra = set(body) - {"model", "prompt"} - MODEL_FIELDS.get(model, set())
            if extra:
                return Reply.json(
                    400, {"code": 20015, "message": f"unsupported parameter(s): {sorted(extra)}", "data": None}
                )
        width, height = (int(v) for v in str(body.get("image_size", "1024x1024")).split("x"))
        data = self.image_override or picture(width, height, f"{model}:{body.get('prompt')}:{body.get('seed')}")
        # Named like SiliconFlow's OSS results (PROVIDERS.md 1.3): the slashes stay percent-encoded in the link.
        name = f"outputs%2F{time.strftime('%Y%m%d')}%2F{uuid.uuid4().hex}.png"
        self.storage.put(name, data, kind=self.url_style, content_type="image/png")
        url = self.storage.mint_url(self.url_style, name, self.url_ttl)
        item = {"url": url}
        payload: dict[str, Any] = {"timings": {"inference": 1.25}, "seed": body.get("seed", 42)}
        payload[self.result_shape] = [item]
        return Reply.json(200, payload, {"x-siliconcloud-trace-id": uuid.uuid4().hex})
