"""transports.trio: TrioStream and its connect functions against real loopback peers.

Each peer is a plain blocking socket served by a thread (``Peer``), so what it
sees is independent of trio.  The peer and the TLS fixtures are
``tests.stream_peers``, shared with ``test_stream_anyio.py``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest
import trio
import trustme

from tests.stream_peers import (
    Peer,
    closed_port,
    read_to_eof,
    recv_exactly,
    tls_handshake_fails,
    two_address_resolver,
    wait_for_stop,
)
from transports import trio as trio_transport
from transports._stream import AsyncByteStream
from transports.trio import READ_SIZE, TrioStream, open_stream, open_unix_stream


async def read_all(stream: TrioStream) -> bytes:
    """Every byte up to EOF, checking each read's size."""
    data = b""
    while chunk := await stream.receive(5):
        assert 1 <= len(chunk) <= READ_SIZE
        data += chunk
    return data


# --- plain bytes -----------------------------------------------------------------


def test_is_an_async_byte_stream() -> None:
    async def main() -> None:
        with Peer(wait_for_stop) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            assert isinstance(stream, AsyncByteStream)
            assert stream.ssl_object is None
            await stream.aclose()

    trio.run(main)


def test_import_trio_is_the_real_trio() -> None:
    # transports/trio.py must not shadow the package it wraps.
    assert vars(trio_transport)["trio"] is trio
    assert trio.__name__ == "trio"
    assert trio_transport.__name__ == "transports.trio"


def test_receive_returns_what_the_peer_sent_then_eof() -> None:
    sent = bytes(range(256)) * 100  # 25,600 bytes: more than one READ_SIZE

    def script(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(sent)

    async def main() -> None:
        with Peer(script) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            assert await read_all(stream) == sent
            assert await stream.receive(5) == b""  # EOF stays EOF
            await stream.aclose()

    trio.run(main)


def test_receive_times_out_on_a_silent_peer() -> None:
    async def main() -> None:
        with Peer(wait_for_stop) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            start = time.monotonic()
            with pytest.raises(TimeoutError, match="timed out receiving"):
                await stream.receive(0.2)
            assert 0.15 <= time.monotonic() - start < 1.5
            await stream.aclose()

    trio.run(main)


def test_a_reset_connection_raises_connection_reset_error() -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        # Wait for the client's byte (the connection is then surely
        # established on its side too), then close with linger 0: RST, not FIN.
        peer.received += recv_exactly(conn, 1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def main() -> None:
        with Peer(script) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            await stream.send(b"x", 5)
            with pytest.raises(ConnectionResetError):
                await stream.receive(5)
            await stream.aclose()
            await stream.aclose()  # idempotent, and quiet for a dead peer

    trio.run(main)


def test_use_after_close_raises_oserror() -> None:
    async def main() -> None:
        with Peer(wait_for_stop) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            await stream.aclose()
            with pytest.raises(OSError, match="already closed"):
                await stream.receive(5)
            with pytest.raises(OSError, match="already closed"):
                await stream.send(b"x", 5)

    trio.run(main)


def test_send_20_mib_to_a_slow_reader(payload: bytes) -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        time.sleep(0.1)  # let the kernel buffers fill, so send() has to wait
        while chunk := conn.recv(16384):
            peer.received += chunk

    async def main() -> None:
        with Peer(script) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            await stream.send(payload, 10)
            await stream.aclose()
        assert len(peer.received) == len(payload)
        assert peer.received == payload

    trio.run(main)


def test_send_times_out_when_the_peer_does_not_read(payload: bytes) -> None:
    async def main() -> None:
        with Peer(wait_for_stop) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            with pytest.raises(TimeoutError, match="timed out sending"):
                await stream.send(payload, 0.2)
            await stream.aclose()

    trio.run(main)


# --- TLS --------------------------------------------------------------------------


def test_start_tls_then_exchange_bytes(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(b"ready\r\n")
        assert recv_exactly(conn, 4) == b"go\r\n"
        with server_context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"echo:" + tls.recv(100))
            peer.received += tls.recv(100)  # b"": the client closed

    async def main() -> None:
        with Peer(script) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            assert await stream.receive(5) == b"ready\r\n"
            await stream.send(b"go\r\n", 5)
            assert await stream.start_tls(client_context, "localhost", 5) is stream
            assert isinstance(stream.ssl_object, ssl.SSLObject)
            assert stream.ssl_object.version() in {"TLSv1.2", "TLSv1.3"}
            assert isinstance(stream.stream, trio.SSLStream)
            await stream.send(b"ping", 5)
            assert await stream.receive(5) == b"echo:ping"
            await stream.aclose()
        assert peer.received == b""

    trio.run(main)


@pytest.mark.parametrize("case", ["untrusted CA", "wrong server_hostname"])
def test_start_tls_refuses_a_bad_certificate(
    case: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    context, name = (
        (ssl.create_default_context(), "localhost")
        if case == "untrusted CA"
        else (client_context, "example.org")
    )

    async def main() -> None:
        with Peer(tls_handshake_fails(server_context)) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            with pytest.raises(ssl.SSLCertVerificationError):
                await stream.start_tls(context, name, 5)
            assert stream.ssl_object is None
            await stream.aclose()

    trio.run(main)


def test_start_tls_handshake_timeout_closes_the_stream(client_context: ssl.SSLContext) -> None:
    async def main() -> None:
        # The peer reads the ClientHello, never answers, and returns once the
        # client gives up and closes (a script still reading would fail).
        with Peer(read_to_eof) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            with pytest.raises(TimeoutError, match="TLS handshake"):
                await stream.start_tls(client_context, "localhost", 0.2)
        assert peer.received.startswith(b"\x16\x03")  # a TLS handshake record

    trio.run(main)


def test_server_closing_during_handshake_is_an_ssl_error(client_context: ssl.SSLContext) -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        conn.recv(65536)  # the whole ClientHello, then FIN

    async def main() -> None:
        with Peer(script) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            with pytest.raises(ssl.SSLError):
                await stream.start_tls(client_context, "localhost", 5)
            await stream.aclose()

    trio.run(main)


def test_tls_stream_is_unusable_after_a_send_timeout(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, payload: bytes
) -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        with server_context.wrap_socket(conn, server_side=True):
            peer.stop.wait(10)  # reads nothing after the handshake

    async def main() -> None:
        with Peer(script) as peer:
            stream = await open_stream("localhost", peer.port, ssl_context=client_context)
            with pytest.raises(TimeoutError):
                await stream.send(payload, 0.2)
            # Part of a TLS record may be out: nothing more can be said or read.
            with pytest.raises(ConnectionResetError, match="earlier failed operation"):
                await stream.receive(5)
            await stream.aclose()

    trio.run(main)


def test_tls_close_without_close_notify_is_eof(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        tls = server_context.wrap_socket(conn, server_side=True)
        tls.sendall(b"bye")
        tls.close()  # no unwrap(): no close_notify, as many servers do

    async def main() -> None:
        with Peer(script) as peer:
            stream = await open_stream(
                "127.0.0.1", peer.port, ssl_context=client_context, server_hostname="localhost"
            )
            assert await read_all(stream) == b"bye"
            start = time.monotonic()
            await stream.aclose()
            await stream.aclose()
            assert time.monotonic() - start < 0.5

    trio.run(main)


def test_tls_aclose_does_not_wait_for_a_silent_peer(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        with server_context.wrap_socket(conn, server_side=True) as tls:
            # The client closes without reading TLS 1.3 session tickets, so
            # its kernel may answer with RST: either way this read ends.
            with contextlib.suppress(OSError):
                tls.recv(100)
            peer.stop.wait(10)  # and never answers with a close_notify

    async def main() -> None:
        with Peer(script) as peer:
            stream = await open_stream("localhost", peer.port, ssl_context=client_context)
            start = time.monotonic()
            await stream.aclose()
            assert time.monotonic() - start < 0.5

    trio.run(main)


# --- connecting -------------------------------------------------------------------


def test_open_stream_implicit_tls(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        with server_context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"hello over TLS")
            peer.received += tls.recv(100)

    async def main() -> None:
        with Peer(script) as peer:
            # server_hostname defaults to the name connected to.
            stream = await open_stream(
                "localhost", peer.port, ssl_context=client_context, connect_timeout=5
            )
            assert stream.ssl_object is not None
            assert stream.ssl_object.server_hostname == "localhost"
            assert await stream.receive(5) == b"hello over TLS"
            await stream.send(b"thanks", 5)
            await stream.aclose()
        assert peer.received == b"thanks"

    trio.run(main)


def test_implicit_tls_to_an_ip_needs_a_server_hostname(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        with server_context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    async def main() -> None:
        with Peer(script) as peer:
            # An IP literal is not a certificate's name, so there is no
            # default; ssl's wrap_bio would then skip the host-name check
            # silently, so it is refused before connecting.
            with pytest.raises(ValueError, match="server_hostname is required"):
                await open_stream("127.0.0.1", peer.port, ssl_context=client_context)
            assert peer.client_address is None

            stream = await open_stream(
                "127.0.0.1", peer.port, ssl_context=client_context, server_hostname="localhost"
            )
            assert await stream.receive(5) == b"ok"
            await stream.aclose()

    trio.run(main)


def test_start_tls_without_a_name_is_refused_before_any_byte(
    client_context: ssl.SSLContext,
) -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(b"plain")
        read_to_eof(conn, peer)

    async def main() -> None:
        with Peer(script) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            with pytest.raises(ValueError, match="server_hostname is required"):
                await stream.start_tls(client_context, None, 5)
            # Nothing was sent or closed: the stream goes on in the clear.
            assert await stream.receive(5) == b"plain"
            await stream.send(b"still plain", 5)
            await stream.aclose()
        assert peer.received == b"still plain"

    trio.run(main)


def test_tls_without_a_name_when_the_caller_turned_checking_off(
    ca: trustme.CA, server_context: ssl.SSLContext
) -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        with server_context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.check_hostname = False  # the caller's explicit choice

    async def main() -> None:
        with Peer(script) as peer:
            stream = await open_stream("127.0.0.1", peer.port, ssl_context=context)
            assert await stream.receive(5) == b"ok"
            await stream.aclose()

    trio.run(main)


def test_open_stream_implicit_tls_timeout_covers_the_handshake(
    client_context: ssl.SSLContext,
) -> None:
    async def main() -> None:
        with Peer(wait_for_stop) as peer:
            start = time.monotonic()
            with pytest.raises(TimeoutError, match="connecting"):
                await open_stream(
                    "localhost", peer.port, ssl_context=client_context, connect_timeout=0.2
                )
            assert time.monotonic() - start < 1.5

    trio.run(main)


def test_open_stream_to_a_closed_port_raises_oserror() -> None:
    async def main() -> None:
        with pytest.raises(OSError):  # noqa: PT011 - any OSError is the contract
            await open_stream("127.0.0.1", closed_port(), connect_timeout=5)

    trio.run(main)


def test_open_stream_over_ipv6() -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(b"v6")

    async def main() -> None:
        with Peer(script, host="::1") as peer:
            stream = await open_stream("::1", peer.port)
            assert await stream.receive(5) == b"v6"
            await stream.aclose()

    trio.run(main)


def test_open_stream_localhost_to_an_ipv4_only_server() -> None:
    def script(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(b"v4")

    async def main() -> None:
        with Peer(script, host="127.0.0.1") as peer:
            stream = await open_stream("localhost", peer.port)
            assert await stream.receive(5) == b"v4"
            await stream.aclose()

    trio.run(main)


def test_open_stream_tries_the_next_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """The name resolves to ::1 first (nobody there), then to 127.0.0.1."""
    monkeypatch.setattr(socket, "getaddrinfo", two_address_resolver(socket.getaddrinfo))

    def script(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(b"second address")

    async def main() -> None:
        with Peer(script, host="127.0.0.1") as peer:
            stream = await open_stream("multi.test", peer.port, happy_eyeballs_delay=None)
            assert await stream.receive(5) == b"second address"
            await stream.aclose()

    trio.run(main)


def test_open_stream_from_a_source_address() -> None:
    async def main() -> None:
        with Peer(read_to_eof) as peer:
            stream = await open_stream("127.0.0.1", peer.port, source_address=("127.0.0.2", 0))
            await stream.aclose()
        assert isinstance(peer.client_address, tuple)
        assert peer.client_address[0] == "127.0.0.2"

        with pytest.raises(ValueError, match="source port"):
            await open_stream("127.0.0.1", 25, source_address=("127.0.0.2", 2525))

    trio.run(main)


def test_open_unix_stream(tmp_path: Path) -> None:
    path = tmp_path / "lmtp.sock"

    def script(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(b"over unix")
        read_to_eof(conn, peer)

    async def main() -> None:
        with Peer(script, unix_path=path) as peer:
            stream = await open_unix_stream(str(path), connect_timeout=5)
            assert await stream.receive(5) == b"over unix"
            await stream.send(b"hi", 5)
            await stream.aclose()
        assert peer.received == b"hi"

        with pytest.raises(FileNotFoundError):
            await open_unix_stream(str(tmp_path / "missing.sock"))

    trio.run(main)


def test_aclose_inside_a_cancelled_scope_still_closes() -> None:
    async def main() -> None:
        with Peer(read_to_eof) as peer:
            stream = await open_stream("127.0.0.1", peer.port)
            with trio.CancelScope() as scope:
                scope.cancel()
                await stream.aclose()
            with pytest.raises(OSError, match="already closed"):
                await stream.receive(5)

    trio.run(main)
