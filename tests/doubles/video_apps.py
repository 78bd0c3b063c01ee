"""The video models of the fal and Replicate doubles: Wan 2.2 apps on fal's queue, Wan 2.2 models as predictions.

Their queues are the image ones (tests/doubles/fal.py, tests/doubles/replicate.py): only the input check and the
output differ, and they live here. Facts: docs/videos.md ("fal.ai", "Replicate").

fal (`FalVideoApps`): `fal-ai/wan/v2.2-a14b/text-to-video` and `.../image-to-video` take `prompt`, `negative_prompt`,
`seed`, `resolution` (480p, 580p, 720p), `aspect_ratio` (16:9, 9:16, 1:1; image-to-video also `auto`),
`num_frames` (17-161), `frames_per_second`, `enable_safety_checker`, and image-to-video a required `image_url`.
A bad value is fal's 422 `{"detail": [{"loc", "msg", "type"}]}`; an unknown field too under the strict reading
(`unknown_fields="reject"`, the fal double's knob). Output: `{"video": {"url", "content_type", "file_name",
"file_size"}, "prompt", "seed"}`, or `video` as the bare URL when `output_shape = "string"` (the UNCONFIRMED other
reading). Whether a Wan output carries `has_nsfw_concepts` is UNCONFIRMED: with the double's `nsfw` on, it does
(`[true]`).

Replicate (`ReplicateVideoModels`): `wan-video/wan-2.2-t2v-fast` (`prompt`, `seed`, `resolution` 480p/720p,
`aspect_ratio` 16:9/9:16, `num_frames`, `negative_prompt`?) and `wan-video/wan-2.2-i2v-fast` (`image` required, no
`aspect_ratio`: dropped silently, or 422 under `strict_inputs`). A bad value is Replicate's 422 `invalid_fields`.
Output: one URL string (`output_shape = "string"`, huggingface_hub's first reading), a one-item list (`"list"`) or
a `data:` URI (`"data_uri"`).

Both: `video_kind` "mp4" | "webm" | "html" (an HTML error page served as `video/mp4`); `video_override` replaces the
bytes; each video made is kept in `made` (its link and bytes), for byte-for-byte comparisons.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from tests.doubles import video
from tests.doubles.storage import StorageDouble

FAL_T2V = "fal-ai/wan/v2.2-a14b/text-to-video"
FAL_I2V = "fal-ai/wan/v2.2-a14b/image-to-video"
REPLICATE_T2V = "wan-video/wan-2.2-t2v-fast"
REPLICATE_I2V = "wan-video/wan-2.2-i2v-fast"

FAL_FIELDS = frozenset(
    {
        "prompt",
        "negative_prompt",
        "seed",
        "resolution",
        "aspect_ratio",
        "num_frames",
        "frames_per_second",
        "enable_safety_checker",
        "enable_prompt_expansion",
    }
)
REPLICATE_FIELDS = frozenset({"prompt", "seed", "resolution", "aspect_ratio", "num_frames", "negative_prompt"})


@dataclass(frozen=True)
class Made:
    url: str
    data: bytes
    content_type: str


class VideoMaker:
    """Stores a tiny real video (or the HTML page) on a storage double's CDN path and remembers it."""

    def __init__(self, storage: StorageDouble, kind: str) -> None:
        self.storage = storage
        self.kind = kind
        self.video_kind = "mp4"
        self.video_override: bytes | None = None
        self.made: list[Made] = []

    def make(self, seed: str, aspect: str) -> Made:
        # Small frames keep the file tiny; the aspect ratio is kept (the container says the size).
        small = {"16:9": (64, 36), "9:16": (36, 64), "1:1": (48, 48)}.get(aspect, (64, 36))
        if self.video_kind == "html":
            data, content_type, extension = video.html_error_page(), "video/mp4", "mp4"
        elif self.video_kind == "webm":
            data, content_type, extension = self.video_override or video.webm(*small, seed=seed), "video/webm", "webm"
        else:
            data, content_type, extension = self.video_override or video.mp4(*small, seed=seed), "video/mp4", "mp4"
        name = f"files/{uuid.uuid4().hex[:8]}/{uuid.uuid4().hex}.{extension}"
        if self.kind == "replicate":
            name = f"xezq/{uuid.uuid4().hex}/output.{extension}"
        self.storage.put(name, data, kind=self.kind, content_type=content_type)  # type: ignore[arg-type]
        made = Made(self.storage.mint_url(self.kind, name), data, content_type)  # type: ignore[arg-type]
        self.made.append(made)
        return made


def _issue(loc: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", loc], "msg": msg, "type": kind}


class FalVideoApps(VideoMaker):
    def __init__(self, storage: StorageDouble) -> None:
        super().__init__(storage, "fal")
        # app -> whether it needs an input image
        self.apps: dict[str, bool] = {FAL_T2V: False, FAL_I2V: True}
        self.output_shape = "object"

    def problems(self, app: str, body: Any, *, unknown_fields: str) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            return [_issue("__root__", "value is not a valid dict", "type_error.dict")]
        issues = []
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            issues.append(_issue("prompt", "field required", "missing"))
        fields = FAL_FIELDS | ({"image_url"} if self.apps[app] else set())
        if unknown_fields == "reject":
            issues += [_issue(k, "Extra inputs are not permitted", "extra_forbidden") for k in body if k not in fields]
        aspects = ("16:9", "9:16", "1:1", "auto") if self.apps[app] else ("16:9", "9:16", "1:1")
        enums = {"resolution": ("480p", "580p", "720p"), "aspect_ratio": aspects}
        for name, allowed in enums.items():
            if name in body and body[name] not in allowed:
                issues.append(_issue(name, f"value is not a valid enumeration member: {body[name]!r}", "enum"))
        frames = body.get("num_frames", 81)
        if isinstance(frames, bool) or not isinstance(frames, int) or not 17 <= frames <= 161:
            issues.append(_issue("num_frames", "ensure this value is between 17 and 161", "value_error.number"))
        image = body.get("image_url")
        if self.apps[app] and (not isinstance(image, str) or not image.startswith(("https://", "http://", "data:"))):
            issues.append(_issue("image_url", "field required", "missing"))
        return issues

    def output(self, body: dict[str, Any], *, nsfw: bool) -> dict[str, Any]:
        seed = int(body.get("seed", 42))
        aspect = str(body.get("aspect_ratio", "16:9"))
        made = self.make(f"{body['prompt']}:{seed}", aspect)
        file = {
            "url": made.url,
            "content_type": made.content_type,
            "file_name": made.url.rsplit("/", 1)[-1],
            "file_size": len(made.data),
        }
        answer: dict[str, Any] = {
            "video": made.url if self.output_shape == "string" else file,
            "prompt": body["prompt"],
            "seed": seed,
        }
        if nsfw:
            answer["has_nsfw_concepts"] = [True]
        return answer


class ReplicateVideoModels(VideoMaker):
    def __init__(self, storage: StorageDouble) -> None:
        super().__init__(storage, "replicate")
        # model -> whether it needs an input image
        self.models: dict[str, bool] = {REPLICATE_T2V: False, REPLICATE_I2V: True}
        self.output_shape = "string"

    def invalid(self, model: str, given: dict[str, Any]) -> list[dict[str, str]]:
        needs_image = self.models[model]
        invalid = []
        if not isinstance(given.get("prompt"), str):
            invalid.append({"type": "required", "field": "input.prompt", "description": "prompt is required"})
        enums = {"resolution": ("480p", "720p"), "aspect_ratio": ("16:9", "9:16")}
        for name, allowed in enums.items():
            if name in given and given[name] not in allowed:
                description = f"{name} must be one of the following: {', '.join(allowed)}"
                invalid.append({"type": "enum", "field": f"input.{name}", "description": description})
        if needs_image and not str(given.get("image", "")).startswith(("https://", "http://", "data:")):
            invalid.append({"type": "required", "field": "input.image", "description": "image is required"})
        return invalid

    def fields(self, model: str) -> frozenset[str]:
        if self.models[model]:
            return (REPLICATE_FIELDS - {"aspect_ratio"}) | {"image"}
        return REPLICATE_FIELDS

    def output(self, given: dict[str, Any]) -> Any:
        made = self.make(f"{given['prompt']}:{given.get('seed')}", str(given.get("aspect_ratio", "16:9")))
        if self.output_shape == "data_uri":
            return f"data:{made.content_type};base64,{base64.b64encode(made.data).decode()}"
        return [made.url] if self.output_shape == "list" else made.url
