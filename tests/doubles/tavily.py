"""A Tavily test double on 127.0.0.1: POST /search with the real response shape, and its refusals and hangs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.doubles.server import HttpDouble, Recorded, Reply

# Bodies as Tavily sends them (PROVIDERS.md 5.3): the SDK reads detail.error.
ERROR_BODIES: dict[int, dict[str, Any]] = {
    401: {"detail": {"error": "Your API key is wrong or missing."}},
    429: {"detail": {"error": "Too Many Requests"}},
    432: {"detail": {"error": "This request exceeds your plan's set usage limit. Please upgrade your plan."}},
    433: {"detail": {"error": "This request exceeds the pay-as-you-go limit."}},
    500: {"detail": {"error": "Internal Server Error"}},
}


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class TavilyDouble(HttpDouble):
    def __init__(self) -> None:
        # "ok", an HTTP status (401, 429, 432, 433, 500) or "hang" (answers only after `hang_seconds`, or never
        # once the double is closed).
        self.mode: str | int = "ok"
        self.hang_seconds = 5.0
        self.answer: str | None = (
            "The Eiffel Tower is a 330-metre wrought-iron lattice tower on the Champ de Mars in Paris."
        )
        super().__init__()

    @property
    def seen(self) -> list[SeenRequest]:
        return [SeenRequest(r.path, r.headers, r.json() if r.body else {}) for r in self.server.requests]

    def response(self, query: str) -> dict[str, Any]:
        return {
            "query": query,
            "answer": self.answer,
            "images": [],
            "results": [
                {
                    "title": "Eiffel Tower - Wikipedia",
                    "url": "https://en.wikipedia.org/wiki/Eiffel_Tower",
                    "content": "The Eiffel Tower is a wrought-iron lattice tower in Paris, France, completed in 1889.",
                    "score": 0.93,
                    "raw_content": None,
                },
                {
                    "title": "Eiffel Tower | History",
                    "url": "https://www.toureiffel.paris/en/the-monument/history",
                    "content": "Built for the 1889 World's Fair, it was the tallest structure in the world until 1930.",
                    "score": 0.88,
                    "raw_content": None,
                },
            ],
            "response_time": 0.42,
            "request_id": "123e4567-e89b-12d3-a456-426614174111",
        }

    def _handle(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path != "/search":
            return Reply.json(404, {"detail": {"error": "Not Found"}})
        if isinstance(self.mode, int):
            return Reply.json(self.mode, ERROR_BODIES.get(self.mode, {"detail": {"error": "error"}}))
        query = str((request.json() if request.body else {}).get("query", ""))
        return Reply.json(200, self.response(query), delay=self.hang_seconds if self.mode == "hang" else 0.0)
