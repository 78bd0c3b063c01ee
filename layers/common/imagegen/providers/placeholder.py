"""Placeholder provider: a deterministic offline PNG of the asked size, varied by prompt+seed, with the prompt on it."""

from __future__ import annotations

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
    # One drawing routine for the whole package: the local stack's PlaceholderGenerator uses it too.
    from imagegen.offline import render_placeholder

    seed = plan.params.get("seed")
    return ImageBytes(render_placeholder(plan.prompt, plan.width, plan.height, seed), "image/png")


PROVIDER = Provider(name=NAME, capabilities=CAPABILITIES, plan=plan, render=render)
