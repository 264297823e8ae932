"""Real and scripted proxies on loopback, for the proxy tests.

Two kinds of proxy, both listening on ``127.0.0.1`` at a free port and both
exposing ``.kind``, ``.host``, ``.port`` and ``.url``:

:func:`running_proxy`
    A REAL proxy server, started as a child process with a private
    configuration in a temporary directory and stopped (with its whole process
    group) afterwards.  The default server is Debian's ``v2ray`` (4.34): one
    binary that speaks SOCKS5, SOCKS4, SOCKS4a (hostnames) and HTTP CONNECT,
    is ready in a few milliseconds and needs no root, no system config and no
    network.  Its outbound is restricted by routing rules to 127.0.0.0/8 and
    ``::1``; every other destination is black-holed.  Beware: v2ray answers
    "granted" BEFORE it dials the destination, so a refused destination shows
    up as a success reply followed by EOF.  For faithful refusals use
    ``server="danted"`` (Dante, SOCKS5 only here: it has no SOCKS4a) or
    ``server="tinyproxy"`` (HTTP CONNECT), which dial first and then answer
    (SOCKS5 reply 0x05 / ``HTTP/1.1 500``).  Install: :func:`proxy_install_command`.

:class:`CoalescingProxy`
    A scripted proxy in a thread of this process, for what no real proxy does on
    purpose: it connects upstream, WAITS for the upstream's first bytes (the SMTP
    greeting) and sends its own reply and those bytes in ONE ``sendall``, so the
    client's first read after the handshake deterministically holds both.  It can
    also trickle its reply one byte per segment, refuse, demand credentials and
    vary the SOCKS5 bound address type.  It only ever connects to loopback
    addresses (an IP literal or ``localhost``); anything else is refused without a
    DNS query.

:func:`open_tunnel` is a hand-written client handshake on a plain blocking socket
(exact reads for SOCKS, read-to-blank-line for HTTP, leftover bytes returned), the
oracle the self-test uses.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol

from tests._postfix import free_port

__all__ = [
    "APT_PACKAGES",
    "BoundAddress",
    "KINDS",
    "KEEP_ENV_VAR",
    "LOOPBACK",
    "SERVERS",
    "CoalescingProxy",
    "ProxyEndpoint",
    "ProxyError",
    "ProxyKind",
    "ProxyLike",
    "ProxyNotInstalledError",
    "ProxyRequest",
    "ProxyServerName",
    "ProxyStartError",
    "TunnelRefused",
    "binary_env_var",
    "find_binary",
    "open_tunnel",
    "proxy_install_command",
    "running_proxy",
]

ProxyKind = Literal["socks5", "socks4a", "http"]
ProxyServerName = Literal["v2ray", "danted", "tinyproxy"]
BoundAddress = Literal["ipv4", "ipv6", "domain"]

KINDS: tuple[ProxyKind, ...] = ("socks5", "socks4a", "http")
LOOPBACK = "127.0.0.1"
KEEP_ENV_VAR = "SMTPCLIENT_PROXY_KEEP"  # keep the work directory (config, log)

#: Which kinds each real server is started for.
SERVERS: dict[ProxyServerName, frozenset[ProxyKind]] = {
    "v2ray": frozenset(KINDS),
    "danted": frozenset({"socks5"}),
    "tinyproxy": frozenset({"http"}),
}
#: The Debian package holding each server's binary.
APT_PACKAGES: dict[ProxyServerName, str] = {
    "v2ray": "v2ray",
    "danted": "dante-server",
    "tinyproxy": "tinyproxy-bin",
}
_BINARIES: dict[ProxyServerName, str] = {
    "v2ray": "v2ray",
    "danted": "danted",
    "tinyproxy": "tinyproxy",
}
_SCHEMES: dict[ProxyKind, str] = {"socks5": "socks5", "socks4a": "socks4a", "http": "http"}
_MAX_HEAD = 64 * 1024
_HTTP_OK = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: smtpclient-tests\r\n\r\n"


class ProxyError(RuntimeError):
    """A test proxy could not be found, started or stopped."""


class ProxyNotInstalledError(ProxyError):
    """The real proxy server's binary is missing."""


class ProxyStartError(ProxyError):
    """The real proxy server exited or never accepted connections."""


class ProxyLike(Protocol):
    """What the tests need from either kind of proxy."""

    @property
    def kind(self) -> ProxyKind: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def url(self) -> str: ...


def _url(kind: ProxyKind, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{_SCHEMES[kind]}://{shown}:{port}"


# --------------------------------------------------------------------------
# the real proxy
# --------------------------------------------------------------------------


def proxy_install_command(
    servers: tuple[ProxyServerName, ...] = ("v2ray", "danted", "tinyproxy"),
) -> str:
    """The shell command (run as root on Debian 12) that installs *servers*.

    ``--no-install-recommends`` and the ``tinyproxy-bin`` package (binary only)
    keep it small; the packages' services are never started in a container
    whose ``policy-rc.d`` denies it, and the tests never use them.
    """
    packages = " ".join(APT_PACKAGES[name] for name in servers)
    return (
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
        f"apt-get install -y -qq --no-install-recommends {packages}"
    )


def binary_env_var(server: ProxyServerName) -> str:
    """The environment variable that may name *server*'s binary."""
    return f"SMTPCLIENT_{server.upper()}"


def find_binary(server: ProxyServerName) -> str:
    """The path of *server*'s binary, or :class:`ProxyNotInstalledError`."""
    override = os.environ.get(binary_env_var(server))
    found = override or shutil.which(_BINARIES[server])
    if not found:
        for prefix in ("/usr/sbin", "/usr/bin"):
            candidate = Path(prefix) / _BINARIES[server]
            if os.access(candidate, os.X_OK):
                found = str(candidate)
                break
    if not found or not os.access(found, os.X_OK):
        raise ProxyNotInstalledError(
            f"{_BINARIES[server]} is not installed: run `{proxy_install_command((server,))}` "
            f"as root (or set {binary_env_var(server)} to the binary)"
        )
    return found


@dataclass(frozen=True)
class ProxyEndpoint:
    """Where a started real proxy listens."""

    kind: ProxyKind
    host: str
    port: int
    server: ProxyServerName
    workdir: Path

    @property
    def url(self) -> str:
        """``socks5://127.0.0.1:PORT``, ``socks4a://...`` or ``http://...``."""
        return _url(self.kind, self.host, self.port)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def log_path(self) -> Path:
        """The server's standard output and error."""
        return self.workdir / "server.log"


def _v2ray_config(kind: ProxyKind, host: str, port: int) -> str:
    inbound: dict[str, object]
    if kind == "http":
        inbound = {"protocol": "http", "settings": {"timeout": 60}}
    else:
        inbound = {"protocol": "socks", "settings": {"auth": "noauth", "udp": False}}
    config = {
        "log": {"loglevel": "warning", "access": "none"},
        "inbounds": [{"tag": "in", "listen": host, "port": port, **inbound}],
        "outbounds": [
            {"tag": "direct", "protocol": "freedom", "settings": {}},
            {"tag": "deny", "protocol": "blackhole", "settings": {}},
        ],
        # Loopback destinations only; "IPOnDemand" resolves a hostname
        # (localhost comes from /etc/hosts) before the IP rule is checked.
        "routing": {
            "domainStrategy": "IPOnDemand",
            "rules": [
                {"type": "field", "ip": ["127.0.0.0/8", "::1/128"], "outboundTag": "direct"},
                {"type": "field", "network": "tcp,udp", "outboundTag": "deny"},
            ],
        },
    }
    return json.dumps(config, indent=2)


def _danted_config(host: str, port: int) -> str:
    return "\n".join(
        [
            "logoutput: stderr",
            f"internal: {host} port = {port}",
            "external: 127.0.0.1",
            "clientmethod: none",
            "socksmethod: none",
            "user.privileged: root",
            "user.unprivileged: nobody",
            "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }",
            "socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect }",
            "socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 }",
            "",
        ]
    )


def _tinyproxy_config(host: str, port: int, filter_path: Path) -> str:
    lines = [
        f"Port {port}",
        f"Listen {host}",
        "Timeout 60",
        "MaxClients 50",
        "Allow 127.0.0.1",
        "LogLevel Info",
        f'Filter "{filter_path}"',
        "FilterType ere",
        "FilterDefaultDeny Yes",
        "FilterURLs Off",
    ]
    if os.geteuid() == 0:  # tinyproxy refuses to keep root
        lines += ["User nobody", "Group nogroup"]
    return "\n".join([*lines, ""])


def _server_argv(
    server: ProxyServerName,
    kind: ProxyKind,
    *,
    binary: str,
    workdir: Path,
    host: str,
    port: int,
) -> list[str]:
    if server == "v2ray":
        config = workdir / "v2ray.json"
        config.write_text(_v2ray_config(kind, host, port))
        return [binary, "-config", str(config)]
    if server == "danted":
        config = workdir / "danted.conf"
        config.write_text(_danted_config(host, port))
        return [binary, "-f", str(config), "-p", str(workdir / "danted.pid"), "-N", "1"]
    filter_path = workdir / "filter"
    filter_path.write_text("^127\\.[0-9]+\\.[0-9]+\\.[0-9]+$\n^localhost$\n")
    config = workdir / "tinyproxy.conf"
    config.write_text(_tinyproxy_config(host, port, filter_path))
    return [binary, "-d", "-c", str(config)]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the server's process group (it leads its own session), wait for
    the leader and for the group to empty, then SIGKILL what is left."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout)
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _log_tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


@contextlib.contextmanager
def running_proxy(
    kind: ProxyKind,
    *,
    server: ProxyServerName = "v2ray",
    host: str = LOOPBACK,
    ready_timeout: float = 10.0,
) -> Iterator[ProxyEndpoint]:
    """Start a real *server* proxy of *kind* on *host* at a free port.

    Yields a :class:`ProxyEndpoint` once the port accepts connections (a few
    milliseconds for every server here); stops the server and any children it
    forked, then removes the work directory (kept when ``SMTPCLIENT_PROXY_KEEP``
    is set).  Raises :class:`ProxyNotInstalledError` when the binary is missing
    and :class:`ProxyStartError` when it does not come up.
    """
    if kind not in SERVERS[server]:
        raise ValueError(f"{server} is not used for {kind} (it serves {sorted(SERVERS[server])})")
    binary = find_binary(server)
    workdir = Path(tempfile.mkdtemp(prefix=f"smtpclient-proxy-{server}-"))
    workdir.chmod(0o755)  # danted and tinyproxy drop to "nobody" after reading it
    log_path = workdir / "server.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        problem = "never started"
        argv: list[str] = []
        port = 0
        for _attempt in range(3):  # a free port can be taken before the server binds it
            port = free_port(host)
            argv = _server_argv(server, kind, binary=binary, workdir=workdir, host=host, port=port)
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                    start_new_session=True,
                )
            deadline = time.monotonic() + ready_timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if _accepts(host, port):
                    break
                time.sleep(0.005)
            if proc.poll() is None and _accepts(host, port):
                break
            problem = (
                f"exited with status {proc.returncode}"
                if proc.poll() is not None
                else f"did not accept connections within {ready_timeout} s"
            )
            _stop_group(proc)
            proc = None
        if proc is None:
            raise ProxyStartError(
                f"{server} ({kind}) {problem}: {' '.join(argv)}\n{_log_tail(log_path)}"
            )
        yield ProxyEndpoint(kind=kind, host=host, port=port, server=server, workdir=workdir)
    finally:
        if proc is not None:
            _stop_group(proc)
        if not os.environ.get(KEEP_ENV_VAR):
            shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------
# the scripted coalescing proxy
# --------------------------------------------------------------------------


class _Refused(Exception):
    """The handshake ends with a failure reply already chosen."""

    def __init__(self, reply: bytes, why: str) -> None:
        super().__init__(why)
        self.reply = reply


class _Closed(Exception):
    """The client went away during the handshake."""


class _Reader:
    """Buffered exact reads on a blocking socket; the rest stays buffered."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise _Closed("client closed during the handshake")
        self.buffer += chunk

    def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def until(self, marker: bytes, limit: int) -> bytes:
        """Up to and including *marker*."""
        while (end := self.buffer.find(marker)) < 0:
            if len(self.buffer) > limit:
                raise _Closed(f"no {marker!r} within {limit} bytes")
            self._fill()
        end += len(marker)
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data


@dataclass(frozen=True)
class ProxyRequest:
    """One CONNECT as the coalescing proxy understood it."""

    kind: ProxyKind
    host: str  # as the client sent it: a hostname or the text of an IP address
    port: int
    username: str | None = None
    password: str | None = None


def _loopback_target(host: str) -> str | None:
    """The loopback IP to dial for *host*, or None (no DNS query is made)."""
    if host.lower() == "localhost":
        return LOOPBACK
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return str(address) if address.is_loopback else None


_SOCKS5_NOT_ALLOWED = 0x02
_SOCKS5_REFUSED = 0x05
_SOCKS4_GRANTED = 0x5A
_SOCKS4_FAILED = 0x5B


@dataclass
class CoalescingProxy:
    """A scripted SOCKS5 / SOCKS4a / HTTP CONNECT proxy on a real loopback socket.

    For each client: read its handshake, connect to the (loopback) destination,
    wait up to *first_bytes_timeout* for the destination's first bytes, then send
    the proxy reply AND those bytes in one ``sendall`` (with *trickle*, the reply
    goes out one byte per TCP segment, 10 ms apart, and only its last byte rides
    with the first upstream bytes), then relay both ways until one side closes.
    Bytes the client sent after its request, before the reply, are forwarded.

    *refuse* answers every request with a failure reply (SOCKS5 0x05, SOCKS4
    0x5B, ``HTTP/1.1 502``); with *credentials* the client must authenticate
    (SOCKS5 username/password, SOCKS4 user id = the user name, HTTP Basic
    ``Proxy-Authorization``).  Use as a context manager.  ``requests`` records
    what each client asked for; ``sent`` the exact bytes of each coalesced
    write; ``errors`` any unexpected exception in a connection thread.
    """

    kind: ProxyKind
    host: str = LOOPBACK
    credentials: tuple[str, str] | None = None
    refuse: bool = False
    trickle: bool = False
    socks5_bound: BoundAddress = "ipv4"
    http_reply: bytes = _HTTP_OK
    first_bytes_timeout: float = 5.0
    io_timeout: float = 10.0
    requests: list[ProxyRequest] = field(default_factory=list, init=False)
    sent: list[bytes] = field(default_factory=list, init=False)
    errors: list[BaseException] = field(default_factory=list, init=False)
    port: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        return _url(self.kind, self.host, self.port)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.create_server((self.host, 0), family=family)
        listener.settimeout(0.05)
        self._listener = listener
        self.port = listener.getsockname()[1]
        acceptor = threading.Thread(target=self._accept_loop, name="coalescing-proxy", daemon=True)
        self._threads.append(acceptor)
        acceptor.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:  # wakes threads blocked in recv (close() would not)
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(5.0)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> CoalescingProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.add(sock)
        return sock

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        sock.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._track(client)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    # -- one client --------------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(self.io_timeout)
            reader = _Reader(client)
            try:
                request = self._read_request(reader)
            except _Refused as refused:
                client.sendall(refused.reply)
                return
            except _Closed:
                return
            self.requests.append(request)
            if self.refuse:
                client.sendall(self._failure())
                return
            target = _loopback_target(request.host)
            if target is None:
                client.sendall(self._failure(not_allowed=True))
                return
            try:
                upstream = self._track(
                    socket.create_connection((target, request.port), timeout=self.io_timeout)
                )
            except OSError:
                client.sendall(self._failure())
                return
            first = self._first_bytes(upstream)
            reply = self._success(upstream)
            if reader.buffer:  # the client did not wait for the reply
                upstream.sendall(bytes(reader.buffer))
            self._send_reply(client, reply, first)
            self._relay(client, upstream)
        except Exception as exc:  # recorded for the test to assert on
            if not self._stop.is_set():
                self.errors.append(exc)
        finally:
            if upstream is not None:
                self._release(upstream)
            self._release(client)

    def _first_bytes(self, upstream: socket.socket) -> bytes:
        upstream.settimeout(self.first_bytes_timeout)
        try:
            return upstream.recv(65536)
        except TimeoutError:
            return b""
        finally:
            upstream.settimeout(self.io_timeout)

    def _send_reply(self, client: socket.socket, reply: bytes, first: bytes) -> None:
        if self.trickle:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(reply) - 1):
                client.sendall(reply[i : i + 1])
                time.sleep(0.01)
            reply = reply[-1:]
        self.sent.append(reply + first)
        client.sendall(reply + first)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        open_from = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for sock in open_from:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, data=sock)
            while open_from and not self._stop.is_set():
                for key, _ in selector.select(0.05):
                    source: socket.socket = key.data
                    try:
                        data = source.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    sink = open_from[source]
                    if data:
                        sink.settimeout(self.io_timeout)
                        sink.sendall(data)
                        sink.setblocking(False)
                        continue
                    selector.unregister(source)
                    del open_from[source]
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)

    # -- the three handshakes ---------------------------------------------

    def _read_request(self, reader: _Reader) -> ProxyRequest:
        if self.kind == "socks5":
            return self._read_socks5(reader)
        if self.kind == "socks4a":
            return self._read_socks4(reader)
        return self._read_http(reader)

    def _read_socks5(self, reader: _Reader) -> ProxyRequest:
        version, count = reader.exactly(2)
        if version != 5:
            raise _Closed(f"not SOCKS5: version {version}")
        methods = reader.exactly(count)
        wanted = 0x02 if self.credentials else 0x00
        if wanted not in methods:
            raise _Refused(b"\x05\xff", "no acceptable method")
        reader.send(bytes([5, wanted]))
        username = password = None
        if self.credentials:
            sub_version, length = reader.exactly(2)
            username = reader.exactly(length).decode("utf-8", "replace")
            password = reader.exactly(reader.exactly(1)[0]).decode("utf-8", "replace")
            if sub_version != 1 or (username, password) != self.credentials:
                raise _Refused(b"\x01\x01", "bad credentials")
            reader.send(b"\x01\x00")
        version, command, _reserved, address_type = reader.exactly(4)
        if address_type == 1:
            host = socket.inet_ntop(socket.AF_INET, reader.exactly(4))
        elif address_type == 4:
            host = socket.inet_ntop(socket.AF_INET6, reader.exactly(16))
        elif address_type == 3:
            host = reader.exactly(reader.exactly(1)[0]).decode("idna")
        else:
            raise _Refused(self._socks5_reply(0x08), "bad address type")
        port = int.from_bytes(reader.exactly(2), "big")
        if command != 1:
            raise _Refused(self._socks5_reply(0x07), "only CONNECT")
        return ProxyRequest("socks5", host, port, username, password)

    def _read_socks4(self, reader: _Reader) -> ProxyRequest:
        version, command = reader.exactly(2)
        if version != 4:
            raise _Closed(f"not SOCKS4: version {version}")
        port = int.from_bytes(reader.exactly(2), "big")
        raw_ip = reader.exactly(4)
        user_id = reader.until(b"\x00", 255)[:-1].decode("utf-8", "replace")
        if raw_ip[:3] == b"\x00\x00\x00" and raw_ip[3] != 0:  # SOCKS4a: a hostname follows
            host = reader.until(b"\x00", 255)[:-1].decode("idna")
        else:
            host = socket.inet_ntop(socket.AF_INET, raw_ip)
        failed = self._socks4_reply(_SOCKS4_FAILED)
        if command != 1:
            raise _Refused(failed, "only CONNECT")
        if self.credentials and user_id != self.credentials[0]:
            raise _Refused(failed, "bad user id")
        return ProxyRequest("socks4a", host, port, user_id or None, None)

    def _read_http(self, reader: _Reader) -> ProxyRequest:
        head = reader.until(b"\r\n\r\n", _MAX_HEAD).decode("latin-1")
        request_line, *header_lines = head[:-4].split("\r\n")
        bad = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        try:
            method, authority, _version = request_line.split(" ")
            host, _, port_text = authority.rpartition(":")
            port = int(port_text)
        except ValueError:
            raise _Refused(bad, f"bad request line {request_line!r}") from None
        if method != "CONNECT":
            raise _Refused(bad, f"not CONNECT: {method}")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        username = password = None
        auth = headers.get("proxy-authorization", "")
        if auth.lower().startswith("basic "):
            decoded = base64.b64decode(auth[6:].strip()).decode("utf-8", "replace")
            username, _, password = decoded.partition(":")
        if self.credentials and (username, password) != self.credentials:
            raise _Refused(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="smtpclient-tests"\r\n'
                b"Content-Length: 0\r\nConnection: close\r\n\r\n",
                "bad credentials",
            )
        return ProxyRequest("http", host, port, username, password)

    # -- replies -------------------------------------------------------------

    def _socks5_reply(self, code: int, bound: tuple[str, int] = ("0.0.0.0", 0)) -> bytes:
        port = bound[1].to_bytes(2, "big")
        if code == 0 and self.socks5_bound == "domain":
            name = b"localhost"
            return bytes([5, code, 0, 3, len(name)]) + name + port
        if code == 0 and self.socks5_bound == "ipv6":
            return bytes([5, code, 0, 4]) + socket.inet_pton(socket.AF_INET6, "::1") + port
        return bytes([5, code, 0, 1]) + socket.inet_aton(bound[0]) + port

    @staticmethod
    def _socks4_reply(code: int) -> bytes:
        return bytes([0, code]) + bytes(6)

    def _success(self, upstream: socket.socket) -> bytes:
        if self.kind == "socks5":
            local = upstream.getsockname()
            bound = (local[0], local[1]) if upstream.family == socket.AF_INET else (LOOPBACK, 0)
            return self._socks5_reply(0, bound)
        if self.kind == "socks4a":
            return self._socks4_reply(_SOCKS4_GRANTED)
        return self.http_reply

    def _failure(self, *, not_allowed: bool = False) -> bytes:
        if self.kind == "socks5":
            return self._socks5_reply(_SOCKS5_NOT_ALLOWED if not_allowed else _SOCKS5_REFUSED)
        if self.kind == "socks4a":
            return self._socks4_reply(_SOCKS4_FAILED)
        if not_allowed:
            return b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        return b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


# --------------------------------------------------------------------------
# a hand-written client handshake (the tests' oracle)
# --------------------------------------------------------------------------


class TunnelRefused(ProxyError):
    """The proxy answered the CONNECT with a failure."""

    def __init__(self, message: str, reply: bytes) -> None:
        super().__init__(message)
        self.reply = reply


def _recv_exactly(sock: socket.socket, n: int, buffer: bytearray) -> bytes:
    while len(buffer) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise TunnelRefused(f"proxy closed after {bytes(buffer)!r}", bytes(buffer))
        buffer += chunk
    data = bytes(buffer[:n])
    del buffer[:n]
    return data


def open_tunnel(
    proxy: ProxyLike,
    dest_host: str,
    dest_port: int,
    *,
    credentials: tuple[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[socket.socket, bytes]:
    """Connect to *proxy* and CONNECT to *dest_host*:*dest_port*.

    Returns the socket and the bytes that arrived after the proxy's reply in
    the same reads (the destination's first bytes, when the proxy coalesced
    them): the caller must treat them as the start of the tunnelled stream.
    SOCKS reads are exact; the HTTP reply is read up to its blank line.
    Raises :class:`TunnelRefused` on a failure reply.
    """
    sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    buffer = bytearray()
    try:
        if proxy.kind == "socks5":
            _socks5_client(sock, buffer, dest_host, dest_port, credentials)
        elif proxy.kind == "socks4a":
            _socks4a_client(sock, buffer, dest_host, dest_port, credentials)
        else:
            _http_client(sock, buffer, dest_host, dest_port, credentials)
    except BaseException:
        sock.close()
        raise
    return sock, bytes(buffer)


def _socks5_client(
    sock: socket.socket,
    buffer: bytearray,
    host: str,
    port: int,
    credentials: tuple[str, str] | None,
) -> None:
    method = 0x02 if credentials else 0x00
    sock.sendall(bytes([5, 1, method]))
    choice = _recv_exactly(sock, 2, buffer)
    if choice != bytes([5, method]):
        raise TunnelRefused(f"SOCKS5 method refused: {choice!r}", choice)
    if credentials:
        user, password = (part.encode() for part in credentials)
        sock.sendall(bytes([1, len(user)]) + user + bytes([len(password)]) + password)
        status = _recv_exactly(sock, 2, buffer)
        if status != b"\x01\x00":
            raise TunnelRefused(f"SOCKS5 authentication failed: {status!r}", status)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna")
        target = bytes([3, len(name)]) + name
    else:
        target = bytes([1 if address.version == 4 else 4]) + address.packed
    sock.sendall(b"\x05\x01\x00" + target + port.to_bytes(2, "big"))
    head = _recv_exactly(sock, 4, buffer)
    if head[:2] != b"\x05\x00":
        raise TunnelRefused(f"SOCKS5 CONNECT failed: {head!r}", head)
    if head[3] == 1:
        _recv_exactly(sock, 4 + 2, buffer)
    elif head[3] == 4:
        _recv_exactly(sock, 16 + 2, buffer)
    elif head[3] == 3:
        _recv_exactly(sock, _recv_exactly(sock, 1, buffer)[0] + 2, buffer)
    else:
        raise TunnelRefused(f"SOCKS5 bad address type: {head!r}", head)


def _socks4a_client(
    sock: socket.socket,
    buffer: bytearray,
    host: str,
    port: int,
    credentials: tuple[str, str] | None,
) -> None:
    user_id = credentials[0].encode() if credentials else b""
    try:
        packed = ipaddress.IPv4Address(host).packed
        name = b""
    except ValueError:
        packed = b"\x00\x00\x00\x01"
        name = host.encode("idna") + b"\x00"
    sock.sendall(b"\x04\x01" + port.to_bytes(2, "big") + packed + user_id + b"\x00" + name)
    reply = _recv_exactly(sock, 8, buffer)
    if reply[0] != 0 or reply[1] != _SOCKS4_GRANTED:
        raise TunnelRefused(f"SOCKS4 CONNECT failed: {reply!r}", reply)


def _http_client(
    sock: socket.socket,
    buffer: bytearray,
    host: str,
    port: int,
    credentials: tuple[str, str] | None,
) -> None:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if credentials:
        token = base64.b64encode(":".join(credentials).encode()).decode("ascii")
        lines.append(f"Proxy-Authorization: Basic {token}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > _MAX_HEAD:
            raise TunnelRefused("HTTP proxy reply head too long", bytes(buffer[:200]))
        chunk = sock.recv(65536)
        if not chunk:
            raise TunnelRefused(f"proxy closed after {bytes(buffer)!r}", bytes(buffer))
        buffer += chunk
    head = bytes(buffer[: end + 4])
    del buffer[: end + 4]
    status = head.split(b"\r\n", 1)[0].split(b" ")
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].startswith(b"2"):
        first_line = head.split(b"\r\n", 1)[0]
        raise TunnelRefused(f"HTTP CONNECT failed: {first_line!r}", head)
