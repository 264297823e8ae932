"""The facade's contract: what the standard library's smtplib does, smtpclient does.

Each test runs one conversation through stock ``smtplib`` and through
``smtpclient`` (the ``module`` parameter, or both in one test where the bytes
on the wire are compared) against a server on a real loopback socket, and
asserts what smtplib does: the same exception type (or a subclass), the same
``(code, text)``, the same bytes.  Where smtpclient deliberately does better
than smtplib, the test says so and runs on smtpclient only.

Most servers here are :class:`ReactiveServer`, a scripted peer that answers
each command line as it reads it (so it serves a client that waits for every
reply and one that pipelines alike).  AUTH and the error limit use real
servers: aiosmtpd, and postfix at its default ``smtpd_hard_error_limit``.
"""

from __future__ import annotations

import inspect
import shutil
import smtplib
import socket
import ssl
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword

import smtpclient
from tests._postfix import (
    TEST_DOMAIN,
    PostfixError,
    PostfixNotInstalledError,
    PostfixServer,
    WaitForMessagesTimeout,
    check_installation,
)
from tests.servers import ContentKeeper, running_controller

MODULES = pytest.mark.parametrize("module", [smtplib, smtpclient], ids=["smtplib", "smtpclient"])

MSG = b"Subject: contract\r\n\r\nhello\r\n"
SENDER = "sender@client.test"

EHLO_PIPELINING = b"250-srv.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
EHLO_PLAIN = b"250-srv.test\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
BOTH_EHLOS = pytest.mark.parametrize(
    "ehlo", [EHLO_PIPELINING, EHLO_PLAIN], ids=["pipelining", "no-pipelining"]
)

#: What this Python's smtplib writes after MAIL and RCPT (3.13 lower-cased them).
FROM, TO = (b"from:", b"to:") if sys.version_info >= (3, 13) else (b"FROM:", b"TO:")


# -- a scripted server that answers each line as it reads it ---------------------------

#: What a handler may answer besides reply bytes: close the connection there,
#: or start TLS there (after writing the 220 before it).
CLOSE = "close"
START_TLS = "start-tls"
Answer = bytes | str
#: Called with each command line (without CRLF; ``b"."`` for the end of the
#: data); returns the answers, or None for :func:`default_answers`.
Handler = Callable[[bytes], Sequence[Answer] | None]

_DEFAULTS = {
    b"HELO": b"250 srv.test\r\n",
    b"MAIL": b"250 2.1.0 ok\r\n",
    b"RCPT": b"250 2.1.5 ok\r\n",
    b"DATA": b"354 go ahead\r\n",
    b"RSET": b"250 2.0.0 ok\r\n",
    b"NOOP": b"250 2.0.0 ok\r\n",
    b"HELP": b"214 2.0.0 see RFC 5321\r\n",
}


def verb_of(line: bytes) -> bytes:
    return line.split(b" ", 1)[0].upper()


def default_answers(line: bytes, ehlo: bytes, *, end_of_data: bool) -> list[Answer]:
    """A plain, accepting server's answers."""
    if end_of_data:
        return [b"250 2.0.0 queued\r\n"]
    verb = verb_of(line)
    if verb in (b"EHLO", b"LHLO"):
        return [ehlo]
    if verb == b"QUIT":
        return [b"221 2.0.0 bye\r\n", CLOSE]
    return [_DEFAULTS.get(verb, b"500 5.5.2 command not recognized\r\n")]


class ReactiveServer:
    """Accepts one connection on 127.0.0.1, answers each line as it reads it.

    ``received`` is every byte the client sent (in the clear, also after
    STARTTLS); ``messages`` the content of each DATA (dot-stuffed, as sent).
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        ehlo: bytes = EHLO_PIPELINING,
        greeting: bytes = b"220 srv.test ESMTP\r\n",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.ehlo = ehlo
        self.greeting = greeting
        self.tls = tls
        self.messages: list[bytes] = []
        self.error: BaseException | None = None
        self._received = bytearray()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(10)
        self.host, self.port = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def received(self) -> bytes:
        return bytes(self._received)

    def _serve(self) -> None:
        sockets: list[socket.socket] = []
        try:
            conn, _ = self._listener.accept()
            sockets.append(conn)
            conn.settimeout(10)
            self._talk(conn, sockets)
        except Exception as exc:
            self.error = exc
        finally:
            for sock in reversed(sockets):
                with suppress(OSError):
                    sock.close()

    def _talk(self, conn: socket.socket, sockets: list[socket.socket]) -> None:
        conn.sendall(self.greeting)
        pending = b""
        in_data = False
        content = bytearray()
        while chunk := conn.recv(65536):
            self._received += chunk
            lines = (pending + chunk).split(b"\r\n")
            pending = lines.pop()
            out = bytearray()
            for line in lines:
                if in_data and line != b".":
                    content += line + b"\r\n"
                    continue
                end_of_data, in_data = in_data, False
                if end_of_data:
                    self.messages.append(bytes(content))
                    content.clear()
                answers = self.handler(line) if self.handler is not None else None
                if answers is None:
                    answers = default_answers(line, self.ehlo, end_of_data=end_of_data)
                for answer in answers:
                    if isinstance(answer, bytes):
                        out += answer
                        continue
                    conn.sendall(out)
                    out.clear()
                    if answer == CLOSE:
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    assert answer == START_TLS and self.tls is not None
                    conn = self.tls.wrap_socket(conn, server_side=True)
                    sockets.append(conn)
                if (
                    not end_of_data
                    and verb_of(line) == b"DATA"
                    and any(isinstance(a, bytes) and a.startswith(b"354") for a in answers)
                ):
                    in_data = True
            if out:
                conn.sendall(out)

    def __enter__(self) -> ReactiveServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._listener.close()
        self._thread.join(timeout=15)


@contextmanager
def session(
    module: ModuleType, server: ReactiveServer, local_hostname: str = "client.test"
) -> Iterator[Any]:
    """``module.SMTP`` connected to ``server``, closed (without QUIT) afterwards."""
    smtp = module.SMTP(server.host, server.port, local_hostname, timeout=10)
    try:
        yield smtp
    finally:
        smtp.close()


def outcome(call: Callable[[], object]) -> object:
    """What ``call`` returned, or the name and arguments of what it raised."""
    try:
        return call()
    except Exception as exc:
        return ("raised", type(exc).__name__, exc.args)


def raised(call: Callable[[], object]) -> Exception | None:
    """What ``call`` raised, or None."""
    try:
        call()
    except Exception as exc:
        return exc
    return None


Conversation = Callable[[Any], list[object]]


def transcript(
    module: ModuleType,
    conversation: Conversation,
    handler: Handler | None = None,
    *,
    ehlo: bytes = EHLO_PIPELINING,
) -> tuple[list[object], bytes]:
    """Run ``conversation`` with ``module``; return its results and the bytes sent."""
    with ReactiveServer(handler, ehlo=ehlo) as server:
        with session(module, server) as smtp:
            results = conversation(smtp)
    return results, server.received


def assert_same_as_smtplib(
    conversation: Conversation, handler: Callable[[], Handler | None], *, ehlo: bytes
) -> None:
    """The same conversation with both modules: same results, same bytes on the wire."""
    expected = transcript(smtplib, conversation, handler(), ehlo=ehlo)
    actual = transcript(smtpclient, conversation, handler(), ehlo=ehlo)
    assert actual[1] == expected[1], "smtpclient sent other bytes than smtplib"
    assert actual[0] == expected[0], "smtpclient returned other results than smtplib"


# -- 1. a 421 to a later RCPT is never a silent success --------------------------------


def _421_to_second_rcpt(line: bytes) -> Sequence[Answer] | None:
    if verb_of(line) == b"RCPT" and b"<c@" in line:
        return [b"421 4.3.0 srv.test going away\r\n", CLOSE]
    return None


@BOTH_EHLOS
@MODULES
def test_421_to_a_later_rcpt_raises_recipients_refused(module: ModuleType, ehlo: bytes) -> None:
    # smtplib: SMTPRecipientsRefused with what was refused so far, and the
    # connection closed.  The message was not sent: returning would lose it.
    with ReactiveServer(_421_to_second_rcpt, ehlo=ehlo) as server:
        with session(module, server) as smtp:
            with pytest.raises(module.SMTPRecipientsRefused) as info:
                smtp.sendmail(SENDER, ["b@x.test", "c@x.test", "d@x.test"], MSG)
            assert smtp.sock is None
    refused = info.value.recipients
    assert refused["c@x.test"] == (421, b"4.3.0 srv.test going away")
    assert "b@x.test" not in refused
    assert server.messages == []


# postfix's own defaults (postconf -d, postfix 3.7); the shared fixture raises
# them to 100/1000 so that other tests never meet them.
POSTFIX_DEFAULT_LIMITS = {
    "smtpd_soft_error_limit": "10",
    "smtpd_hard_error_limit": "${stress?{1}:{20}}",
}


@pytest.fixture(scope="module")
def postfix_default_limits() -> Iterator[PostfixServer]:
    """A postfix of its own with the default error limits (hard limit 20)."""
    try:
        check_installation()
    except PostfixNotInstalledError as exc:
        pytest.fail(str(exc), pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix="smtpclient-postfix-limits-"))
    server = PostfixServer(workdir, main_cf=POSTFIX_DEFAULT_LIMITS)
    try:
        try:
            server.start()
        except PostfixError as exc:
            pytest.fail(f"could not start the test postfix: {exc}", pytrace=False)
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@MODULES
def test_postfix_hard_error_limit_is_not_a_silent_success(
    module: ModuleType, postfix_default_limits: PostfixServer
) -> None:
    # Postfix answers 421 and disconnects at its 20th error: with one valid and
    # 25 refused recipients the message cannot be delivered in this session.
    # smtplib raises SMTPRecipientsRefused (20 x 550 and the 421).
    server = postfix_default_limits
    valid = f"limit-{uuid.uuid4().hex[:10]}@{TEST_DOMAIN}"
    rcpts = [valid] + [f"bad{i}@elsewhere.example" for i in range(25)]
    smtp = module.SMTP(server.host, server.port, "client.test", timeout=30)
    refusal: Any = None
    try:
        refused = smtp.sendmail(SENDER, rcpts, MSG)
    except module.SMTPRecipientsRefused as exc:
        refusal = exc
    finally:
        smtp.close()
    if refusal is not None:
        assert 421 in {code for code, _ in refusal.recipients.values()}
        assert valid not in refusal.recipients
        return
    # It returned: then the message must really have been delivered.
    try:
        server.wait_for_messages(1, timeout=15, recipient=valid)
    except WaitForMessagesTimeout:
        codes = sorted({code for code, _ in refused.values()})
        pytest.fail(
            f"sendmail returned normally ({len(refused)} refused, codes {codes}) "
            f"but nothing was delivered to {valid}"
        )


# -- 2. STARTTLS refused ---------------------------------------------------------------


def _starttls_454(line: bytes) -> Sequence[Answer] | None:
    if verb_of(line) == b"STARTTLS":
        return [b"454 4.7.0 TLS not available due to temporary reason\r\n"]
    return None


@MODULES
def test_starttls_454_raises_response_exception(module: ModuleType) -> None:
    ehlo = b"250-srv.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
    with ReactiveServer(_starttls_454, ehlo=ehlo) as server:
        with session(module, server) as smtp:
            with pytest.raises(module.SMTPResponseException) as info:
                smtp.starttls()
            assert info.value.smtp_code == 454
            assert info.value.smtp_error == b"4.7.0 TLS not available due to temporary reason"
            assert smtp.noop() == (250, b"2.0.0 ok")  # still in the clear, still usable
    assert server.received.upper() == b"EHLO CLIENT.TEST\r\nSTARTTLS\r\nNOOP\r\n"


# -- 3. every exception is in smtplib's hierarchy ----------------------------------------


class ChallengingServer:
    """Offers ``mechanisms`` and answers AUTH with one fixed 334 challenge.

    The answer to the challenge is refused (535); ``*`` (cancel) draws 501;
    NOOP is always 250, also where the server waits for an AUTH response, so
    that a client that gave up on the exchange can go on.
    """

    def __init__(self, mechanisms: bytes, challenge: bytes) -> None:
        self.ehlo = b"250-srv.test\r\n250-AUTH " + mechanisms + b"\r\n250 8BITMIME\r\n"
        self.challenge = challenge
        self.in_auth = False

    def __call__(self, line: bytes) -> Sequence[Answer] | None:
        verb = verb_of(line)
        if verb == b"AUTH":
            self.in_auth = True
            return [b"334 " + self.challenge + b"\r\n"]
        if verb == b"NOOP":
            return None
        if self.in_auth:
            self.in_auth = False
            if line == b"*":
                return [b"501 5.7.0 authentication cancelled\r\n"]
            return [b"535 5.7.8 authentication failed\r\n"]
        return None


def test_login_non_base64_challenge_raises_smtp_exception() -> None:
    # Deliberately better than smtplib, which lets binascii.Error (a
    # ValueError from base64.decodebytes) escape: smtpclient raises within
    # its hierarchy, and the session stays usable.
    handler = ChallengingServer(b"LOGIN", b"!!!notbase64")
    with ReactiveServer(handler, ehlo=handler.ehlo) as server:
        with session(smtpclient, server) as smtp:
            error = raised(lambda: smtp.login("user", "password"))
            assert isinstance(error, smtpclient.SMTPException), repr(error)
            assert smtp.noop() == (250, b"2.0.0 ok")


@MODULES
def test_login_8bit_challenge_raises_smtp_exception(module: ModuleType) -> None:
    # smtplib: base64.decodebytes drops the bytes that are not base64, answers
    # the empty challenge, and raises SMTPAuthenticationError(535).
    handler = ChallengingServer(b"CRAM-MD5", b"\xff\xfe")
    with ReactiveServer(handler, ehlo=handler.ehlo) as server:
        with session(module, server) as smtp:
            error = raised(lambda: smtp.login("user", "password"))
            assert isinstance(error, module.SMTPException), repr(error)
            assert smtp.noop() == (250, b"2.0.0 ok")


@MODULES
@pytest.mark.parametrize("password", ["", "pa\tss"], ids=["empty", "tab"])
def test_login_sends_passwords_smtplib_sends(module: ModuleType, password: str) -> None:
    # smtplib sends an empty password, and one with a tab, as given.
    seen: list[tuple[bytes, bytes]] = []

    def accept_anything(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=True, handled=False)

    with running_controller(
        ContentKeeper(), authenticator=accept_anything, auth_require_tls=False
    ) as controller:
        with module.SMTP("127.0.0.1", controller.port, "client.test", timeout=10) as smtp:
            code, _ = smtp.login("user", password)
    assert code == 235
    assert seen == [(b"user", password.encode())]


XOAUTH2_TOKEN = (
    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
    "YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
)
#: docmd() calls smtplib sends as they are (item 4 compares the bytes).
DOCMD_CASES = {
    "auth-xoauth2": ("AUTH", "XOAUTH2 " + XOAUTH2_TOKEN),
    "mail-in-cmd": ("MAIL FROM: <x@example.org>", ""),
    "auth-plain-in-cmd": ("AUTH PLAIN AGZvbwBiYXI=", ""),
    "help-rcpt": ("HELP RCPT", ""),
    "empty": ("", ""),
    "ehlo-x": ("EHLO", "x"),
    "rcpt-in-cmd": ("RCPT TO:<a@example.org>", ""),
    "data": ("DATA", ""),
    "starttls": ("STARTTLS", ""),
}


def _docmd_answers(line: bytes) -> Sequence[Answer] | None:
    verb = verb_of(line)
    if verb == b"AUTH":
        return [b"235 2.7.0 authentication successful\r\n"]
    if verb == b"DATA":
        return [b"503 5.5.1 Error: need RCPT command\r\n"]
    if verb == b"STARTTLS":
        return [b"454 4.7.0 TLS not available\r\n"]
    if line == b"":
        return [b"500 5.5.2 Error: bad syntax\r\n"]
    return None


@MODULES
@pytest.mark.parametrize(("cmd", "args"), DOCMD_CASES.values(), ids=DOCMD_CASES.keys())
def test_docmd_raises_nothing_outside_smtplib_hierarchy(
    module: ModuleType, cmd: str, args: str
) -> None:
    with ReactiveServer(_docmd_answers) as server:
        with session(module, server) as smtp:
            smtp.ehlo()
            error = raised(lambda: smtp.docmd(cmd, args))
            assert error is None or isinstance(error, module.SMTPException), repr(error)


@MODULES
@pytest.mark.parametrize(("cmd", "args"), [("NOOP\r\nRSET", ""), ("NOOP", "x\ny")])
def test_docmd_with_newline_is_value_error_and_sends_nothing(
    module: ModuleType, cmd: str, args: str
) -> None:
    with ReactiveServer() as server:
        with session(module, server) as smtp:
            smtp.ehlo()
            with pytest.raises(ValueError, match="prohibited newline"):
                smtp.docmd(cmd, args)
            assert smtp.noop()[0] == 250
    assert server.received == b"ehlo client.test\r\nnoop\r\n"


# -- 4. docmd() and putcmd() send exactly what smtplib sends -----------------------------


DOCMD_BYTES = ["auth-xoauth2", "mail-in-cmd", "auth-plain-in-cmd", "help-rcpt", "empty", "ehlo-x"]


@pytest.mark.parametrize("case", DOCMD_BYTES)
def test_docmd_sends_and_returns_what_smtplib_does(case: str) -> None:
    cmd, args = DOCMD_CASES[case]

    def conversation(smtp: Any) -> list[object]:
        smtp.ehlo()
        return [outcome(lambda: smtp.docmd(cmd, args)), outcome(smtp.noop)]

    assert_same_as_smtplib(conversation, lambda: _docmd_answers, ehlo=EHLO_PIPELINING)


def test_putcmd_then_getreply_is_what_smtplib_does() -> None:
    def conversation(smtp: Any) -> list[object]:
        smtp.ehlo()
        return [
            outcome(lambda: smtp.putcmd("NOOP")),
            outcome(smtp.getreply),
            outcome(lambda: smtp.putcmd("HELP", "RCPT")),
            outcome(smtp.getreply),
            outcome(smtp.noop),
        ]

    assert_same_as_smtplib(conversation, lambda: None, ehlo=EHLO_PIPELINING)


# -- 5. a 421, then a closed connection ----------------------------------------------------


def _421_to_noop(line: bytes) -> Sequence[Answer] | None:
    if verb_of(line) == b"NOOP":
        return [b"421 4.3.2 srv.test shutting down\r\n", CLOSE]
    return None


@MODULES
def test_quit_after_421_raises_server_disconnected(module: ModuleType) -> None:
    with ReactiveServer(_421_to_noop) as server:
        with session(module, server) as smtp:
            assert smtp.noop() == (421, b"4.3.2 srv.test shutting down")
            with pytest.raises(module.SMTPServerDisconnected):
                smtp.quit()
            assert smtp.sock is None


@MODULES
def test_leaving_with_block_after_421_does_not_raise(module: ModuleType) -> None:
    with ReactiveServer(_421_to_noop) as server:
        with module.SMTP(server.host, server.port, "client.test", timeout=10) as smtp:
            assert smtp.noop() == (421, b"4.3.2 srv.test shutting down")
        assert smtp.sock is None


def _421_to_ehlo(line: bytes) -> Sequence[Answer] | None:
    if verb_of(line) == b"EHLO":
        return [b"421 4.3.2 srv.test shutting down\r\n", CLOSE]
    return None


@MODULES
@pytest.mark.parametrize("call", ["sendmail", "ehlo_or_helo_if_needed", "login"])
def test_421_to_ehlo_raises_server_disconnected(module: ModuleType, call: str) -> None:
    # smtplib: EHLO's 421 is returned, HELO is tried and finds the connection
    # closed: SMTPServerDisconnected (not a protocol error of the client's).
    calls: dict[str, Callable[[Any], object]] = {
        "sendmail": lambda smtp: smtp.sendmail(SENDER, ["b@x.test"], MSG),
        "ehlo_or_helo_if_needed": lambda smtp: smtp.ehlo_or_helo_if_needed(),
        "login": lambda smtp: smtp.login("user", "password"),
    }
    with ReactiveServer(_421_to_ehlo) as server:
        with session(module, server) as smtp:
            with pytest.raises(module.SMTPServerDisconnected):
                calls[call](smtp)
            assert smtp.sock is None


# -- 6. what smtplib leaves to the server, the server decides ----------------------------


class StrictServer:
    """A server that enforces command order, SIZE 100 and one AUTH, as postfix does."""

    def __init__(self, *, pipelining: bool = False, tls: bool = False) -> None:
        lines = [b"srv.test", b"SIZE 100", b"AUTH PLAIN LOGIN", b"8BITMIME"]
        if pipelining:
            lines.insert(1, b"PIPELINING")
        if tls:
            lines.insert(1, b"STARTTLS")
        self.ehlo = b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) + b"250 8BITMIME\r\n"
        self.greeted = self.mail = self.authenticated = False
        self.accepted = 0

    def __call__(self, line: bytes) -> Sequence[Answer] | None:
        verb, _, arg = line.partition(b" ")
        verb = verb.upper()
        if line == b".":  # the end of the data
            self.mail, self.accepted = False, 0
            return [b"599 5.9.9 odd but valid reply code\r\n"]
        if verb in (b"EHLO", b"HELO"):
            if not arg:
                return [b"501 5.5.4 Syntax: " + verb + b" hostname\r\n"]
            self.greeted, self.mail, self.accepted = True, False, 0
            return [self.ehlo if verb == b"EHLO" else b"250 srv.test\r\n"]
        if verb == b"NOOP":
            return [b"499 4.9.9 odd but valid reply code\r\n"]
        if verb in (b"QUIT", b"RSET"):
            self.mail, self.accepted = False, 0
            return None
        if not self.greeted:
            return [b"503 5.5.1 Error: send HELO/EHLO first\r\n"]
        if verb == b"MAIL":
            return self._mail(arg)
        if verb == b"RCPT":
            if not self.mail:
                return [b"503 5.5.1 Error: need MAIL command\r\n"]
            if b"<bad" in arg:
                return [b"550 5.1.1 no such user\r\n"]
            self.accepted += 1
            return [b"250 2.1.5 ok\r\n"]
        if verb == b"DATA":
            if not self.mail:
                return [b"503 5.5.1 Error: need RCPT command\r\n"]
            if not self.accepted:
                return [b"554 5.5.1 Error: no valid recipients\r\n"]
            return [b"354 go ahead\r\n"]
        if verb == b"STARTTLS":
            if self.mail:
                return [b"503 5.5.1 Error: MAIL transaction in progress\r\n"]
            self.greeted = False
            return [b"220 2.0.0 Ready to start TLS\r\n", START_TLS]
        if verb == b"AUTH":
            return self._auth(arg)
        return None

    def _mail(self, arg: bytes) -> list[Answer]:
        if self.mail:
            return [b"503 5.5.1 Error: nested MAIL command\r\n"]
        for param in arg.upper().split()[1:]:
            if param.startswith(b"SIZE=") and int(param[5:]) > 100:
                return [b"552 5.3.4 Message size exceeds fixed limit\r\n"]
        self.mail = True
        return [b"250 2.1.0 ok\r\n"]

    def _auth(self, arg: bytes) -> list[Answer]:
        if self.authenticated:
            return [b"503 5.5.1 Error: already authenticated\r\n"]
        mechanism, _, initial = arg.partition(b" ")
        if mechanism.upper() not in (b"PLAIN", b"LOGIN"):
            return [b"504 5.5.4 Unrecognized authentication type\r\n"]
        if mechanism.upper() == b"PLAIN" and initial:
            self.authenticated = True
            return [b"235 2.7.0 Authentication successful\r\n"]
        return [b"535 5.7.8 not in this test\r\n"]


@contextmanager
def strict_session(
    module: ModuleType, *, pipelining: bool = False, local_hostname: str = "client.test"
) -> Iterator[tuple[Any, ReactiveServer]]:
    handler = StrictServer(pipelining=pipelining)
    with ReactiveServer(handler, ehlo=handler.ehlo) as server:
        with session(module, server, local_hostname) as smtp:
            yield smtp, server


@MODULES
def test_mail_with_size_over_the_limit_goes_to_the_server(module: ModuleType) -> None:
    with strict_session(module) as (smtp, server):
        smtp.ehlo()
        assert smtp.mail(SENDER, ["SIZE=1000"]) == (
            552,
            b"5.3.4 Message size exceeds fixed limit",
        )
    assert server.received == (
        b"ehlo client.test\r\nmail " + FROM + b"<sender@client.test> SIZE=1000\r\n"
    )


@MODULES
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_sendmail_over_size_is_sender_refused(module: ModuleType, pipelining: bool) -> None:
    with strict_session(module, pipelining=pipelining) as (smtp, server):
        with pytest.raises(module.SMTPSenderRefused) as info:
            smtp.sendmail(SENDER, ["b@x.test"], b"x" * 200)
        assert info.value.smtp_code == 552
        assert info.value.sender == SENDER
        assert smtp.noop()[0] == 499  # the session goes on
    if not pipelining:
        assert server.received == (
            b"ehlo client.test\r\nmail "
            + FROM
            + b"<sender@client.test> size=200\r\nrset\r\nnoop\r\n"
        )


@MODULES
def test_data_after_every_rcpt_refused_is_data_error(module: ModuleType) -> None:
    with strict_session(module) as (smtp, _):
        smtp.ehlo()
        assert smtp.mail(SENDER)[0] == 250
        assert smtp.rcpt("bad@x.test")[0] == 550
        with pytest.raises(module.SMTPDataError) as info:
            smtp.data(MSG)
        assert info.value.smtp_code == 554


#: Commands out of order: smtplib sends them and reports the server's answer.
OUT_OF_ORDER: dict[str, tuple[Callable[[Any], Any], bytes]] = {
    "rcpt-before-mail": (
        lambda smtp: (smtp.ehlo(), smtp.rcpt("b@x.test"))[1],
        b"ehlo client.test\r\nrcpt " + TO + b"<b@x.test>\r\n",
    ),
    "mail-before-ehlo": (
        lambda smtp: smtp.mail(SENDER),
        b"mail " + FROM + b"<sender@client.test>\r\n",
    ),
    "rcpt-before-ehlo": (
        lambda smtp: smtp.rcpt("b@x.test"),
        b"rcpt " + TO + b"<b@x.test>\r\n",
    ),
}


@MODULES
@pytest.mark.parametrize("case", OUT_OF_ORDER)
def test_out_of_order_command_returns_the_server_reply(module: ModuleType, case: str) -> None:
    call, sent = OUT_OF_ORDER[case]
    with strict_session(module) as (smtp, server):
        code, _ = call(smtp)
        assert code == 503
    assert server.received == sent


@MODULES
def test_data_before_mail_is_data_error_with_server_code(module: ModuleType) -> None:
    with strict_session(module) as (smtp, server):
        smtp.ehlo()
        with pytest.raises(module.SMTPDataError) as info:
            smtp.data(MSG)
        assert info.value.smtp_code == 503
    assert server.received == b"ehlo client.test\r\ndata\r\n"


@MODULES
def test_data_before_rcpt_is_data_error_with_server_code(module: ModuleType) -> None:
    with strict_session(module) as (smtp, server):
        smtp.ehlo()
        assert smtp.mail(SENDER)[0] == 250
        with pytest.raises(module.SMTPDataError) as info:
            smtp.data(MSG)
        assert info.value.smtp_code == 554
    assert (
        server.received == b"ehlo client.test\r\nmail " + FROM + b"<sender@client.test>\r\ndata\r\n"
    )


@MODULES
def test_starttls_inside_a_transaction_reports_the_server_reply(module: ModuleType) -> None:
    handler = StrictServer(tls=True)
    with ReactiveServer(handler, ehlo=handler.ehlo) as server:
        with session(module, server) as smtp:
            smtp.ehlo()
            assert smtp.mail(SENDER)[0] == 250
            with pytest.raises(module.SMTPResponseException) as info:
                smtp.starttls()
            assert info.value.smtp_code == 503
    assert server.received.upper() == (
        b"EHLO CLIENT.TEST\r\nMAIL FROM:<SENDER@CLIENT.TEST>\r\nSTARTTLS\r\n"
    )


@MODULES
def test_mail_after_starttls_goes_to_the_server(module: ModuleType, ca: trustme.CA) -> None:
    # After STARTTLS smtplib forgets the EHLO; mail() does not say it again,
    # it sends MAIL and returns what the server says (here: EHLO first).
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    handler = StrictServer(tls=True)
    with ReactiveServer(handler, ehlo=handler.ehlo, tls=server_context) as server:
        with session(module, server) as smtp:
            smtp.ehlo()
            assert smtp.starttls(context=client_context)[0] == 220
            assert smtp.mail(SENDER) == (503, b"5.5.1 Error: send HELO/EHLO first")
    assert server.received == (
        b"ehlo client.test\r\nSTARTTLS\r\nmail " + FROM + b"<sender@client.test>\r\n"
    )


@MODULES
@pytest.mark.parametrize("verb", ["helo", "ehlo"])
def test_empty_hello_name_is_sent_as_smtplib_sends_it(module: ModuleType, verb: str) -> None:
    # local_hostname="" and no name: smtplib writes the bare verb ("helo\r\n")
    # and returns the server's 501.
    with strict_session(module, local_hostname="") as (smtp, server):
        reply = getattr(smtp, verb)("")
        assert reply == (501, b"5.5.4 Syntax: " + verb.upper().encode() + b" hostname")
    assert server.received == verb.encode() + b"\r\n"


@MODULES
def test_sendmail_with_empty_local_hostname_raises_helo_error(module: ModuleType) -> None:
    with strict_session(module, local_hostname="") as (smtp, server):
        with pytest.raises(module.SMTPHeloError) as info:
            smtp.sendmail(SENDER, ["b@x.test"], MSG)
        assert info.value.smtp_code == 501
    assert server.received == b"ehlo\r\nhelo\r\n"


@MODULES
def test_second_login_returns_the_server_503(module: ModuleType) -> None:
    with strict_session(module) as (smtp, server):
        assert smtp.login("user", "password")[0] == 235
        assert smtp.login("user", "password") == (503, b"5.5.1 Error: already authenticated")
    assert server.received.upper().count(b"\r\nAUTH PLAIN ") == 2


@MODULES
def test_auth_with_a_mechanism_not_offered_goes_to_the_server(module: ModuleType) -> None:
    with strict_session(module) as (smtp, server):
        smtp.ehlo()
        with pytest.raises(module.SMTPAuthenticationError) as info:
            smtp.auth("CRAM-MD5", smtp.auth_cram_md5)
        assert info.value.smtp_code == 504
    assert server.received.upper() == b"EHLO CLIENT.TEST\r\nAUTH CRAM-MD5\r\n"


@MODULES
def test_reply_code_499_is_returned(module: ModuleType) -> None:
    with strict_session(module) as (smtp, _):
        assert smtp.noop() == (499, b"4.9.9 odd but valid reply code")


@MODULES
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_reply_code_599_to_the_data_is_data_error(module: ModuleType, pipelining: bool) -> None:
    with strict_session(module, pipelining=pipelining) as (smtp, server):
        with pytest.raises(module.SMTPDataError) as info:
            smtp.sendmail(SENDER, ["b@x.test"], MSG)
        assert info.value.smtp_code == 599
        assert info.value.smtp_error == b"5.9.9 odd but valid reply code"
    assert server.messages == [MSG]


@MODULES
def test_leaving_with_block_after_docmd_quit_does_not_raise(module: ModuleType) -> None:
    with ReactiveServer() as server:
        with module.SMTP(server.host, server.port, "client.test", timeout=10) as smtp:
            smtp.ehlo()
            assert smtp.docmd("QUIT") == (221, b"2.0.0 bye")
        assert smtp.sock is None


# -- 7. raw send() then getreply() ---------------------------------------------------------


@MODULES
@pytest.mark.parametrize("raw", ["NOOP\r\n", b"NOOP\r\n"], ids=["str", "bytes"])
def test_send_then_getreply_keeps_the_session_usable(module: ModuleType, raw: str | bytes) -> None:
    with ReactiveServer() as server:
        with session(module, server) as smtp:
            smtp.ehlo()
            smtp.send(raw)
            assert smtp.getreply() == (250, b"2.0.0 ok")
            assert smtp.noop() == (250, b"2.0.0 ok")
            assert smtp.sendmail(SENDER, ["b@x.test"], MSG) == {}
    assert server.received.startswith(b"ehlo client.test\r\nNOOP\r\nnoop\r\nmail " + FROM)
    assert server.messages == [MSG]


# -- 8. a quoted local part with < or > ---------------------------------------------------

QUOTED = '"a>b"@example.org'
QUOTED_CASES = {
    "sender": (QUOTED, ["b@x.test"]),
    "second-rcpt": (SENDER, ["b@x.test", QUOTED]),
    "second-rcpt-lt": (SENDER, ["b@x.test", '"a<b"@example.org']),
    "second-rcpt-named": (SENDER, ["b@x.test", f"Bob <{QUOTED}>"]),
}


@BOTH_EHLOS
@pytest.mark.parametrize(("sender", "rcpts"), QUOTED_CASES.values(), ids=QUOTED_CASES.keys())
def test_quoted_local_part_is_sent_as_smtplib_sends_it(
    sender: str, rcpts: list[str], ehlo: bytes
) -> None:
    # RFC 5321 §4.1.2: a Quoted-string local part may hold "<" and ">";
    # smtplib sends e.g. rcpt to:<"a>b"@example.org>.
    def conversation(smtp: Any) -> list[object]:
        return [outcome(lambda: smtp.sendmail(sender, rcpts, MSG))]

    assert_same_as_smtplib(conversation, lambda: None, ehlo=ehlo)


@BOTH_EHLOS
@pytest.mark.parametrize(("sender", "rcpts"), QUOTED_CASES.values(), ids=QUOTED_CASES.keys())
def test_quoted_local_part_never_leaves_a_half_open_transaction(
    sender: str, rcpts: list[str], ehlo: bytes
) -> None:
    # Whatever smtpclient refuses, it refuses before MAIL is written.
    with ReactiveServer(ehlo=ehlo) as server:
        with session(smtpclient, server) as smtp:
            error = raised(lambda: smtp.sendmail(sender, rcpts, MSG))
            if error is not None:
                assert isinstance(error, smtpclient.SMTPException), repr(error)
                assert b"mail from:" not in server.received.lower()
            assert smtp.noop()[0] == 250
    if error is None:
        assert server.messages == [MSG]


# -- 9. SMTP_SSL's signature -----------------------------------------------------------------


def _parameters(obj: Callable[..., object]) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(obj).parameters.values()]


def test_smtp_ssl_signature_is_the_running_smtplib_s() -> None:
    # 3.10/3.11: (host, port, local_hostname, keyfile, certfile, timeout,
    # source_address, context), all positional; 3.12+: timeout and after are
    # keyword-only, keyfile and certfile gone.
    assert _parameters(smtpclient.SMTP_SSL) == _parameters(smtplib.SMTP_SSL)


# -- 10. LMTP's refused dict, and a socket given by hand -------------------------------------


class LmtpServer:
    """LMTP: ``reject*`` refused at RCPT; ``bob`` refused (452) after the data."""

    def __init__(self) -> None:
        self.accepted: list[bytes] = []

    def __call__(self, line: bytes) -> Sequence[Answer] | None:
        verb = verb_of(line)
        if verb == b"MAIL":
            self.accepted = []
        elif verb == b"RCPT":
            if b"<reject" in line:
                return [b"550 5.1.1 no such user\r\n"]
            self.accepted.append(line)
        elif line == b".":
            return [
                b"452 4.2.2 mailbox full\r\n" if b"<bob@" in rcpt else b"250 2.0.0 delivered\r\n"
                for rcpt in self.accepted
            ]
        return None


LMTP_RCPTS = [
    "Carol <reject-carol@example.org>",
    "Alice <alice@example.org>",
    "Bob <bob@example.org>",
]


@MODULES
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_lmtp_refused_is_keyed_by_the_addresses_as_given(
    module: ModuleType, pipelining: bool
) -> None:
    ehlo = b"250-srv.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n" if pipelining else EHLO_PLAIN
    with ReactiveServer(LmtpServer(), ehlo=ehlo) as server:
        smtp = module.LMTP(server.host, server.port, "client.test", timeout=10)
        try:
            refused = smtp.sendmail(SENDER, LMTP_RCPTS, MSG)
        finally:
            smtp.close()
    assert set(refused) <= set(LMTP_RCPTS)
    assert refused["Carol <reject-carol@example.org>"] == (550, b"5.1.1 no such user")
    if module is smtpclient:
        # Not smtplib (it reads one reply after the data): every recipient's.
        assert refused["Bob <bob@example.org>"] == (452, b"4.2.2 mailbox full")


@MODULES
def test_socket_assigned_by_hand_works_as_in_smtplib(module: ModuleType) -> None:
    with ReactiveServer() as server:
        smtp = module.SMTP(local_hostname="client.test", timeout=10)
        try:
            smtp.sock = socket.create_connection((server.host, server.port), timeout=10)
            assert smtp.getreply() == (220, b"srv.test ESMTP")
            assert smtp.ehlo()[0] == 250
            assert smtp.noop() == (250, b"2.0.0 ok")
            assert smtp.sendmail(SENDER, ["b@x.test"], MSG) == {}
            assert smtp.quit() == (221, b"2.0.0 bye")
        finally:
            smtp.close()
    assert server.received.startswith(b"ehlo client.test\r\nnoop\r\nmail " + FROM)
    assert server.received.endswith(b"quit\r\n")
    assert server.messages == [MSG]


def test_lmtp_421_as_the_first_verdict_refuses_every_recipient() -> None:
    # Found by the differential harness: the recipients after a 421 verdict
    # got no verdict and were reported delivered (sendmail returned).
    from tests.servers import ScriptedServer

    steps: list[Any] = [
        b"220 lmtp.test\r\n",
        ("expect", 1),
        b"250 lmtp.test\r\n",
        ("expect", 1),
        b"250 ok\r\n",
        ("expect", 1),
        b"250 ok\r\n",
        ("expect", 1),
        b"250 ok\r\n",
        ("expect", 1),
        b"354 go\r\n",
        ("expect", 2),
        b"421 4.3.0 shutting down\r\n",
        "close",
    ]
    with ScriptedServer(steps) as server:
        lmtp = smtpclient.LMTP(server.host, server.port, "client.test", timeout=10)
        with pytest.raises(smtpclient.SMTPRecipientsRefused) as info:
            lmtp.sendmail("a@client.test", ["b@x.test", "c@x.test"], b"hi\r\n")
        assert info.value.recipients == {
            "b@x.test": (421, b"4.3.0 shutting down"),
            "c@x.test": (421, b"4.3.0 shutting down"),
        }
        assert lmtp.sock is None
