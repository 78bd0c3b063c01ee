"""A Tavily test double on 127.0.0.1: POST /search with the real response shape, and its refusals and hangs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


@dataclass
class TavilyDouble:
    url: str = ""
    # "ok", an HTTP status (401, 429, 432, 433, 500) or "hang" (answers only after `hang_seconds`).
    mode: str | int = "ok"
    hang_seconds: float = 5.0
    answer: str | None = "The Eiffel Tower is a 330-metre wrought-iron lattice tower on the Champ de Mars in Paris."
    seen: list[SeenRequest] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

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


def _handler(double: TavilyDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            double.seen.append(SeenRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if self.path != "/search":
                self._send(404, {"detail": {"error": "Not Found"}})
                return
            if double.mode == "hang":
                double.release.wait(double.hang_seconds)
            if isinstance(double.mode, int):
                self._send(double.mode, ERROR_BODIES.get(double.mode, {"detail": {"error": "error"}}))
                return
            self._send(200, double.response(str(body.get("query", ""))))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (a timeout test): nothing left to tell it

    return Handler


@contextmanager
def running_tavily() -> Iterator[TavilyDouble]:
    double = TavilyDouble()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(double))
    server.daemon_threads = True
    double.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        double.release.set()
        server.shutdown()
        server.server_close()
