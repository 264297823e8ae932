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

from smtp_core import (
    NEED_DATA,
    Connection,
    Event,
    IORequest,
    Procedure,
    Read,
    Stage,
    StageTimeout,
    Timeouts,
    UpgradeTLS,
    Write,
)

from ._logging import chain, log, log_tls, transcript_trace
from ._pump import DriverClosed, default_ssl_context
from .proxy import PrefixedSocket, Proxy, handshake_socket

__all__ = [
    "READ_SIZE",
    "DriverClosed",
    "SyncDriver",
    "connect",
    "connect_driver",
    "connect_unix_driver",
    "exchange",
    "set_reply_timeout",
]

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


def connect_driver(
    host: str,
    port: int,
    *,
    implicit_tls: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    source_address: tuple[str, int] | None = None,
    proxy: Proxy | str | None = None,
    timeouts: Timeouts | None = None,
    trace: Callable[[str, bytes], None] | None = None,
) -> SyncDriver:
    """Connect and return a :class:`SyncDriver` with per-stage ``timeouts``.

    The blocking twin of ``transports.asyncio.connect``: ``host`` may resolve
    to several IPv4 and IPv6 addresses, tried in turn; ``server_hostname``
    (default: ``host``) is what the certificate must name, for implicit TLS
    and STARTTLS alike; ``ssl_context`` defaults to a verifying context with
    TLS 1.2 at least.  ``proxy`` (``socks5://``, ``socks4a://``, ``http://``
    or a :class:`~transports.proxy.Proxy`) is asked for a tunnel to ``host``;
    the server's first bytes that came with its reply are kept.

    Raises:
        StageTimeout: stage ``CONNECT`` (or ``TLS`` for implicit TLS) ran out.
        OSError: refused, unreachable, no such host; ``ProxyError`` (a
            ``ConnectionError``); ``ssl.SSLError`` for TLS.
    """
    timeouts = timeouts or Timeouts()
    deadline = None if timeouts.total is None else time.monotonic() + timeouts.total
    name = server_hostname or host
    seconds = _within(timeouts.connect, deadline)
    tunnel = Proxy.from_url(proxy) if isinstance(proxy, str) else proxy
    address = (host, port) if tunnel is None else (tunnel.host, tunnel.port)
    try:
        sock: Any = socket.create_connection(address, seconds, source_address)
        if tunnel is not None:
            leftover = handshake_socket(sock, tunnel, host, port, _within(seconds, deadline))
            # The server speaks first: its greeting may have come with the proxy's reply.
            sock = PrefixedSocket(sock, leftover)
    except TimeoutError as exc:
        raise StageTimeout(Stage.CONNECT, seconds or 0.0) from exc
    if implicit_tls:
        try:
            sock.settimeout(_within(timeouts.tls, deadline))
            # A default context only here: loading the CA store costs ~23 ms a
            # connection (bench/aio.py), and STARTTLS makes its own when needed.
            context = ssl_context or default_ssl_context()
            sock = context.wrap_socket(sock, server_hostname=name)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise StageTimeout(Stage.TLS, timeouts.tls or 0.0) from exc
            raise
    log.info("connected to %s:%s", host, port)
    if implicit_tls:
        log_tls(sock, name)
    return SyncDriver(
        sock,
        ssl_context=ssl_context,
        server_hostname=name,
        timeouts=timeouts,
        deadline=deadline,
        trace=chain(trace, transcript_trace(f"{host}:{port}")),
    )


def connect_unix_driver(
    path: str,
    *,
    timeouts: Timeouts | None = None,
    trace: Callable[[str, bytes], None] | None = None,
) -> SyncDriver:
    """Connect to the Unix socket at ``path`` (LMTP) and return a :class:`SyncDriver`."""
    timeouts = timeouts or Timeouts()
    deadline = None if timeouts.total is None else time.monotonic() + timeouts.total
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    seconds = _within(timeouts.connect, deadline)
    sock.settimeout(seconds)
    try:
        sock.connect(path)
    except BaseException as exc:
        sock.close()
        if isinstance(exc, TimeoutError):
            raise StageTimeout(Stage.CONNECT, seconds or 0.0) from exc
        raise
    log.info("connected to %s", path)
    return SyncDriver(
        sock, timeouts=timeouts, deadline=deadline, trace=chain(trace, transcript_trace(path))
    )


def _within(seconds: float | None, deadline: float | None) -> float | None:
    """``seconds``, cut to what is left before ``deadline``."""
    if deadline is None:
        return seconds
    left = max(deadline - time.monotonic(), 0.001)
    return left if seconds is None else min(seconds, left)


class SyncDriver:
    """Performs a procedure's I/O requests on a blocking socket.

    Args:
        sock: a connected socket, or any object with ``sendall``, ``recv`` and
            ``settimeout``.
        ssl_context: the context used when a procedure asks to start TLS
            (default: verifying, TLS 1.2 at least).
        server_hostname: the name the server's certificate must carry.
        trace: called with ``("send", data)`` before each write and
            ``("recv", data)`` after each read, for transcripts and debugging.
        timeouts: the limit per stage (RFC 5321 §4.5.3.2) and overall; a
            timeout raises :class:`smtp_core.StageTimeout` naming the stage.
        reply_timeout: instead of ``timeouts``, the one limit smtplib has:
            seconds for each whole reply (not each ``recv``), raised as the
            socket's own ``TimeoutError``.  With neither, the socket's own
            timeout is in charge.

    An I/O error (a timeout included) is raised into the procedure, which
    marks its connection lost; the socket is closed, and every later
    :meth:`run` fails with :class:`DriverClosed`.
    """

    def __init__(
        self,
        sock: Any,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        trace: Callable[[str, bytes], None] | None = None,
        timeouts: Timeouts | None = None,
        reply_timeout: float | None = None,
        deadline: float | None = None,
    ) -> None:
        self.sock = sock
        self.trace = trace
        self.reply_timeout = reply_timeout
        if reply_timeout is not None and timeouts is None:
            set_reply_timeout(sock, reply_timeout)
        self.timeouts = timeouts
        if deadline is None and timeouts is not None and timeouts.total is not None:
            deadline = time.monotonic() + timeouts.total
        self.deadline = deadline
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname

    def run(self, procedure: Procedure[T]) -> T:
        """Run ``procedure`` to its end and return its result.

        Raises:
            Whatever the procedure raises.  I/O errors reach it first and come
            out as it leaves them: ``OSError`` (``StageTimeout`` with
            ``timeouts``, the socket's ``TimeoutError`` otherwise),
            ``ssl.SSLError``, ``OutcomeUnknown`` after the end of a message,
            ``DriverClosed``.
        """
        trace = self.trace
        timed = self.timeouts is not None
        deadline = 0.0
        try:
            request = next(procedure)
            while True:
                try:
                    sock = self.sock
                    if sock is None:
                        raise DriverClosed("the connection is closed")
                    if isinstance(request, Write):
                        if timed:
                            self._set_limit(sock, request.stage, None)
                        if trace is not None:
                            trace("send", request.data)
                        sock.sendall(request.data)
                        answer: bytes | None = None
                    elif isinstance(request, Read):
                        if timed:
                            if request.starts_reply:
                                limit = self._seconds(request.stage)
                                deadline = -1.0 if limit is None else time.monotonic() + limit
                            self._set_limit(sock, request.stage, deadline)
                            answer = sock.recv(READ_SIZE)
                        elif request.starts_reply:
                            if self.reply_timeout is not None:
                                # The socket's timeout is the whole budget between reads.
                                deadline = time.monotonic() + self.reply_timeout
                            answer = sock.recv(READ_SIZE)
                        else:
                            answer = _read_more(sock, deadline, self.reply_timeout)
                        if trace is not None:
                            trace("recv", answer)
                    else:
                        assert isinstance(request, UpgradeTLS)
                        if timed:
                            self._set_limit(sock, Stage.TLS, None)
                        self.sock = self._wrap(sock)
                        log_tls(self.sock, self.server_hostname)
                        answer = None
                except Exception as exc:
                    if timed and isinstance(exc, TimeoutError):
                        exc = self._timeout(exc, request)
                    if not isinstance(exc, DriverClosed):
                        log.info("connection lost: %s", exc)
                    self.close()
                    request = procedure.throw(exc)
                    continue
                request = procedure.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result

    def _seconds(self, stage: Stage) -> float | None:
        assert self.timeouts is not None
        return self.timeouts.seconds(stage)

    def _set_limit(self, sock: Any, stage: Stage, until: float | None) -> None:
        """Give ``sock`` the time left for a request of ``stage``.

        ``until``: the reply's deadline for a read (``-1.0``: none); ``None``
        for a request with a limit of its own.

        Raises:
            StageTimeout: none is left.
        """
        now = time.monotonic()
        seconds = self._seconds(stage) if until is None else None if until < 0 else until - now
        overall = False
        if self.deadline is not None and (seconds is None or self.deadline - now < seconds):
            seconds, overall = self.deadline - now, True
        if seconds is not None and seconds <= 0:
            assert self.timeouts is not None
            limit = self.timeouts.total if overall else self._seconds(stage)
            raise StageTimeout(stage, limit or 0.0, overall=overall)
        if sock.gettimeout() != seconds:
            sock.settimeout(seconds)

    def _timeout(self, exc: TimeoutError, request: IORequest) -> StageTimeout:
        if isinstance(exc, StageTimeout):
            return exc
        assert self.timeouts is not None
        stage = Stage.TLS if isinstance(request, UpgradeTLS) else request.stage
        now = time.monotonic()
        overall = self.deadline is not None and self.deadline - now <= 0.001
        limit = self.timeouts.total if overall else self._seconds(stage)
        timeout = StageTimeout(stage, limit or 0.0, overall=overall)
        timeout.__cause__ = exc
        return timeout

    def exchange(self, conn: Connection, data: bytes = b"") -> Event:
        """Write ``data`` (if any) and return ``conn``'s next event: :func:`exchange`."""
        return exchange(self.sock, conn, data, self.reply_timeout, self.trace)

    def _wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        context = self.ssl_context or default_ssl_context()
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
