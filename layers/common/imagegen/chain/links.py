"""Links and keys: the ordered (provider, model) links of a run, the key each provider uses, or why it is skipped."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagegen.keys.types import ResolvedKey
from imagegen.models import Attempt, ImageRequest

if TYPE_CHECKING:
    from imagegen.chain.ports import KeyPort
    from imagegen.generation import RunContext
    from imagegen.providers.base import ProviderError
    from imagegen.providers.settings import ProvidersSettings
    from imagegen.providers.spec import ProviderSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Link:
    provider: str
    model: str | None
    # The request named a model this provider does not serve; recorded as a dropped param.
    model_dropped: bool = False


@dataclass(frozen=True)
class Skip:
    """Why a link is not tried, recorded as a `skipped` attempt.

    `reason` is the attempt's error_class: no_key, key_invalid, key_out_of_credit, breaker_open, deadline, or the
    class of an earlier answer that disqualified the whole provider (unauthorized, payment_required, ...).
    """

    reason: str
    message: str

    def attempt(self, link: Link) -> Attempt:
        logger.info("link skipped", extra={"provider": link.provider, "model": link.model, "reason": self.reason})
        return Attempt(
            provider=link.provider, model=link.model, outcome="skipped", error_class=self.reason, message=self.message
        )


@dataclass
class Run:
    """One run of the chain: its links, the key (or skip) per provider, and what happened so far."""

    request: ImageRequest
    ctx: RunContext
    links: list[Link]
    keys: dict[str, ResolvedKey | Skip]
    attempts: list[Attempt] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed_providers: dict[str, ProviderError] = field(default_factory=dict)
    # Every key this run may have seen, longest first: scrubbed from anything stored.
    secrets: tuple[str, ...] = ()


def links_for(
    request: ImageRequest, settings: ProvidersSettings, registry: Mapping[str, ProviderSpec[Any]]
) -> list[Link]:
    """The request's providers (else the deployment's order), each with its models in order."""
    links: list[Link] = []
    for name in request.providers or settings.chain.default_chain:
        configured = list(settings.image_provider(name).models)
        capabilities = registry[name].capabilities
        served = [m.name for m in capabilities.models if m.name != "*"] if capabilities else []
        if request.model and request.model in configured + served:
            models: list[str | None] = [request.model, *(m for m in configured if m != request.model)]
            dropped = False
        else:
            models = [*configured] if configured else [None]
            dropped = request.model is not None
        links.extend(Link(name, model, dropped) for model in models)
    return links


def key_or_skip(name: str, resolved: ResolvedKey, spec: ProviderSpec[Any]) -> ResolvedKey | Skip:
    if resolved.source is None:
        variable = spec.key.env if spec.key else "key"
        return Skip("no_key", f"no {variable} configured")
    health = resolved.health
    if health is not None and not health.usable:
        return Skip(
            f"key_{health.status}", f"the {resolved.source} key is {health.status.replace('_', ' ')} per the last check"
        )
    return resolved


def new_run(
    request: ImageRequest,
    ctx: RunContext,
    links: list[Link],
    keys: KeyPort,
    settings: ProvidersSettings,
    registry: Mapping[str, ProviderSpec[Any]],
) -> Run:
    resolved = {name: keys.resolve(ctx.user_id, name) for name in dict.fromkeys(link.provider for link in links)}
    secrets = [key.key.get_secret_value() for key in resolved.values() if key.key is not None]
    secrets += [key.get_secret_value() for key in settings.configured_keys()]
    # Longest first, so a key that contains another is scrubbed whole.
    ordered = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))
    decided = {name: key_or_skip(name, key, registry[name]) for name, key in resolved.items()}
    return Run(request=request, ctx=ctx, links=links, keys=decided, secrets=ordered)
