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

from smtp_core import NEED_DATA, Connection, Event, Procedure, Read, UpgradeTLS, Write

__all__ = ["READ_SIZE", "SyncDriver", "connect", "exchange", "set_reply_timeout"]

T = TypeVar("T")

#: Bytes asked of the socket per read: a whole EHLO reply or about 580
#: pipelined RCPT replies in one system call.  Not more: ``recv(n)`` allocates
#: n bytes before it shrinks them to what arrived, and with 65536 the
#: connect + EHLO + QUIT cycle cost 3-5 % more CPU than with 8192 (smtplib's
#: buffer size) in alternating runs of ``bench/wire.py --case connect``.
READ_SIZE = 8192


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
            set_reply_timeout(sock, reply_timeout)
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
                    if request.starts_reply:
                        if self.reply_timeout is not None:
                            # The socket's timeout is the whole budget between reads.
                            deadline = time.monotonic() + self.reply_timeout
                        data = sock.recv(READ_SIZE)
                    else:
                        data = _read_more(sock, deadline, self.reply_timeout)
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

    def exchange(self, conn: Connection, data: bytes = b"") -> Event:
        """Write ``data`` (if any) and return ``conn``'s next event: :func:`exchange`."""
        return exchange(self.sock, conn, data, self.reply_timeout, self.trace)

    def _wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        context = self.ssl_context or ssl.create_default_context()
        return context.wrap_socket(sock, server_hostname=self.server_hostname)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


def set_reply_timeout(sock: Any, timeout: float) -> None:
    """Give ``sock`` the timeout that :func:`exchange` and :class:`SyncDriver` expect.

    The call (a system call) is skipped when the socket has it already, as one
    made by ``socket.create_connection(..., timeout)`` does.
    """
    gettimeout = getattr(sock, "gettimeout", None)
    if gettimeout is None or gettimeout() != timeout:
        sock.settimeout(timeout)


def exchange(
    sock: Any,
    conn: Connection,
    data: bytes = b"",
    reply_timeout: float | None = None,
    trace: Callable[[str, bytes], None] | None = None,
) -> Event:
    """Write ``data`` (if any), then read until ``conn`` has an event, and return it.

    What the ``command`` and ``read_event`` procedures do, without their
    generators or a driver object: the one-command-one-reply path, taken for
    every command of a plain smtplib-facade session.  The I/O is
    :meth:`SyncDriver.run`'s: ``trace`` sees each write and each read, and
    ``reply_timeout`` (which must be the socket's timeout: see
    :func:`set_reply_timeout`) bounds the whole reply.

    Returns:
        The next event: a ``Greeting``, a ``Reply`` or ``ConnectionClosed``.

    Raises:
        What ``conn.next_event`` raises, and ``OSError`` (``TimeoutError``
        included) from the socket.
    """
    if data:
        if trace is not None:
            trace("send", data)
        sock.sendall(data)
    event = conn.next_event()
    if event is not NEED_DATA:
        return event  # already buffered (a pipelined reply)
    deadline = 0.0 if reply_timeout is None else time.monotonic() + reply_timeout
    data = sock.recv(READ_SIZE)
    while True:
        if trace is not None:
            trace("recv", data)
        conn.receive_data(data)
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
        data = _read_more(sock, deadline, reply_timeout)


def _read_more(sock: Any, deadline: float, timeout: float | None) -> bytes:
    """Read the rest of a reply whose first read started the ``deadline``.

    The socket's timeout is the whole budget: it is cut to what is left of it
    for this read, then put back.
    """
    if timeout is None:
        data: bytes = sock.recv(READ_SIZE)
        return data
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out waiting for the rest of a reply")
    sock.settimeout(left)
    try:
        data = sock.recv(READ_SIZE)
    finally:
        sock.settimeout(timeout)
    return data
