"""``SMTP``, ``SMTP_SSL`` and ``LMTP``: the standard library's API on ``smtp_core``.

Every method keeps smtplib's signature, return value and exceptions; the
protocol work (reply parsing, extension parsing, dot-stuffing, pipelining) is
the engine's, and the I/O is the blocking driver's.  Sockets are made through
the package's own ``socket`` attribute, looked up at call time, so code (and
CPython's test suite) that replaces ``smtplib.socket`` keeps working.

Where smtplib is unsafe this module is not; each deviation is listed in the
README ("Differences from smtplib").
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import email.generator
import email.message
import email.utils
import functools
import io
import re
import socket
import ssl
import sys
from collections.abc import Callable, Sequence
from types import ModuleType, TracebackType
from typing import Any, NoReturn, TypeVar

from smtp_core import (
    Auth,
    AuthResponse,
    BaseCommand,
    Command,
    Connection,
    ConnectionClosed,
    Content,
    CramMD5,
    Data,
    Ehlo,
    EndOfContent,
    Expn,
    Extensions,
    Greeting,
    Helo,
    Help,
    Lhlo,
    LocalProtocolError,
    Mail,
    Noop,
    Plain,
    Procedure,
    Quit,
    Rcpt,
    RemoteProtocolError,
    Reply,
    ReplyError,
    Rset,
    ServerDisconnected,
    Vrfy,
    mechanism_for,
    procedures,
)
from transports.sync import SyncDriver, exchange, set_reply_timeout

from ._errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

__all__ = [
    "CRLF",
    "LMTP",
    "LMTP_PORT",
    "OLDSTYLE_AUTH",
    "SMTP",
    "SMTP_PORT",
    "SMTP_SSL",
    "SMTP_SSL_PORT",
    "SMTPProtocolError",
    "bCRLF",
    "quoteaddr",
    "quotedata",
]

T = TypeVar("T")

SMTP_PORT = 25
SMTP_SSL_PORT = 465
LMTP_PORT = 2003
CRLF = "\r\n"
bCRLF = b"\r\n"  # noqa: N816 - smtplib's name
#: smtplib's per-line read limit.  The engine's own limit is lower
#: (``smtp_core.MAX_REPLY_LINE_LENGTH``); this name is kept for compatibility.
_MAXLINE = 8192
OLDSTYLE_AUTH = re.compile(r"auth=(.*)", re.I)


class SMTPProtocolError(SMTPException, ValueError):
    """The call was refused before anything was sent (``smtp_core.LocalProtocolError``).

    For example a command the session's state does not allow, or an option the
    server did not advertise.  Also a ``ValueError``, as smtplib raises for
    arguments it refuses.
    """


#: The socket module's "no timeout given" sentinel (the same object in test doubles).
_DEFAULT_TIMEOUT: Any = vars(socket)["_GLOBAL_DEFAULT_TIMEOUT"]


def _net() -> ModuleType:
    """The ``socket`` module as the package sees it now (tests replace it)."""
    module: ModuleType = sys.modules[__package__].socket
    return module


# A plain dot-atom address (or a bare name such as "John"): parseaddr returns
# it unchanged, so the 17 µs it costs can be skipped.  tests/test_facade_speed.py
# checks the shortcut against parseaddr.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)?"
)


def quoteaddr(addrstring: str) -> str:
    """Quote an address for MAIL/RCPT, as smtplib does: ``'A <a@b>'`` -> ``'<a@b>'``."""
    if _PLAIN_ADDRESS.fullmatch(addrstring):
        return f"<{addrstring}>"
    displayname, addr = email.utils.parseaddr(addrstring)
    if (displayname, addr) == ("", ""):
        # parseaddr could not make sense of it; smtplib sends it as it is.
        if addrstring.strip().startswith("<"):
            return addrstring
        return f"<{addrstring}>"
    return f"<{addr}>"


def _addr_only(addrstring: str) -> str:
    displayname, addr = email.utils.parseaddr(addrstring)
    if (displayname, addr) == ("", ""):
        return addrstring
    return addr


def quotedata(data: str) -> str:
    """Dot-stuff ``data`` and make every line ending CRLF (smtplib's helper)."""
    return re.sub(r"(?m)^\.", "..", re.sub(r"(?:\r\n|\n|\r(?!\n))", CRLF, data))


def _fix_eols(data: str) -> str:
    return re.sub(r"(?:\r\n|\n|\r(?!\n))", CRLF, data)


#: smtplib's bound on challenges in :meth:`SMTP.auth`.
_MAXCHALLENGE = 5
_LOGIN_PREFERENCE = ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")


def _utf8(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8") if isinstance(value, str) else value


# Commands are frozen (immutable) values, so the argumentless ones are made once.
_QUIT, _RSET, _NOOP, _DATA = Quit(), Rset(), Noop(), Data()
#: docmd()'s verbs the engine knows without arguments: sent as these commands, so
#: the session's state follows them.
_ARGUMENTLESS: dict[str, BaseCommand] = {"QUIT": _QUIT, "RSET": _RSET, "NOOP": _NOOP, "DATA": _DATA}


@functools.lru_cache(maxsize=16)
def _hello_command(verb: str, name: str) -> BaseCommand:
    """``Ehlo``/``Lhlo``/``Helo`` for ``name``, made (and checked) once per name.

    A client says the same name to every server; building the command costs
    more than the rest of the EHLO line's handling (a frozen dataclass and the
    name's checks), and the value cannot change.
    """
    kind = {"ehlo": Ehlo, "lhlo": Lhlo, "helo": Helo}[verb]
    return kind(name, strict=False)


#: What the driver and the engine raise that becomes an smtplib exception.
_ENGINE_ERRORS = (ServerDisconnected, RemoteProtocolError, LocalProtocolError, OSError)


def _check_newlines(line: str) -> None:
    # smtplib's own message (bpo-43124), which code and tests match on.
    if "\r" in line or "\n" in line:
        shown = line.replace("\n", "\\n").replace("\r", "\\r")
        raise ValueError(f"command and arguments contain prohibited newline characters: {shown}")
    if "\0" in line:
        shown = line.replace("\0", "\\0")
        raise ValueError(f"command and arguments contain a prohibited NUL character: {shown}")


class SMTP:
    """An SMTP client session, with the standard library's API.

    Args:
        host: if given, :meth:`connect` is called with ``host`` and ``port``.
        port: the port; ``0`` means the default (25).
        local_hostname: the name for EHLO/HELO; default: the host's FQDN.
        timeout: seconds to wait for the connection and for each reply.
        source_address: ``(host, port)`` to bind the socket to.

    Raises:
        SMTPConnectError: the greeting was not 220.
        ValueError: ``timeout`` is 0 (non-blocking is not supported).
        OSError: the connection could not be made.
    """

    debuglevel = 0
    #: Not in smtplib: if set, called with ``("send", bytes)`` before each write
    #: and ``("recv", bytes)`` after each read of the session, for transcripts.
    trace: Callable[[str, bytes], None] | None = None
    sock: Any = None
    file: Any = None
    helo_resp: bytes | None = None
    ehlo_msg = "ehlo"
    ehlo_resp: bytes | None = None
    does_esmtp = False
    #: The last EHLO's extensions, until :attr:`esmtp_features` is first read.
    _ehlo_extensions: Extensions | None = None
    default_port = SMTP_PORT
    _lmtp = False

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        local_hostname: str | None = None,
        timeout: float | None = _DEFAULT_TIMEOUT,
        source_address: tuple[str, int] | None = None,
    ) -> None:
        self._host = host
        self.timeout = timeout
        self._esmtp_features: dict[str, str] = {}
        self.command_encoding = "ascii"
        self.source_address = source_address
        self._auth_challenge_count = 0
        self._conn: Connection | None = None
        self._driver: SyncDriver | None = None
        self._reply_timeout: float | None = None
        self.lmtp_replies: dict[str, tuple[int, bytes]] = {}
        if host:
            code, msg = self.connect(host, port)
            if code != 220:
                self.close()
                raise SMTPConnectError(code, msg)
        if local_hostname is not None:
            self.local_hostname = local_hostname
        else:
            net = _net()
            fqdn = net.getfqdn()
            if "." in fqdn:
                self.local_hostname = fqdn
            else:
                # RFC 5321 §4.1.4: without a usable name, an address literal.
                addr = "127.0.0.1"
                with contextlib.suppress(net.gaierror):
                    addr = net.gethostbyname(net.gethostname())
                self.local_hostname = f"[{addr}]"

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> SMTP:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            code, message = self.docmd("QUIT") if self._conn is not None else (221, b"")
            if code != 221:
                raise SMTPResponseException(code, message)
        except SMTPServerDisconnected:
            pass
        finally:
            self.close()

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

    # -- connecting --------------------------------------------------------------------

    def _get_socket(self, host: str, port: int, timeout: float | None) -> Any:
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        if self.debuglevel > 0:
            self._print_debug("connect: to", (host, port), self.source_address)
        return _net().create_connection((host, port), timeout, self.source_address)

    def connect(
        self, host: str = "localhost", port: int = 0, source_address: tuple[str, int] | None = None
    ) -> tuple[int, bytes]:
        """Connect and read the greeting; ``host`` may be ``"name:port"``.

        Returns:
            ``(code, text)`` of the greeting.
        """
        if source_address:
            self.source_address = source_address
        if not port and host.find(":") == host.rfind(":"):
            i = host.rfind(":")
            if i >= 0:
                host, text = host[:i], host[i + 1 :]
                try:
                    port = int(text)
                except ValueError:
                    raise OSError("nonnumeric port") from None
        if not port:
            port = self.default_port
        sys.audit("smtplib.connect", self, host, port)
        self.sock = self._get_socket(host, port, self.timeout)
        self.file = None
        self._start(self.sock, host)
        code, msg = self._greeting()
        if self.debuglevel > 0:
            self._print_debug("connect:", repr(msg))
        return code, msg

    def _greeting(self) -> tuple[int, bytes]:
        """Read the greeting; one the engine cannot parse is a refused connection."""
        try:
            return self.getreply()
        except SMTPServerDisconnected:
            raise
        except SMTPResponseException as exc:
            raise SMTPConnectError(exc.smtp_code, exc.smtp_error) from exc

    def _start(self, sock: Any, host: str) -> None:
        """Begin a fresh engine session on ``sock``."""
        # smtplib starts TLS only when asked (starttls(), SMTP_SSL).
        self._conn = Connection(
            lmtp=self._lmtp,
            lowercase_commands=True,
            tls_policy="none",
            auth_in_clear=True,  # smtplib sends credentials wherever it is asked to
            max_line_length=None,  # and message lines of any length
            tls_active=isinstance(self, SMTP_SSL),
        )
        self._host = host
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
        if timeout is not None:
            set_reply_timeout(sock, timeout)
        self._reply_timeout = timeout
        # Made when a procedure first needs one (sendmail, starttls, login):
        # plain commands go through transports.sync.exchange without it.
        self._driver = None
        self._esmtp_features = {}
        self._ehlo_extensions = None
        self.helo_resp = self.ehlo_resp = None
        self.does_esmtp = False

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

    # -- the commands ------------------------------------------------------------------

    def helo(self, name: str = "") -> tuple[int, bytes]:
        """Send HELO; sets ``helo_resp``."""
        name = name or self.local_hostname
        self._line("helo", name)
        code, msg = self._command(_hello_command("helo", name))
        self.helo_resp = msg
        return code, msg

    def ehlo(self, name: str = "") -> tuple[int, bytes]:
        """Send EHLO (LHLO for LMTP); sets ``ehlo_resp``, ``esmtp_features``, ``does_esmtp``."""
        self._esmtp_features = {}
        self._ehlo_extensions = None
        name = name or self.local_hostname
        self._line(self.ehlo_msg, name)
        hello = _hello_command("lhlo" if self._lmtp else "ehlo", name)
        code, msg = self._command(hello)
        self.ehlo_resp = msg
        if code != 250:
            return code, msg
        self.does_esmtp = True
        assert self._conn is not None
        # Copied into esmtp_features when first read: a session that only says
        # EHLO never pays for the dictionary.  Extensions is immutable (the
        # engine replaces it), so this is the EHLO's own view.
        self._ehlo_extensions = self._conn.extensions
        return code, msg

    @property
    def esmtp_features(self) -> dict[str, str]:
        """What the last EHLO advertised: lower-case keyword -> parameters (smtplib's)."""
        extensions = self._ehlo_extensions
        if extensions is not None:
            self._ehlo_extensions = None
            self._esmtp_features = {k.lower(): extensions[k] for k in extensions}
        return self._esmtp_features

    @esmtp_features.setter
    def esmtp_features(self, features: dict[str, str]) -> None:
        self._ehlo_extensions = None
        self._esmtp_features = features

    def has_extn(self, opt: str) -> bool:
        """True if the server advertised extension ``opt`` (any case)."""
        return opt.lower() in self.esmtp_features

    def help(self, args: str = "") -> bytes:
        """Send HELP and return the reply text."""
        self._line("help", args)
        return self._command(Help(args))[1]

    def rset(self) -> tuple[int, bytes]:
        """Send RSET."""
        self.command_encoding = "ascii"
        return self._command(_RSET)

    def _rset(self) -> None:
        # smtplib's quiet RSET: a failure here must not hide the real error.
        with contextlib.suppress(SMTPServerDisconnected):
            self.rset()

    def noop(self) -> tuple[int, bytes]:
        """Send NOOP."""
        return self._command(_NOOP)

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        """Send ``mail from:<sender> [options]``; options are sent only after EHLO."""
        params: tuple[str, ...] = ()
        if options and self.does_esmtp:
            if any(x.lower() == "smtputf8" for x in options):
                if not self.has_extn("smtputf8"):
                    raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
                self.command_encoding = "utf-8"
            params = tuple(options)
        self._line("mail", f"from:{quoteaddr(sender)}{''.join(' ' + o for o in params)}")
        return self._command(Mail(self._path(sender), params, strict=False))

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        """Send ``rcpt to:<recip> [options]``."""
        params = tuple(options) if options and self.does_esmtp else ()
        self._line("rcpt", f"to:{quoteaddr(recip)}{''.join(' ' + o for o in params)}")
        return self._command(Rcpt(self._path(recip), params, strict=False))

    @staticmethod
    def _path(address: str) -> str:
        # The address as given, before parseaddr: on Python < 3.13 parseaddr
        # drops CR and LF, quietly sending an address the caller did not write.
        _check_newlines(address)
        quoted = quoteaddr(address)
        if not (quoted.startswith("<") and quoted.endswith(">")):
            raise SMTPProtocolError(f"cannot make an address of {address!r}")
        return quoted[1:-1]

    def data(self, msg: str | bytes) -> tuple[int, bytes]:
        """Send DATA and the message (line endings made CRLF, dots stuffed).

        Raises:
            SMTPDataError: DATA was not answered with 354.
        """
        code, repl = self._command(_DATA)
        if code != 354:
            raise SMTPDataError(code, repl)
        if isinstance(msg, str):
            msg = _fix_eols(msg).encode("ascii")
        assert self._conn is not None
        conn = self._conn
        data = self._run_send(lambda: conn.send(Content(msg)) + conn.send(EndOfContent()))
        self.send(data)
        replies = [self.getreply()]
        if self._lmtp:
            # RFC 2033: one reply per accepted recipient; read them all so the
            # session stays in step, and keep them for the caller.
            accepted = conn.accepted_recipients
            while conn.awaiting:
                replies.append(self.getreply())
            self.lmtp_replies = dict(zip(accepted, replies, strict=False))
        return replies[0]

    def verify(self, address: str) -> tuple[int, bytes]:
        """Send VRFY."""
        self._line("vrfy", _addr_only(address))
        return self._command(Vrfy(_addr_only(address)))

    vrfy = verify

    def expn(self, address: str) -> tuple[int, bytes]:
        """Send EXPN."""
        self._line("expn", _addr_only(address))
        return self._command(Expn(_addr_only(address)))

    def ehlo_or_helo_if_needed(self) -> None:
        """Say EHLO, or HELO if EHLO is refused, unless one was said already.

        Raises:
            SMTPHeloError: both were refused.
        """
        if self.helo_resp is not None or self.ehlo_resp is not None:
            return
        if not (200 <= self.ehlo()[0] <= 299):
            code, resp = self.helo()
            if not (200 <= code <= 299):
                raise SMTPHeloError(code, resp)

    # -- sending mail ------------------------------------------------------------------

    def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: str | bytes,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        """Send one message; returns ``{recipient: (code, text)}`` for refused recipients.

        With PIPELINING, MAIL, every RCPT and DATA go out in one write.

        Raises:
            SMTPHeloError, SMTPSenderRefused, SMTPRecipientsRefused (every
            recipient refused; for LMTP, also after the data), SMTPDataError,
            SMTPNotSupportedError, SMTPServerDisconnected.
        """
        if isinstance(to_addrs, str):
            to_addrs = [to_addrs]
        if not to_addrs:
            raise SMTPRecipientsRefused({})
        # Every address and option is checked before the first byte goes out,
        # so a bad recipient cannot leave a half-sent transaction behind.  Each
        # address is quoted once here and reused.
        paths = {address: self._path(address) for address in (from_addr, *to_addrs)}
        _check_newlines(f"mail from:<{paths[from_addr]}>{''.join(' ' + o for o in mail_options)}")
        # _path checked every address; the options are all that is left.
        rcpt_suffix = "".join(" " + o for o in rcpt_options)
        _check_newlines(f"rcpt to:<{paths[to_addrs[0]]}>{rcpt_suffix}")
        self.ehlo_or_helo_if_needed()
        if isinstance(msg, str):
            msg = _fix_eols(msg).encode("ascii")
        options: list[str] = []
        if self.does_esmtp:
            if self.has_extn("size"):
                options.append(f"size={len(msg)}")
            options.extend(mail_options)
        if self._conn is not None and self._conn.extensions.pipelining:
            return self._sendmail_pipelined(
                from_addr, to_addrs, msg, paths=paths, options=options, rcpt_options=rcpt_options
            )
        code, resp = self.mail(from_addr, options)
        if code != 250:
            self._close_or_rset(code)
            raise SMTPSenderRefused(code, resp, from_addr)
        refused: dict[str, tuple[int, bytes]] = {}
        for each in to_addrs:
            code, resp = self.rcpt(each, rcpt_options)
            if code not in (250, 251):
                refused[each] = (code, resp)
            if code == 421:
                self.close()
                raise SMTPRecipientsRefused(refused)
        if len(refused) == len(to_addrs):
            self._rset()
            raise SMTPRecipientsRefused(refused)
        code, resp = self.data(msg)
        if self._lmtp:
            for rcpt, (lcode, lresp) in self.lmtp_replies.items():
                if lcode != 250:
                    refused[rcpt] = (lcode, lresp)
            if len(refused) == len(to_addrs):
                raise SMTPRecipientsRefused(refused)
            return refused
        if code != 250:
            self._close_or_rset(code)
            raise SMTPDataError(code, resp)
        return refused

    def _close_or_rset(self, code: int) -> None:
        if code == 421:
            self.close()
        else:
            self._rset()

    def _sendmail_pipelined(
        self,
        from_addr: str,
        to_addrs: Sequence[str],
        msg: bytes,
        *,
        paths: dict[str, str],
        options: list[str],
        rcpt_options: Sequence[str],
    ) -> dict[str, tuple[int, bytes]]:
        if any(x.lower() == "smtputf8" for x in options):
            if not self.has_extn("smtputf8"):
                raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
            self.command_encoding = "utf-8"
        if self.command_encoding == "ascii":
            # As smtplib: without SMTPUTF8 a non-ASCII address is a UnicodeEncodeError.
            "".join([*paths.values(), *options, *rcpt_options]).encode("ascii")
        assert self._conn is not None
        result = self._run(
            procedures.send_mail(
                self._conn,
                paths[from_addr],
                [paths[a] for a in to_addrs],
                msg,
                mail_params=options,
                rcpt_params=rcpt_options,
                strict=False,
            )
        )
        mail_reply = result.mail_reply
        if not mail_reply.is_positive:
            self._close_or_rset(mail_reply.code)
            raise SMTPSenderRefused(mail_reply.code, b"\n".join(mail_reply.lines), from_addr)
        refused: dict[str, tuple[int, bytes]] = {}
        for address, r in zip(to_addrs, result.recipients, strict=True):
            if r.rcpt_reply is None or r.rcpt_reply.code not in (250, 251):
                reply = r.rcpt_reply or r.reply
                refused[address] = (reply.code, b"\n".join(reply.lines))
        if len(refused) == len(to_addrs):
            if result.recipients[-1].reply.code == 421:
                self.close()
            raise SMTPRecipientsRefused(refused)
        data_reply = result.final_reply or result.data_reply
        if self._lmtp and result.final_reply is not None:
            for address, r in zip(to_addrs, result.recipients, strict=True):
                if address not in refused and r.reply.code != 250:
                    refused[address] = (r.reply.code, b"\n".join(r.reply.lines))
            if len(refused) == len(to_addrs):
                raise SMTPRecipientsRefused(refused)
        elif data_reply is not None and data_reply.code != 250:
            if data_reply.code == 421:
                self.close()
            raise SMTPDataError(data_reply.code, b"\n".join(data_reply.lines))
        return refused

    def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        """Send an ``email.message.Message``; envelope from its headers unless given.

        Bcc and Resent-Bcc are not transmitted.  Non-ASCII addresses need
        SMTPUTF8 (then ``SMTPUTF8`` and ``BODY=8BITMIME`` are added).
        """
        self.ehlo_or_helo_if_needed()
        resent = msg.get_all("Resent-Date")
        if resent is None:
            prefix = ""
        elif len(resent) == 1:
            prefix = "Resent-"
        else:
            raise ValueError("message has more than one 'Resent-' header block")
        if from_addr is None:
            field = msg[prefix + "Sender"] if (prefix + "Sender") in msg else msg[prefix + "From"]
            from_addr = email.utils.getaddresses([field])[0][1]
        if to_addrs is None:
            fields = [
                f
                for f in (msg[prefix + "To"], msg[prefix + "Bcc"], msg[prefix + "Cc"])
                if f is not None
            ]
            to_addrs = [a[1] for a in email.utils.getaddresses(fields)]
        msg_copy = copy.copy(msg)
        del msg_copy["Bcc"]
        del msg_copy["Resent-Bcc"]
        recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        international = not "".join([from_addr, *recipients]).isascii()
        if international and not self.has_extn("smtputf8"):
            raise SMTPNotSupportedError(
                "One or more source or delivery addresses require internationalized email "
                "support, but the server does not advertise the required SMTPUTF8 capability"
            )
        with io.BytesIO() as buffer:
            if international:
                generator = email.generator.BytesGenerator(
                    buffer,
                    policy=msg.policy.clone(utf8=True),  # type: ignore[call-arg]
                )
                mail_options = (*mail_options, "SMTPUTF8", "BODY=8BITMIME")
            else:
                generator = email.generator.BytesGenerator(buffer)
            generator.flatten(msg_copy, linesep="\r\n")
            flat = buffer.getvalue()
        return self.sendmail(from_addr, to_addrs, flat, mail_options, rcpt_options)

    # -- AUTH --------------------------------------------------------------------------

    user: str = ""
    password: str = ""

    def auth(
        self,
        mechanism: str,
        authobject: Callable[..., str | bytes | None],
        *,
        initial_response_ok: bool = True,
    ) -> tuple[int, bytes]:
        """Run one SASL exchange with smtplib's ``authobject`` protocol.

        ``authobject()`` (no argument) gives the initial response, or None;
        ``authobject(challenge)`` answers each decoded ``334`` challenge.
        Responses may be ``str`` (sent as UTF-8: non-ASCII credentials work,
        unlike smtplib, CPython gh-73936) or ``bytes``.

        Returns:
            ``(code, text)`` of the final reply (235, or 503 if already authenticated).

        Raises:
            SMTPAuthenticationError: any other final reply.
            SMTPException: the server keeps challenging ("infinite loop").
        """
        # smtplib sends AUTH even before EHLO; RFC 4954 needs EHLO first.
        self.ehlo_or_helo_if_needed()
        mechanism = mechanism.upper()
        initial = authobject() if initial_response_ok else None
        if initial is not None:
            code, resp = self._command(Auth(mechanism, _utf8(initial)))
            self._auth_challenge_count = 1
        else:
            code, resp = self._command(Auth(mechanism))
            self._auth_challenge_count = 0
        while code == 334:
            self._auth_challenge_count += 1
            challenge = base64.decodebytes(resp)
            code, resp = self._command(AuthResponse(_utf8(authobject(challenge))))
            if self._auth_challenge_count > _MAXCHALLENGE:
                raise SMTPException(
                    "Server AUTH mechanism infinite loop. Last response: " + repr((code, resp))
                )
        if code in (235, 503):
            return code, resp
        raise SMTPAuthenticationError(code, resp)

    def auth_cram_md5(self, challenge: bytes | None = None) -> bytes | None:
        """CRAM-MD5 (RFC 2195) for :meth:`auth`; the password goes through SASLprep."""
        if challenge is None:
            return None
        return CramMD5(self.user, self.password).respond(challenge)

    def auth_plain(self, challenge: bytes | None = None) -> bytes:
        """PLAIN (RFC 4616) for :meth:`auth`."""
        return Plain(self.user, self.password).initial_response()

    def auth_login(self, challenge: bytes | None = None) -> str:
        """LOGIN for :meth:`auth`: the user name first, then the password."""
        if challenge is None or self._auth_challenge_count < 2:
            return self.user
        return self.password

    def login(
        self, user: str, password: str, *, initial_response_ok: bool = True
    ) -> tuple[int, bytes]:
        """Log in with the best mechanism both sides support.

        SCRAM-SHA-256 and SCRAM-SHA-1 (the server's signature verified) are
        tried first when offered, then smtplib's order: CRAM-MD5, PLAIN, LOGIN.

        Raises:
            SMTPNotSupportedError: the server has no AUTH.
            SMTPException: no mechanism in common.
            SMTPAuthenticationError: every mechanism tried was refused.
        """
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("auth"):
            raise SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        advertised = self.esmtp_features["auth"].upper().split()
        methods = [m for m in _LOGIN_PREFERENCE if m in advertised]
        if not methods:
            raise SMTPException("No suitable authentication method found.")
        self.user, self.password = user, password
        last: SMTPAuthenticationError | None = None
        for method in methods:
            try:
                if method.startswith("SCRAM-"):
                    code, resp = self._scram(method)
                else:
                    authobject = getattr(self, "auth_" + method.lower().replace("-", "_"))
                    code, resp = self.auth(
                        method, authobject, initial_response_ok=initial_response_ok
                    )
                if code in (235, 503):
                    return code, resp
            except SMTPAuthenticationError as exc:
                last = exc
        assert last is not None
        raise last

    def _scram(self, method: str) -> tuple[int, bytes]:
        """SCRAM through the engine's login procedure (it needs state between steps)."""
        assert self._conn is not None
        mechanism = mechanism_for(method, self.user, self.password)
        self._conn.lowercase_commands = True
        try:
            reply = self._run(procedures.login(self._conn, mechanism))
        except ReplyError as refused:
            code, resp = self._reply_tuple(refused.reply)
            if code == 503:
                return code, resp
            raise SMTPAuthenticationError(code, resp) from None
        return self._reply_tuple(reply)

    # -- TLS ---------------------------------------------------------------------------

    def starttls(
        self,
        keyfile: str | None = None,
        certfile: str | None = None,
        context: ssl.SSLContext | None = None,
    ) -> tuple[int, bytes]:
        """Switch the session to TLS (RFC 3207), verifying the server's certificate.

        Unlike smtplib, a missing ``context`` means ``ssl.create_default_context()``:
        the certificate chain and the host name are checked.  Pass your own
        context to opt out.  Afterwards the EHLO state is forgotten, and the
        next command says EHLO again.

        Returns:
            ``(code, text)`` of the reply to STARTTLS (not 220: TLS was not started).

        Raises:
            SMTPNotSupportedError: the server did not offer STARTTLS.
            ssl.SSLError: the handshake failed (for example, an untrusted certificate).
        """
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("starttls"):
            raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
        if context is None:
            context = ssl.create_default_context()
            if certfile is not None:
                context.load_cert_chain(certfile, keyfile)
        driver = self._get_driver()
        assert self._conn is not None  # _get_driver checked it
        driver.ssl_context = context
        try:
            reply = self._run(procedures.starttls(self._conn))
        except ReplyError as refused:
            return self._reply_tuple(refused.reply)
        self.sock = driver.sock
        self.file = None
        self.helo_resp = self.ehlo_resp = None
        self.esmtp_features = {}
        self.does_esmtp = False
        return self._reply_tuple(reply)

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


class SMTP_SSL(SMTP):  # noqa: N801 - smtplib's name
    """SMTP over implicit TLS (port 465), with the certificate verified by default.

    Args:
        context: the ``ssl.SSLContext``; default: ``ssl.create_default_context()``,
            which verifies the certificate and the host name (smtplib does too
            since 3.x through ``_create_stdlib_context`` only when asked).
    """

    default_port = SMTP_SSL_PORT

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        local_hostname: str | None = None,
        *,
        timeout: float | None = _DEFAULT_TIMEOUT,
        source_address: tuple[str, int] | None = None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.context = context if context is not None else ssl.create_default_context()
        super().__init__(host, port, local_hostname, timeout, source_address)

    def _get_socket(self, host: str, port: int, timeout: float | None) -> Any:
        sock = super()._get_socket(host, port, timeout)
        return self.context.wrap_socket(sock, server_hostname=host)


class LMTP(SMTP):
    """LMTP (RFC 2033): LHLO, and one reply per recipient after the data.

    ``host`` may be a Unix socket path (starting with ``/``).  After
    :meth:`data`, ``lmtp_replies`` maps each accepted recipient to its reply.
    """

    ehlo_msg = "lhlo"
    _lmtp = True

    def __init__(
        self,
        host: str = "",
        port: int = LMTP_PORT,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        timeout: float | None = _DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(
            host,
            port,
            local_hostname=local_hostname,
            source_address=source_address,
            timeout=timeout,
        )

    def connect(
        self, host: str = "localhost", port: int = 0, source_address: tuple[str, int] | None = None
    ) -> tuple[int, bytes]:
        """Connect to ``host:port``, or to a Unix socket if ``host`` starts with ``/``."""
        if host[0] != "/":
            return super().connect(host, port, source_address=source_address)
        if self.timeout is not None and not self.timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        net = _net()
        try:
            self.sock = net.socket(net.AF_UNIX, net.SOCK_STREAM)
            if self.timeout is not net._GLOBAL_DEFAULT_TIMEOUT:
                self.sock.settimeout(self.timeout)
            self.file = None
            self.sock.connect(host)
        except OSError:
            if self.debuglevel > 0:
                self._print_debug("connect fail:", host)
            if self.sock:
                self.sock.close()
            self.sock = None
            raise
        self._start(self.sock, "")
        code, msg = self._greeting()
        if self.debuglevel > 0:
            self._print_debug("connect:", msg)
        return code, msg
