"""Proxies: SOCKS5, SOCKS4a and HTTP CONNECT tunnels, as a sans-I/O handshake and two runners.

Theory of operation.  A tunnel is opened in three steps: connect to the
proxy (each world's ``open_stream``, or ``socket.create_connection``), run the
proxy's handshake over that connection, then speak SMTP through it.  The
handshake is a generator in the style of the engine's procedures
(``smtp_core._procedures``): it yields :class:`smtp_core.Write` and
:class:`smtp_core.Read` requests (stage ``CONNECT``), is sent the bytes each
read gave, and returns the LEFTOVER: the bytes that came after the proxy's
reply in the same reads.  Those are the server's first bytes (its 220
greeting, often in the very segment that carries the reply) and must reach
the SMTP engine before anything read later, either fed to
``Connection.receive_data`` at once or replayed by :class:`PrefixedStream` /
:class:`PrefixedSocket`.  Losing them is what python-socks does after an HTTP
CONNECT reply (one ``recv`` of 64 KiB, the rest dropped), and why this module
exists.  Reading past the reply is therefore harmless: nothing read is ever
thrown away, so the handshake reads whatever a read gives.

Memory is bounded: a SOCKS reply is at most 262 bytes, and the handshake reads
only while it lacks bytes, so it holds that plus one read at most; an HTTP
reply head over :data:`MAX_HTTP_HEAD` bytes is refused.  Every read gives at
least one byte or ends the handshake (``b""``: the proxy closed), so the
number of reads is bounded too.

Nothing here resolves a name.  ``socks5://`` and ``socks5h://`` both send the
destination's host name to the proxy, which resolves it (the behaviour curl
calls ``socks5h``): a local lookup would leak the destination to the local
resolver and defeat a proxy used for privacy.  ``socks4://`` can carry only an
IPv4 address, so it refuses a host name rather than look it up; ``socks4a://``
carries the name.

References: RFC 1928 (SOCKS5), RFC 1929 (its username/password method), the
SOCKS4 protocol and its SOCKS4A extension (Ying-Da Lee, NEC), RFC 9110 §9.3.6
(CONNECT) and §11.7 (Proxy-Authorization), RFC 7617 (Basic), RFC 3986 §3.2
(the authority of a URL).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import ssl
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal, cast, final
from urllib.parse import quote, unquote

from smtp_core import Read, Stage, Write

from ._logging import log
from ._stream import AsyncByteStream
from .tls import TLSStream

__all__ = [
    "MAX_HTTP_HEAD",
    "READ_SIZE",
    "SCHEMES",
    "SOCKS4_REPLIES",
    "SOCKS5_REPLIES",
    "Handshake",
    "PrefixedSocket",
    "PrefixedStream",
    "Proxy",
    "ProxyError",
    "ProxyKind",
    "Scheme",
    "handshake",
    "handshake_socket",
    "open_via_proxy",
]

Scheme = Literal["socks5", "socks5h", "socks4", "socks4a", "http"]
#: The protocol a scheme speaks: what :attr:`ProxyError.kind` names.
ProxyKind = Literal["socks5", "socks4", "http"]
SCHEMES: dict[str, ProxyKind] = {
    "socks5": "socks5",
    "socks5h": "socks5",
    "socks4": "socks4",
    "socks4a": "socks4",
    "http": "http",
}
#: The longest HTTP reply head (status line and headers, up to and including
#: the blank line) accepted from a proxy.  A CONNECT reply is a few dozen bytes;
#: the bound keeps a hostile or confused peer from growing the buffer.
MAX_HTTP_HEAD = 16 * 1024
#: Bytes asked of a blocking socket per read (as ``transports.sync.READ_SIZE``).
READ_SIZE = 8192

#: What the handshake generator yields, is sent and returns (the leftover).
Handshake = Generator[Write | Read, "bytes | None", bytes]

_READ_FIRST = Read(starts_reply=True, stage=Stage.CONNECT)
_READ_MORE = Read(starts_reply=False, stage=Stage.CONNECT)
_SHOWN = 64  # bytes of a bad reply quoted in a message

# A host name as a proxy receives it: letters, digits, hyphens, underscores
# (SRV-style and some internal names carry them), dots, an optional final dot.
# Anything else (spaces, CR, LF, "/", "@", NUL) could split an HTTP request
# line or a SOCKS4a string, so it is refused before a byte is written.
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
# The SP before an empty reason is optional here: a reply without it still
# says what it means.
_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3})(?: [^\r\n]*)?\r\n")


class ProxyError(ConnectionError):
    """The proxy refused the tunnel, broke its protocol, or closed during the handshake.

    Attributes:
        kind: ``"socks5"``, ``"socks4"`` or ``"http"``: the protocol spoken
            (``socks5h`` is ``"socks5"``, ``socks4a`` is ``"socks4"``).
        step: ``"method"`` (SOCKS5 method selection), ``"auth"`` (SOCKS5
            username/password) or ``"connect"`` (the CONNECT request).
        code: the number the proxy answered with, when it answered one: the
            SOCKS5 REP field, or 0xFF for "no acceptable methods", or the
            RFC 1929 status; the SOCKS4 CD field; the HTTP status code.
            ``None`` for a malformed reply or a close.
    """

    def __init__(
        self, message: str, *, kind: ProxyKind, step: str = "connect", code: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind: ProxyKind = kind
        self.step = step
        self.code = code


# RFC 1928 §6, the REP field of a reply.
SOCKS5_REPLIES = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}
# SOCKS4, the CD field of a reply (0x5A is "request granted").
SOCKS4_REPLIES = {
    0x5B: "request rejected or failed",
    0x5C: "request rejected because the SOCKS server cannot connect to identd on the client",
    0x5D: "request rejected because the client program and identd report different user-ids",
}
_SOCKS4_GRANTED = 0x5A
# RFC 1928 §3, METHOD values.
_NO_AUTH, _USER_PASS, _NO_ACCEPTABLE = 0x00, 0x02, 0xFF
# RFC 1928 §5, ATYP values; the fixed address lengths.
_ATYP_IPV4, _ATYP_DOMAIN, _ATYP_IPV6 = 0x01, 0x03, 0x04
_ADDRESS_LENGTHS = {_ATYP_IPV4: 4, _ATYP_IPV6: 16}


# --------------------------------------------------------------------------
# the proxy's address
# --------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Proxy:
    """Where a proxy listens, which protocol it speaks, and the credentials it wants.

    Build one from a URL with :meth:`from_url`; :attr:`url` gives it back.
    The password is kept out of ``repr``.

    Attributes:
        scheme: ``socks5`` / ``socks5h`` (the same here: the proxy resolves the
            destination's name), ``socks4`` (IPv4 destinations only),
            ``socks4a``, or ``http`` (HTTP CONNECT).
        host: the proxy's host name or IP address (IPv6 without brackets).
        port: its TCP port.
        username: SOCKS5 and HTTP: the user name; SOCKS4: the user id.
        password: SOCKS5 and HTTP only.  ``None`` with a user name is sent as
            an empty password.

    Raises:
        ValueError: an unknown scheme, a bad host or port, a password without
            a user name, a password for SOCKS4, credentials SOCKS5 cannot
            carry (over 255 UTF-8 bytes), a colon in an HTTP user name or a
            control character in HTTP credentials (RFC 7617 §2), a NUL in a
            SOCKS4 user id.
    """

    scheme: Scheme
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown proxy scheme {self.scheme!r} (use one of {_scheme_list()})")
        _check_host(self.host, "proxy")
        _check_port(self.port, "proxy")
        user, password = self.username, self.password
        if password is not None and user is None:
            raise ValueError("a proxy password needs a user name")
        if user is None:
            return
        if not isinstance(user, str) or not isinstance(password, str | None):
            raise TypeError("proxy credentials must be str")
        if not user:
            raise ValueError("the proxy user name is empty (leave the credentials out instead)")
        for value in (user, password or ""):
            try:
                value.encode()
            except UnicodeEncodeError:
                raise ValueError("proxy credentials must be encodable as UTF-8") from None
        kind = self.kind
        if kind == "socks4":
            if password is not None:
                raise ValueError("SOCKS4 carries a user id only, not a password")
            if "\0" in user:
                raise ValueError("a SOCKS4 user id cannot contain NUL")
        elif kind == "socks5":
            # RFC 1929 §2: ULEN and PLEN are one octet each.
            if len(user.encode()) > 255 or len((password or "").encode()) > 255:
                raise ValueError("SOCKS5 credentials are limited to 255 UTF-8 bytes each")
        else:
            if ":" in user:
                raise ValueError("an HTTP Basic user name cannot contain ':' (RFC 7617 §2)")
            if _CONTROL.search(user + (password or "")):
                raise ValueError("HTTP Basic credentials cannot contain control characters")

    @property
    def kind(self) -> ProxyKind:
        """The protocol spoken: ``"socks5"``, ``"socks4"`` or ``"http"``."""
        return SCHEMES[self.scheme]

    @property
    def url(self) -> str:
        """The proxy as a URL, credentials percent-encoded: ``Proxy.from_url(p.url) == p``.

        It includes the password: do not log it.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        userinfo = ""
        if self.username is not None:
            userinfo = quote(self.username, safe="")
            if self.password is not None:
                userinfo += ":" + quote(self.password, safe="")
            userinfo += "@"
        return f"{self.scheme}://{userinfo}{host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        """Parse ``scheme://[user[:password]@]host:port[/]``.

        The scheme is case-insensitive; credentials are percent-decoded as
        UTF-8 (so ``@``, ``:`` and ``/`` in them must be written ``%40``,
        ``%3A``, ``%2F``); an IPv6 host is written in brackets; the port is
        required.

        Raises:
            ValueError: anything else, with the password left out of the message.
        """
        if not isinstance(url, str):
            raise TypeError(f"a proxy URL must be str, not {type(url).__name__}")
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ValueError(f"not a proxy URL (no scheme://): {_redact(url)!r}")
        scheme = scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError(f"unknown proxy scheme {scheme!r} (use one of {_scheme_list()})")
        end = len(rest)
        for stop in "/?#":
            found = rest.find(stop)
            if found >= 0:
                end = min(end, found)
        authority, tail = rest[:end], rest[end:]
        if tail not in ("", "/"):
            raise ValueError(
                f"a proxy URL has no path, query or fragment: {_redact(url)!r} "
                "(percent-encode '/', '?' and '#' in credentials)"
            )
        userinfo, at, hostport = authority.rpartition("@")
        host, port = _split_host_port(hostport, url)
        username = password = None
        if at:
            user_text, colon, password_text = userinfo.partition(":")
            username = _unquote(user_text, "user name")
            password = _unquote(password_text, "password") if colon else None
        return cls(cast(Scheme, scheme), host, port, username, password)


def _scheme_list() -> str:
    return ", ".join(f"{name}://" for name in SCHEMES)


def _redact(url: str) -> str:
    """``url`` with its credentials (everything before its last ``@``) hidden, for messages."""
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")  # the last one: a password with a raw "/" or "@" is hidden too
    if not sep or at < 0:
        return url
    return f"{scheme}://***@{rest[at + 1 :]}"


def _unquote(text: str, what: str) -> str:
    if _BAD_PERCENT.search(text):
        raise ValueError(f"bad percent-encoding in the proxy {what} ('%' must start %XX)")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"the proxy {what} is not UTF-8 once percent-decoded") from None


def _split_host_port(hostport: str, url: str) -> tuple[str, int]:
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise ValueError(f"unclosed '[' in the proxy URL {_redact(url)!r}")
        host, after = hostport[1:close], hostport[close + 1 :]
        if not _is_ipv6(host):
            raise ValueError(f"not an IPv6 address between brackets: {host!r}")
        if not after.startswith(":"):
            raise ValueError(f"the proxy URL {_redact(url)!r} needs a port")
        port_text = after[1:]
    else:
        host, colon, port_text = hostport.rpartition(":")
        if not colon:
            raise ValueError(f"the proxy URL {_redact(url)!r} needs a port")
        if ":" in host:
            raise ValueError(f"an IPv6 proxy address must be in brackets: {_redact(url)!r}")
    if not _PORT.fullmatch(port_text):
        raise ValueError(f"bad proxy port {port_text!r}")
    return host, int(port_text)


def _is_ipv6(host: str) -> bool:
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return address.scope_id is None  # a zone ("%eth0") means nothing to a proxy


def _check_port(port: object, what: str) -> None:
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"the {what} port must be an int, not {type(port).__name__}")
    if not 0 < port < 65536:
        raise ValueError(f"the {what} port must be 1 to 65535, not {port}")


def _check_host(host: object, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | bytes:
    """The IP address ``host`` is, or its name as ASCII bytes (IDNA for a non-ASCII name).

    Raises:
        ValueError: neither an IP address nor a host name a proxy can carry.
    """
    if not isinstance(host, str):
        raise TypeError(f"the {what} host must be str, not {type(host).__name__}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            raise ValueError(f"the {what} address {host!r} has a zone, which a proxy cannot use")
        return address
    try:
        name = host.encode("idna")
    except UnicodeError:
        raise ValueError(f"the {what} host {host!r} is not a valid host name") from None
    if not _HOST_NAME.fullmatch(name.decode("ascii")) or len(name) > 255:
        raise ValueError(f"the {what} host {host!r} is not a valid host name or IP address")
    return name


# --------------------------------------------------------------------------
# the handshake, sans I/O
# --------------------------------------------------------------------------


def handshake(proxy: Proxy | str, host: str, port: int) -> Handshake:
    """The handshake that asks ``proxy`` for a tunnel to ``host``:``port``, as a generator.

    It yields ``Write(data)`` (answer ``None``) and ``Read()`` (answer the
    bytes read, ``b""`` at end of file), both of stage ``CONNECT``, and
    returns the leftover: the bytes read past the proxy's reply, which begin
    the tunnelled stream.  The arguments are checked now, before the
    generator exists, so a bad destination fails before any I/O.

    Returns:
        The generator.  Its return value (``StopIteration.value``) is the
        leftover, possibly ``b""``.

    Raises:
        ValueError: ``proxy`` is a bad URL; ``host`` is neither an IP address
            nor a host name; a host name or an IPv6 address for ``socks4://``
            (which would need a local lookup), an IPv6 address for
            ``socks4a://``; ``port`` out of range.
        ProxyError: (from the generator) the proxy refused, answered
            something malformed, or closed.  Errors the driver throws in
            pass through.
    """
    if isinstance(proxy, str):
        proxy = Proxy.from_url(proxy)
    target = _check_host(host, "destination")
    _check_port(port, "destination")
    port_bytes = port.to_bytes(2, "big")
    if proxy.kind == "socks5":
        return _socks5(proxy, target, port_bytes)
    if proxy.kind == "socks4":
        if isinstance(target, ipaddress.IPv6Address):
            raise ValueError(f"SOCKS4 cannot carry an IPv6 destination ({host}): use socks5://")
        if isinstance(target, bytes) and proxy.scheme == "socks4":
            raise ValueError(
                f"socks4:// cannot carry the host name {host!r}: it would have to be resolved "
                "here, outside the proxy; use socks4a:// or socks5://, or an IPv4 address"
            )
        return _socks4(proxy, target, port_bytes)
    if isinstance(target, bytes):
        authority = target.decode("ascii")
    elif isinstance(target, ipaddress.IPv6Address):
        authority = f"[{target}]"
    else:
        authority = str(target)
    return _http(proxy, f"{authority}:{port}")


class _Reader:
    """The bytes read so far, and the sub-generator that reads more."""

    def __init__(self, kind: ProxyKind) -> None:
        self.kind: ProxyKind = kind
        self.buffer = bytearray()
        self.step = "method"
        self._first = True

    def expect(self, step: str) -> None:
        """A new reply is due: its first read starts its deadline (``Read.starts_reply``)."""
        self.step = step
        self._first = True

    def at_least(self, count: int) -> Generator[Read, bytes | None, None]:
        """Read until ``count`` bytes are buffered."""
        buffer = self.buffer
        while len(buffer) < count:
            data = yield _READ_FIRST if self._first else _READ_MORE
            self._first = False
            if data is None:
                raise TypeError("a driver must answer Read with bytes (b'' at end of file)")
            if not data:
                raise self.error(f"proxy closed the connection during the {self.step} reply")
            buffer += data

    def take(self, count: int) -> None:
        """Forget the first ``count`` bytes: a reply fully judged."""
        del self.buffer[:count]

    def error(self, message: str, code: int | None = None) -> ProxyError:
        """A :class:`ProxyError` for the current step, quoting the start of the buffer."""
        shown = bytes(self.buffer[:_SHOWN])
        more = f" (+{len(self.buffer) - _SHOWN} bytes)" if len(self.buffer) > _SHOWN else ""
        return ProxyError(f"{message}: {shown!r}{more}", kind=self.kind, step=self.step, code=code)


def _socks5(
    proxy: Proxy, target: ipaddress.IPv4Address | ipaddress.IPv6Address | bytes, port: bytes
) -> Handshake:
    reader = _Reader("socks5")
    # RFC 1928 §3: VER NMETHODS METHODS.  With credentials both methods are
    # offered: the proxy may not need them.
    methods = bytes([_NO_AUTH, _USER_PASS]) if proxy.username is not None else bytes([_NO_AUTH])
    yield Write(bytes([5, len(methods)]) + methods, Stage.CONNECT)
    reader.expect("method")
    yield from reader.at_least(2)
    if reader.buffer[0] != 5:
        raise reader.error("not a SOCKS5 reply to the method selection")
    method = reader.buffer[1]
    if method == _NO_ACCEPTABLE:
        offered = "no authentication" + (", username/password" if len(methods) > 1 else "")
        raise reader.error(f"SOCKS5 proxy accepts none of the methods offered ({offered})", method)
    if method not in methods:
        raise reader.error(f"SOCKS5 proxy chose method {method:#04x}, not offered")
    reader.take(2)
    if method == _USER_PASS:
        assert proxy.username is not None
        # RFC 1929 §2: VER=1 ULEN UNAME PLEN PASSWD; the reply is VER STATUS.
        user, password = proxy.username.encode(), (proxy.password or "").encode()
        yield Write(bytes([1, len(user)]) + user + bytes([len(password)]) + password, Stage.CONNECT)
        reader.expect("auth")
        yield from reader.at_least(2)
        if reader.buffer[0] != 1:
            raise reader.error("not a SOCKS5 username/password reply")
        if reader.buffer[1] != 0:
            raise reader.error("SOCKS5 proxy refused the user name and password", reader.buffer[1])
        reader.take(2)
    # RFC 1928 §4: VER CMD=CONNECT RSV ATYP DST.ADDR DST.PORT.  A name goes to
    # the proxy as it is (ATYP 3): the proxy resolves it.
    if isinstance(target, bytes):
        address = bytes([_ATYP_DOMAIN, len(target)]) + target
    elif isinstance(target, ipaddress.IPv4Address):
        address = bytes([_ATYP_IPV4]) + target.packed
    else:
        address = bytes([_ATYP_IPV6]) + target.packed
    yield Write(b"\x05\x01\x00" + address + port, Stage.CONNECT)
    # RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT.  VER and REP are
    # judged first, so a refusal cut short after them still names its code.
    # Five bytes tell the length: the fixed head plus a domain's length octet
    # (or an address's first byte).  RSV is not checked: it is reserved, and
    # nothing depends on it.
    reader.expect("connect")
    yield from reader.at_least(2)
    head = reader.buffer
    if head[0] != 5:
        raise reader.error("not a SOCKS5 reply to CONNECT")
    if head[1] != 0:
        meaning = SOCKS5_REPLIES.get(head[1], "unassigned reply code")
        raise reader.error(f"SOCKS5 proxy refused CONNECT: {meaning}", head[1])
    yield from reader.at_least(5)
    atyp = head[3]
    if atyp == _ATYP_DOMAIN:
        length = 4 + 1 + head[4] + 2
    elif atyp in _ADDRESS_LENGTHS:
        length = 4 + _ADDRESS_LENGTHS[atyp] + 2
    else:
        raise reader.error(f"SOCKS5 reply has an unknown address type {atyp:#04x}")
    yield from reader.at_least(length)
    reader.take(length)  # the bound address is of no use to a client that CONNECTs
    return bytes(reader.buffer)


def _socks4(proxy: Proxy, target: ipaddress.IPv4Address | bytes, port: bytes) -> Handshake:
    reader = _Reader("socks4")
    user_id = (proxy.username or "").encode() + b"\0"
    if isinstance(target, bytes):
        # SOCKS4A: DSTIP 0.0.0.x (x != 0) says a NUL-terminated name follows
        # the user id, for the proxy to resolve.
        request = b"\x04\x01" + port + b"\0\0\0\x01" + user_id + target + b"\0"
    else:
        request = b"\x04\x01" + port + target.packed + user_id
    yield Write(request, Stage.CONNECT)
    # The reply: VN=0 CD DSTPORT DSTIP, 8 bytes.
    reader.expect("connect")
    yield from reader.at_least(8)
    if reader.buffer[0] != 0:
        raise reader.error("not a SOCKS4 reply")
    code = reader.buffer[1]
    if code != _SOCKS4_GRANTED:
        meaning = SOCKS4_REPLIES.get(code, "unknown reply code")
        raise reader.error(f"SOCKS4 proxy refused CONNECT: {meaning}", code)
    reader.take(8)
    return bytes(reader.buffer)


def _http(proxy: Proxy, authority: str) -> Handshake:
    reader = _Reader("http")
    # RFC 9110 §9.3.6: the request target of CONNECT is host:port; Host
    # repeats it.  Every character was checked, so no line can be split.
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.username is not None:
        secret = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append(f"Proxy-Authorization: Basic {base64.b64encode(secret).decode('ascii')}")
    yield Write("\r\n".join([*lines, "", ""]).encode("ascii"), Stage.CONNECT)
    buffer = reader.buffer
    searched = 0  # the blank line was not found before this offset
    reader.expect("connect")
    while (end := buffer.find(b"\r\n\r\n", max(searched - 3, 0))) < 0:
        if not b"HTTP/".startswith(buffer[:5]):  # say so now, not after 16 KiB or a timeout
            raise reader.error("not an HTTP reply")
        if len(buffer) >= MAX_HTTP_HEAD:
            raise reader.error(f"HTTP reply head longer than {MAX_HTTP_HEAD} bytes")
        searched = len(buffer)
        yield from reader.at_least(searched + 1)
    head_length = end + 4
    if head_length > MAX_HTTP_HEAD:
        raise reader.error(f"HTTP reply head longer than {MAX_HTTP_HEAD} bytes")
    status = _STATUS_LINE.match(buffer)
    if status is None:
        raise reader.error("malformed HTTP status line")
    code = int(status.group(1))
    if not 200 <= code < 300:
        line = bytes(status.group(0)).rstrip(b"\r\n").decode("latin-1")
        hint = " (check the credentials in the proxy URL)" if code == 407 else ""
        raise ProxyError(
            f"HTTP proxy refused CONNECT: {line!r}{hint}", kind="http", step="connect", code=code
        )
    # A 2xx reply to CONNECT has no body, whatever Content-Length or
    # Transfer-Encoding say (RFC 9110 §9.3.6): the tunnel starts right here.
    reader.take(head_length)
    return bytes(buffer)


# --------------------------------------------------------------------------
# the runners
# --------------------------------------------------------------------------


def _left(deadline: float | None, timeout: float | None, proxy: Proxy) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"the {proxy.kind} proxy handshake took longer than {timeout} s")
    return left


async def open_via_proxy(
    stream: AsyncByteStream, proxy: Proxy | str, host: str, port: int, timeout: float | None
) -> tuple[AsyncByteStream, bytes]:
    """Ask the proxy at the other end of ``stream`` for a tunnel to ``host``:``port``.

    ``stream`` must be connected to the proxy and carry nothing yet.
    ``timeout`` (seconds, ``None``: no limit) bounds the whole handshake,
    however many reads it takes.

    Returns:
        ``(stream, leftover)``: the same stream, now a tunnel to the server,
        and the server's bytes that came with the proxy's reply.  Give the
        leftover to the engine before anything read later:
        ``conn.receive_data(leftover)``, or read through
        ``PrefixedStream(stream, leftover)``.

    Raises:
        ValueError: as :func:`handshake`; nothing was sent and the stream is
            left open.
        ProxyError: the proxy refused or broke its protocol.
        TimeoutError: the handshake took longer than ``timeout``.
        OSError: from the stream.

    On any error but ``ValueError`` (a cancellation included) the stream is closed.
    """
    proxy = Proxy.from_url(proxy) if isinstance(proxy, str) else proxy
    steps = handshake(proxy, host, port)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        request = next(steps)
        while True:
            seconds = _left(deadline, timeout, proxy)
            if isinstance(request, Write):
                await stream.send(request.data, seconds)
                answer = None
            else:
                answer = await stream.receive(seconds)
            request = steps.send(answer)
    except StopIteration as stop:
        leftover: bytes = stop.value
        log.info(
            "%s proxy %s:%s opened a tunnel to %s:%s",
            proxy.kind,
            proxy.host,
            proxy.port,
            host,
            port,
        )
        return stream, leftover
    except BaseException:
        await stream.aclose()
        raise


def handshake_socket(
    sock: Any, proxy: Proxy | str, host: str, port: int, timeout: float | None = None
) -> bytes:
    """The blocking twin of :func:`open_via_proxy`, over a socket connected to the proxy.

    ``sock`` is a socket or any object with ``sendall``, ``recv``, ``close``
    and, when ``timeout`` is given, ``gettimeout``/``settimeout``.  With
    ``timeout`` the whole handshake gets that many seconds and the socket's
    own timeout is put back afterwards; with ``None`` the socket's own
    timeout bounds each call.

    Returns:
        The leftover: feed it to ``conn.receive_data`` before reading the
        greeting, or read through ``PrefixedSocket(sock, leftover)``.

    Raises:
        As :func:`open_via_proxy`; on any error but ``ValueError`` the socket
        is closed.
    """
    proxy = Proxy.from_url(proxy) if isinstance(proxy, str) else proxy
    steps = handshake(proxy, host, port)
    deadline = None if timeout is None else time.monotonic() + timeout
    previous = sock.gettimeout() if timeout is not None else None
    try:
        request = next(steps)
        while True:
            seconds = _left(deadline, timeout, proxy)
            if seconds is not None:
                sock.settimeout(seconds)
            if isinstance(request, Write):
                sock.sendall(request.data)
                answer = None
            else:
                answer = sock.recv(READ_SIZE)
            request = steps.send(answer)
    except StopIteration as stop:
        if timeout is not None:
            sock.settimeout(previous)
        leftover: bytes = stop.value
        log.info(
            "%s proxy %s:%s opened a tunnel to %s:%s",
            proxy.kind,
            proxy.host,
            proxy.port,
            host,
            port,
        )
        return leftover
    except BaseException:
        sock.close()
        raise


# --------------------------------------------------------------------------
# streams that replay the leftover
# --------------------------------------------------------------------------


class PrefixedStream:
    """An :class:`~transports._stream.AsyncByteStream` whose first read returns ``prefix``.

    Wraps the tunnel after :func:`open_via_proxy`, so the pump (which has no
    ``Connection`` to feed) hands the leftover to the engine as its first
    read.  TLS started while the prefix is still unread runs over this
    stream (:class:`transports.tls.TLSStream`), so the handshake sees those
    bytes first: implicit TLS through a proxy loses nothing.  Started after
    it was read (STARTTLS), TLS is the wrapped stream's own, and the stream
    it returns replaces this one.
    """

    def __init__(self, stream: AsyncByteStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    @property
    def stream(self) -> AsyncByteStream:
        """The wrapped stream."""
        return self._stream

    @property
    def pending(self) -> int:
        """Bytes of the prefix not yet read."""
        return len(self._prefix)

    @property
    def ssl_object(self) -> Any:
        """The wrapped stream's ``ssl_object``, if it has one."""
        return getattr(self._stream, "ssl_object", None)

    async def receive(self, timeout: float | None) -> bytes:
        """The prefix, whole, if unread; then what the wrapped stream gives."""
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return await self._stream.receive(timeout)

    async def send(self, data: bytes, timeout: float | None) -> None:
        """Write all of ``data`` to the wrapped stream."""
        await self._stream.send(data, timeout)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> AsyncByteStream:
        """Run TLS over this stream while the prefix is unread, else the wrapped stream's own.

        Raises:
            As :meth:`transports.tls.TLSStream.wrap`, or the wrapped stream's ``start_tls``.
        """
        if self._prefix:
            return await TLSStream.wrap(self, context, server_hostname, timeout)
        return await self._stream.start_tls(context, server_hostname, timeout)

    async def aclose(self) -> None:
        """Close the wrapped stream."""
        self._prefix = b""
        await self._stream.aclose()


class PrefixedSocket:
    """A blocking socket whose first reads return ``prefix``; everything else is the socket's.

    For the blocking driver, which reads with ``recv``: ``SyncDriver(
    PrefixedSocket(sock, leftover))``.  ``ssl.SSLContext.wrap_socket`` works
    on it once the prefix is read (STARTTLS: the greeting was read first);
    while bytes are pending, the calls that would bypass them (``detach``,
    which ``wrap_socket`` uses, and ``makefile``) raise ``ValueError`` rather
    than lose them: for implicit TLS with a non-empty leftover use
    ``transports.tls.BlockingTLSStream.wrap(prefixed, ...)``.
    """

    def __init__(self, sock: Any, prefix: bytes) -> None:
        self._sock = sock
        self._prefix = prefix

    @property
    def socket(self) -> Any:
        """The wrapped socket."""
        return self._sock

    @property
    def pending(self) -> int:
        """Bytes of the prefix not yet read."""
        return len(self._prefix)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Up to ``bufsize`` bytes of the prefix while any is left, then the socket's ``recv``."""
        if self._prefix:
            data, self._prefix = self._prefix[:bufsize], self._prefix[bufsize:]
            return data
        data = self._sock.recv(bufsize, flags)
        assert isinstance(data, bytes)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """As :meth:`recv`, into ``buffer``."""
        if self._prefix:
            view = memoryview(buffer).cast("B")
            count = min(len(self._prefix), nbytes or len(view), len(view))
            view[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        count = self._sock.recv_into(buffer, nbytes, flags)
        assert isinstance(count, int)
        return count

    def detach(self) -> int:
        """The socket's ``detach``; refused while prefix bytes are pending."""
        self._refuse_if_pending("detach (or wrap_socket)")
        fd = self._sock.detach()
        assert isinstance(fd, int)
        return fd

    def makefile(self, *args: Any, **kwargs: Any) -> Any:
        """The socket's ``makefile``; refused while prefix bytes are pending."""
        self._refuse_if_pending("makefile")
        return self._sock.makefile(*args, **kwargs)

    def close(self) -> None:
        """Close the socket."""
        self._prefix = b""
        self._sock.close()

    def _refuse_if_pending(self, doing: str) -> None:
        if self._prefix:
            raise ValueError(
                f"{len(self._prefix)} bytes from the proxy tunnel are unread; "
                f"{doing} would lose them"
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def __enter__(self) -> PrefixedSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
