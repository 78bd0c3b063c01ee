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
    from imagegen.providers.base import ProviderError, Route
    from imagegen.providers.settings import ProvidersSettings
    from imagegen.providers.spec import ProviderSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Link:
    provider: str
    model: str | None
    # The request named a model this provider does not serve; recorded as a dropped param.
    model_dropped: bool = False
    # A routing provider's link, once expanded: the route it takes (Hugging Face's router provider).
    route: Route | None = None
    # Decided before any call (a routing provider's model with no usable route): recorded as this skip.
    skip: Skip | None = None
    # Said on this link's attempt (the routes are a fallback: the catalog could not be read).
    note: str | None = None

    @property
    def route_name(self) -> str | None:
        return self.route.name if self.route else None

    @property
    def breaker_name(self) -> str:
        """Breakers are per route: one router provider's 5xx cool that route, not the whole router."""
        return f"{self.provider}/{self.route.name}" if self.route else self.provider


@dataclass(frozen=True)
class Skip:
    """Why a link is not tried, recorded as a `skipped` attempt.

    `reason` is the attempt's error_class: no_key, key_invalid, key_out_of_credit, breaker_open, rate_limited, deadline,
    or the class of an earlier answer that disqualified the whole provider (unauthorized, payment_required, ...).
    """

    reason: str
    message: str
    # A "not yet" skip (cooling down, rate-limited): when the link may be tried again (epoch seconds).
    until: float | None = None

    def attempt(self, link: Link) -> Attempt:
        logger.info("link skipped", extra={"provider": link.provider, "model": link.model, "reason": self.reason})
        return Attempt(
            provider=link.provider,
            model=link.model,
            route=link.route_name,
            outcome="skipped",
            error_class=self.reason,
            message=self.message,
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
    # (provider, route) pairs refused for the whole run (a router provider the account cannot pay for).
    failed_routes: dict[tuple[str, str], ProviderError] = field(default_factory=dict)
    # What the caller can do about a failure, each said once (a token permission to add).
    hints: list[str] = field(default_factory=list)
    # (provider, model) pairs whose catalog was refreshed or marked gone in this run: once each is enough.
    reported: set[tuple[str, str | None]] = field(default_factory=set)
    # Links skipped as "not yet" (reason, until): if nothing else serves, the job waits for the first to reopen.
    not_yet: list[tuple[str, float]] = field(default_factory=list)
    # The first link not started yet: links from here on may still be reordered.
    cursor: int = 0
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


def demote(links: list[Link], start: int, names: frozenset[str] | set[str]) -> None:
    """Links from `start` on whose provider (or route) is in `names` go after the others, each group in its order."""
    rest = links[start:]
    links[start:] = [link for link in rest if link.breaker_name not in names] + [
        link for link in rest if link.breaker_name in names
    ]


def link_is_async(spec: ProviderSpec[Any], link: Link) -> bool:
    """Whether the link may answer "queued" (it is then never hedged): per route for a routing provider."""
    if spec.routing is not None and link.route is not None:
        return spec.routing.is_async(link.route.name)
    return spec.is_async


def earlier_skip(run: Run, link: Link) -> Skip | None:
    """A link decided before any call, or one whose provider (or route) an earlier answer ruled out."""
    if link.skip is not None:
        return link.skip
    failed = run.failed_providers.get(link.provider)
    if failed is not None:
        answered = f"{failed.status_code or ''} {failed.error_class}"
        return Skip(failed.error_class, f"skipped: {link.provider} already answered {answered}")
    route = run.failed_routes.get((link.provider, link.route_name or ""))
    if route is not None:
        answered = f"{route.status_code or ''} {route.error_class}"
        return Skip(route.error_class, f"skipped: route {link.breaker_name} already answered {answered}")
    return None


def listing_skip(link: Link, key: ResolvedKey) -> Skip | None:
    """A model the key's last listing did not name, or one the provider since said does not exist, is not tried.
    No listing (never checked, or the listing failed): every configured model is tried."""
    health = key.health
    if health is None or link.model is None:
        return None
    if link.model in health.gone:
        message = f"{link.provider} said {link.model} does not exist; skipped until the {key.source} key's next listing"
        return Skip("model_gone", message)
    if health.models is not None and link.model not in health.models:
        listed = f"{len(health.models)} model(s) {link.provider} listed for the {key.source} key"
        return Skip("model_not_listed", f"{link.model} is not among the {listed} at its last check")
    return None


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
    return Run(request=request, ctx=ctx, links=links, keys=decided, secrets=ordered, attempts=list(ctx.earlier))
