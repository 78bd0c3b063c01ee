"""Web grounding: a short factual description of the prompt's subject, found by web search, appended to the prompt."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from imagegen.models import ImageRequest

logger = logging.getLogger(__name__)

MAX_ADDED_CHARS = 300
MAX_QUERY_CHARS = 200
MAX_SOURCES = 3
# The prompt limit of the API: the grounded prompt stays within what a client could have sent.
MAX_PROMPT_CHARS = 2000
_CLAUSE_BREAK = re.compile(r"[,;:.!?\n]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class SearchHit:
    title: str
    url: str
    content: str


@dataclass(frozen=True)
class SearchAnswer:
    answer: str | None
    results: list[SearchHit]


class SearchFailed(Exception):
    """The search did not answer usefully. `reason` is short and secret-free: it goes on the job as a warning."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class WebSearch(Protocol):
    def search(self, query: str) -> SearchAnswer: ...


@dataclass(frozen=True)
class GroundingResult:
    prompt: str
    info: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


def subject_query(prompt: str) -> str:
    """The subject of an image prompt, as a search query: its first clause (style words usually follow a comma)."""
    text = _SPACES.sub(" ", prompt).strip()
    clauses = [c.strip() for c in _CLAUSE_BREAK.split(text) if len(c.strip()) >= 3]
    query = clauses[0] if clauses else text
    return _cut(query, MAX_QUERY_CHARS)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,;:-")


def description(answer: SearchAnswer) -> str | None:
    """The search's own short answer, else the best result's text; whitespace collapsed, capped in length."""
    for text in [answer.answer or "", *(hit.content for hit in answer.results)]:
        cleaned = _SPACES.sub(" ", text).strip()
        if cleaned:
            return _cut(cleaned, MAX_ADDED_CHARS)
    return None


def grounded_prompt(prompt: str, added: str) -> str:
    base = prompt.rstrip()
    joiner = " " if base.endswith((".", "!", "?")) else ". "
    room = MAX_PROMPT_CHARS - len(base) - len(joiner)
    if room < 20:
        return prompt  # no room for a useful fact: the prompt stays as the client wrote it
    return base + joiner + _cut(added, room)


def apply(request: ImageRequest, info: dict[str, Any] | None) -> ImageRequest:
    """The request as the chain sees it once grounded (used again when an async provider's run resumes)."""
    added = (info or {}).get("added")
    if not isinstance(added, str) or not added:
        return request
    return request.model_copy(update={"prompt": grounded_prompt(request.prompt, added)})


def ground(request: ImageRequest, search: WebSearch | None) -> GroundingResult:
    """Ground the prompt when the request asks for it. Never raises: a failed search is a warning, not a failure."""
    if request.grounding != "web":
        return GroundingResult(prompt=request.prompt)
    query = subject_query(request.prompt)
    info: dict[str, Any] = {"mode": "web", "query": query, "added": None, "sources": []}
    if search is None:
        return _skipped(request, info, "no_key", "no Tavily API key is configured")
    try:
        answer = search.search(query)
    except SearchFailed as failed:
        return _skipped(request, info, "search_failed", failed.reason, status_code=failed.status)
    except Exception:
        # Grounding is an extra: whatever went wrong in the search client, the image is still made.
        logger.exception("web grounding failed unexpectedly")
        return _skipped(request, info, "search_failed", "the search failed unexpectedly")
    added = description(answer)
    if added is None:
        return _skipped(request, info, "no_results", "the search found nothing about the subject")
    info.update(
        added=added,
        sources=[hit.url for hit in answer.results if hit.url.startswith(("https://", "http://"))][:MAX_SOURCES],
        status="ok",
    )
    return GroundingResult(prompt=grounded_prompt(request.prompt, added), info=info)


def _skipped(
    request: ImageRequest, info: dict[str, Any], status: str, reason: str, *, status_code: int | None = None
) -> GroundingResult:
    info.update(status=status, reason=reason)
    if status_code is not None:
        info["status_code"] = status_code
    warning = f"web grounding skipped ({reason}); the image was generated from the plain prompt"
    return GroundingResult(prompt=request.prompt, info=info, warnings=[warning])
