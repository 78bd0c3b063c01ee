"""Placeholder provider: a deterministic offline PNG of the asked size, varied by prompt+seed, with the prompt on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from imagegen.providers.base import Capabilities, ImageBytes, ModelSpec, ProviderPlan, map_params
from imagegen.providers.settings import CsvTuple, ProviderSettings
from imagegen.providers.spec import ProviderSpec

if TYPE_CHECKING:
    from imagegen.models import ImageRequest

NAME = "placeholder"
SPEC_MODEL = ModelSpec(name="placeholder", params={"seed": "seed"})
CAPABILITIES = Capabilities(models=(SPEC_MODEL,), size_rule="exactly as requested")


class PlaceholderSettings(ProviderSettings):
    base_url: str = "http://placeholder.invalid"
    models: CsvTuple = ("placeholder",)
    timeout_s: float = Field(default=5.0, gt=0)
    min_attempt_s: float = Field(default=0.0, ge=0)


def plan(asked: ImageRequest, model: str | None, settings: PlaceholderSettings) -> ProviderPlan:
    params, dropped = map_params(asked, SPEC_MODEL)
    return ProviderPlan(
        provider=NAME,
        model=SPEC_MODEL.name,
        prompt=asked.prompt,
        width=asked.width,
        height=asked.height,
        params=params,
        dropped_params=dropped,
    )


def render(plan: ProviderPlan) -> ImageBytes:
    # One drawing routine for the whole package: the local stack's PlaceholderGenerator uses it too.
    from imagegen.media.offline import render_placeholder

    seed = plan.params.get("seed")
    return ImageBytes(render_placeholder(plan.prompt, plan.width, plan.height, seed), "image/png")


SPEC = ProviderSpec(
    name=NAME,
    env_prefix="PLACEHOLDER",
    settings=PlaceholderSettings,
    env={},
    keyless=True,
    offline=True,
    capabilities=CAPABILITIES,
    plan=plan,
    render=render,
)
