"""Loopback peers for the stream tests of every world (trio, anyio, asyncio).

``Peer`` is a plain blocking socket served by a thread, so what it sees is
independent of the event loop under test; the TLS material and the 20 MiB
payload are fixtures in ``tests/conftest.py``.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

Script = Callable[[socket.socket, "Peer"], None]


class Peer:
    """A loopback server for one connection; ``script(conn, peer)`` runs in a thread.

    Leaving the ``with`` block sets ``stop`` (releasing a script that waits on
    it), joins the thread, closes every socket, and re-raises what the script
    raised.
    """

    def __init__(self, script: Script, *, host: str = "127.0.0.1", unix_path: Path | None = None):
        if unix_path is not None:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(str(unix_path))
            self.listener.listen()
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.listener = socket.create_server((host, 0), family=family)
        self.port: int = self.listener.getsockname()[1] if unix_path is None else 0
        self.script = script
        self.stop = threading.Event()
        self.received = bytearray()
        self.client_address: object = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Peer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        self._thread.join(10)
        self.listener.close()
        assert not self._thread.is_alive(), "the peer's script did not end"
        if self.error is not None and exc is None:
            raise self.error

    def _serve(self) -> None:
        # Poll, so that a test whose client never connects can end; a client
        # already queued is still accepted after ``stop``.
        self.listener.settimeout(0.05)
        while True:
            try:
                conn, self.client_address = self.listener.accept()
            except TimeoutError:
                if self.stop.is_set():
                    return
                continue
            except BaseException as exc:
                self.error = exc
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.script(conn, self)
                except BaseException as exc:
                    self.error = exc
            return


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes (never more: TLS may follow them)."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "the client closed early"
        data += chunk
    return data


def read_to_eof(conn: socket.socket, peer: Peer) -> None:
    """Collect everything until the client closes."""
    while chunk := conn.recv(65536):
        peer.received += chunk


def wait_for_stop(conn: socket.socket, peer: Peer) -> None:
    """Say nothing until the test ends."""
    peer.stop.wait(10)


def tls_handshake_fails(context: ssl.SSLContext) -> Script:
    """A TLS server whose handshake the client is expected to abort."""

    def script(conn: socket.socket, peer: Peer) -> None:
        with pytest.raises((ssl.SSLError, OSError)):
            context.wrap_socket(conn, server_side=True)

    return script


def two_address_resolver(real: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    """A ``socket.getaddrinfo`` that resolves ``multi.test`` to ::1, then 127.0.0.1.

    Everything else goes to ``real``.  trio and anyio pass the name as bytes,
    asyncio as str; all of them call ``socket.getaddrinfo`` positionally.
    """

    def getaddrinfo(host: str | bytes | None, port: int, *args: int) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host  # no str == bytes (-bb)
        if name != "multi.test":
            return real(host, port, *args)
        flags = args[3] if len(args) > 3 else 0  # (family, type, proto, flags)
        if flags & socket.AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME, "not a numeric address")
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    return getaddrinfo


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
