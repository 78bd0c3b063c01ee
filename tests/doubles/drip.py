"""A server on 127.0.0.1 that answers one header byte at a time, slowly: each byte well inside a read timeout,
the whole header never done inside a fetch's total deadline (the slowloris answer)."""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\nx-padding: " + b"a" * 200 + b"\r\ncontent-length: 4\r\n\r\n\x89PNG"
)


class DrippingServer:
    def __init__(self, *, byte_every: float = 0.2, max_seconds: float = 20.0) -> None:
        self._byte_every = byte_every
        # Bounded: the double stops by itself even if no client ever gives up.
        self._max_bytes = int(max_seconds / byte_every)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self.sent = 0
        # Set once the whole answer went out, or the client hung up, or the double gave up: which one is told apart
        # by `finished` (all sent) and `client_closed`.
        self.done = threading.Event()
        self.finished = False
        self.client_closed = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(1)
            try:
                connection.recv(65536)  # the request; its content does not matter
                for index in range(min(len(HEAD), self._max_bytes)):
                    if self._stop.wait(self._byte_every):
                        break
                    connection.sendall(HEAD[index : index + 1])
                    self.sent += 1
                else:
                    self.finished = self.sent == len(HEAD)
            except OSError:
                self.client_closed = True
            finally:
                self.done.set()
