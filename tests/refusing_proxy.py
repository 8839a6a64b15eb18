"""A TCP proxy in front of a real S3 server that refuses some requests, as a bucket policy
would: the chosen ones get an S3 error answered by the proxy itself, everything else goes
through byte for byte (signatures included: the client signs for the proxy's address,
which is the ``Host`` the server then sees).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable

_REQUEST = re.compile(rb"^(GET|PUT|HEAD|POST|DELETE) (\S+) HTTP/1\.[01]\r\n")
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class RefusingProxy:
    """Forwards to ``upstream`` (``http://host:port``) every request but those for which
    ``refuse(method, path)`` is true: those are answered ``status`` with the S3 error
    ``code`` (with ``hang_up``, not answered at all: the connection is closed, as a
    server that died would), and listed in ``refused`` ("METHOD path")."""

    def __init__(
        self,
        upstream: str,
        refuse: Callable[[str, str], bool],
        *,
        status: int = 403,
        code: str = "AccessDenied",
        hang_up: bool = False,
    ) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.refuse = refuse
        self.status, self.code, self.hang_up = status, code, hang_up
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._closing = threading.Event()
        self.endpoint = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> RefusingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._sock.close()

    def _accept(self) -> None:
        accept_each(self._sock, self._closing, self._serve_apart)

    def _serve_apart(self, client: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.closing(client), socket.create_connection(self.upstream) as up:
            threading.Thread(target=_pump, args=(up, client), daemon=True).start()
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    request = _REQUEST.match(data)
                    if request and self.refuse(request[1].decode(), request[2].decode()):
                        self._answer(client, data, f"{request[1].decode()} {request[2].decode()}")
                        return
                    up.sendall(data)

    def _answer(self, client: socket.socket, data: bytes, what: str) -> None:
        """Read the refused request's body to its end, then answer it and hang up."""
        head, _, body = data.partition(b"\r\n\r\n")
        length = _LENGTH.search(head)
        missing = (int(length[1]) if length else 0) - len(body)
        while missing > 0 and (chunk := client.recv(min(missing, 65536))):
            missing -= len(chunk)
        with self._lock:
            self.refused.append(what)
        if self.hang_up:
            return
        error = f"<Error><Code>{self.code}</Code><Message>refused</Message></Error>".encode()
        client.sendall(
            f"HTTP/1.1 {self.status} Refused\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(error)}\r\nConnection: close\r\n\r\n".encode()
            + error
        )


def accept_each(
    sock: socket.socket, closing: threading.Event, handle: Callable[[socket.socket], None]
) -> None:
    """Give each connection ``sock`` accepts to ``handle``, until ``closing`` is set or the
    socket is closed (a proxy's accepting thread)."""
    while not closing.is_set():
        try:
            client, _ = sock.accept()
        except OSError:
            return
        handle(client)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
