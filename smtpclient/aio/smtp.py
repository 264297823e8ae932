"""The asyncio face's ``SMTP`` class: aiosmtplib's API on the engine and the async pump.

Every method sends the line aiosmtplib sends (upper-case verbs, ``MAIL
FROM:<...>``) through a permissive :class:`smtp_core.Connection`, so the engine
still pairs each reply with its command, follows the state and refuses CR,
LF and NUL; what the result means for the caller is decided by the seam,
:mod:`smtpclient.aio._outcomes`.  Where this class departs from aiosmtplib
on purpose, README's "Differences from aiosmtplib" table says so, row by row.

What it adds: PIPELINING (one round trip for MAIL, every RCPT and DATA),
LMTP (``lmtp=True``), per-recipient results (:attr:`SMTP.last_transaction`),
per-stage timeouts (``timeouts=``), no credentials in the clear unless asked
(``auth_in_clear=True``), an outcome-unknown error after the final dot, and
the same class under trio (through anyio or directly).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.message
import re
import socket
import ssl
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Literal

from smtp_core import (
    UPGRADE_TLS,
    CommandLine,
    Connection,
    ConnectionClosed,
    Greeting,
    LocalProtocolError,
    OutcomeUnknown,
    RemoteProtocolError,
    Reply,
    State,
    Timeouts,
    procedures,
)
from smtp_core import Procedure as _Procedure
from transports import AsyncDriver, DriverClosed, default_ssl_context
from transports._logging import transcript_trace
from transports._pump import open_through_proxy
from transports.proxy import Proxy

from . import _outcomes as seam
from ._world import World, current_world
from .auth import auth_crammd5_verify, auth_login_encode, auth_plain_encode, auth_xoauth2_encode
from .email import extract_recipients, extract_sender, flatten_message, parse_address
from .errors import (
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .esmtp import parse_esmtp_extensions
from .response import SMTPResponse
from .typing import Default, SMTPTokenGenerator, SocketPathType, _default

__all__ = ["DEFAULT_TIMEOUT", "SMTP", "SMTP_PORT", "SMTP_STARTTLS_PORT", "SMTP_TLS_PORT"]

SMTP_PORT = 25
SMTP_TLS_PORT = 465
SMTP_STARTTLS_PORT = 587
DEFAULT_TIMEOUT = 60  # an int, as aiosmtplib's (SMTP().timeout == 60)
#: RFC 5321 §4.5.3.2.6: the server may be delivering the message while the
#: client waits for the reply to the final dot; cutting that wait short is
#: what leaves a message's fate unknown, so it is never shorter than this.
DATA_END_TIMEOUT = 600.0

_Timeout = float | Literal[Default.token] | None
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r")


def _hostname(value: str | None, what: str) -> str | None:
    """aiosmtplib's check of a name for EHLO/HELO: stripped, then no blank or control."""
    if value is None:
        return None
    value = value.strip()
    if not value or re.search(r"[\s\x00-\x1f\x7f]", value):
        raise ValueError(f"{what} must be a non-empty name without blanks or control characters")
    return value


def _normalised_length(message: bytes) -> int:
    """The SIZE aiosmtplib declares: octets with CRLF line endings and a final CRLF."""
    size = len(_LINE_ENDINGS.sub(b"\r\n", message))
    return size if message.endswith((b"\n", b"\r")) else size + 2


def _refuse_line_break(address: str) -> None:
    """Refuse an address with a CR or LF inside it (a line break at either end is stripped).

    aiosmtplib lets :func:`email.utils.parseaddr` decide, which joins the pieces or cuts at
    the break (``"crlf\\r\\nrset@x.test"`` is mailed to ``crlfrset@x.test``; before Python
    3.13 ``"a@x.test\\r\\nRCPT TO:<b@y.test>"`` to ``a@x.test``): a mailbox the caller never
    wrote.  Nothing is injected either way; this deviation (README, "Differences from
    aiosmtplib") makes sure mail goes only where the caller said.  Found by the hostile kit.

    Raises:
        ValueError: a line break inside ``address``.
    """
    inner = address.strip()
    if "\r" in inner or "\n" in inner:
        raise ValueError(f"{address!r} cannot be used as an SMTP mailbox: a line break inside it")


class SMTP:
    """An SMTP client with aiosmtplib's API (see ``smtpclient/aio/API.md``).

    Every argument of aiosmtplib's ``SMTP`` is accepted with its meaning;
    ours, all keyword-only and optional:

    Args:
        timeouts: per-stage limits (:class:`smtp_core.Timeouts`) instead of
            ``timeout`` for every stage.
        pipelining: use PIPELINING when the server offers it (default True).
        auth_in_clear: allow AUTH before TLS (default False: credentials are
            refused in the clear, even if an attacker stripped STARTTLS).
        lmtp: speak LMTP (LHLO, one verdict per recipient).
        chunking: send messages with BDAT (RFC 3030) when the server offers
            CHUNKING (default False: DATA, as aiosmtplib).
        proxy: reach the server through a SOCKS5, SOCKS4a or HTTP CONNECT
            proxy (``"socks5://user:pass@host:port"`` or a
            :class:`transports.proxy.Proxy`); the proxy resolves ``hostname``.
    """

    AUTH_METHODS: tuple[str, ...] = ("cram-md5", "plain", "login")

    def __init__(
        self,
        *,
        hostname: str | None = None,
        port: int | None = None,
        username: str | bytes | None = None,
        password: str | bytes | None = None,
        oauth_token_generator: SMTPTokenGenerator | None = None,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        use_tls: bool = False,
        start_tls: bool | None = None,
        validate_certs: bool = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        cert_bundle: str | None = None,
        socket_path: SocketPathType | None = None,
        sock: socket.socket | None = None,
        timeouts: Timeouts | None = None,
        pipelining: bool = True,
        auth_in_clear: bool = False,
        lmtp: bool = False,
        proxy: Proxy | str | None = None,
        chunking: bool = False,
    ) -> None:
        self.hostname = hostname
        self.port = port
        self._login_username = username
        self._login_password = password
        self._oauth_token_generator = oauth_token_generator
        self.local_hostname = _hostname(local_hostname, "local_hostname")
        self.source_address = source_address
        self.timeout = timeout
        self.use_tls = use_tls
        self._start_tls_on_connect = start_tls
        self.validate_certs = validate_certs
        self.client_cert = client_cert
        self.client_key = client_key
        self.tls_context = tls_context
        self.cert_bundle = cert_bundle
        self.socket_path = socket_path
        self.sock = sock
        self.timeouts = timeouts
        self.pipelining = pipelining
        self.auth_in_clear = auth_in_clear
        self.lmtp = lmtp
        self.chunking = chunking
        self.proxy = Proxy.from_url(proxy) if isinstance(proxy, str) else proxy
        self._validate()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.protocol: object | None = None  # aiosmtplib's; there is no protocol object here
        self.transport: object | None = None
        self.last_helo_response: SMTPResponse | None = None
        self._last_ehlo_response: SMTPResponse | None = None
        self.esmtp_extensions: dict[str, str] = {}
        self.supports_esmtp = False
        self.server_auth_methods: list[str] = []
        #: The whole truth about the last transaction: per-recipient replies
        #: (:class:`smtp_core.TransactionResult`), when it ran through the engine.
        self.last_transaction: procedures.TransactionResult | None = None
        self._conn: Connection | None = None
        self._driver: AsyncDriver | None = None
        self._world: World | None = None
        self._command_lock: Any = None
        self._sendmail_lock: Any = None

    # -- options -----------------------------------------------------------------------

    def _validate(self) -> None:
        """aiosmtplib's checks of the options, all ``ValueError``."""
        if self._login_password is not None and self._oauth_token_generator is not None:
            raise ValueError("password and oauth_token_generator are mutually exclusive")
        if self._start_tls_on_connect and self.use_tls:
            raise ValueError("The start_tls and use_tls options are not compatible.")
        if self.tls_context is not None and self.client_cert is not None:
            raise ValueError("Either a TLS context or a certificate/key must be provided")
        if self.sock is not None and self.socket_path is not None:
            raise ValueError("The socket and socket_path options are not compatible.")
        if (self.sock is not None or self.socket_path is not None) and self.port is not None:
            raise ValueError("The port option is not compatible with a socket or socket path.")
        if self.hostname is not None and ("\r" in self.hostname or "\n" in self.hostname):
            raise ValueError("hostname must not contain CR or LF")

    def _stage_timeouts(self, timeout: _Timeout = _default) -> Timeouts:
        """The engine's limits: ``timeouts`` as given, else ``timeout`` for every stage.

        The reply to the final dot gets at least :data:`DATA_END_TIMEOUT`.
        """
        if timeout is _default:
            if self.timeouts is not None:
                return self.timeouts
            timeout = self.timeout
        assert not isinstance(timeout, Default)
        if timeout is None:
            return Timeouts.every(None)
        every = Timeouts.every(timeout)
        return dataclasses.replace(every, data_end=max(timeout, DATA_END_TIMEOUT))

    # -- state -------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True while connected to a server."""
        return self._driver is not None and self._driver.stream is not None

    @property
    def last_ehlo_response(self) -> SMTPResponse | None:
        """The last reply to EHLO; setting it sets the extensions it lists."""
        return self._last_ehlo_response

    @last_ehlo_response.setter
    def last_ehlo_response(self, response: SMTPResponse | None) -> None:
        self._last_ehlo_response = response
        if response is None:
            self.esmtp_extensions, self.server_auth_methods = {}, []
            self.supports_esmtp = False
            return
        self.esmtp_extensions, self.server_auth_methods = parse_esmtp_extensions(response.message)
        self.supports_esmtp = True

    @property
    def is_ehlo_or_helo_needed(self) -> bool:
        """True until EHLO or HELO was answered in this session (and after TLS)."""
        return self.last_ehlo_response is None and self.last_helo_response is None

    @property
    def supported_auth_methods(self) -> list[str]:
        """``AUTH_METHODS`` the server offers, in our order of preference."""
        return [m for m in self.AUTH_METHODS if m in self.server_auth_methods]

    def supports_extension(self, extension: str, /) -> bool:
        """True if the last EHLO listed ``extension`` (any case)."""
        return extension.lower() in self.esmtp_extensions

    def _reset_server_state(self) -> None:
        self.last_helo_response = None
        self.last_ehlo_response = None

    def get_transport_info(self, key: str) -> Any:
        """What aiosmtplib's transport's ``get_extra_info(key)`` gives (peername, ssl_object...)."""
        if not self.is_connected:
            raise SMTPServerDisconnected("Server not connected")
        assert self._driver is not None
        stream = self._driver.stream
        transport = getattr(stream, "transport", None)
        if transport is not None and hasattr(transport, "get_extra_info"):
            return transport.get_extra_info(key)
        if key in ("ssl_object", "sslobject"):
            return getattr(stream, "ssl_object", None)
        return None

    # -- connecting --------------------------------------------------------------------

    async def connect(
        self,
        *,
        hostname: str | Default | None = _default,
        port: int | Default | None = _default,
        username: str | bytes | Default | None = _default,
        password: str | bytes | Default | None = _default,
        oauth_token_generator: SMTPTokenGenerator | Default | None = _default,
        local_hostname: str | Default | None = _default,
        source_address: tuple[str, int] | Default | None = _default,
        timeout: float | Default | None = _default,
        use_tls: bool | None = None,
        start_tls: bool | Default | None = _default,
        validate_certs: bool | None = None,
        client_cert: str | Default | None = _default,
        client_key: str | Default | None = _default,
        tls_context: ssl.SSLContext | Default | None = _default,
        cert_bundle: str | Default | None = _default,
        socket_path: SocketPathType | Default | None = _default,
        sock: socket.socket | Default | None = _default,
    ) -> SMTPResponse:
        """Connect, read the greeting, start TLS and log in as the options say.

        Returns:
            The greeting.

        Raises:
            SMTPConnectError, SMTPConnectTimeoutError, SMTPConnectResponseError
            (the greeting was not 220), and what ``starttls``/``login`` raise.
        """
        given = {
            "hostname": hostname,
            "port": port,
            "_login_username": username,
            "_login_password": password,
            "_oauth_token_generator": oauth_token_generator,
            "source_address": source_address,
            "_start_tls_on_connect": start_tls,
            "client_cert": client_cert,
            "client_key": client_key,
            "tls_context": tls_context,
            "cert_bundle": cert_bundle,
            "socket_path": socket_path,
            "sock": sock,
        }
        for name, value in given.items():
            if value is not _default:
                setattr(self, name, value)
        if local_hostname is not _default:
            assert not isinstance(local_hostname, Default)
            self.local_hostname = _hostname(local_hostname, "local_hostname")
        if use_tls is not None:
            self.use_tls = use_tls
        if validate_certs is not None:
            self.validate_certs = validate_certs
        self._validate()
        if self.is_connected:
            raise SMTPException("SMTP instance is already connected.")
        world = self._world = current_world()
        self._command_lock = world.lock()
        self._sendmail_lock = world.lock()
        try:
            greeting = await self._open(world, timeout)
            await self._start_tls_and_login()
        except BaseException:
            self.close()
            raise
        return greeting

    async def _open(self, world: World, timeout: float | Default | None) -> SMTPResponse:
        """Open the connection and read the greeting."""
        if self.local_hostname is None:
            # getfqdn can block for seconds on a resolver: never on the loop.
            self.local_hostname = await world.in_thread(socket.getfqdn)
        # Built only for implicit TLS here (starttls() builds its own): loading
        # the CA store costs ~23 ms a connection (bench/aio.py).
        context = await self._tls_context(world) if self.use_tls else None
        timeouts = self._stage_timeouts(timeout)
        if self.hostname is None and self.socket_path is None and self.sock is None:
            self.hostname = "localhost"
        if self.port is None and self.socket_path is None and self.sock is None:
            self.port = (
                SMTP_TLS_PORT
                if self.use_tls
                else SMTP_STARTTLS_PORT
                if self._start_tls_on_connect
                else SMTP_PORT
            )
        where = str(self.socket_path) if self.socket_path is not None else f"{self.hostname}"
        implicit = context if self.use_tls else None
        try:
            if self.sock is not None:
                stream = await world.adopt(self.sock, implicit, self.hostname, timeouts.connect)
            elif self.socket_path is not None:
                path = self.socket_path
                path = path.decode() if isinstance(path, bytes) else str(path)
                stream = await world.driver.open_unix_stream(path, connect_timeout=timeouts.connect)
            elif self.proxy is not None:
                assert self.hostname is not None
                assert self.port is not None
                stream = await open_through_proxy(
                    world.driver.open_stream,
                    self.proxy,
                    self.hostname,
                    self.port,
                    seconds=timeouts.connect,
                    source_address=self.source_address,
                    implicit_tls=implicit,
                    name=self.hostname,
                )
            else:
                stream = await world.driver.open_stream(
                    self.hostname,
                    self.port,
                    ssl_context=implicit,
                    server_hostname=self.hostname,
                    source_address=self.source_address,
                    connect_timeout=timeouts.connect,
                )
        except (OSError, TimeoutError) as exc:
            raise seam.connect_error(exc, where) from exc
        self._driver = AsyncDriver(
            stream,
            ssl_context=context,
            server_hostname=self.hostname,
            timeouts=self._stage_timeouts(),
            trace=transcript_trace(where),
        )
        self.transport = getattr(stream, "transport", stream)
        self._conn = Connection(
            lmtp=self.lmtp,
            tls_policy="none",
            tls_active=self.use_tls,
            auth_in_clear=self.auth_in_clear,
            max_line_length=None,
            permissive=True,
        )
        try:
            event = await self._driver.run(procedures.read_event(self._conn))
        except (OSError, RemoteProtocolError, DriverClosed) as exc:
            raise seam.connect_error(exc, where) from exc
        if isinstance(event, ConnectionClosed):
            raise seam.connect_error(ConnectionResetError("Unexpected EOF received"), where)
        assert isinstance(event, Greeting)
        greeting = seam.response(event)
        if greeting.code != 220:
            raise SMTPConnectResponseError(greeting.code, greeting.message)
        return greeting

    async def _tls_context(self, world: World) -> ssl.SSLContext:
        """The caller's context, or one built from the options (in a thread: it reads files)."""
        if self.tls_context is not None:
            return self.tls_context

        def build() -> ssl.SSLContext:
            context = default_ssl_context()
            if not self.validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.cert_bundle is not None:
                context.load_verify_locations(cafile=self.cert_bundle)
            if self.client_cert is not None:
                context.load_cert_chain(self.client_cert, keyfile=self.client_key)
            return context

        return await world.in_thread(build)

    async def _start_tls_and_login(self) -> None:
        conn = self._session()[0]
        if self._start_tls_on_connect is True and not conn.tls_active:
            await self.starttls()
        elif self._start_tls_on_connect is None and not conn.tls_active:
            await self._ehlo_or_helo_if_needed()
            if self.supports_extension("starttls"):
                await self.starttls()
        if self._oauth_token_generator is not None:
            if self._login_username is None:
                raise SMTPException("username is required for OAuth2 authentication")
            await self._ehlo_or_helo_if_needed()
            if "xoauth2" not in self.server_auth_methods:
                raise SMTPException("XOAUTH2 is not supported by the server")
            token = await self._oauth_token_generator()
            await self.auth_xoauth2(self._login_username, token)
        elif self._login_username is not None:
            await self.login(self._login_username, self._login_password or "")

    # -- one command ---------------------------------------------------------------------

    def _session(self) -> tuple[Connection, AsyncDriver]:
        if self._conn is None or self._driver is None or self._driver.stream is None:
            raise SMTPServerDisconnected("Server not connected")
        return self._conn, self._driver

    async def _run(self, procedure: _Procedure[Any], timeout: _Timeout = _default) -> Any:
        """Run an engine procedure under the command lock, mapping failures (A2-A5)."""
        try:
            conn, driver = self._session()
        except SMTPServerDisconnected:
            procedure.close()
            raise
        async with self._command_lock:
            saved = driver.timeouts
            if timeout is not _default:
                driver.timeouts = self._stage_timeouts(timeout)
            try:
                result = await driver.run(procedure)
            except (OSError, RemoteProtocolError, LocalProtocolError, OutcomeUnknown) as exc:
                if not isinstance(exc, LocalProtocolError) or conn.state is State.CLOSED:
                    self.close()
                raise seam.engine_error(exc) from exc
            finally:
                driver.timeouts = saved
            if conn.state is State.CLOSED:
                self.close()  # a 421: the server is going away; the reply is still returned
            return result

    async def _command(self, line: str, timeout: _Timeout = _default) -> Reply:
        conn = self._session()[0]
        command = _line(line)
        reply: Reply = await self._run(procedures.command(conn, command), timeout)
        return reply

    async def execute_command(self, *args: bytes, timeout: _Timeout = _default) -> SMTPResponse:
        """Send one command line (its words as bytes) and return the reply.

        Raises:
            ValueError: a control character in an argument (nothing is sent).
        """
        self._session()  # not connected first, as aiosmtplib
        if any(_CONTROL.search(arg.decode("latin-1")) for arg in args):
            raise ValueError("Command arguments must not contain control characters")
        line = b" ".join(args).decode("utf-8", "surrogateescape")
        return seam.response(await self._command(line, timeout))

    async def _expect(
        self, line: str, codes: tuple[int, ...], timeout: _Timeout = _default
    ) -> SMTPResponse:
        answer = seam.response(await self._command(line, timeout))
        if answer.code not in codes:
            raise SMTPResponseException(answer.code, answer.message)
        return answer

    # -- greeting commands -------------------------------------------------------------

    async def ehlo(
        self, *, hostname: str | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Send EHLO (LHLO in LMTP); the extensions go into ``esmtp_extensions``.

        Raises:
            SMTPHeloError: the reply was not 2yz.
        """
        name = _hostname(hostname, "hostname") or self.local_hostname or "localhost"
        verb = "LHLO" if self.lmtp else "EHLO"
        answer = seam.response(await self._command(f"{verb} {name}", timeout))
        if answer.code != 250:  # aiosmtplib's test: another 2yz falls back to HELO
            raise SMTPHeloError(answer.code, answer.message)
        self.last_ehlo_response = answer
        return answer

    async def helo(
        self, *, hostname: str | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Send HELO.

        Raises:
            SMTPHeloError: the reply was not 2yz.
        """
        name = _hostname(hostname, "hostname") or self.local_hostname or "localhost"
        answer = seam.response(await self._command(f"HELO {name}", timeout))
        if answer.code != 250:
            raise SMTPHeloError(answer.code, answer.message)
        self.last_helo_response = answer
        return answer

    async def _ehlo_or_helo_if_needed(self) -> None:
        if not self.is_ehlo_or_helo_needed:
            return
        try:
            await self.ehlo()
        except SMTPHeloError:
            if self.is_connected and not self.lmtp:
                await self.helo()
            else:
                raise

    async def help(self, *, timeout: _Timeout = _default) -> str:
        """Send HELP; returns the text."""
        await self._ehlo_or_helo_if_needed()
        return (await self._expect("HELP", (211, 214, 250), timeout)).message

    async def rset(self, *, timeout: _Timeout = _default) -> SMTPResponse:
        """Send RSET."""
        await self._ehlo_or_helo_if_needed()
        return await self._expect("RSET", (250,), timeout)

    async def noop(self, *, timeout: _Timeout = _default) -> SMTPResponse:
        """Send NOOP."""
        await self._ehlo_or_helo_if_needed()
        return await self._expect("NOOP", (250,), timeout)

    async def vrfy(
        self, address: str, /, *, options: Iterable[str] | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Send VRFY for ``address``."""
        await self._ehlo_or_helo_if_needed()
        line = " ".join(["VRFY", self._address_argument(address, options), *(options or ())])
        return await self._expect(line, (250, 251, 252), timeout)

    async def expn(
        self, address: str, /, *, options: Iterable[str] | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Send EXPN for ``address``."""
        await self._ehlo_or_helo_if_needed()
        line = " ".join(["EXPN", self._address_argument(address, options), *(options or ())])
        return await self._expect(line, (250,), timeout)

    def _address_argument(self, address: str, options: Iterable[str] | None) -> str:
        parsed = parse_address(address)
        if any(o.upper() == "SMTPUTF8" for o in options or ()):
            if not self.supports_extension("smtputf8"):
                raise SMTPNotSupported("SMTPUTF8 is not supported by this server")
        else:
            parsed.encode("ascii")  # UnicodeEncodeError, as aiosmtplib
        return parsed

    async def quit(self, *, timeout: _Timeout = _default) -> SMTPResponse:
        """Send QUIT and close; a close instead of the reply counts as ``(221, "")``.

        Raises:
            SMTPResponseException: the reply was not 221; the connection stays
                open, as aiosmtplib leaves it.
        """
        conn = self._session()[0]
        reply = await self._run(procedures.quit(conn), timeout)
        if reply is None:
            self.close()
            return SMTPResponse(221, "")
        answer = seam.response(reply)
        if answer.code != 221:
            raise SMTPResponseException(answer.code, answer.message)
        self.close()
        return answer

    def close(self) -> None:
        """Close the connection at once (no QUIT) and forget the server's state."""
        driver, self._driver = self._driver, None
        if self._conn is not None:
            self._conn.connection_lost()
        self._conn = None
        self.transport = self.protocol = None
        self._reset_server_state()
        if driver is not None and driver.stream is not None:
            stream = driver.stream
            driver.stream = None
            closer = getattr(stream, "transport", None)
            if closer is not None and hasattr(closer, "abort"):
                closer.abort()  # asyncio: closes now, without awaiting
            else:
                driver._abandoned = stream
                _close_later(driver)

    # -- TLS and AUTH ------------------------------------------------------------------

    async def starttls(
        self,
        *,
        server_hostname: str | None = None,
        validate_certs: bool | None = None,
        client_cert: str | Default | None = _default,
        client_key: str | Default | None = _default,
        cert_bundle: str | Default | None = _default,
        tls_context: ssl.SSLContext | Default | None = _default,
        timeout: _Timeout = _default,
    ) -> SMTPResponse:
        """Send STARTTLS and run the TLS handshake; the server's state is forgotten.

        Raises:
            SMTPException: already on TLS, or the server does not offer STARTTLS.
            SMTPResponseException: STARTTLS was not answered 220.
        """
        conn, driver = self._session()
        if conn.tls_active:
            raise SMTPException("Connection already using TLS")
        for name, value in (
            ("client_cert", client_cert),
            ("client_key", client_key),
            ("cert_bundle", cert_bundle),
            ("tls_context", tls_context),
        ):
            if value is not _default:
                setattr(self, name, value)
        if validate_certs is not None:
            self.validate_certs = validate_certs
        self._validate()
        await self._ehlo_or_helo_if_needed()
        if not self.supports_extension("starttls"):
            raise SMTPException("SMTP STARTTLS extension not supported by server.")
        assert self._world is not None
        driver.ssl_context = await self._tls_context(self._world)
        driver.server_hostname = server_hostname or self.hostname
        reply = await self._run(procedures.command(conn, CommandLine("STARTTLS")), timeout)
        answer = seam.response(reply)
        if answer.code != 220:
            raise SMTPResponseException(answer.code, answer.message)
        await self._run(_handshake(conn), timeout)
        self._reset_server_state()
        self.transport = getattr(driver.stream, "transport", driver.stream)
        return answer

    def _check_credentials_channel(self) -> None:
        conn = self._session()[0]
        if not conn.tls_active and not self.auth_in_clear:
            raise SMTPException(
                "refusing to send credentials in the clear: start TLS first "
                "(or pass auth_in_clear=True to SMTP)"
            )

    async def login(
        self, username: str | bytes, password: str | bytes, /, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Authenticate with the best method both sides support (``AUTH_METHODS`` order).

        Raises:
            SMTPException: the server offers no AUTH, none in common, or TLS is
                off and ``auth_in_clear`` was not given.
            SMTPAuthenticationError: every method tried was refused.
        """
        await self._ehlo_or_helo_if_needed()
        if not self.supports_extension("auth"):
            raise SMTPException("SMTP AUTH extension not supported by server.")
        self._check_credentials_channel()
        error: SMTPAuthenticationError | None = None
        for method in self.supported_auth_methods:
            attempt = {
                "cram-md5": self.auth_crammd5,
                "plain": self.auth_plain,
                "login": self.auth_login,
            }[method]
            try:
                return await attempt(username, password, timeout=timeout)
            except SMTPAuthenticationError as exc:
                error = exc
        if error is not None:
            raise error
        raise SMTPException("No suitable authentication method found.")

    async def _auth_step(self, line: str, expected: int, timeout: _Timeout) -> SMTPResponse:
        answer = seam.response(await self._command(line, timeout))
        if answer.code != expected:
            raise SMTPAuthenticationError(answer.code, answer.message)
        return answer

    async def auth_plain(
        self, username: str | bytes, password: str | bytes, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH PLAIN (RFC 4616) with the credentials as the initial response."""
        self._check_credentials_channel()
        _no_separator(username, password)
        encoded = auth_plain_encode(username, password).decode("ascii")
        return await self._auth_step(f"AUTH PLAIN {encoded}", 235, timeout)

    async def auth_login(
        self, username: str | bytes, password: str | bytes, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH LOGIN: the user name as the initial response, the password after a 334."""
        self._check_credentials_channel()
        user, secret = (part.decode("ascii") for part in auth_login_encode(username, password))
        await self._auth_step(f"AUTH LOGIN {user}", 334, timeout)
        return await self._auth_step(secret, 235, timeout)

    async def auth_crammd5(
        self, username: str | bytes, password: str | bytes, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH CRAM-MD5 (RFC 2195)."""
        self._check_credentials_channel()
        challenge = await self._auth_step("AUTH CRAM-MD5", 334, timeout)
        answer = auth_crammd5_verify(username, password, challenge.message)
        return await self._auth_step(answer.decode("ascii"), 235, timeout)

    async def auth_xoauth2(
        self, username: str | bytes, access_token: str | bytes, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH XOAUTH2 with an OAuth 2 bearer token; a 334 error challenge is answered empty."""
        await self._ehlo_or_helo_if_needed()
        self._check_credentials_channel()
        encoded = auth_xoauth2_encode(username, access_token).decode("ascii")
        answer = seam.response(await self._command(f"AUTH XOAUTH2 {encoded}", timeout))
        if answer.code == 334:
            answer = seam.response(await self._command("", timeout))
        if answer.code != 235:
            raise SMTPAuthenticationError(answer.code, answer.message)
        return answer

    # -- a transaction -----------------------------------------------------------------

    def _mail_line(self, sender: str, options: Iterable[str], encoding: str) -> str:
        _refuse_line_break(sender)
        path = parse_address(sender)
        path.encode(encoding)  # UnicodeEncodeError, as aiosmtplib
        return " ".join([f"MAIL FROM:<{path}>", *options])

    def _rcpt_line(self, recipient: str, options: Iterable[str], encoding: str) -> str:
        _refuse_line_break(recipient)
        path = parse_address(recipient)
        path.encode(encoding)
        return " ".join([f"RCPT TO:<{path}>", *options])

    async def mail(
        self,
        sender: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: _Timeout = _default,
    ) -> SMTPResponse:
        """Send MAIL FROM.

        Raises:
            SMTPSenderRefused: the reply was not 2yz.
        """
        await self._ehlo_or_helo_if_needed()
        line = self._mail_line(sender, options or (), encoding)
        reply = await self._command(line, timeout)
        seam.mail_outcome(reply, sender)
        return seam.response(reply)

    async def rcpt(
        self,
        recipient: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: _Timeout = _default,
    ) -> SMTPResponse:
        """Send RCPT TO.

        Raises:
            SMTPRecipientRefused: the reply was not 2yz.
        """
        await self._ehlo_or_helo_if_needed()
        line = self._rcpt_line(recipient, options or (), encoding)
        answer = seam.response(await self._command(line, timeout))
        if answer.code // 100 != 2:
            raise SMTPRecipientRefused(answer.code, answer.message, recipient)
        return answer

    async def data(self, message: str | bytes, /, *, timeout: _Timeout = _default) -> SMTPResponse:
        """Send DATA and the message (CRLF line endings, dots stuffed, the final dot).

        Raises:
            SMTPDataError: DATA not answered 354, or the message refused.
            SMTPOutcomeUnknownError: no verdict came after the final dot.
        """
        conn = self._session()[0]
        await self._ehlo_or_helo_if_needed()
        if isinstance(message, str):
            message = message.encode("ascii")
        seam.data_outcome(await self._command("DATA", timeout))
        verdicts = await self._run(procedures.send_content(conn, message or b"\r\n"), timeout)
        text = seam.final_outcome(verdicts[0] if verdicts else None)
        return SMTPResponse(verdicts[0].code, text)

    async def sendmail(
        self,
        sender: str,
        recipients: str | Sequence[str],
        message: str | bytes,
        /,
        *,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: _Timeout = _default,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Send one message; returns ``(errors, text)``.

        ``errors`` maps each refused recipient to its reply; ``text`` is the
        reply to the end of data.  With PIPELINING (and in LMTP), MAIL, every
        RCPT and DATA go out in one write.

        Raises:
            SMTPSenderRefused, SMTPRecipientsRefused (every recipient refused),
            SMTPDataError, SMTPNotSupported, SMTPOutcomeUnknownError,
            ValueError (an address aiosmtplib refuses; nothing is sent).
        """
        recipients = [recipients] if isinstance(recipients, str) else list(recipients)
        mail_options = list(mail_options or ())
        rcpt_options = list(rcpt_options or ())
        encoding = "utf-8" if any(o.upper() == "SMTPUTF8" for o in mail_options) else "ascii"
        for address in (sender, *recipients):
            parse_address(address)  # ValueError before any byte
        self._session()
        async with self._sendmail_lock:
            await self._ehlo_or_helo_if_needed()
            if encoding == "utf-8" and not self.supports_extension("smtputf8"):
                raise SMTPNotSupported("SMTPUTF8 is not supported by this server")
            content = message.encode("ascii") if isinstance(message, str) else message
            if self.supports_extension("size"):
                mail_options.insert(0, f"size={_normalised_length(content)}")
            conn = self._session()[0]
            ext = conn.extensions
            bdat = self.chunking and ext.chunking
            if recipients and (self.lmtp or bdat or (self.pipelining and ext.pipelining)):
                mail = self._mail_line(sender, mail_options, encoding)
                rcpts = [self._rcpt_line(r, rcpt_options, encoding) for r in recipients]
                return await self._pipelined(
                    sender,
                    recipients,
                    mail_line=mail,
                    rcpt_lines=rcpts,
                    content=content,
                    timeout=timeout,
                )
            # Every line is checked before the first byte of the transaction
            # (aiosmtplib sends MAIL, then finds a NUL in a recipient).
            lines = [_line(self._rcpt_line(r, rcpt_options, encoding)) for r in recipients]
            _line(self._mail_line(sender, mail_options, encoding))
            try:
                await self.mail(sender, options=mail_options, encoding=encoding, timeout=timeout)
                refusals: seam.Refusals = []
                for recipient, line in zip(recipients, lines, strict=True):
                    reply = await self._run(procedures.command(conn, line), timeout)
                    seam.rcpt_outcome(refusals, recipient, reply)
                errors = seam.recipients_outcome(refusals, recipients)
                response = await self.data(content, timeout=timeout)
            except (SMTPResponseException, SMTPRecipientsRefused):
                await self._quiet_rset(timeout)
                raise
            return errors, response.message

    async def _pipelined(
        self,
        sender: str,
        recipients: list[str],
        *,
        mail_line: str,
        rcpt_lines: list[str],
        content: bytes,
        timeout: _Timeout,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """The transaction through the engine: one write for MAIL, every RCPT and DATA.

        Also the path of BDAT (``chunking``) and LMTP, with or without PIPELINING.
        """
        conn = self._session()[0]
        # The engine keeps the address as parse_address made it (CR/LF
        # dropped, as on the line), not as the caller spelt it.
        rcpts = [
            _line(line, parse_address(r)) for line, r in zip(rcpt_lines, recipients, strict=True)
        ]
        mail = _line(mail_line)
        chunking = self.chunking and conn.extensions.chunking
        procedure = procedures.transaction(
            conn, mail, rcpts, content or b"\r\n", chunking=chunking, pipelining=self.pipelining
        )
        result = await self._run(procedure, timeout)
        self.last_transaction = result
        try:
            errors, text = seam.transaction_outcome(result, sender, recipients, chunking=chunking)
        except (SMTPResponseException, SMTPRecipientsRefused):
            # aiosmtplib resets after every refusal; the engine did already
            # when it left a transaction open (every RCPT or DATA refused).
            if self.is_connected and not result.reset:
                await self._quiet_rset(timeout)
            raise
        if self.lmtp:
            for recipient, outcome in zip(recipients, result.recipients, strict=True):
                if not outcome.reply.is_positive and recipient not in errors:
                    errors[recipient] = seam.response(outcome.reply)
        return errors, text

    async def _quiet_rset(self, timeout: _Timeout) -> None:
        """aiosmtplib's RSET after a failed transaction: its own failure is not raised."""
        if not self.is_connected:
            return
        with contextlib.suppress(ConnectionError, SMTPResponseException, SMTPTimeoutError):
            await self._expect("RSET", (250,), timeout)

    async def send_message(
        self,
        message: email.message.EmailMessage | email.message.Message,
        /,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: _Timeout = _default,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Send an ``email.message`` message; the envelope comes from its headers unless given.

        Bcc and Resent-Bcc are not sent.  Non-ASCII addresses need SMTPUTF8.
        """
        if sender is None:
            sender = extract_sender(message)
        if sender is None:
            raise ValueError("No From header provided in message")
        if isinstance(recipients, str):
            recipients = [recipients]
        elif recipients is None:
            recipients = extract_recipients(message)
        if not recipients:
            raise ValueError("No recipient headers provided in message")
        mail_options = list(mail_options or ())
        await self._ehlo_or_helo_if_needed()
        utf8 = not (sender.isascii() and all(r.isascii() for r in recipients))
        given = [option.lower() for option in mail_options]
        if utf8:
            if not self.supports_extension("smtputf8"):
                raise SMTPNotSupported("An address containing non-ASCII characters was provided")
            if "smtputf8" not in given:
                mail_options.append("SMTPUTF8")
        if self.supports_extension("8bitmime"):
            if "body=8bitmime" not in given:
                mail_options.append("BODY=8BITMIME")
            flat = flatten_message(message, utf8=utf8, cte_type="8bit")
        else:
            flat = flatten_message(message, utf8=utf8, cte_type="7bit")
        return await self.sendmail(
            sender,
            recipients,
            flat,
            mail_options=mail_options,
            rcpt_options=rcpt_options,
            timeout=timeout,
        )

    def sendmail_sync(self, *args: Any, **kwargs: Any) -> tuple[dict[str, SMTPResponse], str]:
        """:meth:`sendmail` in a new event loop (connects and quits around it)."""

        async def run() -> tuple[dict[str, SMTPResponse], str]:
            async with self:
                return await self.sendmail(*args, **kwargs)

        return asyncio.run(run())

    def send_message_sync(self, *args: Any, **kwargs: Any) -> tuple[dict[str, SMTPResponse], str]:
        """:meth:`send_message` in a new event loop (connects and quits around it)."""

        async def run() -> tuple[dict[str, SMTPResponse], str]:
            async with self:
                return await self.send_message(*args, **kwargs)

        return asyncio.run(run())

    # -- context manager ---------------------------------------------------------------

    async def __aenter__(self) -> SMTP:
        if not self.is_connected:
            await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, (ConnectionError, TimeoutError)):
            self.close()
            return
        try:
            if self.is_connected:
                await self.quit()
        except (SMTPServerDisconnected, SMTPResponseException, SMTPTimeoutError):
            pass
        finally:
            self.close()


def _handshake(conn: Connection) -> _Procedure[None]:
    """The TLS handshake after STARTTLS's 220 (the procedure's second half)."""
    yield UPGRADE_TLS
    conn.start_tls_done()


def _line(text: str, recipient: str | None = None) -> CommandLine:
    """A command line for the engine; a control character in it is ``ValueError`` (A4).

    The engine refuses CR, LF and NUL; aiosmtplib refuses every C0 control and
    DEL in a command, and so does this face (an address with one is sent by
    neither).
    """
    if _CONTROL.search(text):
        raise ValueError(f"Command line contains a prohibited control character: {text!r}")
    return CommandLine(text, recipient)


def _no_separator(username: str | bytes, password: str | bytes) -> None:
    """PLAIN separates its fields with NUL: one inside a credential would shift them."""
    for value in (username, password):
        if (b"\0" if isinstance(value, bytes) else "\0") in value:  # type: ignore[operator]
            raise ValueError("a NUL in a user name or password would corrupt AUTH PLAIN")


def _close_later(driver: AsyncDriver) -> None:
    """Close a stream from sync code: soon, on its own loop (none running: the GC closes it)."""
    with contextlib.suppress(RuntimeError):
        current_world().close_soon(driver.aclose)
