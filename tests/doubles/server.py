"""A scriptable loopback HTTP server: records every request, answers from a script queue or a default handler."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering (a hang when larger than the client's timeout).
    delay: float = 0.0

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None, delay: float = 0.0) -> Reply:
        return cls(status, json.dumps(payload).encode(), {"content-type": "application/json", **(headers or {})}, delay)

    @classmethod
    def text(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, text.encode(), {"content-type": "text/plain; charset=utf-8", **(headers or {})})


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    # The query string as sent: `query` keeps one value per name, this keeps repeats (`expand=a&expand=b`).
    raw_query: str = ""

    def json(self) -> Any:
        return json.loads(self.body)

    def query_all(self, name: str) -> list[str]:
        return [value for key, value in parse_qsl(self.raw_query, keep_blank_values=True) if key == name]


@dataclass
class _Scripted:
    reply: Reply
    method: str | None
    path_contains: str | None
    path_prefix: str | None = None


class DoubleServer:
    """Serves `handler(request) -> Reply` on 127.0.0.1 on an ephemeral port; scripted replies take precedence."""

    def __init__(self, handler: Callable[[Recorded], Reply]) -> None:
        self.handler = handler
        self.requests: list[Recorded] = []
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # hold()/release(): answers wait at the gate while it is shut; `_held` counts those waiting.
        self._gate_open = threading.Event()
        self._gate_open.set()
        self._held = 0
        self._held_changed = threading.Condition(self._lock)
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output quiet; requests are recorded instead

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    path=unquote(parts.path),
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    raw_query=parts.query,
                )
                reply = server._answer(recorded)
                if not server._pass_gate():
                    return
                if reply.delay and server._stopping.wait(reply.delay):
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up (its timeout fired); that is what a hang test wants.
                    return

            do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _serve

        class _Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        # A short poll interval keeps shutdown() (once per test per double) from costing half a second.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answer(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            for scripted in self._script:
                if (
                    (scripted.method is None or scripted.method == request.method)
                    and (scripted.path_contains is None or scripted.path_contains in request.path)
                    and (scripted.path_prefix is None or request.path.startswith(scripted.path_prefix))
                ):
                    self._script.remove(scripted)
                    return scripted.reply
        return self.handler(request)

    def enqueue(
        self,
        *replies: Reply,
        method: str | None = None,
        path_contains: str | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """The next matching requests get these replies, in order, before the default behaviour resumes."""
        with self._lock:
            self._script.extend(_Scripted(reply, method, path_contains, path_prefix) for reply in replies)

    def hold(self) -> None:
        """Requests from now on are recorded and answered only after release(): a test sees how many are in flight
        at once (wait_held), e.g. to prove that jobs run in parallel or to cancel one while its provider works."""
        self._gate_open.clear()

    def release(self) -> None:
        self._gate_open.set()

    def wait_held(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until `count` requests wait at the gate together; False on timeout."""
        with self._held_changed:
            return self._held_changed.wait_for(lambda: self._held >= count, timeout=timeout)

    def _pass_gate(self) -> bool:
        """Wait while the gate is shut; False when the server closes meanwhile (then nothing is answered)."""
        if self._gate_open.is_set():
            return True
        with self._held_changed:
            self._held += 1
            self._held_changed.notify_all()
        try:
            while not self._gate_open.wait(0.02):
                if self._stopping.is_set():
                    return False
            return True
        finally:
            with self._held_changed:
                self._held -= 1

    def calls(self, method: str | None = None, path_contains: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if (method is None or r.method == method) and path_contains in r.path]

    def close(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class HttpDouble:
    """A service double served by a DoubleServer: subclasses set their state, call this __init__ last (the server
    answers from then on) and implement `_handle`. Usable as a context manager."""

    # What the client's base URL adds to the server's origin (e.g. "/v1"), as the real service's base URL does.
    base_path = ""

    def __init__(self) -> None:
        self.server = DoubleServer(self._handle)

    @property
    def url(self) -> str:
        """The origin, http://127.0.0.1:<port>."""
        return self.server.url

    @property
    def base_url(self) -> str:
        """What a client of the real service is configured with."""
        return f"{self.server.url}{self.base_path}"

    def _handle(self, request: Recorded) -> Reply:
        raise NotImplementedError

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
