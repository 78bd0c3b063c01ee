"""A one-link generator for worker tests: draws the placeholder, with no provider chain around it."""

from __future__ import annotations

import time
from typing import Any

from imagegen.generation import ChainOutcome, ChainSucceeded, GeneratedImage, RunContext
from imagegen.media.offline import render_placeholder
from imagegen.models import Attempt, ImageRequest


class PlaceholderGenerator:
    """A one-link chain that always draws the placeholder; the local stack's default."""

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        started = time.monotonic()
        data = render_placeholder(request.prompt, request.width, request.height, request.seed)
        attempt = Attempt(
            provider="placeholder",
            model="placeholder",
            outcome="succeeded",
            latency_ms=int((time.monotonic() - started) * 1000),
        )
        image = GeneratedImage(
            data=data,
            content_type="image/png",
            width=request.width,
            height=request.height,
            provider="placeholder",
            model="placeholder",
        )
        return ChainSucceeded(image=image, attempts=[attempt], warnings=["served by the offline placeholder provider"])

    def resume(self, request: ImageRequest, state: dict[str, Any], ctx: RunContext) -> ChainOutcome:
        return self.start(request, ctx)

    def cancel(self, state: dict[str, Any]) -> None:
        return None
