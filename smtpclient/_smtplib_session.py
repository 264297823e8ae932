"""The base of the ``smtplib`` facade's ``SMTP``: its state, debug output and engine I/O.

:class:`SessionBase` declares the session's attributes (``SMTP`` sets them),
prints the debug output, and moves command lines and replies between the
socket and a *permissive* engine (``Connection(permissive=True)``): every line
is written exactly as smtplib writes it and goes to the server, whatever the
order of commands or the server's extensions, and the engine pairs each reply
with its command and follows the state.  What the engine and the socket
report becomes smtplib's results through ``_smtplib_outcomes`` (the seam).
"""

from __future__ import annotations

import datetime
import ssl
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from smtp_core import (
    CommandLine,
    Connection,
    ConnectionClosed,
    Greeting,
    LocalProtocolError,
    OutcomeUnknown,
    Procedure,
    RemoteProtocolError,
    Reply,
    State,
)
from transports._logging import transcript_trace
from transports.sync import SyncDriver, exchange, set_reply_timeout

from ._errors import SMTPServerDisconnected
from ._smtplib_helpers import _check_newlines
from ._smtplib_outcomes import disconnected, raise_engine_error, reply_text

__all__ = ["SessionBase"]

T = TypeVar("T")


class SessionBase:
    """What every part of ``SMTP`` builds on: the session's state and its plumbing.

    Not used on its own: :class:`smtpclient.SMTP` sets the attributes declared
    here (class defaults in its body, the rest in ``__init__``).
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
    _lmtp: bool
    _tls_at_connect: bool
    # Instance attributes set by SMTP.__init__.
    _host: str
    timeout: float | None
    command_encoding: str
    source_address: tuple[str, int] | None
    _auth_challenge_count: int
    _conn: Connection | None
    _conn_sock: Any
    _driver: SyncDriver | None
    _reply_timeout: float | None
    lmtp_replies: dict[str, tuple[int, bytes]]
    local_hostname: str

    def _forget_hello(self) -> None:
        """Forget what EHLO/HELO said (a new socket, TLS, QUIT); SMTP resets its features."""
        raise NotImplementedError  # SMTP's CommandsMixin defines it

    # -- debugging ---------------------------------------------------------------------

    def set_debuglevel(self, debuglevel: int) -> None:
        """1 prints the conversation on stderr; 2 adds a timestamp to each line."""
        self.debuglevel = debuglevel

    def _print_debug(self, *args: object) -> None:
        if self.debuglevel > 1:
            print(datetime.datetime.now().time(), *args, file=sys.stderr)
        else:
            print(*args, file=sys.stderr)

    #: The transcript logger of the session (``smtpclient.transcript`` at
    #: DEBUG, AUTH redacted), made at connection time when that logger is on.
    _log_trace: Callable[[str, bytes], None] | None = None

    def _trace(self, direction: str, data: bytes) -> None:
        if self.debuglevel > 0 and direction == "send":
            self._print_debug("send:", repr(data))
        if self.trace is not None:
            self.trace(direction, data)
        if self._log_trace is not None:
            self._log_trace(direction, data)

    def _tracer(self) -> Callable[[str, bytes], None] | None:
        # The trace hook only when it has something to do: a session with
        # neither debug output, a trace nor a transcript log makes no trace calls.
        wanted = self.debuglevel > 0 or self.trace is not None or self._log_trace is not None
        return self._trace if wanted else None

    # -- the engine --------------------------------------------------------------------

    def _start(self, sock: Any, host: str) -> Connection:
        """Begin a fresh engine session on ``sock``, waiting for the greeting."""
        # smtplib starts TLS only when asked (starttls(), SMTP_SSL), sends
        # credentials and message lines of any length wherever it is asked
        # to, and leaves the order of commands to the server: permissive.
        conn = self._conn = Connection(
            lmtp=self._lmtp,
            lowercase_commands=True,  # "data", "rset": smtplib's own bytes
            tls_policy="none",
            auth_in_clear=True,
            max_line_length=None,
            tls_active=self._tls_at_connect,
            permissive=True,
        )
        self._conn_sock = sock
        self._host = host
        self._log_trace = transcript_trace(host)
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
        if timeout is not None:
            set_reply_timeout(sock, timeout)
        self._reply_timeout = timeout
        # Made when a procedure first needs one (pipelined sendmail, SCRAM).
        self._driver = None
        self._forget_hello()
        return conn

    def _engine(self) -> Connection:
        """The engine session of the socket.

        Code that makes ``SMTP()`` unconnected and assigns a connected socket
        to ``sock`` (test suites, proxy recipes) gets one here, waiting for
        the greeting as after :meth:`connect`.  A socket that replaced the
        session's own after a 220 to STARTTLS sent by hand is the TLS layer.
        """
        conn = self._conn
        sock = self.sock
        if sock is None:
            raise SMTPServerDisconnected("please run connect() first")
        if conn is None:
            return self._start(sock, self._host)
        if sock is not self._conn_sock:
            self._conn_sock = sock
            if conn.state is State.TLS:
                conn.start_tls_done()
        return conn

    def _fail(self, exc: Exception) -> NoReturn:
        """Raise smtplib's exception for an engine or socket error (R2-R4)."""
        raise_engine_error(exc, self.close)

    def _get_driver(self) -> SyncDriver:
        """The driver for engine procedures on the session's socket (made once per socket)."""
        self._engine()
        driver = self._driver
        if driver is None or driver.sock is not self.sock:
            driver = self._driver = SyncDriver(
                self.sock, server_hostname=self._host or None, reply_timeout=self._reply_timeout
            )
        return driver

    def _run(self, procedure: Procedure[T]) -> T:
        """Run an engine procedure, turning engine errors into smtplib's."""
        try:
            driver = self._get_driver()
        except SMTPServerDisconnected:
            procedure.close()
            raise
        driver.trace = self._tracer()
        conn = self._conn
        try:
            return driver.run(procedure)
        except (RemoteProtocolError, LocalProtocolError, OSError, OutcomeUnknown) as exc:
            self._fail(exc)
        finally:
            if conn is not None and conn.state is State.CLOSED:
                self.close()  # R2: a 421 (or the server's close) ended the session

    # -- lines and replies -------------------------------------------------------------

    def _line(self, cmd: str, args: str = "") -> str:
        """smtplib's command line for ``cmd`` and ``args``, checked as smtplib checks it.

        Raises:
            ValueError: CR or LF (smtplib's message), or NUL (not smtplib: R4).
            UnicodeEncodeError: not encodable with ``command_encoding``, as smtplib.
        """
        line = cmd if args == "" else f"{cmd} {args}"
        _check_newlines(line)
        if not line.isascii():
            if self.sock is None:  # smtplib's send() finds that before it encodes
                raise SMTPServerDisconnected("please run connect() first")
            line.encode(self.command_encoding)
        return line

    def _register(self, line: str, recipient: str | None = None) -> bytes:
        """Tell the engine ``line`` is being sent; the bytes to write."""
        conn = self._conn
        if conn is None or self.sock is not self._conn_sock:
            conn = self._engine()
        try:
            return conn.send(CommandLine(line, recipient))
        except (RemoteProtocolError, LocalProtocolError) as exc:
            self._fail(exc)

    def _read(self) -> Reply | Greeting:
        """Read the next reply (R2, R3)."""
        conn = self._conn
        if conn is None or self.sock is not self._conn_sock:
            conn = self._engine()
        if not conn.reply_due and conn.state is not State.CLOSED:
            # The caller wrote bytes of its own with send(): pair the reply
            # they drew with them, leaving the state as it is.  (After a 421
            # or a QUIT nothing can be paired: the read finds the close.)
            conn.send_unchecked(b"", replies=1)
        try:
            event = exchange(self.sock, conn, b"", self._reply_timeout, self._tracer())
        except (RemoteProtocolError, OSError) as exc:
            self._fail(exc)
        if isinstance(event, ConnectionClosed):
            disconnected(self.close)
        if self.debuglevel > 0:
            self._print_reply(event)
        if event.code == 421:
            self.close()  # R2: the server is closing the channel (RFC 5321 §3.8)
        return event

    def _reply_to(self, line: str, recipient: str | None = None) -> Reply | Greeting:
        """Send a checked ``line`` and read its reply."""
        self.send(self._register(line, recipient))
        return self._read()

    def _docmd(self, line: str) -> tuple[int, bytes]:
        """Send a checked ``line``; its reply as ``(code, text)``."""
        return self._reply_tuple(self._reply_to(line))

    def _print_reply(self, reply: Reply | Greeting) -> None:
        """smtplib's debug output for a reply."""
        for index, line in enumerate(reply.lines):
            sep = b" " if index == len(reply.lines) - 1 else b"-"
            self._print_debug("reply:", repr(b"%d%s%s\r\n" % (reply.code, sep, line)))
        self._print_debug(f"reply: retcode ({reply.code}); Msg: {reply_text(reply)!r}")

    @staticmethod
    def _reply_tuple(reply: Reply | Greeting) -> tuple[int, bytes]:
        """R1."""
        return reply.code, reply_text(reply)

    # -- smtplib's low-level API -------------------------------------------------------

    def getreply(self) -> tuple[int, bytes]:
        """Read the next reply; returns ``(code, text)`` with lines joined by ``\\n``.

        Raises:
            SMTPServerDisconnected: the server closed the connection.
            SMTPResponseException: the reply broke the grammar or the limits
                (code -1); the connection is closed.
        """
        return self._reply_tuple(self._read())

    def putcmd(self, cmd: str, args: str = "") -> None:
        """Send a command line without reading its reply (read it with :meth:`getreply`)."""
        self.send(self._register(self._line(cmd, args)))

    def send(self, s: str | bytes) -> None:
        """Write raw bytes to the server (smtplib's low-level ``send``).

        Raises:
            SMTPServerDisconnected: not connected, or the write failed (closed).
        """
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
        """Send a command and return its reply as ``(code, text)``.

        The line goes to the server as written (``docmd("MAIL FROM: <a@b>")``,
        ``docmd("AUTH", "XOAUTH2 " + token)``...); the engine follows it.
        """
        return self._docmd(self._line(cmd, args))

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
            self._conn_sock = None
            if sock:
                sock.close()

    def quit(self) -> tuple[int, bytes]:
        """Send QUIT, close, and forget the EHLO/HELO state.

        Returns:
            ``(code, text)`` of the reply to QUIT.
        """
        res = self.docmd("quit")
        self._forget_hello()
        self.close()
        return res

    def _wrap_tls(self, context: ssl.SSLContext) -> None:
        """Start TLS on the session's socket after a 220 to STARTTLS."""
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=self._host or None)
        except BaseException:
            self.close()
            raise
        self.file = None
        conn = self._conn
        if conn is not None:
            self._conn_sock = self.sock
            if conn.state is State.TLS:
                conn.start_tls_done()  # RFC 3207 §4.2: EHLO again; AUTH again
