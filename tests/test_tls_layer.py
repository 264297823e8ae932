"""The public TLS layer (``transports.tls``) over real TCP, an in-memory pipe and plain buffers.

Three peers: a blocking ``ssl`` server thread on loopback (for TCP), a
server-side ``ssl.SSLObject`` over an in-memory pipe (no socket at all), and,
for the hypothesis properties of the sans-I/O core, a server ``SSLObject``
whose ciphertext the test carries by hand, cut wherever hypothesis likes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar, cast

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from smtp_core import NEED_DATA
from tests.servers import server_tls_context
from transports._stream import AsyncByteStream
from transports.tls import (
    READ_SIZE,
    RECORD_SIZE,
    SEND_BUFFER,
    BlockingTLSStream,
    TLSEngine,
    TLSStream,
)

T = TypeVar("T")

#: The most ciphertext one flush may carry: the buffer, one more record, and
#: each record's header, nonce and tag (RFC 8446 §5.2: at most 256 bytes).
MAX_FLUSH = SEND_BUFFER + RECORD_SIZE + 256
HOST = "localhost"  # the name trustme's certificate carries
BIG = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def contexts(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(client, server): the client trusts ``ca``, the server has a cert for localhost."""
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return client, server_tls_context(ca)


async def within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``asyncio.wait_for``, raising the built-in TimeoutError (on 3.10 too)."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:  # not the built-in one before 3.11
        raise TimeoutError("timed out") from None


# -- Transports -------------------------------------------------------------


class TCPStream:
    """asyncio's streams as an AsyncByteStream (what a caller's own transport looks like)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, port: int) -> TCPStream:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def receive(self, timeout: float | None) -> bytes:
        return await within(self._reader.read(READ_SIZE), timeout)

    async def send(self, data: bytes, timeout: float | None) -> None:
        self._writer.write(data)
        await within(self._writer.drain(), timeout)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> AsyncByteStream:
        return await TLSStream.wrap(self, context, server_hostname, timeout)

    async def aclose(self) -> None:
        self._writer.close()
        with suppress(OSError):
            await self._writer.wait_closed()


class Channel:
    """One direction of an in-memory pipe: a bounded buffer, like a socket's."""

    def __init__(self, limit: int = 65536) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.closed = False
        self.changed = asyncio.Condition()

    async def put(self, data: bytes) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.closed or len(self.buffer) < self.limit)
            if self.closed:
                raise BrokenPipeError("the other end closed the pipe")
            self.buffer += data
            self.changed.notify_all()

    async def get(self, size: int) -> bytes:
        async with self.changed:
            await self.changed.wait_for(lambda: self.closed or bool(self.buffer))
            data = bytes(self.buffer[:size])
            del self.buffer[:size]
            self.changed.notify_all()
            return data

    async def close(self) -> None:
        async with self.changed:
            self.closed = True
            self.changed.notify_all()


class MemoryStream:
    """One end of an in-memory pipe; an AsyncByteStream with no socket under it."""

    def __init__(self, inbox: Channel, outbox: Channel) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self.largest_send = 0
        self.closed = False

    async def receive(self, timeout: float | None) -> bytes:
        return await within(self._inbox.get(READ_SIZE), timeout)

    async def send(self, data: bytes, timeout: float | None) -> None:
        self.largest_send = max(self.largest_send, len(data))
        await within(self._outbox.put(data), timeout)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> AsyncByteStream:
        return await TLSStream.wrap(self, context, server_hostname, timeout)

    async def aclose(self) -> None:
        """Close both directions without any TLS alert, as a socket's close does."""
        self.closed = True
        await self._outbox.close()
        await self._inbox.close()


def memory_pipe() -> tuple[MemoryStream, MemoryStream]:
    """Two connected ends: what one sends, the other receives."""
    there, back = Channel(), Channel()
    return MemoryStream(back, there), MemoryStream(there, back)


class ServerTLS:
    """The server's side of TLS over a MemoryStream, on a bare ``ssl.SSLObject``."""

    def __init__(self, stream: MemoryStream, context: ssl.SSLContext) -> None:
        self.stream = stream
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    async def flush(self) -> None:
        if self.outgoing.pending:
            await self.stream.send(self.outgoing.read(), None)

    async def fill(self) -> None:
        data = await self.stream.receive(None)
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()

    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                await self.flush()
                await self.fill()
            else:
                await self.flush()
                return

    async def recv(self) -> bytes:
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                await self.fill()

    async def recv_all(self) -> bytes:
        received = bytearray()
        while data := await self.recv():
            received += data
        return bytes(received)

    async def send(self, data: bytes) -> None:
        self.tls.write(data)
        await self.flush()

    async def close_notify(self) -> None:
        with suppress(ssl.SSLWantReadError):
            self.tls.unwrap()
        await self.flush()


async def pipe_session(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    server: Callable[[ServerTLS], Awaitable[T]],
    server_hostname: str = HOST,
    client_context: ssl.SSLContext | None = None,
) -> tuple[TLSStream, MemoryStream, asyncio.Task[T]]:
    """A TLSStream over a memory pipe whose other end runs ``server`` (handshake done)."""
    client_end, server_end = memory_pipe()
    peer = ServerTLS(server_end, contexts[1])
    task = asyncio.ensure_future(server(peer))
    try:
        tls = await TLSStream.wrap(client_end, client_context or contexts[0], server_hostname, 10)
    except BaseException:
        await client_end.aclose()
        await task  # the server's own checks, or its error
        raise
    return tls, client_end, task


@contextmanager
def tcp_server(serve: Callable[[socket.socket], object]) -> Iterator[int]:
    """A loopback TCP server thread that runs ``serve`` on one connection; yields the port.

    An exception in ``serve`` fails the test when the block ends.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                serve(conn)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(15)
        listener.close()
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def drain(sock: socket.socket) -> bytes:
    """Read until the peer closes (``b""``, close_notify included for an SSLSocket)."""
    received = bytearray()
    while data := sock.recv(65536):
        received += data
    return bytes(received)


async def receive_exactly(stream: AsyncByteStream, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        data = await stream.receive(10)
        assert data, "the stream ended early"
        received += data
    return bytes(received)


# -- Over TCP, against a blocking ssl server --------------------------------


def test_tcp_round_trip(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    client_context, server_context = contexts
    up = bytes(range(256)) * 1000  # 256 000 bytes: several records, several reads
    seen: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        with server_context.wrap_socket(conn, server_side=True) as tls:
            data = bytearray()
            while len(data) < len(up):
                data += tls.recv(65536)
            tls.sendall(bytes(data).upper())
            seen.append(drain(tls))  # ends at the client's close_notify

    async def main() -> None:
        with tcp_server(serve) as port:
            stream = await TLSStream.wrap(await TCPStream.connect(port), client_context, HOST, 10)
            assert stream.ssl_object.version() in ("TLSv1.2", "TLSv1.3")
            assert stream.ssl_object.server_hostname == HOST
            await stream.send(up, 10)
            assert await receive_exactly(stream, len(up)) == up.upper()
            await stream.aclose()

    asyncio.run(main())
    assert seen == [b""]  # a clean close_notify, seen by the ssl module as an end


def test_tcp_untrusted_ca_fails_verification(ca: trustme.CA) -> None:
    server_context = server_tls_context(ca)

    def serve(conn: socket.socket) -> None:
        with pytest.raises(ssl.SSLError, match="alert"):  # our alert reached it
            server_context.wrap_socket(conn, server_side=True)

    async def main() -> None:
        with tcp_server(serve) as port:
            inner = await TCPStream.connect(port)
            try:
                with pytest.raises(ssl.SSLCertVerificationError):
                    await TLSStream.wrap(inner, ssl.create_default_context(), HOST, 10)
            finally:
                await inner.aclose()

    asyncio.run(main())


def test_tcp_wrong_host_fails_verification(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    client_context, server_context = contexts

    def serve(conn: socket.socket) -> None:
        with pytest.raises(ssl.SSLError):
            server_context.wrap_socket(conn, server_side=True)

    async def main() -> None:
        with tcp_server(serve) as port:
            inner = await TCPStream.connect(port)
            try:
                with pytest.raises(ssl.SSLCertVerificationError, match=r"mail\.example"):
                    await TLSStream.wrap(inner, client_context, "mail.example", 10)
            finally:
                await inner.aclose()

    asyncio.run(main())


def test_tcp_close_without_close_notify_is_end_of_stream(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    client_context, server_context = contexts

    def serve(conn: socket.socket) -> None:
        with server_context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"221 bye\r\n")
            # SSLSocket.shutdown drops TLS and sends a bare FIN: no close_notify.
            tls.shutdown(socket.SHUT_WR)
            drain(tls)

    async def main() -> None:
        with tcp_server(serve) as port:
            stream = await TLSStream.wrap(await TCPStream.connect(port), client_context, HOST, 10)
            assert await receive_exactly(stream, 9) == b"221 bye\r\n"
            assert await stream.receive(10) == b""
            assert await stream.receive(10) == b""  # and it stays ended
            await stream.aclose()

    asyncio.run(main())


def test_tcp_silent_peer_times_out_receive(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    client_context, server_context = contexts

    def serve(conn: socket.socket) -> None:
        with server_context.wrap_socket(conn, server_side=True) as tls:
            drain(tls)

    async def main() -> None:
        with tcp_server(serve) as port:
            stream = await TLSStream.wrap(await TCPStream.connect(port), client_context, HOST, 10)
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                await stream.receive(0.3)
            assert 0.25 < time.monotonic() - start < 3
            await stream.aclose()

    asyncio.run(main())


def test_tcp_silent_peer_times_out_handshake(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async def main() -> None:
        with tcp_server(drain) as port:  # takes the ClientHello, never answers
            inner = await TCPStream.connect(port)
            try:
                with pytest.raises(TimeoutError):
                    await TLSStream.wrap(inner, contexts[0], HOST, 0.3)
            finally:
                await inner.aclose()

    asyncio.run(main())


def test_tcp_peer_closing_mid_handshake_raises_ssl_eof(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    def serve(conn: socket.socket) -> None:
        assert conn.recv(65536)  # (some of) the ClientHello
        conn.shutdown(socket.SHUT_WR)  # a FIN, not a reset: the client sees an end
        drain(conn)

    async def main() -> None:
        with tcp_server(serve) as port:
            inner = await TCPStream.connect(port)
            try:
                with pytest.raises(ssl.SSLEOFError):
                    await TLSStream.wrap(inner, contexts[0], HOST, 10)
            finally:
                await inner.aclose()

    asyncio.run(main())


def test_tcp_aclose_is_idempotent_and_quiet_after_the_peer_died(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    client_context, server_context = contexts

    def serve(conn: socket.socket) -> None:
        tls = server_context.wrap_socket(conn, server_side=True)
        # A reset: SO_LINGER on with a zero timeout makes close() send RST,
        # and SSLSocket.close() sends no close_notify.
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        tls.close()

    async def main() -> None:
        with tcp_server(serve) as port:
            stream = await TLSStream.wrap(await TCPStream.connect(port), client_context, HOST, 10)
            with suppress(OSError):
                while await stream.receive(10):  # b"" or ConnectionResetError
                    pass
            await stream.aclose()
            await stream.aclose()

    asyncio.run(main())


def test_tcp_send_of_20_mib_holds_little_memory(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    client_context, server_context = contexts
    payload = b"x" * BIG
    counted: list[int] = []

    def serve(conn: socket.socket) -> None:
        with server_context.wrap_socket(conn, server_side=True) as tls:
            total = 0
            while total < BIG:
                total += len(tls.recv(65536))
            counted.append(total)
            tls.sendall(b"250 ok\r\n")
            drain(tls)

    async def main() -> int:
        with tcp_server(serve) as port:
            stream = await TLSStream.wrap(await TCPStream.connect(port), client_context, HOST, 10)
            peak = await traced_peak(stream.send(payload, 60))
            # Read before closing, as SMTP does: closing a socket with unread
            # bytes (here TLS 1.3 session tickets) sends a reset.
            assert await receive_exactly(stream, 8) == b"250 ok\r\n"
            await stream.aclose()
        return peak

    peak = asyncio.run(main())
    assert counted == [BIG]
    assert peak < 1024 * 1024, peak


async def traced_peak(awaitable: Awaitable[None]) -> int:
    """Bytes allocated by Python at the peak of ``awaitable``, above where it started.

    OpenSSL's own buffers are not traced; the bound on each flush (checked
    on the pipe) covers those, and unbounded ciphertext would show here too
    when it is read out of the memory buffer into one bytes object.
    """
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        await awaitable
        return tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()


# -- Over an in-memory pipe: no socket anywhere -----------------------------


def test_pipe_round_trip(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    async def server(peer: ServerTLS) -> bytes:
        await peer.handshake()
        await peer.send(b"220 ready\r\n")
        data = await peer.recv_all()  # to the client's close_notify
        assert peer.tls.read(10) == b""  # a clean close, not a ragged one
        return data

    async def main() -> bytes:
        tls, _, task = await pipe_session(contexts, server)
        assert await receive_exactly(tls, 11) == b"220 ready\r\n"
        await tls.send(b"EHLO client.example\r\n", 10)
        await tls.aclose()
        return await task

    assert asyncio.run(main()) == b"EHLO client.example\r\n"


def test_pipe_send_of_20_mib_is_bounded(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    payload = b"y" * BIG

    async def server(peer: ServerTLS) -> int:
        await peer.handshake()
        total = 0
        while data := await peer.recv():
            total += len(data)
        return total

    async def main() -> tuple[int, int, int]:
        tls, end, task = await pipe_session(contexts, server)
        peak = await traced_peak(tls.send(payload, 60))
        await tls.aclose()
        return peak, end.largest_send, await task

    peak, largest_send, total = asyncio.run(main())
    assert total == BIG
    assert largest_send <= MAX_FLUSH
    assert peak < 1024 * 1024, peak


def test_pipe_close_without_close_notify_is_end_of_stream(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async def server(peer: ServerTLS) -> None:
        await peer.handshake()
        await peer.send(b"221 bye\r\n")
        await peer.stream.aclose()  # no close_notify

    async def main() -> None:
        tls, end, task = await pipe_session(contexts, server)
        await task
        assert await receive_exactly(tls, 9) == b"221 bye\r\n"
        assert await tls.receive(1) == b""
        assert await tls.receive(1) == b""
        await tls.aclose()  # close_notify cannot go out: the pipe is closed
        assert end.closed

    asyncio.run(main())


def test_pipe_close_notify_is_end_of_stream(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async def server(peer: ServerTLS) -> None:
        await peer.handshake()
        await peer.close_notify()

    async def main() -> None:
        tls, _, task = await pipe_session(contexts, server)
        await task
        assert await tls.receive(1) == b""
        await tls.aclose()

    asyncio.run(main())


def test_pipe_timeout_is_one_budget_for_the_whole_receive(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async def server(peer: ServerTLS) -> None:
        await peer.handshake()
        peer.tls.write(b"250 ok\r\n")
        record = peer.outgoing.read()
        for i in range(len(record)):  # a byte every 50 ms: each read is quick
            await peer.stream.send(record[i : i + 1], None)
            await asyncio.sleep(0.05)

    async def main() -> float:
        tls, _, task = await pipe_session(contexts, server)
        start = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                await tls.receive(0.3)
            return time.monotonic() - start
        finally:
            task.cancel()
            await tls.aclose()

    assert 0.25 < asyncio.run(main()) < 1


def test_pipe_timeout_of_a_send_the_peer_does_not_take(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async def server(peer: ServerTLS) -> None:
        await peer.handshake()
        await asyncio.sleep(10)  # never reads: the pipe fills up

    async def main() -> None:
        tls, _, task = await pipe_session(contexts, server)
        try:
            with pytest.raises(TimeoutError):
                await tls.send(b"z" * 1024 * 1024, 0.3)
        finally:
            task.cancel()
            await tls.aclose()

    asyncio.run(main())


def test_pipe_peer_closing_mid_handshake_raises_ssl_eof(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async def main() -> None:
        client_end, server_end = memory_pipe()

        async def server() -> None:
            assert await server_end.receive(10)  # the ClientHello
            await server_end.aclose()

        task = asyncio.ensure_future(server())
        with pytest.raises(ssl.SSLEOFError):
            await TLSStream.wrap(client_end, contexts[0], HOST, 10)
        await task
        await client_end.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("case", ["untrusted CA", "wrong host"])
def test_pipe_failed_verification_tells_the_peer(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], case: str
) -> None:
    if case == "untrusted CA":
        client_context, name = ssl.create_default_context(), HOST
    else:
        client_context, name = contexts[0], "mail.example"

    async def server(peer: ServerTLS) -> None:
        with pytest.raises(ssl.SSLError, match="alert"):  # our alert reached it
            await peer.handshake()

    async def main() -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await pipe_session(contexts, server, name, client_context)

    asyncio.run(main())


def test_pipe_start_tls_inside_tls_is_refused(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async def main() -> None:
        tls, end, task = await pipe_session(contexts, ServerTLS.handshake)
        await task
        with pytest.raises(NotImplementedError, match="TLS inside TLS"):
            await tls.start_tls(contexts[0], HOST, 10)
        await tls.aclose()
        await tls.aclose()  # idempotent
        assert end.closed

    asyncio.run(main())


def test_stream_start_tls_through_the_protocol(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """The way the pump starts TLS: ``start_tls`` on the plain stream returns a TLSStream."""

    async def main() -> None:
        client_end, server_end = memory_pipe()
        task = asyncio.ensure_future(ServerTLS(server_end, contexts[1]).handshake())
        stream: AsyncByteStream = client_end
        stream = await stream.start_tls(contexts[0], HOST, 10)
        await task
        assert isinstance(stream, TLSStream)
        assert isinstance(stream, AsyncByteStream)
        await stream.aclose()

    asyncio.run(main())


def test_pipe_timeouts_of_none_and_zero(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    async def server(peer: ServerTLS) -> bytes:
        await peer.handshake()
        await asyncio.sleep(0.05)
        await peer.send(b"250 ok\r\n")
        return await peer.recv()

    async def main() -> bytes:
        tls, _, task = await pipe_session(contexts, server)
        with pytest.raises(TimeoutError, match="waiting for data"):
            await tls.receive(0)  # no time at all: the budget, not the pipe, says so
        assert await tls.receive(None) == b"250 ok\r\n"
        await tls.send(b"QUIT\r\n", None)
        data = await task
        await tls.aclose()
        return data

    assert asyncio.run(main()) == b"QUIT\r\n"


class HesitantContext:
    """A client context whose SSLObjects refuse some writes with SSLWantReadError.

    What a TLS 1.2 renegotiation does to ``SSL_write``; no Python server can
    start one, so this stand-in wraps a real context.
    """

    check_hostname = True

    def __init__(self, context: ssl.SSLContext, refuse: set[int]) -> None:
        self.context = context
        self.refuse = refuse

    def wrap_bio(
        self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_hostname: str | None
    ) -> Hesitant:
        tls = self.context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
        return Hesitant(tls, self.refuse)


class Hesitant:
    """An SSLObject whose writes numbered in ``refuse`` (from 1) want the peer's data first."""

    def __init__(self, tls: ssl.SSLObject, refuse: set[int]) -> None:
        self.tls = tls
        self.refuse = refuse
        self.writes = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.tls, name)

    def write(self, data: memoryview) -> int:
        self.writes += 1
        if self.writes in self.refuse:
            raise ssl.SSLWantReadError("the operation did not complete (read)")
        return self.tls.write(data)


def test_pipe_send_that_needs_the_peer_first_reads_and_loses_nothing(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    up = b"u" * 40_000  # three records; the first write and the third are refused
    hesitant = cast(ssl.SSLContext, HesitantContext(contexts[0], {1, 3}))

    async def server(peer: ServerTLS) -> bytes:
        await peer.handshake()
        await peer.send(b"220 ready\r\n")  # what the refused write waits for
        received = bytearray()
        while len(received) < len(up):
            received += await peer.recv()
        return bytes(received)

    async def main() -> bytes:
        tls, _, task = await pipe_session(contexts, server, client_context=hesitant)
        await tls.send(up, 10)
        assert await receive_exactly(tls, 11) == b"220 ready\r\n"  # read during send, kept
        data = await task
        await tls.aclose()
        return data

    assert asyncio.run(main()) == up


def test_blocking_send_that_needs_the_peer_first(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    up = b"v" * 40_000
    server_context = contexts[1]
    received: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        with server_context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"220 ready\r\n")
            data = bytearray()
            while len(data) < len(up):
                data += tls.recv(65536)
            received.append(bytes(data))
            drain(tls)

    hesitant = cast(ssl.SSLContext, HesitantContext(contexts[0], {1, 3}))
    with tcp_server(serve) as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        stream = BlockingTLSStream.wrap(sock, hesitant, HOST)
        stream.sendall(up)
        assert stream.recv() == b"220 ready\r\n"
        stream.close()
    assert received == [up]


def test_engine_requires_a_name_when_the_context_checks_names(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    with pytest.raises(ValueError, match="server_hostname"):
        TLSEngine(contexts[0], None)


# -- The blocking counterpart -----------------------------------------------


def test_blocking_stream_round_trip_and_ragged_end(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    client_context, server_context = contexts
    up = b"q" * (3 * SEND_BUFFER)
    received: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        with server_context.wrap_socket(conn, server_side=True) as tls:
            data = bytearray()
            while len(data) < len(up):
                data += tls.recv(65536)
            received.append(bytes(data))
            tls.sendall(b"221 bye\r\n")
            tls.shutdown(socket.SHUT_WR)  # no close_notify
            drain(tls)

    with tcp_server(serve) as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        stream = BlockingTLSStream.wrap(sock, client_context, HOST)
        assert stream.ssl_object.version() in ("TLSv1.2", "TLSv1.3")
        stream.sendall(up)
        assert stream.recv() == b"221 bye\r\n"
        assert stream.recv() == b""
        stream.close()
        stream.close()
    assert received == [up]


def test_blocking_stream_wrong_host(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    client_context, server_context = contexts

    def serve(conn: socket.socket) -> None:
        with pytest.raises(ssl.SSLError):
            server_context.wrap_socket(conn, server_side=True)

    with tcp_server(serve) as port, socket.create_connection(("127.0.0.1", port), 10) as sock:
        with pytest.raises(ssl.SSLCertVerificationError):
            BlockingTLSStream.wrap(sock, client_context, "mail.example")


# -- The sans-I/O core, cut at every point hypothesis chooses ---------------


def pieces(data: bytes, sizes: list[int], start: int) -> Iterator[bytes]:
    """``data`` cut into pieces of ``sizes`` (cycled, from ``sizes[start]``)."""
    offset = 0
    index = start
    while offset < len(data):
        size = sizes[index % len(sizes)]
        index += 1
        yield data[offset : offset + size]
        offset += size


class Server:
    """A server ``SSLObject`` the test feeds by hand."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.done = False
        self.received = bytearray()

    def feed(self, data: bytes) -> None:
        self.incoming.write(data)
        if not self.done:
            try:
                self.tls.do_handshake()
                self.done = True
            except ssl.SSLWantReadError:
                return
        with suppress(ssl.SSLWantReadError):
            while data := self.tls.read(READ_SIZE):
                self.received += data


def feed_client(client: TLSEngine, data: bytes, sizes: list[int], start: int) -> tuple[bytes, bool]:
    """Feed ``data`` in pieces; after each, run the handshake or read all there is.

    Returns the plaintext read, and whether the end was read.
    """
    received = bytearray()
    for piece in pieces(data, sizes, start):
        client.receive_data(piece)
        if not client.do_handshake():
            continue
        while (plain := client.read()) is not NEED_DATA:
            if not plain:
                return bytes(received), True
            received += plain
    return bytes(received), False


payloads = st.builds(
    lambda unit, count: unit * count, st.binary(min_size=1, max_size=600), st.integers(0, 150)
)
cuts = st.lists(st.integers(1, 20_000), min_size=1, max_size=6)
ENDINGS = ["ragged", "server first", "client first"]


@given(up=payloads, down=payloads, sizes=cuts, ending=st.sampled_from(ENDINGS))
def test_engine_any_cutting_of_the_ciphertext_delivers_the_same_plaintext(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    up: bytes,
    down: bytes,
    sizes: list[int],
    ending: str,
) -> None:
    client = TLSEngine(contexts[0], HOST)
    server = Server(contexts[1])
    # The handshake, ciphertext cut both ways.
    for turn in range(10):
        done = client.do_handshake()
        for piece in pieces(client.data_to_send(), sizes, turn):
            server.feed(piece)
        assert feed_client(client, server.outgoing.read(), sizes, turn) == (b"", False)
        if done and server.done:
            break
    assert client.do_handshake()
    assert server.done
    # Client to server: the engine takes at most SEND_BUFFER's worth at once.
    view = memoryview(up)
    while view:
        taken = client.write(view)
        assert taken is not NEED_DATA
        assert taken > 0
        view = view[taken:]
        ciphertext = client.data_to_send()
        assert len(ciphertext) <= MAX_FLUSH
        for piece in pieces(ciphertext, sizes, 1):
            server.feed(piece)
    assert client.pending_output == 0
    assert server.received == up
    # Server to client, then the end, in one of three ways.
    if down:
        server.tls.write(down)
    assert feed_client(client, server.outgoing.read(), sizes, 2) == (down, False)
    if ending == "ragged":  # no close_notify: the transport just ends
        client.receive_data(b"")
        assert client.read() == b""
        client.close()  # no error (OpenSSL 3.0 still queues close_notify)
    elif ending == "server first":
        with suppress(ssl.SSLWantReadError):
            server.tls.unwrap()
        assert feed_client(client, server.outgoing.read(), sizes, 3) == (b"", True)
        client.close()
        server.incoming.write(client.data_to_send())
        server.tls.unwrap()  # the client's close_notify answers: no WantRead
    else:
        client.close()
        server.incoming.write(client.data_to_send())
        assert server.tls.read(10) == b""  # a clean end, seen by the server
        with suppress(ssl.SSLWantReadError):
            server.tls.unwrap()
        assert feed_client(client, server.outgoing.read(), sizes, 3) == (b"", True)
    assert client.read() == b""  # the end stays


@given(sizes=cuts)
def test_engine_read_before_the_handshake_ends_needs_data(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], sizes: list[int]
) -> None:
    client = TLSEngine(contexts[0], HOST)
    assert client.do_handshake() is False
    hello = client.data_to_send()
    assert hello[:1] == b"\x16"  # a handshake record: the ClientHello
    server = Server(contexts[1])
    for piece in pieces(hello, sizes, 0):
        server.feed(piece)
    reply = server.outgoing.read()
    # Everything but the last byte of the server's flight: still not enough.
    assert feed_client(client, reply[:-1], sizes, 0) == (b"", False)
    assert client.do_handshake() is False
    client.close()  # before the handshake: nothing to say, and no error
