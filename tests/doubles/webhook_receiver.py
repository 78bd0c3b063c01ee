"""A webhook receiver double on 127.0.0.1: records every request; answers from a script (fail twice, redirect, ...)."""

from __future__ import annotations

import threading

from tests.doubles.server import HttpDouble, Recorded, Reply


class Receiver(HttpDouble):
    def __init__(self) -> None:
        # Statuses to answer, in order; when used up, 204. A 3xx points at /elsewhere.
        self.script: list[int] = []
        # Concurrent deliveries each take the next scripted status, never the same one.
        self._lock = threading.Lock()
        super().__init__()

    @property
    def received(self) -> list[Recorded]:
        return self.server.requests

    def at(self, path: str) -> list[Recorded]:
        return [r for r in self.received if r.path == path]

    def _handle(self, request: Recorded) -> Reply:
        with self._lock:
            status = self.script.pop(0) if self.script else 204
        headers = {"location": f"{self.url}/elsewhere"} if status in (301, 302, 307, 308) else {}
        return Reply(status, b"", headers)
