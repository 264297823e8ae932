"""``SMTP``, ``SMTP_SSL`` and ``LMTP``: the standard library's API on ``smtp_core``.

Every method keeps smtplib's signature, return value and exceptions; the
protocol work (reply parsing, extension parsing, dot-stuffing, pipelining) is
the engine's, and the I/O is the blocking driver's.  Sockets are made through
the package's own ``socket`` attribute, looked up at call time, so code (and
CPython's test suite) that replaces ``smtplib.socket`` keeps working.

Where smtplib is unsafe this module is not; each deviation is listed in the
README ("Differences from smtplib").

``SMTP`` is put together from private parts, each in its own module:

- ``_smtplib_helpers``: the constants and module-level helpers (re-exported here);
- ``_smtplib_session``: the session's state, debug output, commands through the engine;
- ``_smtplib_commands``: EHLO/HELO, RSET, NOOP, DATA, VRFY, EXPN, STARTTLS...;
- ``_smtplib_auth``: ``login()``, ``auth()`` and the ``auth_*`` methods;
- ``_smtplib_sendmail``: ``sendmail()`` and ``send_message()``.

This module keeps the classes' construction and connection, and ``mail()``,
``rcpt()`` and ``_path()``, which look ``quoteaddr`` up here at call time.
"""

from __future__ import annotations

import contextlib
import ssl
import sys
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from smtp_core import Connection
from transports.sync import SyncDriver

from ._errors import (
    SMTPConnectError,
    SMTPNotSupportedError,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from ._smtplib_auth import AuthMixin
from ._smtplib_commands import _legacy_context
from ._smtplib_helpers import (
    _DEFAULT_TIMEOUT,
    CRLF,
    LMTP_PORT,
    OLDSTYLE_AUTH,
    SMTP_PORT,
    SMTP_SSL_PORT,
    SMTPProtocolError,
    _check_newlines,
    _net,
    bCRLF,
    quoteaddr,
    quotedata,
)
from ._smtplib_helpers import _MAXLINE as _MAXLINE  # noqa: PLC0414 - smtplib's name, re-exported
from ._smtplib_sendmail import SendmailMixin

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


#: What this Python's smtplib writes after MAIL and RCPT: 3.13 lower-cased them.
_FROM, _TO = ("from:", "to:") if sys.version_info >= (3, 13) else ("FROM:", "TO:")


class SMTP(AuthMixin, SendmailMixin):
    """An SMTP client session, with the standard library's API.

    Args:
        host: if given, :meth:`connect` is called with ``host`` and ``port``.
        port: the port; ``0`` means the default (25).
        local_hostname: the name for EHLO/HELO; default: the host's FQDN.
        timeout: seconds to wait for the connection and for each whole reply.
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
    default_port = SMTP_PORT
    _lmtp = False
    _tls_at_connect = False

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
        self._conn_sock: Any = None
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
        # smtplib's own: QUIT, a reply other than 221 raised, a server that
        # is gone already (a 421 earlier, a QUIT sent by hand) is fine.
        try:
            code, message = self.docmd("QUIT")
            if code != 221:
                raise SMTPResponseException(code, message)
        except SMTPServerDisconnected:
            pass
        finally:
            self.close()

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

    # -- MAIL and RCPT (they look quoteaddr up in this module) -------------------------

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        """Send ``mail from:<sender> [options]``; options are sent only after EHLO."""
        return self._docmd(self._mail_line(sender, options))

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        """Send ``rcpt to:<recip> [options]``."""
        return self._reply_tuple(self._reply_to(self._rcpt_line(recip, options), recip))

    def _mail_line(self, sender: str, options: Sequence[str]) -> str:
        optionlist = ""
        if options and self.does_esmtp:
            if any(x.lower() == "smtputf8" for x in options):
                if not self.has_extn("smtputf8"):
                    raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
                self.command_encoding = "utf-8"
            optionlist = " " + " ".join(options)
        return self._line("mail", f"{_FROM}{self._quoted(sender)}{optionlist}")

    def _rcpt_line(self, recip: str, options: Sequence[str]) -> str:
        optionlist = " " + " ".join(options) if options and self.does_esmtp else ""
        return self._line("rcpt", f"{_TO}{self._quoted(recip)}{optionlist}")

    @staticmethod
    def _quoted(address: str) -> str:
        # The address as given is checked before quoteaddr: on Python < 3.13
        # its parseaddr drops CR and LF, quietly sending an address the
        # caller did not write.
        _check_newlines(address)
        return quoteaddr(address)


class SMTP_SSL(SMTP):  # noqa: N801 - smtplib's name
    """SMTP over implicit TLS (port 465), with the certificate verified by default.

    Args:
        context: the ``ssl.SSLContext``; default: ``ssl.create_default_context()``,
            which verifies the certificate chain and the host name (smtplib's
            default context checks neither).
        keyfile, certfile: (Python 3.10 and 3.11 only, as their smtplib; deprecated)
            a client certificate, exclusive with ``context``.
    """

    default_port = SMTP_SSL_PORT
    _tls_at_connect = True

    if sys.version_info >= (3, 12):

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

    else:

        def __init__(  # noqa: PLR0917 - Python 3.10/3.11 smtplib's signature
            self,
            host: str = "",
            port: int = 0,
            local_hostname: str | None = None,
            keyfile: str | None = None,
            certfile: str | None = None,
            timeout: float | None = _DEFAULT_TIMEOUT,
            source_address: tuple[str, int] | None = None,
            context: ssl.SSLContext | None = None,
        ) -> None:
            self.keyfile = keyfile
            self.certfile = certfile
            legacy = _legacy_context(keyfile, certfile, context)
            self.context = legacy if legacy is not None else ssl.create_default_context()
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
