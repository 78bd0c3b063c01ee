"""The HTTP front of the local gateway: a threading HTTP/1.1 server that hands each request to Gateway."""

from __future__ import annotations

import http
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from imagegen.local.gateway import MAX_PAYLOAD_BYTES, Gateway, HttpRequest, HttpResponse
from imagegen.local.logs import LOGGER_NAME

log = logging.getLogger(LOGGER_NAME)


class _BodyTooLarge(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of API Gateway expect
    server: GatewayHttpServer
    # What the HTTP front answers itself (a request line over 64 KB is a 414, a malformed one a 400) in the API's
    # error shape instead of the base class's HTML page. Its messages are fixed phrases without quotes.
    error_content_type = "application/json"
    error_message_format = '{"error": {"code": "http_%(code)d", "message": "%(message)s: %(explain)s"}}'

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def _serve(self) -> None:
        started = time.monotonic()
        too_large = False
        try:
            body = self._read_body()
        except _BodyTooLarge:
            # The rest of the body is not read, so this connection cannot carry another request.
            body, too_large = b"", True
            self.close_connection = True
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            too_large=too_large,
        )
        response = self.server.gateway.handle(request)
        self._write(response)
        # The path only: query strings can carry signed URLs, which are secrets.
        log.info(
            "%s %s %d %.0fms",
            self.command,
            self.path.split("?", 1)[0],
            response.status,
            (time.monotonic() - started) * 1000,
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, QUERY, ...) goes to the gateway too, where an ANY route takes it and the function
        # answers 405; the base class would answer 501 with an HTML page of its own.
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return self._serve
        raise AttributeError(name)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_PAYLOAD_BYTES:
                    raise _BodyTooLarge
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            raise _BodyTooLarge
        return self.rfile.read(length) if length else b""

    def _write(self, response: HttpResponse) -> None:
        try:
            reason = http.HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        self.send_response_only(response.status, reason)
        self.send_header("Date", self.date_time_string())
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # the base class's signature
        # BaseHTTPRequestHandler would print request lines with their query strings to stderr.
        log.debug("http: " + format, *args)


class GatewayHttpServer(ThreadingHTTPServer):
    """Serves the gateway; stop() closes open keep-alive connections so that every thread can be joined."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def start(self) -> None:
        # A short poll interval makes shutdown() return quickly (the default waits up to 0.5 s).
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="imagegen-local-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        if self._thread is not None:
            self._thread.join()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("connection already closed")
        self.server_close()  # joins the request threads (block_on_close)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-response is routine; anything else is a bug worth the traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address, type(exc).__name__)
            return
        log.exception("error serving %s", client_address)
