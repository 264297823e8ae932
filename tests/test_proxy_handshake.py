"""transports.proxy: the sans-I/O proxy handshakes, their runners, and real proxies on loopback.

Three layers of tests:

* Properties (hypothesis): for every kind of proxy, a generated reply (every
  SOCKS5 address type, arbitrary HTTP headers) followed by arbitrary server
  bytes, cut at arbitrary points into reads: the handshake succeeds, writes
  exactly the request an independent oracle builds, and the leftover plus the
  reads it did not take are exactly the server's bytes.  Refusals and
  malformed replies raise ``ProxyError`` and nothing else, within a bounded
  number of reads.  Proxy URLs round-trip.
* Deterministic tests, one per branch and per error code.
* Integration over real loopback sockets, in every world (asyncio, trio,
  anyio on both backends, blocking): through ``CoalescingProxy`` (the reply
  and the greeting in ONE write) and through real proxies (v2ray for all
  three protocols, danted and tinyproxy for faithful refusals), to a server
  that greets at once and then echoes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import os
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import pytest
import trio
import trustme
from hypothesis import given
from hypothesis import strategies as st

import transports.anyio
import transports.asyncio
import transports.trio
from smtp_core import Connection, Greeting, Read, ServerDisconnected, Stage, Timeouts, Write
from smtp_core import procedures as proc
from tests.proxies import (
    CoalescingProxy,
    ProxyKind,
    ProxyNotInstalledError,
    ProxyServerName,
    running_proxy,
)
from transports import AsyncDriver, SyncDriver
from transports._stream import AsyncByteStream
from transports.proxy import (
    MAX_HTTP_HEAD,
    SOCKS4_REPLIES,
    SOCKS5_REPLIES,
    Handshake,
    PrefixedSocket,
    PrefixedStream,
    Proxy,
    ProxyError,
    handshake,
    handshake_socket,
    open_via_proxy,
)

GREETING = b"220 test ESMTP\r\n"
CHUNK = bytes(range(256)) * 32  # 8 KiB, every byte value
IO_TIMEOUT = 10.0

# ==========================================================================
# a driver for the generator, and oracles
# ==========================================================================


@dataclass
class Feed:
    """Answers the handshake's reads from ``chunks``, then ``b""`` (end of file)."""

    chunks: Iterable[bytes]
    reads: int = 0
    writes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._source = iter(self.chunks)

    def run(self, steps: Handshake) -> bytes:
        """Drive ``steps`` to its end; return the leftover."""
        request = next(steps)
        previous: Write | Read | None = None
        while True:
            assert request.stage is Stage.CONNECT
            if isinstance(request, Write):
                self.writes.append(request.data)
                answer = None
            else:
                if isinstance(previous, Write):  # the first read for a reply
                    assert request.starts_reply
                self.reads += 1
                answer = next(self._source, b"")
            previous = request
            try:
                request = steps.send(answer)
            except StopIteration as stop:
                leftover: bytes = stop.value
                return leftover

    def rest(self) -> bytes:
        """What the handshake did not read."""
        return b"".join(self._source)


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at ``cuts`` into non-empty chunks."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)] if data else []


def _target(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | bytes:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return host.encode("idna")


def socks5_requests(proxy: Proxy, host: str, port: int, method: int) -> list[bytes]:
    """What a SOCKS5 client must write (RFC 1928, RFC 1929), written from the RFC."""
    methods = b"\x00\x02" if proxy.username is not None else b"\x00"
    writes = [b"\x05" + bytes([len(methods)]) + methods]
    if method == 2:
        assert proxy.username is not None
        user, password = proxy.username.encode(), (proxy.password or "").encode()
        writes.append(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
    target = _target(host)
    if isinstance(target, bytes):
        address = b"\x03" + bytes([len(target)]) + target
    elif target.version == 4:
        address = b"\x01" + target.packed
    else:
        address = b"\x04" + target.packed
    writes.append(b"\x05\x01\x00" + address + port.to_bytes(2, "big"))
    return writes


def socks4_request(proxy: Proxy, host: str, port: int) -> bytes:
    user = (proxy.username or "").encode() + b"\x00"
    target = _target(host)
    if isinstance(target, bytes):
        return b"\x04\x01" + port.to_bytes(2, "big") + bytes([0, 0, 0, 1]) + user + target + b"\0"
    return b"\x04\x01" + port.to_bytes(2, "big") + target.packed + user


def http_request(proxy: Proxy, host: str, port: int) -> bytes:
    target = _target(host)
    shown = f"[{target}]" if isinstance(target, ipaddress.IPv6Address) else host
    text = f"CONNECT {shown}:{port} HTTP/1.1\r\nHost: {shown}:{port}\r\n"
    if proxy.username is not None:
        pair = f"{proxy.username}:{proxy.password or ''}".encode()
        text += f"Proxy-Authorization: Basic {base64.b64encode(pair).decode()}\r\n"
    return (text + "\r\n").encode()


def socks5_reply(rep: int = 0, atyp: int = 1, address: bytes = bytes(4), port: int = 0) -> bytes:
    body = bytes([len(address)]) + address if atyp == 3 else address
    return bytes([5, rep, 0, atyp]) + body + port.to_bytes(2, "big")


def socks4_reply(code: int = 0x5A) -> bytes:
    return bytes([0, code]) + bytes(6)


def run_handshake(
    proxy: Proxy | str, host: str, port: int, incoming: bytes | list[bytes]
) -> tuple[bytes, Feed]:
    feed = Feed([incoming] if isinstance(incoming, bytes) else incoming)
    return feed.run(handshake(proxy, host, port)), feed


def refusal(
    proxy: Proxy | str, incoming: bytes | list[bytes], match: str | None = None
) -> ProxyError:
    with pytest.raises(ProxyError, match=match) as caught:
        run_handshake(proxy, "mx.example", 25, incoming)
    return caught.value


# ==========================================================================
# strategies
# ==========================================================================

_LABEL = r"[a-z0-9](?:[a-z0-9_-]{0,12}[a-z0-9])?"
host_names = st.from_regex(rf"{_LABEL}(?:\.{_LABEL}){{0,3}}", fullmatch=True)
ipv4s = st.ip_addresses(v=4).map(str)
ipv6s = st.ip_addresses(v=6).map(str)
destinations = st.one_of(host_names, ipv4s, ipv6s)
ports = st.integers(1, 65535)
server_bytes = st.binary(min_size=0, max_size=300)
_text = st.text(st.characters(codec="utf-8"), max_size=30)
_http_text = st.text(  # no control characters (RFC 7617 §2)
    st.characters(codec="utf-8", min_codepoint=0x20).filter(lambda c: c != "\x7f"), max_size=30
)


@st.composite
def credentials(draw: st.DrawFn, scheme: str) -> tuple[str | None, str | None]:
    if draw(st.booleans()):
        return None, None
    if scheme.startswith("socks4"):
        return draw(_text.filter(lambda s: s and "\0" not in s)), None
    if scheme == "http":
        user = draw(_http_text.filter(lambda s: s and ":" not in s))
        return user, draw(st.none() | _http_text)
    return draw(_text.filter(bool)), draw(st.none() | _text)


@st.composite
def proxies(
    draw: st.DrawFn, schemes: tuple[str, ...] = ("socks5", "socks5h", "socks4", "socks4a", "http")
) -> Proxy:
    scheme = draw(st.sampled_from(schemes))
    user, password = draw(credentials(scheme))
    host = draw(
        st.one_of(host_names, ipv4s, ipv6s, st.sampled_from(["bücher.example", "LOCALHOST"]))
    )
    return Proxy(scheme, host, draw(ports), user, password)  # type: ignore[arg-type]


@st.composite
def cut_points(draw: st.DrawFn, length: int) -> list[int]:
    return draw(st.lists(st.integers(1, max(length - 1, 1)), max_size=12))


# ==========================================================================
# properties: success, whatever the cuts
# ==========================================================================


@st.composite
def socks5_bound(draw: st.DrawFn) -> bytes:
    atyp = draw(st.sampled_from([1, 3, 4]))
    if atyp == 1:
        address = draw(st.binary(min_size=4, max_size=4))
    elif atyp == 4:
        address = draw(st.binary(min_size=16, max_size=16))
    else:
        address = draw(st.binary(min_size=0, max_size=255))
    return socks5_reply(0, atyp, address, draw(st.integers(0, 65535)))


@given(st.data())
def test_socks5_success_keeps_every_server_byte(data: st.DataObject) -> None:
    proxy = data.draw(proxies(("socks5", "socks5h")))
    host, port = data.draw(destinations), data.draw(ports)
    method = data.draw(st.sampled_from([0, 2])) if proxy.username is not None else 0
    server = data.draw(server_bytes)
    incoming = bytes([5, method]) + (b"\x01\x00" if method == 2 else b"")
    incoming += data.draw(socks5_bound()) + server
    chunks = split(incoming, data.draw(cut_points(len(incoming))))
    leftover, feed = run_handshake(proxy, host, port, chunks)
    assert leftover + feed.rest() == server
    assert feed.writes == socks5_requests(proxy, host, port, method)
    assert feed.reads <= len(chunks)


@given(st.data())
def test_socks4_success_keeps_every_server_byte(data: st.DataObject) -> None:
    proxy = data.draw(proxies(("socks4", "socks4a")))
    host = data.draw(ipv4s if proxy.scheme == "socks4" else st.one_of(host_names, ipv4s))
    port, server = data.draw(ports), data.draw(server_bytes)
    reply = bytes([0, 0x5A]) + data.draw(st.binary(min_size=6, max_size=6))  # DSTPORT, DSTIP: any
    incoming = reply + server
    chunks = split(incoming, data.draw(cut_points(len(incoming))))
    leftover, feed = run_handshake(proxy, host, port, chunks)
    assert leftover + feed.rest() == server
    assert feed.writes == [socks4_request(proxy, host, port)]
    assert feed.reads <= len(chunks)


header_names = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}", fullmatch=True)
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF).filter(lambda c: c != "\x7f"), max_size=40
)


@given(st.data())
def test_http_success_keeps_every_server_byte(data: st.DataObject) -> None:
    proxy = data.draw(proxies(("http",)))
    host, port, server = data.draw(destinations), data.draw(ports), data.draw(server_bytes)
    status = data.draw(st.integers(200, 299))
    reason = data.draw(st.none() | header_values)
    minor = data.draw(st.sampled_from("01"))
    line = f"HTTP/1.{minor} {status}" + ("" if reason is None else f" {reason}")
    headers = data.draw(st.lists(st.tuples(header_names, header_values), max_size=8))
    head = "".join(f"{line}\r\n" for line in [line, *(f"{n}: {v}" for n, v in headers)])
    incoming = (head + "\r\n").encode("latin-1") + server
    chunks = split(incoming, data.draw(cut_points(len(incoming))))
    leftover, feed = run_handshake(proxy, host, port, chunks)
    assert leftover + feed.rest() == server
    assert feed.writes == [http_request(proxy, host, port)]
    assert feed.reads <= len(chunks)


# ==========================================================================
# properties: refusals and garbage raise ProxyError, in bounded reads
# ==========================================================================


@given(rep=st.integers(1, 255), cuts=st.lists(st.integers(1, 12)), tail=server_bytes)
def test_socks5_every_refusal_code(rep: int, cuts: list[int], tail: bytes) -> None:
    incoming = b"\x05\x00" + socks5_reply(rep) + tail
    error = refusal("socks5://p:1", split(incoming, cuts))
    assert (error.kind, error.step, error.code) == ("socks5", "connect", rep)
    assert SOCKS5_REPLIES.get(rep, "unassigned reply code") in str(error)


@given(code=st.integers(0, 255).filter(lambda c: c != 0x5A), cuts=st.lists(st.integers(1, 8)))
def test_socks4_every_refusal_code(code: int, cuts: list[int]) -> None:
    error = refusal("socks4a://p:1", split(socks4_reply(code), cuts))
    assert (error.kind, error.step, error.code) == ("socks4", "connect", code)
    assert SOCKS4_REPLIES.get(code, "unknown reply code") in str(error)


@given(
    status=st.integers(100, 999).filter(lambda s: not 200 <= s < 300),
    cuts=st.lists(st.integers(1, 40)),
)
def test_http_every_refusal_status(status: int, cuts: list[int]) -> None:
    incoming = f"HTTP/1.1 {status} No\r\nContent-Length: 3\r\n\r\nabc".encode()
    error = refusal("http://p:1", split(incoming, cuts))
    assert (error.kind, error.step, error.code) == ("http", "connect", status)


def _valid_incoming(scheme: str) -> bytes:
    if scheme.startswith("socks5"):
        return b"\x05\x02\x01\x00" + socks5_reply(0, 3, b"bound.example", 1) + GREETING
    if scheme.startswith("socks4"):
        return socks4_reply() + GREETING
    return b"HTTP/1.1 200 OK\r\nX: y\r\n\r\n" + GREETING


@given(
    scheme=st.sampled_from(["socks5", "socks4a", "http"]),
    edits=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 255)), max_size=4),
    truncate=st.none() | st.integers(0, 60),
    cuts=st.lists(st.integers(1, 80), max_size=8),
)
def test_damaged_replies_raise_only_proxy_error(
    scheme: str, edits: list[tuple[int, int]], truncate: int | None, cuts: list[int]
) -> None:
    incoming = bytearray(_valid_incoming(scheme))
    for at, value in edits:
        if at < len(incoming):
            incoming[at] = value
    if truncate is not None:
        del incoming[truncate:]
    chunks = split(bytes(incoming), cuts)
    user = "user:secret@" if scheme != "socks4a" else "user@"
    feed = Feed(chunks)
    error: ProxyError | None = None
    try:
        feed.run(handshake(f"{scheme}://{user}p:1", "mx.example", 25))
    except ProxyError as exc:
        error = exc
    if error is not None:
        assert error.kind == {"socks5": "socks5", "socks4a": "socks4", "http": "http"}[scheme]
    assert feed.reads <= len(chunks) + 1  # at most one read past the data: the EOF


@given(
    scheme=st.sampled_from(["socks5", "socks4a", "http"]),
    garbage=st.binary(min_size=0, max_size=400),
    cuts=st.lists(st.integers(1, 400), max_size=8),
)
def test_garbage_raises_only_proxy_error(scheme: str, garbage: bytes, cuts: list[int]) -> None:
    chunks = split(garbage, cuts)
    feed = Feed(chunks)
    with contextlib.suppress(ProxyError):
        feed.run(handshake(f"{scheme}://u@p:1", "mx.example", 25))
    assert feed.reads <= len(chunks) + 1


@given(size=st.integers(1, 5000))
def test_http_never_reads_past_its_bound(size: int) -> None:
    # A proxy streaming header bytes for ever: refused once 16 KiB are held.
    endless = itertools.chain([b"HTTP/1.1 200 OK\r\n"], itertools.repeat(b"x" * size))
    feed = Feed(endless)
    with pytest.raises(ProxyError, match="longer than 16384"):
        feed.run(handshake("http://p:1", "mx.example", 25))
    assert feed.reads <= MAX_HTTP_HEAD // size + 2


# ==========================================================================
# properties: URLs
# ==========================================================================


@given(proxies())
def test_url_round_trip(proxy: Proxy) -> None:
    assert Proxy.from_url(proxy.url) == proxy
    assert Proxy.from_url(proxy.url).url == proxy.url
    assert "password=" not in repr(proxy)


@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda s, u, h: f"{s}://{u}{h}",
            st.sampled_from(["socks5", "SOCKS5H", "socks4", "socks4a", "http", "https", ""]),
            st.sampled_from(["", "u@", "u:p@", "u:%zz@", "%ff@", "u:p@x@", "@", ":p@"]),
            st.text(max_size=40),
        ),
    )
)
def test_url_parsing_raises_only_value_error(url: str) -> None:
    with contextlib.suppress(ValueError):
        proxy = Proxy.from_url(url)
        assert Proxy.from_url(proxy.url) == proxy


# ==========================================================================
# deterministic: URLs and Proxy
# ==========================================================================


def test_url_examples() -> None:
    proxy = Proxy.from_url("SOCKS5H://us%40er:p%3As%2Fs@[::1]:1080/")
    assert proxy == Proxy("socks5h", "::1", 1080, "us@er", "p:s/s")
    assert proxy.kind == "socks5"
    assert proxy.url == "socks5h://us%40er:p%3As%2Fs@[::1]:1080"
    assert "p:s/s" not in repr(proxy)
    assert Proxy.from_url("socks4a://bob@proxy.example:1080").username == "bob"
    assert Proxy.from_url("http://u@h:8080") == Proxy("http", "h", 8080, "u", None)
    assert Proxy.from_url("http://u:@h:8080").password == ""
    assert Proxy.from_url("http://u:p@ss@h:1").password == "p@ss"  # the last @ ends userinfo
    assert Proxy.from_url("socks4://10.0.0.1:1").kind == "socks4"
    assert Proxy("socks5", "h", 1).url == "socks5://h:1"
    assert Proxy("socks4a", "h", 1, "bob").url == "socks4a://bob@h:1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("proxy.example:1080", "no scheme"),
        ("https://h:1", "unknown proxy scheme 'https'"),
        ("socks5://h:1/path", "no path"),
        ("socks5://h:1?q", "no path"),
        ("socks5://h:1#f", "no path"),
        ("socks5://u:se/cret@h:1", "percent-encode"),
        ("socks5://h", "needs a port"),
        ("socks5://[::1]", "needs a port"),
        ("socks5://[::1]x1", "needs a port"),
        ("socks5://[::1:1", "unclosed"),
        ("socks5://[nothost]:1", "not an IPv6 address"),
        ("socks5://[fe80::1%25eth0]:1", "not an IPv6 address"),
        ("socks5://::1:1080", "must be in brackets"),
        ("socks5://h:", "bad proxy port ''"),
        ("socks5://h:x1", "bad proxy port"),
        ("socks5://h:123456", "bad proxy port"),
        ("socks5://h:0", "1 to 65535"),
        ("socks5://h:65536", "1 to 65535"),
        ("socks5://:1", "not a valid host name"),
        ("socks5://bad host:1", "not a valid host name"),
        ("socks5://a..b:1", "not a valid host name"),
        ("socks5://u:p%zz@h:1", "bad percent-encoding in the proxy password"),
        ("socks5://%ff:p@h:1", "user name is not UTF-8"),
        ("socks5://:secret@h:1", "user name is empty"),
        ("socks4://u:secret@h:1", "user id only"),
        ("socks4a://n%00l@h:1", "NUL"),
        ("http://a%3Ab:secret@h:1", "cannot contain ':'"),
        ("http://u:se%0Acret@h:1", "control characters"),
        (f"socks5://{'u' * 256}:secret@h:1", "255 UTF-8 bytes"),
        (f"socks5://u:{'é' * 128}@h:1", "255 UTF-8 bytes"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        Proxy.from_url(url)
    assert "secret" not in str(caught.value)  # credentials stay out of messages


def test_proxy_refuses_bad_fields() -> None:
    with pytest.raises(ValueError, match="unknown proxy scheme"):
        Proxy("socks6", "h", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a user name"):
        Proxy("socks5", "h", 1, None, "pw")
    with pytest.raises(TypeError, match="must be str"):
        Proxy("socks5", "h", 1, b"user")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be str"):
        Proxy("socks5", "h", 1, "user", b"pw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="UTF-8"):
        Proxy("socks5", "h", 1, "\udc80")
    with pytest.raises(TypeError, match="host must be str"):
        Proxy("socks5", b"h", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="port must be an int"):
        Proxy("socks5", "h", True)
    with pytest.raises(TypeError, match="port must be an int"):
        Proxy("socks5", "h", "1080")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has a zone"):
        Proxy("socks5", "fe80::1%eth0", 1)
    with pytest.raises(ValueError, match="not a valid host name"):
        Proxy("socks5", "\udc80", 1)
    with pytest.raises(TypeError, match="must be str, not bytes"):
        Proxy.from_url(b"socks5://h:1")  # type: ignore[arg-type]


# ==========================================================================
# deterministic: destinations
# ==========================================================================


@pytest.mark.parametrize(
    ("proxy", "host", "port", "message"),
    [
        ("socks4://p:1", "mx.example", 25, "socks4:// cannot carry the host name"),
        ("socks4://p:1", "::1", 25, "IPv6"),
        ("socks4a://p:1", "::1", 25, "IPv6"),
        ("socks5://p:1", "mx example", 25, "not a valid host name"),
        ("socks5://p:1", "mx\r\n.example", 25, "not a valid host name"),
        ("http://p:1", "[::1]", 25, "not a valid host name"),
        ("http://p:1", "mx.example/x", 25, "not a valid host name"),
        ("socks5://p:1", "a" * 256, 25, "not a valid host name"),
        ("socks5://p:1", "fe80::1%eth0", 25, "has a zone"),
        ("socks5://p:1", "mx.example", 0, "1 to 65535"),
        ("socks5://p:1", "mx.example", 65536, "1 to 65535"),
        ("nonsense", "mx.example", 25, "no scheme"),
    ],
)
def test_bad_destinations_fail_before_any_io(
    proxy: str, host: str, port: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        handshake(proxy, host, port)  # the call, not the first step, refuses


def test_idna_destination_goes_to_the_proxy_encoded() -> None:
    incoming = b"\x05\x00" + socks5_reply() + GREETING
    leftover, feed = run_handshake("socks5://p:1", "bücher.example", 25, incoming)
    assert leftover == GREETING
    name = b"xn--bcher-kva.example"
    assert feed.writes[-1] == b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x19"
    leftover, feed = run_handshake("http://p:1", "bücher.example", 25, b"HTTP/1.1 200 OK\r\n\r\n")
    assert feed.writes[0].startswith(b"CONNECT xn--bcher-kva.example:25 HTTP/1.1\r\n")


# ==========================================================================
# deterministic: SOCKS5
# ==========================================================================


def test_socks5_literal_addresses_and_domain_bound_address() -> None:
    for host, atyp in [
        ("192.0.2.7", b"\x01\xc0\x00\x02\x07"),
        ("2001:db8::1", b"\x04" + ipaddress.IPv6Address("2001:db8::1").packed),
    ]:
        incoming = b"\x05\x00" + socks5_reply(0, 3, b"x" * 255, 9) + GREETING
        leftover, feed = run_handshake("socks5h://p:1", host, 587, incoming)
        assert leftover == GREETING
        assert feed.writes == [b"\x05\x01\x00", b"\x05\x01\x00" + atyp + b"\x02\x4b"]


def test_socks5_one_byte_reads() -> None:
    incoming = b"\x05\x02\x01\x00" + socks5_reply(0, 4, bytes(16), 25) + GREETING
    leftover, feed = run_handshake(
        "socks5://user:pw@p:1", "mx.example", 25, split(incoming, range(len(incoming)))
    )
    assert leftover == b""  # reads stopped at the reply's last byte
    assert feed.rest() == GREETING


def test_socks5_user_without_password_sends_an_empty_one() -> None:
    _, feed = run_handshake("socks5://user@p:1", "h", 25, b"\x05\x02\x01\x00" + socks5_reply())
    assert feed.writes[1] == b"\x01\x04user\x00"


@pytest.mark.parametrize(
    ("proxy", "incoming", "step", "code", "message"),
    [
        ("socks5://p:1", b"\x04\x00", "method", None, "not a SOCKS5 reply to the method selection"),
        (
            "socks5://p:1",
            b"\x05\xff",
            "method",
            0xFF,
            r"none of the methods offered \(no authentication\)",
        ),
        ("socks5://u:p@p:1", b"\x05\xff", "method", 0xFF, "no authentication, username/password"),
        ("socks5://p:1", b"\x05\x02", "method", None, "chose method 0x02, not offered"),
        ("socks5://p:1", b"\x05\x01", "method", None, "chose method 0x01, not offered"),
        (
            "socks5://u:p@p:1",
            b"\x05\x02\x05\x00",
            "auth",
            None,
            "not a SOCKS5 username/password reply",
        ),
        ("socks5://u:p@p:1", b"\x05\x02\x01\x01", "auth", 1, "refused the user name and password"),
        ("socks5://p:1", b"\x05\x00\x04\x00", "connect", None, "not a SOCKS5 reply to CONNECT"),
        (
            "socks5://p:1",
            b"\x05\x00\x05\x00\x00\x02\x00",
            "connect",
            None,
            "unknown address type 0x02",
        ),
        ("socks5://p:1", b"\x05\x00\x05\x09", "connect", 9, "unassigned reply code"),
        ("socks5://p:1", b"", "method", None, "closed the connection during the method reply"),
        ("socks5://u:p@p:1", b"\x05\x02\x01", "auth", None, "during the auth reply"),
        (
            "socks5://p:1",
            b"\x05\x00\x05\x00\x00\x01\x7f\x00",
            "connect",
            None,
            "during the connect reply",
        ),
        (
            "socks5://p:1",
            b"\x05\x00\x05\x00\x00\x03\x05abc",
            "connect",
            None,
            "during the connect reply",
        ),
    ],
)
def test_socks5_errors(
    proxy: str, incoming: bytes, step: str, code: int | None, message: str
) -> None:
    error = refusal(proxy, incoming, message)
    assert (error.kind, error.step, error.code) == ("socks5", step, code)
    assert isinstance(error, ConnectionError)


@pytest.mark.parametrize("rep", sorted(SOCKS5_REPLIES))
def test_socks5_reply_codes_have_their_rfc_meaning(rep: int) -> None:
    error = refusal("socks5://p:1", b"\x05\x00" + bytes([5, rep]))  # cut short after REP
    assert error.code == rep
    assert f"refused CONNECT: {SOCKS5_REPLIES[rep]}" in str(error)


def test_long_bad_replies_are_quoted_briefly() -> None:
    error = refusal("socks5://p:1", b"\x06" + bytes(200))
    assert "(+137 bytes)" in str(error)


def test_a_driver_must_answer_reads_with_bytes() -> None:
    steps = handshake("socks5://p:1", "h", 25)
    assert isinstance(next(steps), Write)
    assert isinstance(steps.send(None), Read)
    with pytest.raises(TypeError, match="answer Read with bytes"):
        steps.send(None)


def test_errors_thrown_in_by_the_driver_pass_through() -> None:
    steps = handshake("http://p:1", "h", 25)
    next(steps)
    steps.send(None)
    with pytest.raises(ConnectionResetError):
        steps.throw(ConnectionResetError("reset"))


# ==========================================================================
# deterministic: SOCKS4 and SOCKS4a
# ==========================================================================


def test_socks4_requests() -> None:
    _, feed = run_handshake("socks4://10.1.2.3:1", "192.0.2.1", 25, socks4_reply())
    assert feed.writes == [b"\x04\x01\x00\x19\xc0\x00\x02\x01\x00"]
    _, feed = run_handshake("socks4a://bob@p:1", "192.0.2.1", 25, socks4_reply())
    assert feed.writes == [b"\x04\x01\x00\x19\xc0\x00\x02\x01bob\x00"]  # no 0.0.0.x for an address
    _, feed = run_handshake("socks4a://p:1", "mx.example", 25, socks4_reply())
    assert feed.writes == [b"\x04\x01\x00\x19\x00\x00\x00\x01\x00mx.example\x00"]


@pytest.mark.parametrize(
    ("incoming", "code", "message"),
    [
        (socks4_reply(0x5B), 0x5B, "rejected or failed"),
        (socks4_reply(0x5C), 0x5C, "cannot connect to identd"),
        (socks4_reply(0x5D), 0x5D, "different user-ids"),
        (socks4_reply(0x00), 0x00, "unknown reply code"),
        (b"\x04\x5a" + bytes(6), None, "not a SOCKS4 reply"),
        (b"\x00\x5a\x00", None, "closed the connection during the connect reply"),
    ],
)
def test_socks4_errors(incoming: bytes, code: int | None, message: str) -> None:
    with pytest.raises(ProxyError, match=message) as caught:
        run_handshake("socks4a://p:1", "mx.example", 25, incoming)
    assert (caught.value.kind, caught.value.step, caught.value.code) == ("socks4", "connect", code)


# ==========================================================================
# deterministic: HTTP CONNECT
# ==========================================================================


def test_http_request_and_leftover() -> None:
    incoming = (
        b"HTTP/1.0 200\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n" + GREETING
    )
    leftover, feed = run_handshake("http://u%C3%A9:p%40ss@p:1", "2001:db8::1", 25, incoming)
    assert leftover == GREETING  # a 2xx reply to CONNECT has no body
    token = base64.b64encode("ué:p@ss".encode()).decode()
    assert feed.writes == [
        b"CONNECT [2001:db8::1]:25 HTTP/1.1\r\nHost: [2001:db8::1]:25\r\n"
        + f"Proxy-Authorization: Basic {token}\r\n\r\n".encode()
    ]


def test_http_connect_to_an_ipv4_address() -> None:
    _, feed = run_handshake("http://p:1", "192.0.2.1", 25, b"HTTP/1.1 200 OK\r\n\r\n")
    assert feed.writes == [b"CONNECT 192.0.2.1:25 HTTP/1.1\r\nHost: 192.0.2.1:25\r\n\r\n"]


def test_http_blank_line_split_across_reads() -> None:
    incoming = b"HTTP/1.1 200 OK\r\n\r\n" + GREETING
    for cut in range(1, len(incoming)):
        leftover, feed = run_handshake("http://p:1", "h", 25, [incoming[:cut], incoming[cut:]])
        assert leftover + feed.rest() == GREETING


@pytest.mark.parametrize(
    ("incoming", "code", "message"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", 407, "check the credentials"),
        (b"HTTP/1.1 403 Forbidden\r\n\r\n", 403, "'HTTP/1.1 403 Forbidden'"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", None, "malformed HTTP status line"),
        (b"SSH-2.0-OpenSSH\r\n", None, "not an HTTP reply"),
        (b"\x05\xff", None, "not an HTTP reply"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", None, "malformed HTTP status line"),
        (b"HTTP/2 200\r\n\r\n", None, "malformed HTTP status line"),
        (b"HTTP/1.1 200 OK\r\n", None, "closed the connection during the connect reply"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * MAX_HTTP_HEAD, None, "longer than 16384"),
        (
            b"HTTP/1.1 200 OK\r\nX: " + b"y" * (MAX_HTTP_HEAD - 23) + b"\r\n\r\n",
            None,
            "longer than 16384",
        ),
    ],
)
def test_http_errors(incoming: bytes, code: int | None, message: str) -> None:
    with pytest.raises(ProxyError, match=message) as caught:
        run_handshake("http://p:1", "mx.example", 25, incoming)
    assert (caught.value.kind, caught.value.step, caught.value.code) == ("http", "connect", code)


def test_http_head_of_exactly_the_limit_is_accepted() -> None:
    head = b"HTTP/1.1 200 OK\r\nX: "
    head += b"y" * (MAX_HTTP_HEAD - len(head) - 4) + b"\r\n\r\n"
    assert len(head) == MAX_HTTP_HEAD
    leftover, _ = run_handshake("http://p:1", "h", 25, head + GREETING)
    assert leftover == GREETING


# ==========================================================================
# the runners, on in-memory and socketpair streams
# ==========================================================================


class ScriptedStream:
    """An AsyncByteStream that answers reads from a list and records the rest."""

    def __init__(self, chunks: list[bytes], *, stall: bool = False) -> None:
        self.chunks = list(chunks)
        self.sent: list[bytes] = []
        self.closed = False
        self.stall = stall
        self.tls: tuple[Any, ...] | None = None
        self.timeouts: list[float | None] = []

    async def receive(self, timeout: float | None) -> bytes:
        self.timeouts.append(timeout)
        if self.stall:
            await asyncio.sleep(3600 if timeout is None else timeout)
            raise TimeoutError("stalled")
        return self.chunks.pop(0) if self.chunks else b""

    async def send(self, data: bytes, timeout: float | None) -> None:
        self.timeouts.append(timeout)
        self.sent.append(data)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> AsyncByteStream:
        self.tls = (context, server_hostname, timeout)
        return self

    async def aclose(self) -> None:
        self.closed = True


def test_open_via_proxy_returns_the_stream_and_leftover() -> None:
    stream = ScriptedStream([b"\x00\x5a" + bytes(6) + GREETING[:5], GREETING[5:]])

    async def main() -> None:
        tunnel, leftover = await open_via_proxy(stream, "socks4a://p:1", "mx.example", 25, None)
        assert tunnel is stream
        assert leftover == GREETING[:5]
        assert stream.timeouts == [None, None]
        assert not stream.closed

    asyncio.run(main())


def test_open_via_proxy_gives_each_call_what_is_left_of_one_budget() -> None:
    stream = ScriptedStream([b"\x05\x00", socks5_reply()])

    async def main() -> None:
        await open_via_proxy(stream, Proxy("socks5", "p", 1), "h", 25, 30.0)

    asyncio.run(main())
    assert len(stream.timeouts) == 4
    seconds = [t for t in stream.timeouts if t is not None]
    assert len(seconds) == 4
    assert all(0 < t <= 30.0 for t in seconds)
    assert seconds == sorted(seconds, reverse=True)


def test_open_via_proxy_closes_the_stream_on_refusal_and_timeout() -> None:
    refused = ScriptedStream([b"\x05\xff"])
    stalled = ScriptedStream([], stall=True)

    async def main() -> None:
        with pytest.raises(ProxyError):
            await open_via_proxy(refused, "socks5://p:1", "h", 25, 5)
        with pytest.raises(TimeoutError):
            await open_via_proxy(stalled, "socks5://p:1", "h", 25, 0.05)

    asyncio.run(main())
    assert refused.closed
    assert stalled.closed


def test_open_via_proxy_closes_the_stream_when_cancelled() -> None:
    stream = ScriptedStream([], stall=True)

    async def main() -> None:
        task = asyncio.create_task(open_via_proxy(stream, "socks5://p:1", "h", 25, None))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert stream.closed


def test_open_via_proxy_budget_spent() -> None:
    class Slow(ScriptedStream):
        async def send(self, data: bytes, timeout: float | None) -> None:
            await asyncio.sleep(0.06)
            await super().send(data, timeout)

    stream = Slow([b"\x05\x00"])

    async def main() -> None:
        with pytest.raises(TimeoutError, match=r"longer than 0\.05 s"):
            await open_via_proxy(stream, "socks5://p:1", "h", 25, 0.05)

    asyncio.run(main())
    assert stream.closed


def test_open_via_proxy_value_error_leaves_the_stream_open() -> None:
    stream = ScriptedStream([])

    async def main() -> None:
        with pytest.raises(ValueError, match="socks4:// cannot"):
            await open_via_proxy(stream, "socks4://p:1", "mx.example", 25, 5)

    asyncio.run(main())
    assert not stream.closed
    assert stream.sent == []


def test_prefixed_stream() -> None:
    inner = ScriptedStream([b"later"])
    prefixed = PrefixedStream(inner, b"first")

    async def main() -> None:
        assert isinstance(prefixed, AsyncByteStream)
        assert prefixed.stream is inner
        assert prefixed.pending == 5
        assert prefixed.ssl_object is None
        assert await prefixed.receive(1.0) == b"first"
        assert prefixed.pending == 0
        assert await prefixed.receive(1.0) == b"later"
        await prefixed.send(b"out", 2.0)
        assert inner.sent == [b"out"]
        context = ssl.create_default_context()
        assert (
            await prefixed.start_tls(context, "mx.example", 3.0) is inner
        )  # the inner stream's own
        assert inner.tls == (context, "mx.example", 3.0)
        await prefixed.aclose()
        assert inner.closed

    asyncio.run(main())


def test_prefixed_stream_runs_tls_over_its_prefix() -> None:
    # TLS started with the prefix unread must see the prefix first: here it is
    # not a ServerHello, so the handshake fails on it without reading more.
    inner = ScriptedStream([b"never read"])
    prefixed = PrefixedStream(inner, b"220 not TLS\r\n")

    async def main() -> None:
        with pytest.raises(ssl.SSLError):
            await prefixed.start_tls(ssl.create_default_context(), "mx.example", 5.0)

    asyncio.run(main())
    assert inner.tls is None  # not the inner stream's own TLS
    assert inner.sent and inner.sent[0][:1] == b"\x16"  # a ClientHello went out
    assert inner.chunks == [b"never read"]


def test_handshake_socket_restores_the_timeout_and_returns_the_leftover() -> None:
    client, proxy_end = socket.socketpair()
    with client, proxy_end:
        client.settimeout(7.0)
        proxy_end.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + GREETING)
        leftover = handshake_socket(client, "http://p:1", "h", 25, 5.0)
        assert leftover == GREETING
        assert client.gettimeout() == 7.0
        assert proxy_end.recv(100).startswith(b"CONNECT h:25 HTTP/1.1\r\n")
        proxy_end.sendall(socks4_reply())
        assert (
            handshake_socket(client, Proxy("socks4a", "p", 1), "h", 25) == b""
        )  # no timeout given


def test_handshake_socket_closes_on_failure() -> None:
    client, proxy_end = socket.socketpair()
    with client, proxy_end:
        proxy_end.sendall(socks4_reply(0x5B))
        with pytest.raises(ProxyError):
            handshake_socket(client, "socks4a://p:1", "h", 25, 5.0)
        assert client.fileno() == -1
    client, proxy_end = socket.socketpair()
    with client, proxy_end:
        with pytest.raises(TimeoutError):
            handshake_socket(client, "socks4a://p:1", "h", 25, 0.05)
        assert client.fileno() == -1


def test_prefixed_socket() -> None:
    a, b = socket.socketpair()
    with a, b:
        prefixed = PrefixedSocket(a, b"0123456789")
        b.sendall(b"abc")
        assert prefixed.socket is a
        assert prefixed.recv(4) == b"0123"
        buffer = bytearray(10)
        assert prefixed.recv_into(buffer, 3) == 3
        assert buffer[:3] == b"456"
        assert prefixed.pending == 3
        with pytest.raises(ValueError, match="3 bytes from the proxy tunnel are unread"):
            prefixed.makefile("rb")
        with pytest.raises(ValueError, match="detach"):
            prefixed.detach()
        assert prefixed.recv_into(buffer) == 3
        assert buffer[:3] == b"789"
        assert prefixed.recv(10) == b"abc"  # the socket's own from now on
        b.sendall(b"def")
        assert prefixed.recv_into(buffer, 10) == 3
        assert prefixed.getpeername() == a.getpeername()  # everything else is the socket's
        with prefixed.makefile("rb") as reader:
            b.sendall(b"line\n")
            assert reader.readline() == b"line\n"
        with PrefixedSocket(a.dup(), b"") as other:
            fd = other.detach()
        os.close(fd)
        with prefixed:
            pass
        assert a.fileno() == -1


def test_prefixed_socket_under_starttls(ca: trustme.CA) -> None:
    # wrap_socket takes a PrefixedSocket once its prefix was read (the greeting).
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.example").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    a, b = socket.socketpair()

    def serve() -> None:
        with server_context.wrap_socket(b, server_side=True) as tls:
            tls.sendall(tls.recv(100))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        prefixed = PrefixedSocket(a, GREETING)
        assert prefixed.recv(8192) == GREETING
        with client_context.wrap_socket(prefixed, server_hostname="mx.example") as tls:  # type: ignore[arg-type]
            tls.sendall(b"hello")
            assert tls.recv(100) == b"hello"
    finally:
        thread.join(IO_TIMEOUT)
        a.close()


# ==========================================================================
# integration: real sockets on loopback
# ==========================================================================


class GreetingEchoServer:
    """Greets each client with GREETING at once, then echoes what it receives.

    With ``context``, speaks TLS first (implicit TLS) and greets inside it.
    """

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.context = context
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self.accepted = 0

    def __enter__(self) -> GreetingEchoServer:
        self._spawn(self._accept_loop)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        for conn in self._conns:
            conn.close()
        self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self._conns.append(conn)
            self._spawn(self._echo, conn)

    def _echo(self, conn: socket.socket) -> None:
        peer = conn
        with contextlib.suppress(OSError):
            conn.settimeout(IO_TIMEOUT)
            if self.context is not None:
                peer = self.context.wrap_socket(conn, server_side=True)  # takes conn's descriptor
                self._conns.append(peer)
            peer.sendall(GREETING)
            while data := peer.recv(65536):
                peer.sendall(data)


@pytest.fixture
def upstream() -> Iterator[GreetingEchoServer]:
    with GreetingEchoServer() as server:
        yield server


@contextlib.contextmanager
def real_proxy(kind: ProxyKind, server: ProxyServerName = "v2ray") -> Iterator[Proxy]:
    try:
        with running_proxy(kind, server=server) as endpoint:
            yield Proxy.from_url(endpoint.url)
    except ProxyNotInstalledError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --------------------------------------------------------------------------
# the worlds: each opens a stream to the proxy, runs the handshake, reads the
# greeting through the SMTP engine, then checks an echo through the tunnel
# --------------------------------------------------------------------------

Opener = Callable[[str, int], Awaitable[AsyncByteStream]]


def _opener(module: Any) -> Opener:
    async def open_stream(host: str, port: int) -> AsyncByteStream:
        stream: AsyncByteStream = await module.open_stream(host, port, connect_timeout=IO_TIMEOUT)
        return stream

    return open_stream


Runner = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]
ASYNC_WORLDS: dict[str, tuple[Runner, Opener]] = {
    "asyncio": (lambda main: asyncio.run(main()), _opener(transports.asyncio)),
    "trio": (trio.run, _opener(transports.trio)),
    "anyio-asyncio": (lambda main: anyio.run(main, backend="asyncio"), _opener(transports.anyio)),
    "anyio-trio": (lambda main: anyio.run(main, backend="trio"), _opener(transports.anyio)),
}
WORLDS = [*ASYNC_WORLDS, "blocking"]


@dataclass
class Outcome:
    leftover: bytes
    greeting: Greeting


async def _through_async(
    opener: Opener, proxy: Proxy, host: str, port: int, *, prefixed: bool
) -> Outcome:
    stream = await opener(proxy.host, proxy.port)
    stream, leftover = await open_via_proxy(stream, proxy, host, port, IO_TIMEOUT)
    conn = Connection()
    if prefixed:
        stream = PrefixedStream(stream, leftover)
    else:
        conn.receive_data(leftover)
    driver = AsyncDriver(stream, timeouts=Timeouts.every(IO_TIMEOUT))
    try:
        greeting = await driver.run(proc.greet(conn))
        tunnel = driver.stream
        assert tunnel is not None
        for _ in range(4):
            await tunnel.send(CHUNK, IO_TIMEOUT)
            echoed = b""
            while len(echoed) < len(CHUNK):
                data = await tunnel.receive(IO_TIMEOUT)
                assert data, "closed mid-echo"
                echoed += data
            assert echoed == CHUNK
    finally:
        await driver.aclose()
    return Outcome(leftover, greeting)


def _through_blocking(proxy: Proxy, host: str, port: int, *, prefixed: bool) -> Outcome:
    sock = socket.create_connection((proxy.host, proxy.port), IO_TIMEOUT)
    leftover = handshake_socket(sock, proxy, host, port, IO_TIMEOUT)
    conn = Connection()
    tunnel: Any = sock
    if prefixed:
        tunnel = PrefixedSocket(sock, leftover)
    else:
        conn.receive_data(leftover)
    driver = SyncDriver(tunnel, timeouts=Timeouts.every(IO_TIMEOUT))
    try:
        greeting = driver.run(proc.greet(conn))
        for _ in range(4):
            tunnel.sendall(CHUNK)
            echoed = b""
            while len(echoed) < len(CHUNK):
                data = tunnel.recv(65536)
                assert data, "closed mid-echo"
                echoed += data
            assert echoed == CHUNK
    finally:
        driver.close()
    return Outcome(leftover, greeting)


def through(world: str, proxy: Proxy, host: str, port: int, *, prefixed: bool = True) -> Outcome:
    """Tunnel to ``host``:``port`` in ``world``; check the greeting and an echo."""
    if world == "blocking":
        outcome = _through_blocking(proxy, host, port, prefixed=prefixed)
    else:
        runner, opener = ASYNC_WORLDS[world]
        box: list[Outcome] = []

        async def main() -> None:
            box.append(await _through_async(opener, proxy, host, port, prefixed=prefixed))

        runner(main)
        outcome = box[0]
    assert outcome.greeting.code == 220
    assert outcome.greeting.lines == (b"test ESMTP",)
    return outcome


def refused_in(world: str, proxy: Proxy, host: str, port: int) -> ProxyError:
    """The ProxyError the handshake raises in ``world``."""
    if world == "blocking":
        sock = socket.create_connection((proxy.host, proxy.port), IO_TIMEOUT)
        with pytest.raises(ProxyError) as caught:
            handshake_socket(sock, proxy, host, port, IO_TIMEOUT)
        assert sock.fileno() == -1
        return caught.value
    runner, opener = ASYNC_WORLDS[world]

    async def main() -> None:
        stream = await opener(proxy.host, proxy.port)
        with pytest.raises(ProxyError) as caught:
            await open_via_proxy(stream, proxy, host, port, IO_TIMEOUT)
        box.append(caught.value)

    box: list[ProxyError] = []
    runner(main)
    return box[0]


# --------------------------------------------------------------------------
# through the coalescing proxy: the reply and the greeting in one write
# --------------------------------------------------------------------------

COALESCING = [
    ("socks5", "socks5"),
    ("socks5", "socks5h"),
    ("socks4a", "socks4a"),
    ("socks4a", "socks4"),
    ("http", "http"),
]


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize(("kind", "scheme"), COALESCING, ids=[s for _, s in COALESCING])
@pytest.mark.parametrize("prefixed", [True, False], ids=["prefixed", "receive_data"])
def test_coalescing_proxy_greeting_intact(
    world: str, kind: ProxyKind, scheme: str, prefixed: bool, upstream: GreetingEchoServer
) -> None:
    host = "127.0.0.1" if scheme == "socks4" else "localhost"
    with CoalescingProxy(kind) as coalescing:
        proxy = Proxy(scheme, coalescing.host, coalescing.port)  # type: ignore[arg-type]
        outcome = through(world, proxy, host, upstream.port, prefixed=prefixed)
    assert outcome.leftover == GREETING  # it came in the reply's read, and was kept
    assert len(coalescing.sent) == 1
    assert coalescing.sent[0].endswith(GREETING)
    assert [(r.host, r.port) for r in coalescing.requests] == [(host, upstream.port)]
    assert coalescing.errors == []


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("kind", ["socks5", "socks4a", "http"])
def test_coalescing_proxy_trickled_reply(
    world: str, kind: ProxyKind, upstream: GreetingEchoServer
) -> None:
    with CoalescingProxy(kind, trickle=True) as coalescing:
        proxy = Proxy.from_url(coalescing.url)
        outcome = through(world, proxy, "127.0.0.1", upstream.port)
    assert outcome.leftover == GREETING
    assert coalescing.errors == []


@pytest.mark.parametrize("bound", ["ipv4", "ipv6", "domain"])
def test_coalescing_socks5_bound_address_types(bound: Any, upstream: GreetingEchoServer) -> None:
    with CoalescingProxy("socks5", socks5_bound=bound) as coalescing:
        outcome = through("asyncio", Proxy.from_url(coalescing.url), "localhost", upstream.port)
    assert outcome.leftover == GREETING


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("kind", ["socks5", "socks4a", "http"])
def test_coalescing_proxy_credentials(
    world: str, kind: ProxyKind, upstream: GreetingEchoServer
) -> None:
    user, password = "us er@x", "p@ss:w/rd%"
    with CoalescingProxy(kind, credentials=(user, password)) as coalescing:
        scheme = coalescing.url.split("://")[0]
        secret = None if kind == "socks4a" else password
        good = Proxy(scheme, coalescing.host, coalescing.port, user, secret)  # type: ignore[arg-type]
        assert Proxy.from_url(good.url) == good  # percent-encoded and decoded on the way
        assert (
            through(world, Proxy.from_url(good.url), "localhost", upstream.port).leftover
            == GREETING
        )
        wrong = Proxy(scheme, coalescing.host, coalescing.port, "nobody", None)  # type: ignore[arg-type]
        error = refused_in(world, wrong, "localhost", upstream.port)
        if kind != "socks4a":
            bad_password = Proxy(scheme, coalescing.host, coalescing.port, user, "wrong")  # type: ignore[arg-type]
            refused_in(world, bad_password, "localhost", upstream.port)
    assert coalescing.requests[0].username == user
    assert coalescing.errors == []
    assert error.kind == Proxy.from_url(coalescing.url).kind
    if kind == "socks5":
        assert (error.step, error.code) == ("auth", 1)
    elif kind == "http":
        assert error.code == 407
    else:
        assert error.code == 0x5B


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize(("kind", "code"), [("socks5", 5), ("socks4a", 0x5B), ("http", 502)])
def test_coalescing_proxy_refusals(
    world: str, kind: ProxyKind, code: int, upstream: GreetingEchoServer
) -> None:
    with CoalescingProxy(kind, refuse=True) as coalescing:
        error = refused_in(world, Proxy.from_url(coalescing.url), "localhost", upstream.port)
    assert error.code == code
    assert upstream.accepted == 0


# --------------------------------------------------------------------------
# implicit TLS through a tunnel: TLS runs over the tunnel, named for the server
# --------------------------------------------------------------------------


@pytest.mark.parametrize("world", WORLDS)
def test_implicit_tls_through_a_tunnel(world: str, ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.example").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with (
        GreetingEchoServer(server_context) as tls_server,
        CoalescingProxy("socks5", first_bytes_timeout=0.1) as coalescing,
    ):
        proxy = Proxy.from_url(coalescing.url)
        if world == "blocking":
            sock = socket.create_connection((proxy.host, proxy.port), IO_TIMEOUT)
            leftover = handshake_socket(sock, proxy, "localhost", tls_server.port, IO_TIMEOUT)
            assert leftover == b""  # a TLS server never speaks first
            with client_context.wrap_socket(sock, server_hostname="mx.example") as tls:
                data = b""
                while len(data) < len(GREETING):
                    data += tls.recv(100)
            assert data == GREETING
            return
        runner, opener = ASYNC_WORLDS[world]

        async def main() -> None:
            stream = await opener(proxy.host, proxy.port)
            stream, leftover = await open_via_proxy(
                stream, proxy, "localhost", tls_server.port, IO_TIMEOUT
            )
            assert leftover == b""
            tls = await PrefixedStream(stream, leftover).start_tls(
                client_context, "mx.example", IO_TIMEOUT
            )
            try:
                conn = Connection(tls_active=True)
                greeting = await AsyncDriver(tls).run(proc.greet(conn))
                assert greeting.lines == (b"test ESMTP",)
                assert tls.ssl_object is not None  # type: ignore[attr-defined]
            finally:
                await tls.aclose()

        runner(main)


# --------------------------------------------------------------------------
# through real proxies
# --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["socks5", "socks4a", "http"])
def v2ray(request: pytest.FixtureRequest) -> Iterator[Proxy]:
    with real_proxy(request.param) as proxy:
        yield proxy


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("dest_host", ["localhost", "127.0.0.1"])
def test_v2ray(world: str, dest_host: str, v2ray: Proxy, upstream: GreetingEchoServer) -> None:
    through(world, v2ray, dest_host, upstream.port)
    assert upstream.accepted == 1


@pytest.mark.parametrize("scheme", ["socks5h", "socks4"])
def test_v2ray_other_schemes(scheme: str, upstream: GreetingEchoServer) -> None:
    with real_proxy("socks5") as proxy:  # v2ray's socks inbound speaks 5, 4 and 4a
        other = Proxy(scheme, proxy.host, proxy.port)  # type: ignore[arg-type]
        through("blocking", other, "127.0.0.1", upstream.port)


def test_v2ray_refusal_is_a_grant_then_a_close() -> None:
    # v2ray answers "granted" before it dials: a refused destination shows up
    # as a tunnel that closes before the greeting, not as a ProxyError.
    with real_proxy("socks5") as proxy:
        sock = socket.create_connection((proxy.host, proxy.port), IO_TIMEOUT)
        leftover = handshake_socket(sock, proxy, "127.0.0.1", closed_port(), IO_TIMEOUT)
        conn = Connection()
        conn.receive_data(leftover)
        driver = SyncDriver(sock, timeouts=Timeouts.every(IO_TIMEOUT))
        try:
            with pytest.raises(ServerDisconnected):
                driver.run(proc.greet(conn))
        finally:
            driver.close()


@pytest.fixture(
    scope="module",
    params=[("socks5", "danted"), ("http", "tinyproxy")],
    ids=["danted", "tinyproxy"],
)
def faithful(request: pytest.FixtureRequest) -> Iterator[Proxy]:
    kind, server = request.param
    with real_proxy(kind, server) as proxy:
        yield proxy


@pytest.mark.parametrize("world", WORLDS)
def test_faithful_proxies_relay_and_refuse(
    world: str, faithful: Proxy, upstream: GreetingEchoServer
) -> None:
    through(world, faithful, "localhost", upstream.port)
    error = refused_in(world, faithful, "127.0.0.1", closed_port())
    if faithful.kind == "socks5":
        assert (error.code, error.step) == (5, "connect")  # danted: connection refused
        assert "connection refused" in str(error)
    else:
        assert error.code == 500  # tinyproxy: "Unable to connect"
