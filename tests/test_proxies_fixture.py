"""Self-test of tests/proxies.py: every proxy kind relays a byte stream end to end.

The destination is a tiny loopback server that greets first (like SMTP) and
then echoes.  The client is the hand-written handshake ``open_tunnel`` on a
plain socket.  The real proxies need their Debian packages: missing binaries
skip these tests locally and FAIL them under CI (``CI`` set).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import TracebackType

import pytest

from tests.proxies import (
    KINDS,
    BoundAddress,
    CoalescingProxy,
    ProxyEndpoint,
    ProxyKind,
    ProxyLike,
    ProxyNotInstalledError,
    ProxyServerName,
    TunnelRefused,
    open_tunnel,
    running_proxy,
)

GREETING = b"220 test ESMTP\r\n"
CHUNK = bytes(range(256)) * 64  # 16 KiB, every byte value
CHUNKS = 8


class GreetingEchoServer:
    """Greets each client with :data:`GREETING`, then echoes what it receives."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self.accepted = 0

    def __enter__(self) -> GreetingEchoServer:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for conn in self._conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        for conn in self._conns:
            conn.close()
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self._conns.append(conn)
            thread = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        try:
            conn.sendall(GREETING)
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)  # answer the client's half-close with ours
        except OSError:
            pass


@pytest.fixture
def upstream() -> Iterator[GreetingEchoServer]:
    with GreetingEchoServer() as server:
        yield server


@contextmanager
def real_proxy(kind: ProxyKind, server: ProxyServerName = "v2ray") -> Iterator[ProxyEndpoint]:
    try:
        with running_proxy(kind, server=server) as proxy:
            yield proxy
    except ProxyNotInstalledError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def relay_round_trip(
    proxy: ProxyLike, dest_host: str, dest_port: int, *, half_close: bool = True
) -> bytes:
    """Tunnel to the echo server; check the greeting and an echoed stream.

    With *half_close*, also check that our SHUT_WR travels to the server and
    its answering SHUT_WR back (v2ray takes about a second to pass it on, so
    its tests skip this).  Returns the bytes that came in the same reads as
    the proxy's reply.
    """
    sock, leftover = open_tunnel(proxy, dest_host, dest_port)
    with sock:
        received = leftover
        while len(received) < len(GREETING):
            chunk = sock.recv(65536)
            assert chunk, f"closed after {received!r}"
            received += chunk
        assert received == GREETING
        for _ in range(CHUNKS):
            sock.sendall(CHUNK)
            echoed = b""
            while len(echoed) < len(CHUNK):
                chunk = sock.recv(65536)
                assert chunk, "closed mid-echo"
                echoed += chunk
            assert echoed == CHUNK
        if half_close:
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1) == b""
    return leftover


# --------------------------------------------------------------------------
# the real proxy
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dest_host", ["localhost", "127.0.0.1"])
def test_real_proxy_relays(kind: ProxyKind, dest_host: str, upstream: GreetingEchoServer) -> None:
    with real_proxy(kind) as proxy:
        assert proxy.url == f"{kind}://127.0.0.1:{proxy.port}"
        relay_round_trip(proxy, dest_host, upstream.port, half_close=False)
        assert upstream.accepted == 1
    assert not accepts(proxy.host, proxy.port)  # stopped, port closed


@pytest.mark.parametrize(
    ("kind", "server"), [("socks5", "danted"), ("http", "tinyproxy")], ids=["danted", "tinyproxy"]
)
def test_faithful_servers_relay_and_refuse(
    kind: ProxyKind, server: ProxyServerName, upstream: GreetingEchoServer
) -> None:
    with real_proxy(kind, server) as proxy:
        relay_round_trip(proxy, "localhost", upstream.port)
        with socket.socket() as closed:  # a port nobody listens on
            closed.bind(("127.0.0.1", 0))
            closed_port = closed.getsockname()[1]
            with pytest.raises(TunnelRefused) as refused:
                open_tunnel(proxy, "127.0.0.1", closed_port)
    if kind == "socks5":
        assert refused.value.reply[:2] == b"\x05\x05"  # connection refused
    else:
        assert refused.value.reply.startswith(b"HTTP/1.1 500 ")


# --------------------------------------------------------------------------
# the coalescing proxy
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_coalescing_proxy_puts_greeting_in_the_reply_read(
    kind: ProxyKind, upstream: GreetingEchoServer
) -> None:
    with CoalescingProxy(kind) as proxy:
        leftover = relay_round_trip(proxy, "localhost", upstream.port)
    assert leftover == GREETING  # arrived in the same read as the reply
    assert len(proxy.sent) == 1
    assert proxy.sent[0].endswith(GREETING)
    assert len(proxy.sent[0]) > len(GREETING)
    assert [(r.kind, r.host, r.port) for r in proxy.requests] == [
        (kind, "localhost", upstream.port)
    ]
    assert proxy.errors == []


@pytest.mark.parametrize("kind", KINDS)
def test_coalescing_proxy_trickles_its_reply(kind: ProxyKind, upstream: GreetingEchoServer) -> None:
    with CoalescingProxy(kind, trickle=True) as proxy:
        relay_round_trip(proxy, "127.0.0.1", upstream.port)
    assert len(proxy.sent[0]) == 1 + len(GREETING)  # the reply's last byte + greeting
    assert proxy.errors == []


@pytest.mark.parametrize("bound", ["ipv4", "ipv6", "domain"])
def test_coalescing_socks5_bound_address_types(
    bound: BoundAddress, upstream: GreetingEchoServer
) -> None:
    with CoalescingProxy("socks5", socks5_bound=bound) as proxy:
        assert relay_round_trip(proxy, "127.0.0.1", upstream.port) == GREETING
    assert proxy.errors == []


@pytest.mark.parametrize("kind", KINDS)
def test_coalescing_proxy_credentials(kind: ProxyKind, upstream: GreetingEchoServer) -> None:
    with CoalescingProxy(kind, credentials=("user", "secret")) as proxy:
        sock, leftover = open_tunnel(
            proxy, "localhost", upstream.port, credentials=("user", "secret")
        )
        sock.close()
        assert leftover == GREETING
        if kind != "socks4a":  # SOCKS4 carries a user id only
            with pytest.raises(TunnelRefused):
                open_tunnel(proxy, "localhost", upstream.port, credentials=("user", "wrong"))
        with pytest.raises(TunnelRefused):
            open_tunnel(proxy, "localhost", upstream.port)
    assert proxy.requests[0].username == "user"
    assert proxy.errors == []


@pytest.mark.parametrize("kind", KINDS)
def test_coalescing_proxy_refuses(kind: ProxyKind, upstream: GreetingEchoServer) -> None:
    with CoalescingProxy(kind, refuse=True) as proxy:
        with pytest.raises(TunnelRefused):
            open_tunnel(proxy, "localhost", upstream.port)
    assert upstream.accepted == 0
    assert len(proxy.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dest_host", ["192.0.2.1", "mail.example.invalid"])
def test_coalescing_proxy_dials_loopback_only(kind: ProxyKind, dest_host: str) -> None:
    # Refused before any connection or DNS query is attempted.
    with CoalescingProxy(kind) as proxy:
        with pytest.raises(TunnelRefused) as refused:
            open_tunnel(proxy, dest_host, 25)
    if kind == "socks5":
        assert refused.value.reply[:2] == b"\x05\x02"  # not allowed by ruleset
    elif kind == "http":
        assert refused.value.reply.startswith(b"HTTP/1.1 403 ")
    assert proxy.errors == []
