"""The base of the ``smtplib`` facade's ``SMTP``: its state, debug output and engine I/O.

:class:`SessionBase` declares the session's attributes (``SMTP`` sets them),
prints the debug output, runs engine procedures on the blocking driver, sends
one command and reads its reply (``docmd``, ``putcmd``, ``getreply``, ``send``),
turns engine and socket errors into smtplib's exceptions, and closes.
"""

from __future__ import annotations

import datetime
import ssl
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from smtp_core import (
    BaseCommand,
    Command,
    Connection,
    ConnectionClosed,
    Extensions,
    Greeting,
    LocalProtocolError,
    Procedure,
    RemoteProtocolError,
    Reply,
    ServerDisconnected,
)
from transports.sync import SyncDriver, exchange

from ._errors import SMTPResponseException, SMTPServerDisconnected
from ._smtplib_helpers import (
    _DATA,
    _ENGINE_ERRORS,
    _NOOP,
    _QUIT,
    _RSET,
    SMTPProtocolError,
    _check_newlines,
)

__all__ = ["SessionBase"]

T = TypeVar("T")

#: docmd()'s verbs the engine knows without arguments: sent as these commands, so
#: the session's state follows them.
_ARGUMENTLESS: dict[str, BaseCommand] = {"QUIT": _QUIT, "RSET": _RSET, "NOOP": _NOOP, "DATA": _DATA}


class SessionBase:
    """What every part of ``SMTP`` builds on: the session's state and its plumbing.

    Not used on its own: :class:`smtpclient.SMTP` sets the attributes declared
    here (class defaults in its body, the rest in ``__init__`` and ``_start``).
    """

    # Class attributes of SMTP (their defaults are set there).
    debuglevel: int
    trace: Callable[[str, bytes], None] | None
    sock: Any
    file: Any
    helo_resp: bytes | None
    ehlo_msg: str
    ehlo_resp: bytes | None
    does_esmtp: bool
    _ehlo_extensions: Extensions | None
    _lmtp: bool
    # Instance attributes set by SMTP.__init__.
    _host: str
    timeout: float | None
    _esmtp_features: dict[str, str]
    command_encoding: str
    source_address: tuple[str, int] | None
    _auth_challenge_count: int
    _conn: Connection | None
    _driver: SyncDriver | None
    _reply_timeout: float | None
    lmtp_replies: dict[str, tuple[int, bytes]]
    local_hostname: str

    # -- debugging ---------------------------------------------------------------------

    def set_debuglevel(self, debuglevel: int) -> None:
        """1 prints the conversation on stderr; 2 adds a timestamp to each line."""
        self.debuglevel = debuglevel

    def _print_debug(self, *args: object) -> None:
        if self.debuglevel > 1:
            print(datetime.datetime.now().time(), *args, file=sys.stderr)
        else:
            print(*args, file=sys.stderr)

    def _trace(self, direction: str, data: bytes) -> None:
        if self.debuglevel > 0 and direction == "send":
            self._print_debug("send:", repr(data))
        if self.trace is not None:
            self.trace(direction, data)

    # -- running the engine ------------------------------------------------------------

    def _get_driver(self) -> SyncDriver:
        """The driver for engine procedures on the session's socket (made once per socket)."""
        sock = self.sock
        if self._conn is None or sock is None:
            raise SMTPServerDisconnected("please run connect() first")
        driver = self._driver
        if driver is None or driver.sock is not sock:
            driver = self._driver = SyncDriver(
                sock, server_hostname=self._host or None, reply_timeout=self._reply_timeout
            )
        return driver

    def _run(self, procedure: Procedure[T]) -> T:
        """Run an engine procedure, turning engine errors into smtplib's."""
        # The driver made for this socket, if any (sendmail runs one per message).
        driver = self._driver
        if driver is None or driver.sock is not self.sock:
            try:
                driver = self._get_driver()
            except SMTPServerDisconnected:
                procedure.close()
                raise
        # The trace hook only when it has something to do: a session with neither
        # debug output nor a trace makes no trace calls.  Both may change at any
        # time, so this is decided for each run.
        driver.trace = self._trace if self.debuglevel > 0 or self.trace is not None else None
        try:
            return driver.run(procedure)
        except _ENGINE_ERRORS as exc:
            self._raise_smtplib_error(exc)

    def _exchange(self, data: bytes) -> tuple[int, bytes]:
        """Write ``data`` (``b""``: nothing), read the next reply, return ``(code, text)``.

        The ``command``/``read_event`` procedures without their generators
        (``transports.sync.exchange``), with :meth:`_run`'s errors; the server
        closing first is ``SMTPServerDisconnected``.
        """
        conn = self._conn
        sock = self.sock
        if conn is None or sock is None:
            raise SMTPServerDisconnected("please run connect() first")
        trace = self._trace if self.debuglevel > 0 or self.trace is not None else None
        try:
            reply = exchange(sock, conn, data, self._reply_timeout, trace)
        except _ENGINE_ERRORS as exc:
            self._raise_smtplib_error(exc)
        if type(reply) is ConnectionClosed:
            self.close()
            raise SMTPServerDisconnected("Connection unexpectedly closed")
        if self.debuglevel > 0:
            return self._reply_tuple(reply)
        return reply.code, b"\n".join(reply.lines)  # _reply_tuple without the debug output

    def _raise_smtplib_error(self, exc: Exception) -> NoReturn:
        """Raise smtplib's exception for an engine or socket error (called in its handler)."""
        if isinstance(exc, ServerDisconnected):
            self.close()
            raise SMTPServerDisconnected("Connection unexpectedly closed") from None
        if isinstance(exc, RemoteProtocolError):
            # smtplib's code for a reply it cannot parse is -1.
            self.close()
            raise SMTPResponseException(-1, str(exc).encode()) from exc
        if isinstance(exc, LocalProtocolError):
            raise SMTPProtocolError(str(exc)) from exc
        self.close()
        if isinstance(exc, ssl.SSLError):
            raise exc  # as it is: a failed handshake leaves nothing usable
        raise SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from exc

    def _reply_tuple(self, reply: Reply | Greeting) -> tuple[int, bytes]:
        message = b"\n".join(reply.lines)
        if self.debuglevel > 0:
            for index, line in enumerate(reply.lines):
                sep = b" " if index == len(reply.lines) - 1 else b"-"
                self._print_debug("reply:", repr(b"%d%s%s\r\n" % (reply.code, sep, line)))
            self._print_debug(f"reply: retcode ({reply.code}); Msg: {message!r}")
        return reply.code, message

    def getreply(self) -> tuple[int, bytes]:
        """Read the next reply; returns ``(code, text)`` with lines joined by ``\\n``.

        Raises:
            SMTPServerDisconnected: the server closed the connection.
        """
        return self._exchange(b"")

    def _command(self, command: BaseCommand, *, lowercase: bool = True) -> tuple[int, bytes]:
        """Send one command through the engine and read its reply.

        ``lowercase`` picks the case of the verb on the wire: smtplib writes its
        own commands in lower case and ``docmd``'s verb as the caller gave it.
        """
        conn = self._conn
        if conn is None:
            raise SMTPServerDisconnected("please run connect() first")
        conn.lowercase_commands = lowercase
        try:
            data = conn.send(command)
        except LocalProtocolError as exc:
            raise SMTPProtocolError(str(exc)) from exc
        return self._exchange(data)

    def _line(self, cmd: str, args: str = "") -> str:
        """Check a command line as smtplib does: no CR/LF, and encodable."""
        line = f"{cmd} {args}" if args else cmd
        _check_newlines(line)
        line.encode(self.command_encoding)  # UnicodeEncodeError, as smtplib
        return line

    def putcmd(self, cmd: str, args: str = "") -> None:
        """Send a command line without reading its reply (read it with :meth:`getreply`)."""
        self._line(cmd, args)
        if self._conn is None:
            raise SMTPServerDisconnected("please run connect() first")
        conn = self._conn
        data = self._run_send(lambda: conn.send(Command(cmd, args)))
        self.send(data)

    def _run_send(self, produce: Callable[[], bytes]) -> bytes:
        try:
            return produce()
        except LocalProtocolError as exc:
            raise SMTPProtocolError(str(exc)) from exc

    def send(self, s: str | bytes) -> None:
        """Write raw bytes to the server (smtplib's low-level ``send``)."""
        if self.sock is None:
            raise SMTPServerDisconnected("please run connect() first")
        data = s.encode(self.command_encoding) if isinstance(s, str) else s
        sys.audit("smtplib.send", self, data)
        self._trace("send", data)
        try:
            self.sock.sendall(data)
        except OSError:
            self.close()
            raise SMTPServerDisconnected("Server not connected") from None

    def docmd(self, cmd: str, args: str = "") -> tuple[int, bytes]:
        """Send a command and return its reply as ``(code, text)``."""
        self._line(cmd, args)
        known = _ARGUMENTLESS.get(cmd.upper()) if not args else None
        if known is None:
            return self._command(Command(cmd, args))  # written exactly as given
        return self._command(known, lowercase=cmd.islower())

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection without QUIT (idempotent)."""
        try:
            file, self.file = self.file, None
            if file:
                file.close()
        finally:
            sock, self.sock = self.sock, None
            self._driver = None
            self._conn = None
            if sock:
                sock.close()

    def quit(self) -> tuple[int, bytes]:
        """Send QUIT, close, and forget the EHLO/HELO state.

        Returns:
            ``(code, text)`` of the reply to QUIT.
        """
        res = self.docmd("quit")
        self.ehlo_resp = self.helo_resp = None
        self._esmtp_features = {}
        self._ehlo_extensions = None
        self.does_esmtp = False
        self.close()
        return res
