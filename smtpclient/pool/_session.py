"""How each connection of a pool is opened and what it runs: shared by every world's runner.

The runners only move the scheduler's actions to drivers; what each action
means in SMTP (which procedure, with which settings) is decided here, once.
"""

from __future__ import annotations

import email.message
import logging
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Literal, TypedDict

from smtp_core import Connection, Noop, Procedure, Reply, State, TransactionResult, procedures
from smtp_core.pool import Action, Check, Close, Message, MessageResult, Open, Outcome, Send
from transports import AsyncDriver, SyncDriver, Timeouts, default_ssl_context
from transports.proxy import Proxy
from transports.sync import connect_driver, connect_unix_driver

from ..aio.email import extract_recipients, extract_sender, flatten_message

__all__ = ["Session", "log_report", "log_result", "message_from"]

log = logging.getLogger("smtpclient.pool")

TLSMode = Literal["required", "opportunistic", "none", "implicit"]


class ConnectArguments(TypedDict):
    """The keyword arguments every world's ``connect(host, port, ...)`` takes."""

    implicit_tls: bool
    ssl_context: ssl.SSLContext | None
    server_hostname: str | None
    source_address: tuple[str, int] | None
    proxy: Proxy | str | None
    timeouts: Timeouts


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """Where each connection of the pool goes, and how its session is opened.

    Attributes:
        host, port: the server (``port`` defaults to 25, or 465 with
            ``tls="implicit"``).
        path: a Unix socket to connect to instead (LMTP servers listen on
            one); no TLS there, so ``tls`` must be ``"none"``.
        tls: ``"opportunistic"`` (STARTTLS when offered), ``"required"``
            (STARTTLS or no mail), ``"implicit"`` (TLS from the first byte,
            RFC 8314), or ``"none"``.
        ssl_context: for TLS; default: verifying, TLS 1.2 at least, made once
            for the whole pool.
        server_hostname: the name the certificate must carry (default: host).
        username, password, token: credentials for AUTH; ``token`` for
            OAUTHBEARER or XOAUTH2.  Never sent in the clear unless
            ``auth_in_clear``.
        mechanisms: AUTH mechanisms in order of preference.
        local_hostname: the name said in EHLO (default: ``socket.getfqdn()``).
        lmtp: speak LMTP (LHLO, a verdict per recipient).
        timeouts: per-stage timeouts (RFC 5321 §4.5.3.2 by default).
        proxy, source_address: as ``transports``' ``connect``.
        pipelining, chunking: as :func:`smtp_core.procedures.send_mail`.
    """

    host: str = "localhost"
    port: int | None = None
    path: str | None = None
    tls: TLSMode = "opportunistic"
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    mechanisms: Sequence[str] | None = None
    auth_in_clear: bool = False
    local_hostname: str | None = None
    lmtp: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)
    proxy: Proxy | str | None = None
    source_address: tuple[str, int] | None = None
    pipelining: bool = True
    chunking: bool = False
    _made: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tls not in ("required", "opportunistic", "none", "implicit"):
            raise ValueError(f"tls must be required, opportunistic, none or implicit: {self.tls!r}")
        if self.timeouts.total is not None:
            # A pool's connection lives for many messages: one deadline for
            # all of them would cut the last ones short.
            raise ValueError("a pool's timeouts take no total; set the stages' timeouts")
        if self.path is not None and self.tls != "none":
            raise ValueError("a Unix socket takes no TLS: give tls='none'")
        if (self.password is not None or self.token is not None) and self.username is None:
            raise ValueError("a password or token needs a username")

    @property
    def target_port(self) -> int:
        """The port connected to."""
        if self.port is not None:
            return self.port
        return 465 if self.tls == "implicit" else 25

    @property
    def context(self) -> ssl.SSLContext | None:
        """The TLS context every connection shares, made on first use; ``None`` without TLS."""
        if self.tls == "none":
            return None
        if self.ssl_context is not None:
            return self.ssl_context
        with self._lock:  # one context for the pool: loading the CA store costs ~23 ms
            if "context" not in self._made:
                self._made["context"] = default_ssl_context()
            context = self._made["context"]
        assert isinstance(context, ssl.SSLContext)
        return context

    @property
    def ehlo_name(self) -> str:
        """The name said in EHLO or LHLO."""
        if self.local_hostname is not None:
            return self.local_hostname
        with self._lock:
            if "name" not in self._made:
                # Once per pool, in the thread that opens the first connection
                # (getfqdn may wait seconds on a resolver).
                self._made["name"] = socket.getfqdn() or "localhost"
            name = self._made["name"]
        assert isinstance(name, str)
        return name

    def connect_arguments(self) -> ConnectArguments:
        """The keyword arguments of every world's ``connect(host, port, **...)``."""
        return {
            "implicit_tls": self.tls == "implicit",
            "ssl_context": self.context,
            "server_hostname": self.server_hostname,
            "source_address": self.source_address,
            "proxy": self.proxy,
            "timeouts": self.timeouts,
        }

    def connect_sync(self) -> SyncDriver:
        """A connected blocking driver: TCP (and TLS), or the Unix socket."""
        if self.path is not None:
            return connect_unix_driver(self.path, timeouts=self.timeouts)
        return connect_driver(self.host, self.target_port, **self.connect_arguments())

    async def connect_async(self, world: ModuleType) -> AsyncDriver:
        """A connected driver of ``world`` (``transports.asyncio``, ``.trio`` or ``.anyio``)."""
        driver: AsyncDriver
        if self.path is not None:
            driver = await world.connect_unix(self.path, timeouts=self.timeouts)
        else:
            driver = await world.connect(self.host, self.target_port, **self.connect_arguments())
        return driver

    def connection(self) -> Connection:
        """A new engine connection with this session's policies."""
        tls = self.tls
        return Connection(
            lmtp=self.lmtp,
            tls_policy="required" if tls == "implicit" else tls,
            tls_active=tls == "implicit",
            auth_in_clear=self.auth_in_clear,
        )

    def procedure(self, action: Action, conn: Connection) -> Procedure[Outcome] | None:
        """What ``action`` runs on ``conn`` (``None``: nothing; a ``Close`` without QUIT)."""
        if isinstance(action, Open):
            return self._open(conn)
        if isinstance(action, Send):
            return self._send(conn, action)
        if isinstance(action, Check):
            return procedures.command(conn, Noop())
        assert isinstance(action, Close)
        return procedures.quit(conn) if action.quit and conn.state is State.READY else None

    def _open(self, conn: Connection) -> Procedure[Reply]:
        reply = yield from procedures.handshake(conn, self.ehlo_name)
        if self.username is not None:
            reply = yield from procedures.authenticate(
                conn,
                self.username,
                self.password,
                token=self.token,
                preference=self.mechanisms,
            )
        return reply

    def _send(self, conn: Connection, action: Send) -> Procedure[TransactionResult]:
        message = action.message
        return procedures.send_mail(
            conn,
            message.sender,
            action.recipients,
            message.content,
            mail_params=message.mail_params,
            rcpt_params=message.rcpt_params,
            chunking=self.chunking and conn.extensions.chunking,
            pipelining=self.pipelining,
        )


def message_from(
    message: email.message.Message | bytes,
    *,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    mail_params: Sequence[str] = (),
    rcpt_params: Sequence[str] = (),
    key: object = None,
) -> Message:
    """A pool :class:`~smtp_core.pool.Message` from an email message or bytes.

    For an :class:`email.message.Message`, the sender and recipients default
    to its headers as ``smtplib.send_message`` reads them (``Sender`` or
    ``From``; ``To``, ``Cc`` and ``Bcc``; the ``Resent-`` ones for a resent
    message), and ``Bcc`` is not sent.  A message that needs SMTPUTF8 (a
    non-ASCII address) gets ``SMTPUTF8`` in its MAIL parameters.

    Raises:
        ValueError: no sender or no recipients, given or found.
    """
    if isinstance(message, email.message.Message):
        if sender is None:
            sender = extract_sender(message)
        if recipients is None:
            recipients = extract_recipients(message)
        utf8 = not all(a.isascii() for a in (sender or "", *(recipients or ())))
        if utf8 and "SMTPUTF8" not in (p.upper() for p in mail_params):
            mail_params = (*mail_params, "SMTPUTF8")
        content = flatten_message(message, utf8=utf8)
    else:
        content = bytes(message)
    if sender is None:
        raise ValueError("no sender: give one, or a From or Sender header")
    if not recipients:
        raise ValueError("no recipients: give some, or To, Cc or Bcc headers")
    return Message(sender, tuple(recipients), content, tuple(mail_params), tuple(rcpt_params), key)


def log_report(action: Action, outcome: Outcome) -> None:
    """Log how a connection's action ended (``smtpclient.pool``), the same in every world."""
    if isinstance(action, Open):
        if isinstance(outcome, BaseException):
            log.warning("connection %d: could not open the session: %s", action.conn, outcome)
        else:
            log.info("connection %d: session open", action.conn)
    elif isinstance(action, Close):
        log.debug("connection %d: closed%s", action.conn, " after QUIT" if action.quit else "")
    elif isinstance(action, Check) and not isinstance(outcome, Reply):
        log.info("connection %d: NOOP failed: %s", action.conn, outcome)
    elif isinstance(action, Send) and isinstance(outcome, BaseException):
        log.info(
            "connection %d: message %r, try %d: %s",
            action.conn,
            action.message.key,
            action.attempt,
            outcome,
        )


def log_result(result: MessageResult) -> None:
    """Log a message's result: INFO unless every recipient took it (DEBUG)."""
    if not log.isEnabledFor(logging.INFO):
        return  # nor DEBUG: skip `status`, a set built for every message
    status = result.status
    level = logging.DEBUG if status == "accepted" else logging.INFO
    if log.isEnabledFor(level):
        failed = {a: o.status for a, o in result.failed.items()}
        log.log(level, "message %r: %s %s", result.message.key, status, failed or "")
