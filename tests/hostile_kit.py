"""A scripted hostile SMTP server on a real loopback socket, for ``tests/test_hostile.py``.

In the spirit of h2's ``FrameFactory``: a case is a short script of steps the
server plays against one client connection, one step after the other:

* :func:`send` bytes, :func:`trickle` bytes one at a time, :func:`endless`
  bytes until the client gives up;
* :func:`expect` one command line (a prefix, case-insensitive), or
  :func:`expect_until` one, skipping the lines before it;
* :func:`read_data` (the content after a 354, up to the lone dot) and
  :func:`read_bdat` (one BDAT command and its chunk);
* :func:`starttls` (the server side of the handshake), :func:`stall` (send
  nothing until the client closes), :func:`close`, :func:`reset` (an RST),
  :func:`sleep`, and :func:`answer_until` (the same reply to every line).

Every byte the client sends is recorded, each chunk flagged with whether TLS
was on: a test sees what went over the wire in the clear.  When the script
is done, the server answers as a plain server would (221 to QUIT, 250 to
RSET and NOOP, 500 to anything else) until the client closes, and keeps
those lines as the *tail*; a :func:`stall` keeps them without answering.  A
line that does not match an ``expect`` is a *deviation*: the server records
it (answering 221 if it was QUIT) and stops playing.

Every server is a context manager: leaving it stops the thread (joined), and
closes the listener and the connection.  Nothing here decides what a client
should do; the cases (``tests/hostile_cases.py``) do.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, NoReturn

import trustme

__all__ = [
    "HOST",
    "Certificates",
    "HostileServer",
    "Step",
    "answer_until",
    "close",
    "data_wire_problems",
    "endless",
    "expect",
    "expect_until",
    "read_bdat",
    "read_data",
    "reset",
    "send",
    "sleep",
    "stall",
    "starttls",
    "trickle",
    "unstuff",
]

HOST = "127.0.0.1"

#: How long a server waits for anything at all (accepting, reading a line)
#: before it gives up on the client: far above any timeout a case sets, far
#: below pytest's patience.
PATIENCE = 10.0
#: How often a blocked server thread looks at its stop flag.
TICK = 0.05
#: The most an endless step sends before it stops by itself: a client that
#: reads forever (the bug the step exists to catch) ends the step here, and
#: the test sees that the client did not stop it.
ENDLESS_CAP = 64 * 1024 * 1024


# -- the steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a script; build them with the functions below."""

    kind: Literal[
        "send",
        "trickle",
        "endless",
        "expect",
        "expect_until",
        "data",
        "bdat",
        "starttls",
        "stall",
        "close",
        "reset",
        "sleep",
        "answer_until",
    ]
    data: bytes = b""
    until: bytes = b""
    seconds: float = 0.0
    cert: Literal["trusted", "untrusted", "wrong-host"] = "trusted"


def send(data: bytes) -> Step:
    """Send ``data`` at once (one ``sendall``: one packet on loopback)."""
    return Step("send", data)


def trickle(data: bytes, gap: float = 0.005) -> Step:
    """Send ``data`` one byte at a time, ``gap`` seconds apart."""
    return Step("trickle", data, seconds=gap)


def endless(unit: bytes) -> Step:
    """Send ``unit`` again and again until the client closes (or :data:`ENDLESS_CAP`)."""
    return Step("endless", unit)


def expect(prefix: bytes) -> Step:
    """Read one command line; it must start with ``prefix`` (case-insensitive)."""
    return Step("expect", prefix)


def expect_until(prefix: bytes) -> Step:
    """Read command lines until one starts with ``prefix`` (case-insensitive)."""
    return Step("expect_until", prefix)


def read_data() -> Step:
    """Read message content up to the line holding a lone dot; kept in ``messages``."""
    return Step("data")


def read_bdat() -> Step:
    """Read one ``BDAT n [LAST]`` command and its ``n`` octets; the chunk goes to ``chunks``."""
    return Step("bdat")


def starttls(cert: Literal["trusted", "untrusted", "wrong-host"] = "trusted") -> Step:
    """Run the server side of a TLS handshake with ``cert`` (see :class:`Certificates`)."""
    return Step("starttls", cert=cert)


def stall() -> Step:
    """Send nothing more; read (and record) until the client closes."""
    return Step("stall")


def close() -> Step:
    """Close the connection (a FIN), ending the script."""
    return Step("close")


def reset() -> Step:
    """Reset the connection (SO_LINGER 0: an RST), ending the script."""
    return Step("reset")


def answer_until(reply: bytes, until: bytes, cap: int = 100) -> Step:
    """Answer every command line with ``reply`` until one starts with ``until`` (at most ``cap``).

    For a server that never ends an exchange (an AUTH that challenges forever).
    """
    return Step("answer_until", reply, seconds=float(cap), until=until)


def sleep(seconds: float) -> Step:
    """Wait ``seconds`` without reading."""
    return Step("sleep", seconds=seconds)


# -- certificates ---------------------------------------------------------------------------


@dataclass
class Certificates:
    """trustme certificates for the hostile server, and the client's trust.

    ``trusted`` is issued for :data:`HOST` (and ``localhost``) by the CA the
    client trusts (``client_context``, ``ca_file``); ``untrusted`` for the
    same names by a CA nobody trusts; ``wrong_host`` by the trusted CA for a
    name the client never asks for.
    """

    ca_file: str
    ca: trustme.CA = field(default_factory=trustme.CA)
    other_ca: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.ca.cert_pem.write_to_path(self.ca_file)
        self._contexts: dict[str, ssl.SSLContext] = {}
        for name, leaf in (
            ("trusted", self.ca.issue_cert(HOST, "localhost")),
            ("untrusted", self.other_ca.issue_cert(HOST, "localhost")),
            ("wrong-host", self.ca.issue_cert("wrong-host.example")),
        ):
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            leaf.configure_cert(context)
            self._contexts[name] = context

    def server_context(self, name: str) -> ssl.SSLContext:
        """The server-side context presenting certificate ``name``."""
        return self._contexts[name]

    def client_context(self) -> ssl.SSLContext:
        """A fresh client context that trusts ``ca`` only (chain and host name checked).

        Not ``create_default_context()``: loading the system's CA store costs
        about 0.1 s, and hundreds of cases would pay it.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ca.configure_trust(context)
        return context


# -- the server -----------------------------------------------------------------------------


class _Stopped(Exception):
    """The test stopped the server, or the client is gone: the script ends."""


class HostileServer:
    """Accepts one connection on :data:`HOST` and plays a script against it.

    ``implicit_tls`` names the certificate of a server that starts TLS at once
    (port 465), or ``no-handshake`` for one that never answers the ClientHello.

    Attributes:
        port: the listening port (ephemeral).
        received: ``(tls, chunk)`` for every chunk the client sent, in order.
        messages: the content of each DATA, as it came over the wire (stuffed).
        chunks: each BDAT chunk's octets.
        deviations: ``(expected, got)`` for each line the client sent where
            the script expected another (``got`` is the line).
        finished: True once every step was played.
        tls_failed: the server-side handshake error, if one failed.
        endless_sent: octets an endless step sent before it stopped.
        endless_capped: True if an endless step stopped at its cap, not because
            the client closed.
        tail: the command lines the client sent after the script ended (or a
            :func:`stall` began), not counting those it had sent before (a
            pipelined group the script did not read).  After a whole script
            the server answers them as a plain server would (``221`` to QUIT
            and close, ``250`` to RSET and NOOP, ``500`` to anything else);
            during a stall it answers nothing.
    """

    def __init__(
        self,
        script: Sequence[Step],
        certificates: Certificates,
        *,
        implicit_tls: Literal["trusted", "untrusted", "wrong-host", "no-handshake"] | None = None,
    ) -> None:
        self.script = tuple(script)
        self.certificates = certificates
        self.implicit_tls = implicit_tls
        self.received: list[tuple[bool, bytes]] = []
        self.messages: list[bytes] = []
        self.chunks: list[bytes] = []
        self.deviations: list[tuple[bytes, bytes]] = []
        self.finished = False
        self.tls_failed: str | None = None
        self.endless_sent = 0
        self.endless_capped = False
        self.tail: list[bytes] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._buffer = b""
        self._tls = False
        self._conn: socket.socket | None = None
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(TICK)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="hostile-server", daemon=True)

    # -- what the tests read ----------------------------------------------------------

    @property
    def clear(self) -> bytes:
        """Everything the client sent before TLS."""
        return b"".join(chunk for tls, chunk in self.received if not tls)

    @property
    def encrypted(self) -> bytes:
        """Everything the client sent inside TLS (decrypted)."""
        return b"".join(chunk for tls, chunk in self.received if tls)

    @property
    def everything(self) -> bytes:
        """Everything the client sent."""
        return b"".join(chunk for _, chunk in self.received)

    # -- lifetime ---------------------------------------------------------------------

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait(self, timeout: float) -> bool:
        """Wait for the script to end by itself (the client closed, or the script did).

        Returns:
            True if it ended within ``timeout`` seconds, or if no client
            connected: the client did not hold a connection open.
        """
        if not self.connected.is_set():
            return True  # the client never connected: nothing is open
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop playing, join the thread, close every socket (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=PATIENCE)
        assert not self._thread.is_alive(), "the hostile server thread did not stop"
        self._listener.close()
        if self._conn is not None:
            self._conn.close()

    # -- the thread -------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            conn = self._accept()
        except _Stopped:
            return
        finally:
            self._listener.close()
        self._conn = conn
        self.connected.set()
        try:
            # "no-handshake": an implicit-TLS server that never answers the ClientHello.
            if self.implicit_tls not in (None, "no-handshake"):
                self._handshake(self.implicit_tls)
            for index, step in enumerate(self.script):
                if index == len(self.script) - 1 and step.kind in ("stall", "close", "reset"):
                    self.finished = True  # a script may end by waiting or hanging up
                if self._play(step):
                    return  # the step closed the connection
            self.finished = True
            # Lines already here were sent before the script's last reply (a
            # pipelined group): the script's business, not the client's tail.
            self._buffer = b""
            self._respond()
        except _Stopped:
            pass
        except (OSError, ssl.SSLError):
            pass  # the client went away mid-step: what it sent is recorded
        finally:
            self._conn.close()

    def _accept(self) -> socket.socket:
        deadline = time.monotonic() + PATIENCE
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(TICK)
            # Each step's bytes go out at once: without this, Nagle holds a reply
            # sent while the one before is unacknowledged (pipelined replies), and
            # the client's delayed ACK makes every such case 40 ms slower.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn
        raise _Stopped

    def _play(self, step: Step) -> bool:
        """Play one step; True if it ended the connection."""
        conn = self._conn
        assert conn is not None
        kind = step.kind
        if kind == "send":
            self._sendall(step.data)
        elif kind == "trickle":
            for i in range(len(step.data)):
                self._sendall(step.data[i : i + 1])
                self._wait(step.seconds)
        elif kind == "endless":
            self._endless(step.data)
        elif kind == "expect":
            line = self._line()
            if not line.lower().startswith(step.data.lower()):
                return self._deviation(step.data, line)
        elif kind == "expect_until":
            while not self._line().lower().startswith(step.data.lower()):
                pass
        elif kind == "data":
            self.messages.append(self._data())
        elif kind == "bdat":
            self._bdat()
        elif kind == "starttls":
            if self._buffer:
                # RFC 3207 §4: nothing may follow STARTTLS before the handshake.
                return self._deviation(b"<the TLS handshake>", self._buffer)
            self._handshake(step.cert)
        elif kind == "stall":
            self._buffer = b""  # what came before the stall was sent before it: not tail
            self._drain()
        elif kind == "close":
            conn.close()
            return True
        elif kind == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return True
        elif kind == "answer_until":
            for _ in range(int(step.seconds)):
                if self._line().lower().startswith(step.until.lower()):
                    break
                self._sendall(step.data)
        else:  # sleep
            self._wait(step.seconds)
        return False

    def _deviation(self, expected: bytes, got: bytes) -> NoReturn:
        self.deviations.append((expected, got))
        if got.upper().startswith(b"QUIT"):
            self._sendall(b"221 2.0.0 bye\r\n")  # a client giving up politely waits for this
        self._buffer = b""
        self._drain()

    def _wait(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    def _sendall(self, data: bytes) -> None:
        conn = self._conn
        assert conn is not None
        view = memoryview(data)
        deadline = time.monotonic() + PATIENCE
        while view:
            if self._stop.is_set() or time.monotonic() > deadline:
                raise _Stopped
            try:
                sent = conn.send(view)
            except TimeoutError:
                continue
            view = view[sent:]

    def _endless(self, unit: bytes) -> None:
        # Many units per send, so the client (not this loop) is the bottleneck.
        block = unit * max(1, 65536 // len(unit))
        conn = self._conn
        assert conn is not None
        while self.endless_sent < ENDLESS_CAP:
            if self._stop.is_set():
                raise _Stopped
            try:
                self.endless_sent += conn.send(block)
            except TimeoutError:
                self._absorb()  # the client is not reading: is it writing, or gone?
        self.endless_capped = True

    def _absorb(self) -> None:
        """Take what the client sent (if anything) without blocking for long."""
        conn = self._conn
        assert conn is not None
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            return
        if not chunk:
            raise _Stopped  # the client closed: an endless step ends here
        self._record(chunk)
        self._buffer += chunk

    def _record(self, chunk: bytes) -> None:
        self.received.append((self._tls, chunk))

    def _recv(self) -> bytes:
        """One chunk from the client; :class:`_Stopped` at its close or after :data:`PATIENCE`."""
        conn = self._conn
        assert conn is not None
        deadline = time.monotonic() + PATIENCE
        while True:
            if self._stop.is_set() or time.monotonic() > deadline:
                raise _Stopped
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise _Stopped
            self._record(chunk)
            return chunk

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            self._buffer += self._recv()
        line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
        return line

    def _exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._buffer += self._recv()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _data(self) -> bytes:
        lines = []
        while (line := self._line()) != b".":
            lines.append(line + b"\r\n")
        return b"".join(lines)

    def _bdat(self) -> None:
        line = self._line()
        match = re.fullmatch(rb"(?i)BDAT ([0-9]+)( LAST)?", line)
        if match is None:
            self._deviation(b"BDAT", line)
        self.chunks.append(self._exactly(int(match.group(1))))

    def _drain(self) -> NoReturn:
        """Record what the client sends until it closes; answer nothing.

        A TLS handshake record (a ClientHello after a 220 to STARTTLS) is not
        split into lines: it is recorded once, as ``<TLS handshake>``.
        """
        while True:
            self._buffer += self._recv()
            if self._buffer.startswith(b"\x16\x03"):
                if b"<TLS handshake>" not in self.tail:
                    self.tail.append(b"<TLS handshake>")
                self._buffer = b""
                continue
            *lines, self._buffer = self._buffer.split(b"\r\n")
            self.tail.extend(lines)

    def _respond(self) -> None:
        """After the script: answer what a plain server answers, until QUIT or the close."""
        while True:
            line = self._line()
            self.tail.append(line)
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"QUIT":
                self._sendall(b"221 2.0.0 bye\r\n")
                return
            if verb in (b"RSET", b"NOOP"):
                self._sendall(b"250 2.0.0 ok\r\n")
            else:
                self._sendall(b"500 5.5.1 not in the script\r\n")

    def _handshake(self, cert: str) -> None:
        conn = self._conn
        assert conn is not None
        context = self.certificates.server_context(cert)
        conn.settimeout(PATIENCE)  # the handshake is one blocking call
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.tls_failed = str(exc)
            raise _Stopped from None
        tls.settimeout(TICK)
        self._conn = tls
        self._tls = True


# -- judging what went over the wire --------------------------------------------------------


def unstuff(wire: bytes) -> bytes:
    """DATA content as the server keeps it: each line's leading dot removed (RFC 5321 §4.5.2)."""
    return b"".join(
        line[1:] if line.startswith(b".") else line for line in wire.splitlines(keepends=True)
    )


def data_wire_problems(wire: bytes) -> list[str]:
    """What in DATA content (up to, not including, the lone dot) could end a message early.

    The 2023 "SMTP smuggling" research (Longin, SEC Consult) ends a message
    with ``<LF>.<LF>``, ``<CR>.<CR>`` or ``<LF>.<CR><LF>``, which some servers
    take for the end of data.  A safe client puts only CRLF line endings on
    the wire and stuffs every line that starts with a dot.
    """
    problems = []
    if re.search(rb"\r(?!\n)", wire):
        problems.append("a bare CR")
    if re.search(rb"(?<!\r)\n", wire):
        problems.append("a bare LF")
    for line in wire.split(b"\r\n"):
        if line.startswith(b".") and not line.startswith(b".."):
            problems.append(f"an unstuffed line starting with a dot: {line[:20]!r}")
    return problems
