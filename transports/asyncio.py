"""The asyncio world: an :class:`AsyncByteStream` on asyncio's transports, standard library only.

Three choices, each for a measured or documented reason:

* **A buffered protocol.**  asyncio's default protocol reads with a fresh
  256 KiB ``recv`` per event (39-51 µs a call, DESIGN.md); an
  :class:`asyncio.BufferedProtocol` has the kernel copy into one buffer made
  once per event loop (``recv_into``: 5.5 µs).  What is not yet asked for is kept, up to
  :data:`HIGH_WATER` bytes; past that the transport stops reading, so a server
  that floods cannot make memory grow.
* **Write back-pressure honoured.**  :meth:`AsyncioStream.send` returns only
  when the transport's buffer is below its high-water mark again
  (``pause_writing``/``resume_writing``), so a 50 MiB message never sits in
  the transport's buffer.
* **Deadlines with** ``loop.call_at``, the same on 3.10 and later
  (``asyncio.timeout`` is 3.11+), and TLS with ``loop.start_tls``
  (``StreamWriter.start_tls`` is 3.11+).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from smtp_core import Timeouts

from ._pump import AsyncDriver, default_ssl_context, open_driver, tcp_connector
from ._stream import AsyncByteStream
from .proxy import Proxy

T = TypeVar("T")

__all__ = [
    "HIGH_WATER",
    "READ_SIZE",
    "AsyncioStream",
    "UnreadBytesBeforeTLS",
    "connect",
    "connect_unix",
    "open_stream",
    "open_unix_stream",
]

#: The reused receive buffer's size: a whole EHLO reply or hundreds of
#: pipelined replies per event (as ``transports.sync.READ_SIZE``).
READ_SIZE = 8192
#: Unread bytes kept before the transport is told to stop reading.
HIGH_WATER = 64 * 1024


class UnreadBytesBeforeTLS(ConnectionError):
    """Bytes arrived in the clear after the last read and before TLS started.

    They could be taken for bytes from inside TLS (response injection, RFC
    3207 §5), so the handshake is refused and the stream closed.
    """


class _Protocol(asyncio.BufferedProtocol):
    """Keeps what arrives for :meth:`AsyncioStream.receive`, and the writing flow."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buffer = _receive_buffer(loop)
        self.transport: asyncio.Transport | None = None
        self.unread = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.reader: asyncio.Future[None] | None = None  # a receive waiting for bytes
        self.writer: asyncio.Future[None] | None = None  # a send waiting for resume_writing
        self.writing_paused = False

    # -- the transport's calls -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.unread += self._buffer[:nbytes]
        if len(self.unread) >= HIGH_WATER and not self.reading_paused and self.transport:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._wake_reader()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writer()

    # -- for the stream ---------------------------------------------------------------

    def _wake_reader(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.set_result(None)

    def _wake_writer(self) -> None:
        if self.writer is not None and not self.writer.done():
            self.writer.set_result(None)

    def take(self) -> bytes:
        data = bytes(self.unread)
        self.unread.clear()
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    async def wait(self, attribute: str, timeout: float | None) -> None:
        """Wait until woken (``reader`` or ``writer``), at most ``timeout`` seconds."""
        waiter = self._loop.create_future()
        setattr(self, attribute, waiter)
        timer = None
        if timeout is not None:
            timer = self._loop.call_at(self._loop.time() + timeout, _expire, waiter)
        try:
            await waiter
        finally:
            setattr(self, attribute, None)
            if timer is not None:
                timer.cancel()


#: One receive buffer per event loop, shared by its connections: the
#: transport fills it and ``buffer_updated`` copies out at once, in the same
#: callback, so no two connections ever use it together.  (One per connection
#: cost 8 KiB of each idle connection's 14.7 KiB: bench/aio.py.)
_BUFFERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = (
    weakref.WeakKeyDictionary()
)


def _receive_buffer(loop: asyncio.AbstractEventLoop) -> memoryview:
    buffer = _BUFFERS.get(loop)
    if buffer is None:
        buffer = _BUFFERS[loop] = memoryview(bytearray(READ_SIZE))
    return buffer


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class AsyncioStream:
    """An :class:`AsyncByteStream` over an asyncio transport and its buffered protocol.

    Made by :func:`open_stream` and :func:`open_unix_stream`; wrap a socket
    of your own with ``open_stream(sock=...)``.
    """

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS session once TLS is active, else ``None``."""
        found: ssl.SSLObject | None = self._transport.get_extra_info("ssl_object")
        return found

    @property
    def transport(self) -> asyncio.Transport:
        """The asyncio transport underneath (for its ``get_extra_info``)."""
        return self._transport

    async def receive(self, timeout: float | None) -> bytes:
        """The bytes available (at least one), or ``b""`` once the peer closed."""
        protocol = self._protocol
        if not protocol.unread and not protocol.eof:
            await protocol.wait("reader", timeout)
        if protocol.unread:
            return protocol.take()
        if protocol.error is not None:
            raise _as_os_error(protocol.error)
        return b""

    async def send(self, data: bytes, timeout: float | None) -> None:
        """Write all of ``data``; return when the transport's buffer is low again."""
        protocol = self._protocol
        if protocol.error is not None or self._transport.is_closing():
            raise (
                _as_os_error(protocol.error)
                if protocol.error
                else ConnectionResetError("the connection is closed")
            )
        self._transport.write(data)
        if protocol.writing_paused:
            await protocol.wait("writer", timeout)
            if protocol.error is not None:
                raise _as_os_error(protocol.error)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> AsyncByteStream:
        """Upgrade in place with ``loop.start_tls``; returns ``self``."""
        if self._protocol.unread:
            self._transport.abort()
            raise UnreadBytesBeforeTLS(
                f"{len(self._protocol.unread)} bytes arrived in the clear before TLS started"
            )
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            transport = await loop.start_tls(
                self._transport,
                self._protocol,
                context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except ConnectionAbortedError as exc:
            # asyncio reports its own ssl_handshake_timeout as ConnectionAbortedError
            # ("SSL handshake is taking longer than N seconds"), so the pump saw a
            # lost connection where every other world reports the TLS stage's timeout
            # (StageTimeout; aio: SMTPTimeoutError).  Its timer is the only source
            # of this error that takes the whole limit.
            if timeout is not None and loop.time() - started >= timeout * 0.99:
                raise TimeoutError(f"the TLS handshake took longer than {timeout:g} s") from exc
            raise
        if transport is None:  # the connection closed during the handshake
            raise ConnectionResetError("the connection closed during the TLS handshake")
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._protocol.transport = transport
        return self

    async def aclose(self) -> None:
        """Close at once: no waiting for the peer (or for TLS's close_notify)."""
        self._transport.abort()


def _as_os_error(exc: BaseException) -> OSError:
    if isinstance(exc, OSError):
        return exc
    error = ConnectionResetError(f"connection lost: {exc}")
    error.__cause__ = exc
    return error


async def _within(opening: Awaitable[T], seconds: float | None) -> T:
    """``asyncio.wait_for``, raising the builtin ``TimeoutError`` on every Python.

    On 3.10 ``asyncio.TimeoutError`` is a class of its own (3.11 made it the
    builtin): it escaped ``open_driver``'s ``except TimeoutError`` and came out
    of ``connect`` -- and of the aiosmtplib face, which documents only its own
    exceptions -- as a bare ``asyncio.TimeoutError`` when connecting or an
    implicit-TLS handshake ran out of time (found by tests/test_hostile.py).
    """
    try:
        return await asyncio.wait_for(opening, seconds)
    except asyncio.TimeoutError as exc:
        if isinstance(exc, TimeoutError):  # 3.11+: already the builtin
            raise
        raise TimeoutError(f"not connected within {seconds:g} s") from exc


async def open_stream(
    host: str | None = None,
    port: int | None = None,
    *,
    sock: socket.socket | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    source_address: tuple[str, int] | None = None,
    connect_timeout: float | None = None,
    happy_eyeballs_delay: float | None = 0.25,
) -> AsyncioStream:
    """Connect (or adopt ``sock``) and return the stream; TLS at once if ``ssl_context``.

    ``host`` may resolve to several IPv4 and IPv6 addresses: they are tried
    in turn, overlapping by ``happy_eyeballs_delay`` (RFC 8305).  With
    ``ssl_context`` (implicit TLS, port 465), the certificate must name
    ``server_hostname``, or ``host`` when that is not given.

    Raises:
        TimeoutError: not connected (and the handshake done) within ``connect_timeout``.
        OSError: refused, unreachable, no such host; ``ssl.SSLError`` for TLS.
    """
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {}
    if ssl_context is not None:
        kwargs["ssl"] = ssl_context
        kwargs["server_hostname"] = server_hostname or host
        if connect_timeout is not None:
            kwargs["ssl_handshake_timeout"] = connect_timeout
    if sock is not None:
        kwargs["sock"] = sock
    else:
        kwargs.update(host=host, port=port, local_addr=source_address)
        kwargs["happy_eyeballs_delay"] = happy_eyeballs_delay
    made = loop.create_connection(lambda: _Protocol(loop), **kwargs)
    transport, protocol = await _within(made, connect_timeout)
    assert isinstance(transport, asyncio.Transport)
    return AsyncioStream(transport, protocol)


async def open_unix_stream(path: str, *, connect_timeout: float | None = None) -> AsyncioStream:
    """Connect to a Unix socket (LMTP's usual door) and return the stream."""
    loop = asyncio.get_running_loop()
    made = loop.create_unix_connection(lambda: _Protocol(loop), path)
    transport, protocol = await _within(made, connect_timeout)
    assert isinstance(transport, asyncio.Transport)
    return AsyncioStream(transport, protocol)


async def connect(
    host: str | None = None,
    port: int | None = None,
    *,
    sock: socket.socket | None = None,
    implicit_tls: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    source_address: tuple[str, int] | None = None,
    proxy: Proxy | str | None = None,
    timeouts: Timeouts | None = None,
    trace: Callable[[str, bytes], None] | None = None,
) -> AsyncDriver:
    """Connect (or adopt ``sock``) and return an :class:`AsyncDriver` ready to run procedures.

    As every world's ``connect`` (``transports.trio.connect``...): see
    :func:`transports._pump.tcp_connector`; ``sock`` is a connected socket
    of the caller's, which then needs ``server_hostname`` for TLS.
    """
    if sock is None:
        if host is None or port is None:
            raise ValueError("connect() needs host and port, or sock")
        return await _connect_tcp(
            host,
            port,
            implicit_tls=implicit_tls,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            source_address=source_address,
            proxy=proxy,
            timeouts=timeouts,
            trace=trace,
        )
    context = ssl_context or (default_ssl_context() if implicit_tls else None)

    def opening(seconds: float | None) -> Awaitable[AsyncioStream]:
        tls = context if implicit_tls else None
        return open_stream(
            sock=sock, ssl_context=tls, server_hostname=server_hostname, connect_timeout=seconds
        )

    return await open_driver(
        opening,
        timeouts=timeouts,
        ssl_context=context,
        server_hostname=server_hostname,
        trace=trace,
        peer=repr(sock.getpeername()),
    )


_connect_tcp = tcp_connector(open_stream)


async def connect_unix(
    path: str,
    *,
    timeouts: Timeouts | None = None,
    trace: Callable[[str, bytes], None] | None = None,
) -> AsyncDriver:
    """Connect to a Unix socket and return an :class:`AsyncDriver` (LMTP)."""

    def opening(seconds: float | None) -> Awaitable[AsyncioStream]:
        return open_unix_stream(path, connect_timeout=seconds)

    return await open_driver(opening, timeouts=timeouts, trace=trace, peer=path)
