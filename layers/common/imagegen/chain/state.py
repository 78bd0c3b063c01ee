"""A run left pending at an async provider, as a typed value, and its versioned form in the job's chain_state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from imagegen.chain.links import Link, Skip
from imagegen.models import Attempt
from imagegen.providers.base import RemoteRequest, Route

# Bump when the stored shape changes; `load` refuses versions it does not know rather than guess.
# 2: links are objects and carry their route, skip and note; 1 (lists of provider, model, dropped) is still read.
STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)


class BadChainState(ValueError):
    """A stored chain_state this deployment cannot resume; the message names the kind of problem only."""


@dataclass(frozen=True)
class PendingState:
    """What a resumed run needs: the remote request, where in the chain it stands, and what happened so far.

    JSON-safe when dumped, and secret-free: the key is resolved again on resume (only its source is kept).
    """

    provider: str
    remote_id: str
    key_source: str
    user_id: str
    link_index: int
    links: tuple[Link, ...]
    # Wall-clock seconds of the first submit: bounds how long the provider may keep the request queued.
    submitted_at: float
    checks: int
    attempts: tuple[Attempt, ...]
    warnings: tuple[str, ...] = ()
    # The follow-up URLs the provider's submit answer named (fal's status/response/cancel URLs). Optional in the stored
    # form, so states written before they existed still load (version 1 either way).
    remote_urls: Mapping[str, str] = field(default_factory=dict)

    @property
    def remote(self) -> RemoteRequest:
        return RemoteRequest(self.remote_id, self.remote_urls)

    @property
    def link(self) -> Link:
        return self.links[self.link_index]

    @property
    def pending_attempt(self) -> Attempt | None:
        """The attempt that went pending (its dropped params carry over to the final attempt)."""
        return next((a for a in reversed(self.attempts) if a.outcome == "pending"), None)

    def dump(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "provider": self.provider,
            "remote_id": self.remote_id,
            "key_source": self.key_source,
            "user_id": self.user_id,
            "link_index": self.link_index,
            "links": [_dump_link(link) for link in self.links],
            "submitted_at": self.submitted_at,
            "checks": self.checks,
            "attempts": [attempt.model_dump() for attempt in self.attempts],
            "warnings": list(self.warnings),
            "remote_urls": dict(self.remote_urls),
        }

    @classmethod
    def load(cls, data: Mapping[str, Any], known_providers: Mapping[str, object]) -> PendingState:
        """The state a pending run stored; BadChainState when it is not one this deployment can resume."""
        if data.get("version") not in READABLE_VERSIONS:
            raise BadChainState(f"version {data.get('version')!r}")
        try:
            load_link = _load_link if data["version"] == STATE_VERSION else _load_link_v1
            links = tuple(load_link(item) for item in data["links"])
            state = cls(
                provider=str(data["provider"]),
                remote_id=str(data["remote_id"]),
                key_source=str(data["key_source"]),
                user_id=str(data["user_id"]),
                link_index=int(data["link_index"]),
                links=links,
                submitted_at=float(data["submitted_at"]),
                checks=int(data.get("checks", 0)),
                attempts=tuple(Attempt.model_validate(a) for a in data["attempts"]),
                warnings=tuple(str(w) for w in data.get("warnings") or ()),
                remote_urls=_urls(data.get("remote_urls") or {}),
            )
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, ValidationError) as exc:
            raise BadChainState(type(exc).__name__) from exc
        if not 0 <= state.link_index < len(links) or any(link.provider not in known_providers for link in links):
            raise BadChainState("links do not match this deployment's providers")
        return state


def _dump_link(link: Link) -> dict[str, Any]:
    return {
        "provider": link.provider,
        "model": link.model,
        "model_dropped": link.model_dropped,
        "route": [link.route.name, link.route.provider_model] if link.route else None,
        "skip": [link.skip.reason, link.skip.message] if link.skip else None,
        "note": link.note,
    }


def _load_link(item: Mapping[str, Any]) -> Link:
    route, skip, model, note = item.get("route"), item.get("skip"), item["model"], item.get("note")
    return Link(
        provider=str(item["provider"]),
        model=None if model is None else str(model),
        model_dropped=bool(item.get("model_dropped")),
        route=Route(str(route[0]), str(route[1])) if route else None,
        skip=Skip(str(skip[0]), str(skip[1])) if skip else None,
        note=None if note is None else str(note),
    )


def _load_link_v1(item: Any) -> Link:
    provider, model, dropped = item
    return Link(str(provider), None if model is None else str(model), bool(dropped))


def _urls(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TypeError("remote_urls")
    return dict(value)
