"""The blocking driver: runs ``smtp_core`` procedures over a socket.

It holds no protocol knowledge.  It performs the I/O requests a procedure
yields (write, read, start TLS) on a socket it is given, so callers may bring
their own socket (a proxy, a tunnel, a test double) or let :func:`connect`
make one.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, TypeVar

from smtp_core import Procedure, Read, UpgradeTLS, Write

__all__ = ["READ_SIZE", "SyncDriver", "connect"]

T = TypeVar("T")

#: Bytes asked of the socket per read: a whole EHLO reply or a few hundred
#: pipelined RCPT replies, in one system call.
READ_SIZE = 65536


def connect(
    host: str,
    port: int,
    *,
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """Open a TCP connection (IPv4 or IPv6, as the name resolves)."""
    return socket.create_connection((host, port), timeout, source_address)


class SyncDriver:
    """Performs a procedure's I/O requests on a blocking socket.

    Args:
        sock: a connected socket, or any object with ``sendall`` and ``recv``.
        ssl_context: the context used when a procedure asks to start TLS.
        server_hostname: the name the server's certificate must carry.
        trace: called with ``("send", data)`` before each write and
            ``("recv", data)`` after each read, for transcripts and debugging.
        reply_timeout: seconds allowed for each whole reply (not for each
            ``recv``): a server that trickles bytes cannot hold the caller past
            it.  ``None`` leaves the socket's own timeout in charge.
    """

    def __init__(
        self,
        sock: Any,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        trace: Callable[[str, bytes], None] | None = None,
        reply_timeout: float | None = None,
    ) -> None:
        self.sock = sock
        self.trace = trace
        self.reply_timeout = reply_timeout
        if reply_timeout is not None:
            sock.settimeout(reply_timeout)
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname

    def run(self, procedure: Procedure[T]) -> T:
        """Run ``procedure`` to its end and return its result.

        Raises:
            Whatever the procedure raises, and ``OSError`` (``TimeoutError``
            included) from the socket.
        """
        sock = self.sock
        trace = self.trace
        deadline = 0.0
        try:
            request = next(procedure)
            while True:
                if isinstance(request, Write):
                    if trace is not None:
                        trace("send", request.data)
                    sock.sendall(request.data)
                    request = procedure.send(None)
                elif isinstance(request, Read):
                    timeout = self.reply_timeout
                    if timeout is None:
                        data = sock.recv(READ_SIZE)
                    elif request.starts_reply:
                        # The socket's timeout is the whole budget between reads.
                        deadline = time.monotonic() + timeout
                        data = sock.recv(READ_SIZE)
                    else:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise TimeoutError("timed out waiting for the rest of a reply")
                        sock.settimeout(left)
                        try:
                            data = sock.recv(READ_SIZE)
                        finally:
                            sock.settimeout(timeout)
                    if trace is not None:
                        trace("recv", data)
                    request = procedure.send(data)
                else:
                    assert isinstance(request, UpgradeTLS)
                    sock = self.sock = self._wrap(sock)
                    request = procedure.send(None)
        except StopIteration as stop:
            result: T = stop.value
            return result

    def _wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        context = self.ssl_context or ssl.create_default_context()
        return context.wrap_socket(sock, server_hostname=self.server_hostname)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
