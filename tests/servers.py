"""Real and scripted peers on loopback for the tests.

``AiosmtpdServer`` runs aiosmtpd in-process (its own thread and event loop) and
records every envelope it receives.  ``ScriptedServer`` is a hostile peer on a
real socket, for what no real server will do (close mid-reply, trickle bytes,
inject bytes after STARTTLS); it plays a list of steps and records what the
client sent.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP as AioLMTP
from aiosmtpd.smtp import SMTP as AioSMTP
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests._postfix import free_port

REFUSE = "reject"  # recipients whose local part starts with this are refused


@dataclass
class Received:
    """One message as aiosmtpd received it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str] = field(default_factory=list)


class _Handler:
    def __init__(self, *, lmtp: bool) -> None:
        self.messages: list[Received] = []
        self.lmtp = lmtp

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith(REFUSE):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                list(envelope.mail_options),
            )
        )
        if self.lmtp:
            # aiosmtpd sends the returned text as it is: one line per recipient.
            return "\r\n".join(f"250 2.0.0 <{r}> delivered" for r in envelope.rcpt_tos)
        return "250 2.0.0 OK queued"


class _LMTPController(Controller):
    def factory(self) -> AioLMTP:
        return AioLMTP(self.handler, **self.SMTP_kwargs)


class _SMTPController(Controller):
    def factory(self) -> AioSMTP:
        return AioSMTP(self.handler, **self.SMTP_kwargs)


class AiosmtpdServer:
    """aiosmtpd on 127.0.0.1 with a recording handler."""

    host = "127.0.0.1"

    def __init__(self, *, lmtp: bool = False) -> None:
        self.handler = _Handler(lmtp=lmtp)
        cls = _LMTPController if lmtp else _SMTPController
        self.port = free_port()
        self._controller = cls(
            self.handler,
            hostname=self.host,
            port=self.port,
            server_hostname="aiosmtpd.test",
            decode_data=False,
        )

    @property
    def messages(self) -> list[Received]:
        """Everything received so far, oldest first."""
        return self.handler.messages

    def __enter__(self) -> AiosmtpdServer:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()


# A step of a scripted server: bytes to send, ("expect", n) to read n lines,
# ("sleep", ms) to pause, or CLOSE to close the connection there.
CLOSE = "close"
Step = bytes | tuple[str, int] | str


class ScriptedServer:
    """Accepts one connection on loopback and plays ``steps``; records input."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.received = b""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.error: BaseException | None = None
        self._lines_wanted = 0

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                for step in self.steps:
                    if isinstance(step, str):  # CLOSE
                        return
                    if isinstance(step, bytes):
                        conn.sendall(step)
                    elif step[0] == "sleep":
                        time.sleep(step[1] / 1000)
                    else:
                        self._read_lines(conn, step[1])
                # Script done: drain until the client closes.
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError as exc:  # the client went away: fine for a script
                self.error = exc

    def _read_lines(self, conn: socket.socket, count: int) -> None:
        self._lines_wanted += count
        while self.received.count(b"\r\n") < self._lines_wanted:
            chunk = conn.recv(65536)
            if not chunk:
                return
            self.received += chunk

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._listener.close()
        self._thread.join(timeout=10)


class ContentKeeper:
    """An aiosmtpd handler that keeps each message's bytes as received."""

    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.contents.append(envelope.original_content)
        return "250 2.0.0 kept"


#: The account the AUTH tests log in with: non-ASCII on purpose (CPython gh-73936).
AUTH_USER, AUTH_PASSWORD = "jürgen@example.test", "pässwörd ✓"


def password_authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    """aiosmtpd authenticator accepting exactly AUTH_USER / AUTH_PASSWORD (UTF-8)."""
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode("utf-8"),
        auth_data.password.decode("utf-8"),
    ) == (AUTH_USER, AUTH_PASSWORD)
    # handled=False: aiosmtpd itself answers 235 or 535.
    return AuthResult(success=ok, handled=False)


def server_tls_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server-side TLS context with a certificate for ``localhost`` from ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


@contextmanager
def running_controller(handler: Any, **options: Any) -> Iterator[Controller]:
    """An aiosmtpd Controller on a free loopback port, stopped afterwards."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
