"""Run one conversation through one asyncio library, and compare two runs.

**The server.**  :class:`AioServer` is ``tests/differential/server.py``'s
:class:`~tests.differential.server.ReactiveServer`, unchanged, with its connection wrapped
(:class:`_Wire`) and two of its steps extended by subclassing:

- *STARTTLS*: after a ``220`` to STARTTLS (one that does not close) the server completes a
  TLS handshake (a trustme certificate for 127.0.0.1) and goes on in TLS; ``received`` and
  the log hold the plaintext;
- *pace*: the writes the policy names come late, or in two pieces (:class:`Pace`);
- *a close held for the client's reaction*: after a reply that closes (a 421, a 221 to
  QUIT) the server shuts its side only once the client has reacted: it sent more, closed,
  or the step ended.  A real server closes at once, and then whether a client writes its
  next command before it sees the end of file depends on its event loop's timing
  (aiosmtplib writes the RSET after a 421 to the end of data, or not): held, it always
  does, so a run is a function of the conversation;
- *one connection*: the listener is closed once the client is accepted, so a second
  ``connect()`` is refused at once.

**A run.**  :func:`run` plays a :class:`~tests.differential_aio.scenarios.Conversation` with
one library in its own ``asyncio.run`` against its own server.  After each step the harness
*settles*: it lets a held close go, waits until the server is idle (blocked reading, with
nothing unread in its socket), then lets the client's event loop turn a few times, so that
the client has seen whatever the server sent (an end of file, a reply nobody asked for).
Then it records the step's outcome (returned value, or exception: class name, the
aiosmtplib classes it is an instance of, mapped to the library's classes by name, and its
attributes), the client's observable state, and how many bytes the server has received,
which is how the server's log is cut into steps.

**Comparing.**  :func:`compare` walks two transcripts step by step; where a step differs,
the rules of :mod:`tests.differential_aio.deviations` are asked one at a time whether the
difference is theirs (a rule rewrites its difference away, or accounts for the whole step;
if the sessions can no longer be compared, it ends the comparison).  A difference no rule
explains is the :class:`Verdict`'s failure, shown with both transcripts.
"""

from __future__ import annotations

import asyncio
import difflib
import fcntl
import importlib
import inspect
import select
import socket
import ssl
import struct
import tempfile
import termios
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiosmtplib
import aiosmtplib.errors
import trustme

from tests.differential.server import Entry, ReactiveServer, ServerState, entries_between
from tests.differential_aio.scenarios import (
    AioPolicy,
    Conversation,
    MessageSpec,
    Pace,
    Script,
    Step,
)

if TYPE_CHECKING:
    from tests.differential_aio.deviations import Deviation, Explanation

__all__ = [
    "OURS",
    "THEIRS",
    "AioServer",
    "ClientState",
    "Difference",
    "Implementation",
    "MissingImplementation",
    "Outcome",
    "StepRecord",
    "Transcript",
    "Verdict",
    "canon",
    "check",
    "closed_down",
    "compare",
    "load",
    "run",
]

THEIRS = "aiosmtplib"
#: The library under test.  The one import that changes when it is swapped in.
OURS = "smtpclient.aio"
#: smtpclient.aio's opt-in to credentials in the clear (README: "Differences from
#: aiosmtplib"); given when the script says so.  aiosmtplib has no such option.
AUTH_IN_CLEAR_OPTION = "auth_in_clear"
#: smtpclient.aio's switch for PIPELINING.
PIPELINING_OPTION = "pipelining"

#: aiosmtplib's exception classes, by name; each library's classes are looked up by these
#: names on its top-level module, so "an instance of aiosmtplib's X" means "of the
#: library's X".
ERROR_NAMES: tuple[str, ...] = tuple(aiosmtplib.errors.__all__)
#: smtpclient.aio's own classes, looked up when the library has them.
OUR_ERROR_NAMES = ("SMTPOutcomeUnknownError", "SMTPStageTimeoutError")
BUILTIN_ERRORS: tuple[tuple[str, type[BaseException]], ...] = (
    ("ValueError", ValueError),
    ("UnicodeError", UnicodeError),
    ("TypeError", TypeError),
    ("RuntimeError", RuntimeError),
    ("OSError", OSError),
    ("ConnectionError", ConnectionError),
    ("TimeoutError", TimeoutError),
    ("asyncio.TimeoutError", asyncio.TimeoutError),
)

#: The client's own timeouts (drawn: 5, 10 or none) are never reached: every reply the
#: server owes comes at once or within 60 ms.  A step that has not ended after this long
#: is a hang, recorded as such.
STEP_LIMIT = 20.0
#: How long settling may wait for the server to go idle.
SETTLE_LIMIT = 10.0
#: How long the server holds a close for the client's reaction (a client that waits for
#: the close instead of reacting: the step would otherwise never end).
HOLD_LIMIT = 3.0
HANDSHAKE_LIMIT = 3.0
#: Turns of the client's event loop after the server went idle (aiosmtplib needs three to
#: go from an end of file to ``close()``).
SETTLE_TURNS = 8


class HarnessError(AssertionError):
    """The harness, not a library, went wrong (the server did not go idle...)."""


class MissingImplementation(AssertionError):
    """The library under test cannot be run yet (not written, or an option is missing)."""


# -- TLS material --------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSMaterial:
    """A CA no system trusts, the server's context for 127.0.0.1, the client's context.

    Clients are given ``tls_context=client_context`` (made once: a context of their own
    would load the system's CA store on every connection, the most costly part of a run).
    """

    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    ca_path: str


_TLS: list[TLSMaterial] = []
_TLS_DIR: list[tempfile.TemporaryDirectory[str]] = []


def tls_material() -> TLSMaterial:
    """Made once per process."""
    if not _TLS:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        directory = tempfile.TemporaryDirectory(prefix="differential-aio-")
        _TLS_DIR.append(directory)
        path = Path(directory.name) / "ca.pem"
        ca.cert_pem.write_to_path(str(path))
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(path))
        _TLS.append(TLSMaterial(context, client, str(path)))
    return _TLS[0]


# -- the server ----------------------------------------------------------------------------


class _Wire:
    """The server's end of the connection, as :class:`ReactiveServer` uses it.

    Paces writes, holds a closing shutdown for the client's reaction, upgrades to TLS, and
    tells the harness when the server is idle (blocked in ``recv`` with nothing unread).
    """

    def __init__(
        self,
        sock: socket.socket,
        pace: Mapping[int, Pace],
        release: threading.Event,
        unread: Callable[[], bool],
    ) -> None:
        self._sock = sock
        self._pace = pace
        self._release = release
        self._unread = unread
        self.writes = 0
        #: A reply was written since the client's last bytes were read.
        self.replied = False
        self.calls = 0
        #: The number of the ``recv`` call in progress; 0 when none is.
        self.receiving = 0
        self.dead = False
        self.tls = False
        self._timeout: float | None = None

    # The three calls ReactiveServer makes on its connection.

    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        if not self.dead:
            self._sock.settimeout(value)

    def recv(self, size: int) -> bytes:
        """``recv`` with the socket's timeout, blocking in ``select`` (see :meth:`idle_token`)."""
        if self.dead:
            return b""
        sock = self._sock
        if not (self.tls and cast(ssl.SSLSocket, sock).pending()):
            self.calls += 1
            self.receiving = self.calls
            try:
                readable, _, _ = select.select([sock], [], [], self._timeout)
            except (OSError, ValueError):
                return b""
            finally:
                self.receiving = 0
            if not readable:
                raise TimeoutError("timed out")
        data = sock.recv(size)
        if data:
            self.replied = False
        return data

    def sendall(self, data: bytes) -> None:
        if self.dead:
            raise OSError("the connection is gone")
        self.writes += 1
        pace = self._pace.get(self.writes)
        if pace is None:
            self._sock.sendall(data)
        else:
            time.sleep(pace.delay)
            split = _split_point(data, pace.split)
            if split:
                self._sock.sendall(data[:split])
                time.sleep(pace.delay)
            self._sock.sendall(data[split:])
        self.replied = True

    def shutdown(self, how: int) -> None:
        if self.dead:
            raise OSError("the connection is gone")
        if self.replied:
            self._hold()
        # socket.socket's own shutdown: an SSLSocket's would drop its TLS session first,
        # and the server could then no longer read the client's last bytes in clear.
        socket.socket.shutdown(self._sock, how)

    def _hold(self) -> None:
        """Wait until the client reacts to the reply (sends, closes) or the step ends."""
        deadline = time.monotonic() + HOLD_LIMIT
        while not self._release.is_set() and not self._unread():
            try:
                readable, _, _ = select.select([self._sock], [], [], 0.001)
            except (OSError, ValueError):
                return
            if readable or time.monotonic() > deadline:
                return

    # For the harness.

    def close(self) -> None:
        """Close the TLS socket the upgrade made (the server closes the one it accepted)."""
        if self.tls:
            self._sock.close()

    def upgrade(self, context: ssl.SSLContext) -> None:
        """The TLS handshake after a 220 to STARTTLS (the server's side)."""
        self._sock.settimeout(HANDSHAKE_LIMIT)
        try:
            self._sock = context.wrap_socket(self._sock, server_side=True)
        except (OSError, ValueError):
            self.dead = True  # the client did not shake hands (it closed)
        else:
            self.tls = True

    def unread_octets(self) -> int:
        """Octets the client sent that the server has not read (FIONREAD)."""
        if self.dead:
            return 0
        try:
            buffer = fcntl.ioctl(self._sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except (OSError, ValueError):
            return 0
        return int(struct.unpack("i", buffer)[0])

    def idle_token(self) -> int | None:
        """The ``recv`` call the server is blocked in with nothing unread, else None.

        The server blocks in ``select`` and reads only once it returns, so while the
        client's bytes wait in the socket for a server thread that has not run yet,
        ``unread_octets`` is not 0: one observation is enough (the harness, the client's
        only writer, writes nothing while it observes).  An end of file reads as idle,
        which is harmless: nothing more is received.
        """
        if self.dead:
            return -1
        token = self.receiving
        if not token or self.unread_octets():
            return None
        return token


def _split_point(data: bytes, split: int | None) -> int:
    """Where a paced write is cut: inside its first reply, never after it."""
    if split is None:
        return 0
    end = 0
    for line in data.split(b"\r\n")[:-1]:
        end += len(line) + 2
        if line[3:4] != b"-":
            break
    point = split if split > 0 else end + split
    return point if 0 < point < end else 0


class AioServer(ReactiveServer):
    """:class:`ReactiveServer` with STARTTLS, paced writes, held closes (module docstring)."""

    def __init__(self, policy: AioPolicy, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(policy.policy)
        self.pace = {p.write: p for p in policy.pace}
        self.tls = tls
        self.wire: _Wire | None = None
        self.finished = False
        #: Set by the harness at the end of each step: a held close may go.
        self.release = threading.Event()

    def _serve(self) -> None:
        try:
            super()._serve()
        finally:
            self.finished = True

    def _converse(self, conn: socket.socket) -> None:
        self._listener.close()  # one connection: a second connect() is refused at once
        wire = _Wire(conn, self.pace, self.release, lambda: len(self.received) > self._pos)
        self.wire = wire
        try:
            super()._converse(cast(socket.socket, wire))
        finally:
            wire.close()

    def _command(self, conn: socket.socket, raw: bytes) -> None:
        super()._command(conn, raw)
        entry = self.log[-1]
        if (
            self.tls is not None
            and self.wire is not None
            and raw.split(b" ", 1)[0].strip().upper() == b"STARTTLS"
            and entry.answer.startswith(b"220 ")
            and not entry.closed
            and not self.wire.tls
        ):
            self.wire.upgrade(self.tls)

    def idle_token(self) -> int | None:
        """A token that stays the same while the server stays idle; None if it is busy."""
        if self.finished:
            return -2
        wire = self.wire
        if wire is None:
            return -3  # not connected (yet): nothing to wait for
        return wire.idle_token()


# -- implementations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Implementation:
    """A library as the harness drives it.

    Attributes:
        name: shown in reports.
        smtp: the ``SMTP`` class.
        send: the module's ``send`` coroutine function.
        errors: its exception classes by aiosmtplib's names (and ours, when it has them).
        own_options: extra keyword arguments of ``SMTP`` and ``send`` for a script
            (smtpclient.aio's opt-ins; none for aiosmtplib).
    """

    name: str
    smtp: Callable[..., Any]
    send: Callable[..., Awaitable[Any]]
    errors: Mapping[str, type[BaseException]]
    own_options: Callable[[Script], dict[str, Any]] = field(default=lambda script: {})


def _errors_of(module: Any) -> dict[str, type[BaseException]]:
    names = ERROR_NAMES + OUR_ERROR_NAMES
    return {name: getattr(module, name) for name in names if hasattr(module, name)}


def _ours_options(script: Script) -> dict[str, Any]:
    return {AUTH_IN_CLEAR_OPTION: script.auth_in_clear, PIPELINING_OPTION: script.pipelining}


def load(name: str) -> Implementation:
    """``aiosmtplib`` or ``smtpclient.aio``; :class:`MissingImplementation` if it cannot run."""
    if name == THEIRS:
        return Implementation(THEIRS, aiosmtplib.SMTP, aiosmtplib.send, _errors_of(aiosmtplib))
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise MissingImplementation(f"{name} cannot be imported: {exc!r}") from exc
    missing = [n for n in ("SMTP", "send", *ERROR_NAMES) if not hasattr(module, n)]
    if missing:
        raise MissingImplementation(
            f"{name} does not have {', '.join(missing)} yet: the differential test against "
            "aiosmtplib needs the SMTP class, send() and every exception class of aiosmtplib"
        )
    for function in (module.SMTP, module.send):
        parameters = inspect.signature(function).parameters
        passed_on = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        for option in (AUTH_IN_CLEAR_OPTION, PIPELINING_OPTION):
            if option not in parameters and not passed_on:
                raise MissingImplementation(
                    f"{name}.{function.__name__} has no {option!r} option; the harness "
                    "passes it (tests/differential_aio/compare.py: AUTH_IN_CLEAR_OPTION, "
                    "PIPELINING_OPTION)"
                )
    return Implementation(name, module.SMTP, module.send, _errors_of(module), _ours_options)


# -- records -------------------------------------------------------------------------------


def _code(code: object) -> str:
    """A reply code: ``250``; an int subclass shows its type (``SMTPStatus(250)``)."""
    if isinstance(code, int) and type(code) is not int and not isinstance(code, bool):
        return f"{type(code).__name__}({int(code)})"
    return repr(code)


def canon(value: object) -> str:
    """A canonical text for comparing values: SMTPResponse named, dicts sorted, bytes apart.

    Comparing texts, never values, keeps ``b"x" == "x"`` out of the comparison and tells an
    ``SMTPResponse`` from a plain tuple.
    """
    if isinstance(value, tuple) and type(value).__name__ == "SMTPResponse" and len(value) == 2:
        return f"SMTPResponse({_code(value[0])}, {value[1]!r})"
    if isinstance(value, dict):
        items = sorted(f"{canon(k)}: {canon(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(canon(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(canon(v) for v in value) + "]"
    if isinstance(value, int) and not isinstance(value, bool):
        return _code(value)
    return repr(value)


def exception_attributes(exc: BaseException) -> dict[str, Any]:
    """The attributes compared: ``code``, ``message`` (the server's text: only with a code
    other than -1; other messages are each library's own wording), ``sender``,
    ``recipient``, and ``recipients`` as a list of (code, message, recipient)."""
    attrs: dict[str, Any] = {}
    if hasattr(exc, "code"):
        attrs["code"] = exc.code
        if hasattr(exc, "message") and exc.code != -1:
            attrs["message"] = exc.message
    for name in ("sender", "recipient"):
        if hasattr(exc, name):
            attrs[name] = getattr(exc, name)
    if hasattr(exc, "recipients"):
        attrs["recipients"] = [
            (r.code, r.message, r.recipient)
            if all(hasattr(r, a) for a in ("code", "message", "recipient"))
            else repr(r)
            for r in exc.recipients
        ]
    return attrs


@dataclass(frozen=True)
class Outcome:
    """What a step did: returned, raised, was not run (``skipped``), or never ended (``hang``).

    Compared: ``kind``, ``value``, ``exc_type`` (the class's name), ``isa`` (the names of
    the classes it is an instance of: aiosmtplib's, mapped by name, ours, and builtins) and
    ``attrs``.  ``message`` and ``raw`` (the value or the exception) are for rules and
    reports.
    """

    kind: str
    value: str = ""
    exc_type: str = ""
    isa: tuple[str, ...] = ()
    attrs: str = ""
    message: str = field(default="", compare=False)
    raw: Any = field(default=None, compare=False)

    @classmethod
    def returned(cls, value: object, shown: str | None = None) -> Outcome:
        return cls("return", canon(value) if shown is None else shown, raw=value)

    @classmethod
    def raised(cls, exc: BaseException, errors: Mapping[str, type[BaseException]]) -> Outcome:
        isa = [name for name, kind in errors.items() if isinstance(exc, kind)]
        isa += [name for name, kind in BUILTIN_ERRORS if isinstance(exc, kind)]
        return cls(
            "raise",
            exc_type=type(exc).__name__,
            isa=tuple(sorted(set(isa))),
            attrs=canon(exception_attributes(exc)),
            message=str(exc),
            raw=exc,
        )

    def is_a(self, name: str) -> bool:
        """The step raised an instance of ``name`` (aiosmtplib's name, ours, or a builtin)."""
        return self.kind == "raise" and name in self.isa

    @property
    def code(self) -> object:
        """The exception's ``code``, if it has one."""
        return getattr(self.raw, "code", None) if self.kind == "raise" else None

    def describe(self) -> str:
        if self.kind == "return":
            return f"returned {self.value}"
        if self.kind == "raise":
            attrs = "" if self.attrs == "{}" else f" {self.attrs}"
            return f"raised {self.exc_type}{attrs}: {self.message[:200]}"
        if self.kind == "hang":
            return f"did not end within {STEP_LIMIT:.0f} s"
        return "not run"


@dataclass(frozen=True)
class ClientState:
    """The client's observable state after a step (each field a canonical text)."""

    is_connected: str = "False"
    tls: str = "False"
    last_ehlo_response: str = "None"
    last_helo_response: str = "None"
    esmtp_extensions: str = "{}"
    supports_esmtp: str = "False"
    server_auth_methods: str = "[]"
    supported_auth_methods: str = "[]"
    is_ehlo_or_helo_needed: str = "True"
    local_hostname: str = "None"
    timeout: str = "None"

    @property
    def connected(self) -> bool:
        return self.is_connected == "True"

    def describe(self) -> str:
        if not self.connected:
            return "closed"
        return "connected" + (", TLS" if self.tls == "True" else "")


@dataclass(frozen=True)
class StepRecord:
    """One step of one run: the call, its outcome, and what the server saw of it."""

    index: int
    step: Step
    outcome: Outcome
    state: ClientState
    entries: tuple[Entry, ...]
    server_state: ServerState

    @property
    def received(self) -> bytes:
        """The bytes the server received during the step."""
        return b"".join(entry.raw for entry in self.entries)

    def commands(self) -> list[Entry]:
        """The step's entries other than the greeting."""
        return [entry for entry in self.entries if entry.kind != "greeting"]

    def describe(self) -> list[str]:
        lines = [
            f"[{self.index}] {self.step!r} -> {self.outcome.describe()} ({self.state.describe()})"
        ]
        for entry in self.entries:
            lines.extend("    " + line for line in entry.describe())
        return lines


@dataclass(frozen=True)
class Transcript:
    """One run: every step, and everything the server received."""

    implementation: str
    steps: tuple[StepRecord, ...]
    received: bytes
    log: tuple[Entry, ...]

    def describe(self) -> str:
        lines = [f"--- {self.implementation} ---"]
        for record in self.steps:
            lines.extend(record.describe())
        return "\n".join(lines)


# -- running -------------------------------------------------------------------------------


def _safe(read: Callable[[], object]) -> str:
    try:
        return canon(read())
    except Exception as exc:  # the state itself failed to read: that is part of the state
        return f"<{type(exc).__name__}>"


def _client_state(smtp: Any) -> ClientState:
    if smtp is None:
        return ClientState()

    def tls() -> bool:
        return bool(smtp.is_connected) and smtp.get_transport_info("sslcontext") is not None

    return ClientState(
        is_connected=_safe(lambda: bool(smtp.is_connected)),
        tls=_safe(tls),
        last_ehlo_response=_safe(lambda: smtp.last_ehlo_response),
        last_helo_response=_safe(lambda: smtp.last_helo_response),
        esmtp_extensions=_safe(lambda: dict(smtp.esmtp_extensions)),
        supports_esmtp=_safe(lambda: bool(smtp.supports_esmtp)),
        server_auth_methods=_safe(lambda: list(smtp.server_auth_methods)),
        supported_auth_methods=_safe(lambda: list(smtp.supported_auth_methods)),
        is_ehlo_or_helo_needed=_safe(lambda: bool(smtp.is_ehlo_or_helo_needed)),
        local_hostname=_safe(lambda: smtp.local_hostname),
        timeout=_safe(lambda: smtp.timeout),
    )


def _materialise(value: object) -> object:
    """A :class:`MessageSpec` becomes a fresh ``EmailMessage``; lists are copied."""
    if isinstance(value, MessageSpec):
        return value.build()
    if isinstance(value, list):
        return list(value)
    return value


async def _settle(server: AioServer) -> None:
    """Let a held close go, wait for the server to go idle, let the client see the rest.

    Once the server is idle, whatever it wrote (a close, a reply nobody asked for) is in
    the client's socket; a few turns of the event loop let the client read it.  If the
    client wrote meanwhile (a library's background task), the server is busy again and
    the harness waits again.
    """
    server.release.set()
    deadline = time.monotonic() + SETTLE_LIMIT
    while True:
        await asyncio.sleep(0)
        token = server.idle_token()
        if token is None:
            if time.monotonic() > deadline:
                raise HarnessError("the differential server did not go idle")
            await asyncio.sleep(0.0002)
            continue
        await asyncio.sleep(0.0002)
        for _ in range(SETTLE_TURNS):
            await asyncio.sleep(0)
        if server.idle_token() == token:
            break
    server.release.clear()


async def closed_down() -> None:
    """Wait until no socket but the event loop's own is registered.

    Closing a TLS transport takes several turns of the loop (close_notify, the peer's end
    of file, then the socket): ``asyncio.run`` must not end before, or the socket is left
    unclosed.  Waits at most 2 s: a library that leaves a connection open is then reported
    by the ResourceWarning.
    """
    selector = getattr(asyncio.get_running_loop(), "_selector", None)
    if selector is None:
        return
    deadline = time.monotonic() + 2.0
    while len(selector.get_map()) > 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.001)


@dataclass(frozen=True)
class _Done:
    step: Step
    outcome: Outcome
    state: ClientState
    end: int
    connected: bool


class _Player:
    """Plays one script with one library against one server (inside ``asyncio.run``)."""

    def __init__(self, impl: Implementation, conversation: Conversation, server: AioServer):
        self.impl = impl
        self.script = conversation.script
        self.server = server
        self.smtp: Any = None
        self.done: list[_Done] = []
        context = tls_material().client_context
        self.base: dict[str, Any] = {"tls_context": context, **impl.own_options(self.script)}

    async def attempt(self, call: Callable[[], object]) -> tuple[Outcome, BaseException | None]:
        try:
            result = call()
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                finished, _ = await asyncio.wait({task}, timeout=STEP_LIMIT)
                if not finished:
                    task.cancel()
                    await asyncio.wait({task})
                    return Outcome("hang"), None
                result = task.result()
        except Exception as exc:  # every exception is an outcome to compare
            return Outcome.raised(exc, self.impl.errors), exc
        if self.smtp is not None and result is self.smtp:
            return Outcome.returned(result, "<the SMTP object>"), None
        return Outcome.returned(result), None

    async def record(
        self, step: Step, call: Callable[[], object] | None
    ) -> tuple[Outcome, BaseException | None]:
        if call is None:
            outcome, exc = Outcome("skipped"), None
        else:
            outcome, exc = await self.attempt(call)
            await _settle(self.server)
        server = self.server
        done = _Done(
            step, outcome, _client_state(self.smtp), len(server.received), server.wire is not None
        )
        self.done.append(done)
        return outcome, exc

    def perform(self, step: Step) -> object:
        smtp = self.smtp
        args = [_materialise(a) for a in step.args]
        kwargs = {k: _materialise(v) for k, v in step.kwargs}
        if step.method == "close":
            return smtp.close()
        if step.method == "connect":
            return smtp.connect(**kwargs)
        return getattr(smtp, step.method)(*args, **kwargs)

    async def play(self) -> list[_Done]:
        script, host, port = self.script, self.server.host, self.server.port
        if script.kind == "send":
            step = script.steps[0]
            message = _materialise(step.args[0])
            kwargs = {**self.base, **{k: _materialise(v) for k, v in step.kwargs}}
            await self.record(
                step, lambda: self.impl.send(message, hostname=host, port=port, **kwargs)
            )
            await closed_down()
            return self.done

        def construct() -> None:
            self.smtp = self.impl.smtp(
                hostname=host, port=port, **self.base, **dict(script.options)
            )

        await self.record(Step("SMTP", (), script.options), construct)
        if self.smtp is None:
            return self.done
        if script.kind == "context":
            await self.play_block()
        else:
            for step in script.steps:
                await self.record(step, lambda step=step: self.perform(step))  # type: ignore[misc]
        await self.record(Step("close"), self.smtp.close)
        await closed_down()
        return self.done

    async def play_block(self) -> None:
        """``async with smtp:`` around the steps; ``__aenter__``, ``__aexit__`` are steps too."""
        smtp = self.smtp
        outcome, _ = await self.record(Step("__aenter__"), smtp.__aenter__)
        if outcome.kind != "return":
            # The block never runs and __aexit__ is not called.
            for step in (*self.script.steps, Step("__aexit__")):
                await self.record(step, None)
            return
        escaped: BaseException | None = None
        for step in self.script.steps:
            if escaped is not None:
                await self.record(step, None)
                continue
            _, exc = await self.record(step, lambda step=step: self.perform(step))  # type: ignore[misc]
            if self.script.propagate and exc is not None:
                escaped = exc
        if escaped is None:
            await self.record(Step("__aexit__"), lambda: smtp.__aexit__(None, None, None))
        else:
            kind, tb = type(escaped), escaped.__traceback__
            await self.record(
                Step("__aexit__", (kind.__name__,)), lambda: smtp.__aexit__(kind, escaped, tb)
            )


def run(implementation: str | Implementation, conversation: Conversation) -> Transcript:
    """Play ``conversation`` with one library, in its own ``asyncio.run``, own server."""
    impl = load(implementation) if isinstance(implementation, str) else implementation
    server = AioServer(conversation.policy, tls_material().server_context)
    with server:
        done = asyncio.run(_Player(impl, conversation, server).play())
    if server.error is not None:
        raise server.error
    log = list(server.log)
    records = []
    start = 0
    state = ServerState()
    greeted = False
    for index, item in enumerate(done):
        entries = list(entries_between(log, start, item.end))
        if item.connected and not greeted:
            entries = [e for e in log if e.kind == "greeting"] + entries
            greeted = True
        if entries:
            state = entries[-1].state
        records.append(
            StepRecord(index, item.step, item.outcome, item.state, tuple(entries), state)
        )
        start = item.end
    return Transcript(impl.name, tuple(records), bytes(server.received), tuple(log))


# -- comparing -----------------------------------------------------------------------------


def differing(theirs: StepRecord, ours: StepRecord) -> tuple[str, ...]:
    """The aspects in which two records of a step differ."""
    aspects = []
    if theirs.outcome != ours.outcome:
        aspects.append("outcome")
    if theirs.state != ours.state:
        aspects.append("client state")
    if theirs.received != ours.received:
        aspects.append("bytes received")
    if theirs.server_state != ours.server_state:
        aspects.append("server state")
    return tuple(aspects)


def _shown_lines(data: bytes) -> list[str]:
    pieces = data.splitlines(keepends=True)
    return [repr(p) if len(p) <= 100 else repr(p[:80]) + f"...({len(p)} octets)" for p in pieces]


def _diff(theirs: bytes, ours: bytes) -> list[str]:
    return list(difflib.unified_diff(_shown_lines(theirs), _shown_lines(ours), lineterm="", n=2))[
        2:
    ]


@dataclass(frozen=True)
class Difference:
    """The first difference no rule explains."""

    index: int
    aspects: tuple[str, ...]
    theirs: StepRecord
    ours: StepRecord

    def describe(self, first: str, second: str) -> str:
        t, o = self.theirs, self.ours
        a, b = f"{first:<14}", f"{second:<14}"
        lines = [f"step [{self.index}] {t.step!r} differs in: {', '.join(self.aspects)}"]
        if "outcome" in self.aspects:
            lines += [f"  {a} {t.outcome.describe()}", f"  {b} {o.outcome.describe()}"]
            if t.outcome.isa != o.outcome.isa:
                lines += [f"  {a} isa {t.outcome.isa}", f"  {b} isa {o.outcome.isa}"]
        if "client state" in self.aspects:
            for name in ClientState.__dataclass_fields__:
                mine, yours = getattr(t.state, name), getattr(o.state, name)
                if mine != yours:
                    lines += [f"  {a} {name} = {mine}", f"  {b} {name} = {yours}"]
        if "bytes received" in self.aspects:
            lines.append(f"  bytes the server received (- {first}, + {second}):")
            lines += ["    " + line for line in _diff(t.received, o.received)]
        if "server state" in self.aspects:
            lines += [
                f"  server after {a} {t.server_state}",
                f"  server after {b} {o.server_state}",
            ]
        return "\n".join(lines)


@dataclass(frozen=True)
class Verdict:
    """The comparison of one conversation."""

    conversation: Conversation
    theirs: Transcript
    ours: Transcript
    explanations: tuple[Explanation, ...]
    unexplained: Difference | None = None

    @property
    def ok(self) -> bool:
        return self.unexplained is None

    @property
    def rules(self) -> tuple[str, ...]:
        """The names of the rules that explained a difference, in order."""
        return tuple(e.rule for e in self.explanations)

    def report(self) -> str:
        first, second = self.theirs.implementation, self.ours.implementation
        head = (
            f"{second} behaves like {first} (within the documented deviations)"
            if self.unexplained is None
            else f"{second} differs from {first}, and no documented deviation explains it:\n"
            + self.unexplained.describe(first, second)
        )
        parts = [head]
        if self.explanations:
            parts.append(
                "Explained differences:\n"
                + "\n".join(f"  [{e.index}] {e.rule}: {e.note}" for e in self.explanations)
            )
        parts += [self.conversation.describe(), self.theirs.describe(), self.ours.describe()]
        return "\n\n".join(parts)


def compare(
    conversation: Conversation,
    theirs: Transcript,
    ours: Transcript,
    rules: Mapping[str, Deviation] | None = None,
) -> Verdict:
    """Compare two runs of ``conversation`` step by step (module docstring)."""
    from tests.differential_aio.deviations import DEVIATIONS, Context

    if rules is None:
        rules = DEVIATIONS
    explanations: list[Explanation] = []
    for index, (theirs_step, ours_step) in enumerate(zip(theirs.steps, ours.steps, strict=True)):
        t, o = theirs_step, ours_step
        applied: set[str] = set()
        while aspects := differing(t, o):
            context = Context(conversation, theirs, ours, index, t, o)
            found = None
            for name, rule in rules.items():
                if name not in applied and (found := rule.explain(context)) is not None:
                    break
            if found is None:
                difference = Difference(index, aspects, t, o)
                return Verdict(conversation, theirs, ours, tuple(explanations), difference)
            applied.add(found.rule)
            explanations.append(found)
            if found.diverged:
                return Verdict(conversation, theirs, ours, tuple(explanations))
            t, o = found.theirs_step, found.ours_step
    return Verdict(conversation, theirs, ours, tuple(explanations))


def check(
    conversation: Conversation,
    first: str | Implementation = THEIRS,
    second: str | Implementation = OURS,
    rules: Mapping[str, Deviation] | None = None,
) -> Verdict:
    """Run ``conversation`` through ``first`` then ``second`` and compare the runs.

    ``rules`` defaults to every deviation rule; a library against itself is compared with
    the rules too, and the test requires that none was needed.
    """
    theirs = run(first, conversation)
    ours = run(second, conversation)
    return compare(conversation, theirs, ours, rules)
