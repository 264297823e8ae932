"""The asynchronous pump: runs the engine's procedures over any :class:`AsyncByteStream`.

One ``async def`` loop serves asyncio, trio, anyio and custom transports: the
procedures are plain generators, so the loop only performs the requests they
yield, with the time :class:`smtp_core.Timeouts` gives each request's stage.
It holds no protocol knowledge: whatever goes wrong with the I/O is raised
into the procedure, which decides what it means (a lost connection, or after
the end of a message, an unknown outcome).
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from smtp_core import Procedure, Read, Stage, StageTimeout, Timeouts, UpgradeTLS, Write

from ._logging import chain, log, log_tls, transcript_trace
from ._names import check_server_hostname
from ._stream import AsyncByteStream
from .proxy import PrefixedStream, Proxy, open_via_proxy

__all__ = [
    "AsyncDriver",
    "DriverClosed",
    "default_ssl_context",
    "open_driver",
    "open_through_proxy",
    "tcp_connector",
    "unix_connector",
]

T = TypeVar("T")


class DriverClosed(ConnectionError):
    """The driver's stream was closed (by :meth:`AsyncDriver.aclose`, a timeout or an I/O error)."""


class AsyncDriver:
    """Performs a procedure's I/O requests on an :class:`AsyncByteStream`.

    Args:
        stream: the connected stream (from a world's ``open_stream``, or the
            caller's own).
        ssl_context: the context for STARTTLS (default: a verifying
            ``ssl.create_default_context()`` with TLS 1.2 at least).
        server_hostname: the name the server's certificate must carry, sent as
            SNI.  Separate from the address connected to, on purpose.
        timeouts: the limit per stage, and overall (default: RFC 5321's).
        deadline: a ``time.monotonic()`` value after which nothing more may
            happen (set by ``connect`` from ``timeouts.total``, so connecting
            counts); default: ``timeouts.total`` from now.
        trace: called with ``("send", data)`` before each write and
            ``("recv", data)`` after each read.

    After an I/O error or a timeout the stream is closed, the connection the
    procedure worked on is marked lost, and every later :meth:`run` raises
    :class:`DriverClosed` (through the procedure, which marks its connection
    lost too).
    """

    def __init__(
        self,
        stream: AsyncByteStream,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeouts: Timeouts | None = None,
        deadline: float | None = None,
        trace: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.stream: AsyncByteStream | None = stream
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.timeouts = timeouts = timeouts or Timeouts()
        if deadline is None and timeouts.total is not None:
            deadline = time.monotonic() + timeouts.total
        self.deadline = deadline
        self.trace = trace
        self._abandoned: AsyncByteStream | None = None

    async def run(self, procedure: Procedure[T]) -> T:
        """Run ``procedure`` to its end and return its result.

        Raises:
            Whatever the procedure raises; I/O errors reach it first, so they
            come out as the procedure leaves them: ``StageTimeout`` (a
            ``TimeoutError``) naming the stage, ``OSError``, ``ssl.SSLError``,
            ``OutcomeUnknown`` after the end of a message, ``DriverClosed``.
        """
        trace = self.trace
        reply_deadline = 0.0  # when the reply being read must be whole
        try:
            request = next(procedure)
            while True:
                stage = request.stage if not isinstance(request, UpgradeTLS) else Stage.TLS
                try:
                    stream = self.stream
                    if stream is None:
                        raise DriverClosed("the connection is closed")
                    if isinstance(request, Write):
                        if trace is not None:
                            trace("send", request.data)
                        seconds, overall = self._limit(stage, None)
                        await stream.send(request.data, seconds)
                        answer: bytes | None = None
                    elif isinstance(request, Read):
                        if request.starts_reply:
                            limit = self.timeouts.seconds(stage)
                            reply_deadline = -1.0 if limit is None else time.monotonic() + limit
                        seconds, overall = self._limit(stage, reply_deadline)
                        answer = await stream.receive(seconds)
                        if trace is not None:
                            trace("recv", answer)
                    else:
                        context = self.ssl_context or default_ssl_context()
                        check_server_hostname(context, self.server_hostname)
                        seconds, overall = self._limit(stage, None)
                        self.stream = await stream.start_tls(context, self.server_hostname, seconds)
                        log_tls(self.stream, self.server_hostname)
                        answer = None
                except Exception as exc:
                    if isinstance(exc, TimeoutError) and not isinstance(exc, StageTimeout):
                        # The stage's limit (or the overall one), as _limit and the
                        # blocking driver report it: ``seconds`` is only what was left
                        # of it for this read (a fraction, for a trickled reply).
                        limit = self.timeouts.total if overall else self.timeouts.seconds(stage)
                        exc = StageTimeout(stage, limit or seconds or 0.0, overall=overall)
                    if not isinstance(exc, DriverClosed):
                        log.info("connection lost: %s", exc)
                    await self.aclose()
                    request = procedure.throw(exc)
                    continue
                except BaseException:
                    # Cancelled mid-exchange: the replies now in flight would
                    # pair with the wrong commands.  The connection is lost.
                    self._abandon()
                    with contextlib.suppress(DriverClosed, StopIteration):
                        procedure.throw(DriverClosed("cancelled in the middle of an exchange"))
                    raise
                request = procedure.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result

    def _limit(self, stage: Stage, until: float | None) -> tuple[float | None, bool]:
        """Seconds left for a request of ``stage``, and whether the overall deadline set them.

        ``until``: the reply's deadline for a read (``-1.0``: none), ``None``
        for a request with a limit of its own.

        Raises:
            StageTimeout: no time is left.
        """
        now = time.monotonic()
        if until is None:
            seconds = self.timeouts.seconds(stage)
        else:
            seconds = None if until < 0 else until - now
        overall = False
        if self.deadline is not None:
            left = self.deadline - now
            if seconds is None or left < seconds:
                seconds, overall = left, True
        if seconds is not None and seconds <= 0:
            limit = self.timeouts.total if overall else self.timeouts.seconds(stage)
            raise StageTimeout(stage, limit or 0.0, overall=overall)
        return seconds, overall

    def _abandon(self) -> None:
        """Forget the stream without awaiting (we are being cancelled); :meth:`aclose` closes it."""
        self._abandoned = self.stream
        self.stream = None

    async def aclose(self) -> None:
        """Close the stream (idempotent)."""
        stream = self.stream or self._abandoned
        self.stream = self._abandoned = None
        if stream is not None:
            await stream.aclose()

    async def __aenter__(self) -> AsyncDriver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def open_driver(
    opening: Callable[[float | None], Awaitable[AsyncByteStream]],
    *,
    timeouts: Timeouts | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    trace: Callable[[str, bytes], None] | None = None,
    peer: str = "",
) -> AsyncDriver:
    """Open a stream with ``opening(seconds)`` and return a driver for it.

    Each world's ``connect`` is this with its own ``open_stream``: connecting
    gets ``timeouts.connect`` (within ``timeouts.total``, which starts now).

    Raises:
        StageTimeout: stage ``CONNECT``, when ``opening`` times out.
        OSError: from ``opening``.
    """
    timeouts = timeouts or Timeouts()
    seconds, overall = timeouts.connect, False
    deadline = None
    if timeouts.total is not None:
        deadline = time.monotonic() + timeouts.total
        if seconds is None or timeouts.total < seconds:
            seconds, overall = timeouts.total, True
    try:
        stream = await opening(seconds)
    except TimeoutError as exc:
        if isinstance(exc, StageTimeout):
            raise
        raise StageTimeout(Stage.CONNECT, seconds or 0.0, overall=overall) from exc
    log.info("connected to %s", peer or type(stream).__name__)
    return AsyncDriver(
        stream,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
        timeouts=timeouts,
        deadline=deadline,
        trace=chain(trace, transcript_trace(peer)),
    )


def default_ssl_context() -> ssl.SSLContext:
    """A verifying client context with TLS 1.2 as the floor."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _OpenStream(Protocol):
    def __call__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = ...,
        server_hostname: str | None = ...,
        source_address: tuple[str, int] | None = ...,
        connect_timeout: float | None = ...,
    ) -> Awaitable[AsyncByteStream]: ...


class _OpenUnixStream(Protocol):
    def __call__(
        self, path: str, *, connect_timeout: float | None = ...
    ) -> Awaitable[AsyncByteStream]: ...


def tcp_connector(open_stream: _OpenStream) -> Callable[..., Awaitable[AsyncDriver]]:
    """A world's ``connect``, made from its ``open_stream``."""

    async def connect(
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
    ) -> AsyncDriver:
        """Connect and return an :class:`AsyncDriver` ready to run procedures.

        ``server_hostname`` (default: ``host``) is what the certificate must
        name, for implicit TLS and STARTTLS alike.  ``ssl_context`` defaults
        to a verifying context with TLS 1.2 at least.  ``proxy``
        (``socks5://``, ``socks4a://``, ``http://`` or a
        :class:`~transports.proxy.Proxy`) is asked for a tunnel to ``host``,
        which the proxy resolves; the server's first bytes, often in the same
        read as the proxy's reply, are kept for the engine.

        Raises:
            StageTimeout: stage ``CONNECT``: not connected in ``timeouts.connect``
                (the proxy's handshake and implicit TLS included).
            OSError: refused, unreachable, no such host; ``ProxyError`` (a
                ``ConnectionError``) when the proxy refuses; ``ssl.SSLError``.
        """
        # A default context only for implicit TLS now; for STARTTLS the pump
        # makes one if and when it is needed.  Loading the system's CA store
        # costs ~23 ms and ~850 KB a connection (bench/aio.py: 6.8x slower
        # than aiosmtplib on 50 short sessions while every connect did it).
        context = ssl_context or (default_ssl_context() if implicit_tls else None)
        name = server_hostname or host
        tunnel = Proxy.from_url(proxy) if isinstance(proxy, str) else proxy

        async def opening(seconds: float | None) -> AsyncByteStream:
            if tunnel is None:
                return await open_stream(
                    host,
                    port,
                    ssl_context=context if implicit_tls else None,
                    server_hostname=name,
                    source_address=source_address,
                    connect_timeout=seconds,
                )
            return await open_through_proxy(
                open_stream,
                tunnel,
                host,
                port,
                seconds=seconds,
                source_address=source_address,
                implicit_tls=context if implicit_tls else None,
                name=name,
            )

        via = "" if tunnel is None else f" via {tunnel.kind} {tunnel.host}:{tunnel.port}"
        return await open_driver(
            opening,
            timeouts=timeouts,
            ssl_context=ssl_context or context,
            server_hostname=name,
            trace=trace,
            peer=f"{host}:{port}{via}",
        )

    return connect


async def open_through_proxy(
    open_stream: _OpenStream,
    proxy: Proxy,
    host: str,
    port: int,
    *,
    seconds: float | None,
    source_address: tuple[str, int] | None,
    implicit_tls: ssl.SSLContext | None,
    name: str | None,
) -> AsyncByteStream:
    """A stream to ``host:port`` through ``proxy``, within ``seconds`` in all."""
    deadline = None if seconds is None else time.monotonic() + seconds

    def left() -> float | None:
        return None if deadline is None else max(deadline - time.monotonic(), 0.001)

    stream = await open_stream(
        proxy.host, proxy.port, source_address=source_address, connect_timeout=seconds
    )
    stream, leftover = await open_via_proxy(stream, proxy, host, port, left())
    # The server speaks first: its greeting may have come with the proxy's reply.
    stream = PrefixedStream(stream, leftover)
    if implicit_tls is not None:
        stream = await stream.start_tls(implicit_tls, name, left())
    return stream


def unix_connector(open_unix_stream: _OpenUnixStream) -> Callable[..., Awaitable[AsyncDriver]]:
    """A world's ``connect_unix``, made from its ``open_unix_stream``."""

    async def connect_unix(
        path: str,
        *,
        timeouts: Timeouts | None = None,
        trace: Callable[[str, bytes], None] | None = None,
    ) -> AsyncDriver:
        """Connect to the Unix socket at ``path`` (LMTP) and return an :class:`AsyncDriver`."""

        def opening(seconds: float | None) -> Awaitable[AsyncByteStream]:
            return open_unix_stream(path, connect_timeout=seconds)

        return await open_driver(opening, timeouts=timeouts, trace=trace, peer=path)

    return connect_unix
