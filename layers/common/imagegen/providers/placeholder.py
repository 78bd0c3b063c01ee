"""Placeholder: a deterministic offline PNG of the requested size, varied by prompt+seed, with the prompt on it."""

from __future__ import annotations

import hashlib
import io
import textwrap
from typing import TYPE_CHECKING

from imagegen.providers.base import Capabilities, ImageBytes, ModelSpec, Provider, ProviderPlan, map_params

if TYPE_CHECKING:
    from imagegen.models import ImageRequest
    from imagegen.providers.config import ProviderSettings

NAME = "placeholder"
SPEC = ModelSpec(name="placeholder", params={"seed": "seed"})
CAPABILITIES = Capabilities(models=(SPEC,), size_rule="exactly as requested", needs_key=False, offline=True)


def plan(request: ImageRequest, model: str | None, settings: ProviderSettings) -> ProviderPlan:
    params, dropped = map_params(request, SPEC)
    return ProviderPlan(
        provider=NAME,
        model=SPEC.name,
        prompt=request.prompt,
        width=request.width,
        height=request.height,
        params=params,
        dropped_params=dropped,
    )


def render(plan: ProviderPlan) -> ImageBytes:
    # Pillow is imported here so that importing the registry does not pay for it on cold start.
    from PIL import Image, ImageDraw, ImageFont

    digest = hashlib.sha256(f"{plan.prompt}\x00{plan.params.get('seed', '')}".encode()).digest()
    width, height = plan.width, plan.height
    top = (digest[0], digest[1], digest[2])
    bottom = (digest[3], digest[4], digest[5])
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / max(1, height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    # A few shapes whose place, size and colour come from the digest, so different prompts look different.
    for i in range(6):
        b = digest[6 + i * 4 : 10 + i * 4]
        cx, cy = b[0] * width // 255, b[1] * height // 255
        r = max(4, b[2] * min(width, height) // 1024)
        colour = (b[3], 255 - b[0], b[1] ^ b[2])
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour, outline=(255, 255, 255))
    font_size = max(10, min(width, height) // 20)
    font = ImageFont.load_default(size=font_size)
    chars_per_line = max(8, int(width / (font_size * 0.6)) - 2)
    lines = textwrap.wrap(plan.prompt, chars_per_line)[: max(1, height // (font_size * 2))]
    y = font_size
    for line in ["placeholder", *lines]:
        draw.text((font_size // 2 + 1, y + 1), line, fill=(0, 0, 0), font=font)
        draw.text((font_size // 2, y), line, fill=(255, 255, 255), font=font)
        y += int(font_size * 1.3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return ImageBytes(buffer.getvalue(), "image/png")


PROVIDER = Provider(name=NAME, capabilities=CAPABILITIES, plan=plan, render=render)
