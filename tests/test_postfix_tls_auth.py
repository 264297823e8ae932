"""STARTTLS, implicit TLS and SMTP AUTH against a real postfix with Dovecot SASL.

The engine's procedures on the blocking driver, then the smtplib facade side
by side with the standard library's smtplib, all against the session's
``postfix_tls_auth_server`` (tests/_postfix_tls.py).
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import smtpclient
from smtp_core import Connection, LocalProtocolError, ReplyError, procedures
from tests._postfix import TEST_DOMAIN, PostfixServer, strip_trace_headers
from tests._postfix_tls import MECHANISMS, PostfixTlsAuthServer
from transports.sync import SyncDriver, connect

MESSAGE = b"Subject: over TLS\r\nFrom: <sender@client.test>\r\n\r\n.dot\r\nbody\r\n"


def _rcpt(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@{TEST_DOMAIN}"


@pytest.fixture
def server(postfix_tls_auth_server: PostfixTlsAuthServer) -> PostfixTlsAuthServer:
    return postfix_tls_auth_server


@pytest.fixture
def ctx(server: PostfixTlsAuthServer) -> ssl.SSLContext:
    """A client context that trusts the fixture's CA, built as users would."""
    context = ssl.create_default_context()
    server.ca.configure_trust(context)
    return context


@contextmanager
def _starttls_session(
    server: PostfixTlsAuthServer, context: ssl.SSLContext
) -> Iterator[tuple[Connection, SyncDriver]]:
    """The engine on the STARTTLS port, through STARTTLS and the second EHLO."""
    conn = Connection(tls_policy="required")
    driver = SyncDriver(
        connect(server.host, server.port, timeout=30),
        ssl_context=context,
        server_hostname="localhost",
    )
    try:
        driver.run(procedures.handshake(conn, "client.test"))
        yield conn, driver
    finally:
        driver.close()


@contextmanager
def _implicit_tls_session(
    server: PostfixTlsAuthServer, context: ssl.SSLContext
) -> Iterator[tuple[Connection, SyncDriver]]:
    """The engine on the implicit-TLS port (the socket wrapped before the driver)."""
    sock = context.wrap_socket(
        connect(server.host, server.smtps_port, timeout=30), server_hostname="localhost"
    )
    conn = Connection(tls_active=True)
    driver = SyncDriver(sock)
    try:
        driver.run(procedures.handshake(conn, "client.test"))
        yield conn, driver
    finally:
        driver.close()


def _send_and_check(
    server: PostfixTlsAuthServer, conn: Connection, driver: SyncDriver, tag: str
) -> None:
    rcpt = _rcpt(tag)
    result = driver.run(procedures.send_mail(conn, "sender@client.test", [rcpt], MESSAGE))
    assert result.delivered
    assert driver.run(procedures.quit(conn)) is not None
    [raw] = server.wait_for_messages(1, recipient=rcpt)
    assert strip_trace_headers(raw) == MESSAGE


# --------------------------------------------------------------------------
# the engine on the blocking driver
# --------------------------------------------------------------------------


def test_starttls_then_auth_then_send(server: PostfixTlsAuthServer, ctx: ssl.SSLContext) -> None:
    with _starttls_session(server, ctx) as (conn, driver):
        assert conn.tls_active
        assert set(MECHANISMS) <= set(conn.extensions.auth)
        reply = driver.run(procedures.authenticate(conn, server.user, server.password))
        assert reply.code == 235
        _send_and_check(server, conn, driver, "starttls")


def test_implicit_tls_then_auth_then_send(
    server: PostfixTlsAuthServer, ctx: ssl.SSLContext
) -> None:
    with _implicit_tls_session(server, ctx) as (conn, driver):
        assert not conn.extensions.starttls  # already encrypted
        assert set(MECHANISMS) <= set(conn.extensions.auth)
        reply = driver.run(procedures.authenticate(conn, server.user, server.password))
        assert reply.code == 235
        _send_and_check(server, conn, driver, "implicit")


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("account", ["non-ascii", "ascii"])
def test_every_mechanism_logs_in(
    server: PostfixTlsAuthServer, ctx: ssl.SSLContext, mechanism: str, account: str
) -> None:
    user, password = (
        (server.user, server.password)
        if account == "non-ascii"
        else (server.ascii_user, server.ascii_password)
    )
    with _starttls_session(server, ctx) as (conn, driver):
        reply = driver.run(procedures.authenticate(conn, user, password, preference=[mechanism]))
        assert reply.code == 235
        _send_and_check(server, conn, driver, f"mech-{mechanism.lower()}")
    # postfix logs the mechanism and the user with the transaction.
    assert f"sasl_method={mechanism}, sasl_username={user}\n" in server.read_log()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_is_535(
    server: PostfixTlsAuthServer, ctx: ssl.SSLContext, mechanism: str
) -> None:
    with _starttls_session(server, ctx) as (conn, driver):
        with pytest.raises(ReplyError) as info:
            driver.run(
                procedures.authenticate(conn, server.user, "wrong ✗", preference=[mechanism])
            )
        assert info.value.code == 535
        # The session goes on: a second try with the right password works.
        assert driver.run(procedures.authenticate(conn, server.user, server.password)).code == 235


def test_auth_not_advertised_before_starttls(server: PostfixTlsAuthServer) -> None:
    conn = Connection(tls_policy="none", auth_in_clear=True)
    driver = SyncDriver(connect(server.host, server.port, timeout=30))
    try:
        driver.run(procedures.handshake(conn, "client.test"))
        assert not conn.tls_active
        assert conn.extensions.starttls
        assert not conn.extensions.auth  # smtpd_tls_auth_only = yes
        with pytest.raises(LocalProtocolError, match="no AUTH mechanism in common"):
            driver.run(procedures.authenticate(conn, server.user, server.password))
        assert driver.run(procedures.quit(conn)) is not None
    finally:
        driver.close()
    # And postfix itself refuses AUTH in the clear, whatever a client tries.
    with smtplib.SMTP(server.host, server.port, "client.test", timeout=30) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth")
        code, text = smtp.docmd("AUTH", "PLAIN AGFzY2lpAHg=")
        assert (code, text) == (503, b"5.5.1 Error: authentication not enabled")


@pytest.mark.parametrize("port", ["starttls", "implicit"])
def test_untrusted_certificate_fails_the_handshake(server: PostfixTlsAuthServer, port: str) -> None:
    untrusted = ssl.create_default_context()  # the system's CAs, not the fixture's
    opener: Callable[..., Any] = _starttls_session if port == "starttls" else _implicit_tls_session
    with pytest.raises(ssl.SSLCertVerificationError), opener(server, untrusted):
        pass


def test_relay_needs_auth(server: PostfixTlsAuthServer, ctx: ssl.SSLContext) -> None:
    outside = "someone@example.com"
    local = _rcpt("noauth")
    # Without AUTH (inside TLS): the test domain is accepted, others are not relayed.
    with _starttls_session(server, ctx) as (conn, driver):
        result = driver.run(
            procedures.send_mail(conn, "sender@client.test", [outside, local], MESSAGE)
        )
        assert result.delivered
        assert result.refused[outside].code == 554
        assert "Relay access denied" in result.refused[outside].text
        driver.run(procedures.quit(conn))
    server.wait_for_messages(1, recipient=local)
    # With AUTH, relaying is allowed, then the "error" transport refuses it:
    # nothing ever leaves the machine.
    with _starttls_session(server, ctx) as (conn, driver):
        driver.run(procedures.authenticate(conn, server.user, server.password))
        result = driver.run(procedures.send_mail(conn, "sender@client.test", [outside], MESSAGE))
        assert not result.delivered
        assert result.refused[outside].code == 550
        assert "outbound delivery is disabled" in result.refused[outside].text
        driver.run(procedures.quit(conn))


# --------------------------------------------------------------------------
# the smtplib facade next to the standard library's smtplib
# --------------------------------------------------------------------------

Module = Any  # smtplib or smtpclient: the same API


def _facade_session(
    module: Module,
    server: PostfixTlsAuthServer,
    ctx: ssl.SSLContext,
    *,
    user: str,
    password: str,
    rcpt: str,
) -> list[object]:
    """STARTTLS, login, sendmail: everything the API returned, in order."""
    seen: list[object] = []
    with module.SMTP(server.host, server.port, "client.test", timeout=30) as smtp:
        seen.append(smtp.ehlo()[0])
        seen.append(smtp.has_extn("auth"))
        seen.append(smtp.starttls(context=ctx))
        seen.append(smtp.ehlo()[0])
        seen.append(sorted(smtp.esmtp_features["auth"].upper().split()))
        seen.append(smtp.login(user, password))
        seen.append(smtp.sendmail("sender@client.test", [rcpt], MESSAGE))
    return seen


def test_facade_matches_smtplib_over_starttls(
    server: PostfixTlsAuthServer, ctx: ssl.SSLContext
) -> None:
    # The standard library cannot send non-ASCII credentials (CPython
    # gh-73936): both log in with the ASCII account.
    rcpts = {name: _rcpt(name) for name in ("smtplib", "facade")}
    account = {"user": server.ascii_user, "password": server.ascii_password}
    expected = _facade_session(smtplib, server, ctx, **account, rcpt=rcpts["smtplib"])
    got = _facade_session(smtpclient, server, ctx, **account, rcpt=rcpts["facade"])
    assert got == expected
    assert expected[1] is False  # no AUTH before STARTTLS
    assert expected[5] == (235, b"2.7.0 Authentication successful")
    for rcpt in rcpts.values():
        [raw] = server.wait_for_messages(1, recipient=rcpt)
        assert strip_trace_headers(raw) == MESSAGE


def test_facade_logs_in_with_non_ascii_credentials(
    server: PostfixTlsAuthServer, ctx: ssl.SSLContext
) -> None:
    smtp = smtplib.SMTP(server.host, server.port, "client.test", timeout=30)
    try:
        smtp.starttls(context=ctx)
        with pytest.raises(UnicodeEncodeError):  # CPython gh-73936
            smtp.login(server.user, server.password)
    finally:
        smtp.close()  # no QUIT: the exchange was left half-way
    rcpt = _rcpt("facade-utf8")
    seen = _facade_session(
        smtpclient, server, ctx, user=server.user, password=server.password, rcpt=rcpt
    )
    assert seen[5] == (235, b"2.7.0 Authentication successful")
    assert seen[6] == {}
    server.wait_for_messages(1, recipient=rcpt)


def test_facade_and_smtplib_refuse_a_wrong_password_alike(
    server: PostfixTlsAuthServer, ctx: ssl.SSLContext
) -> None:
    errors: list[tuple[int, bytes]] = []
    for module in (smtplib, smtpclient):
        with module.SMTP(server.host, server.port, "client.test", timeout=30) as smtp:
            smtp.starttls(context=ctx)
            with pytest.raises(module.SMTPAuthenticationError) as info:
                smtp.login(server.ascii_user, "wrong")
            errors.append((info.value.smtp_code, info.value.smtp_error))
    assert errors[0] == errors[1]
    assert errors[0][0] == 535


def test_facade_matches_smtplib_over_implicit_tls(
    server: PostfixTlsAuthServer, ctx: ssl.SSLContext
) -> None:
    results: list[list[object]] = []
    for module in (smtplib, smtpclient):
        rcpt = _rcpt(module.__name__)
        with module.SMTP_SSL(
            server.host, server.smtps_port, "client.test", timeout=30, context=ctx
        ) as smtp:
            seen: list[object] = [smtp.ehlo()[0], smtp.has_extn("starttls")]
            seen.append(smtp.login(server.ascii_user, server.ascii_password))
            seen.append(smtp.sendmail("sender@client.test", [rcpt], MESSAGE))
        results.append(seen)
        [raw] = server.wait_for_messages(1, recipient=rcpt)
        assert strip_trace_headers(raw) == MESSAGE
    assert results[0] == results[1]
    assert results[0][2] == (235, b"2.7.0 Authentication successful")


# --------------------------------------------------------------------------
# the fixture itself
# --------------------------------------------------------------------------


def test_runs_beside_the_plain_fixture(
    server: PostfixTlsAuthServer, postfix_server: PostfixServer
) -> None:
    assert server.workdir != postfix_server.workdir
    assert len({server.port, server.smtps_port, postfix_server.port}) == 3
    assert server.dovecot.offered == MECHANISMS
    for port, tls in ((server.port, True), (postfix_server.port, False)):
        with smtplib.SMTP(server.host, port, "client.test", timeout=30) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("starttls") is tls
            assert not smtp.has_extn("auth")


def test_standalone_server_stops_postfix_and_dovecot() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="smtpclient-postfix-tls-test-"))
    try:
        with PostfixTlsAuthServer(workdir) as server:
            assert server.dovecot.running
            pids = server.process_ids()
            assert server.dovecot.pid in pids
            assert len(server.dovecot.process_ids()) >= 3  # master, log, config, ...
            assert len(pids) >= 6  # postfix: master, qmgr, ...; dovecot: master, log, ...
            with smtplib.SMTP_SSL(
                server.host, server.smtps_port, timeout=30, context=server.client_context()
            ) as smtp:
                assert smtp.login(server.ascii_user, server.ascii_password)[0] == 235
        # Read afresh (mypy would keep `running` narrowed from the assert above).
        assert (server.running, server.dovecot.process_ids(), server.process_ids()) == (
            False,
            [],
            [],
        )
        for address in (server.address, server.smtps_address):
            with pytest.raises(ConnectionRefusedError), socket.create_connection(address, 2):
                pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
