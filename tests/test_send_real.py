"""The same sends against real servers: aiosmtpd in-process and postfix.

Each test checks byte for byte what the server received (postfix's trace
headers removed), through the smtplib facade, through ``client_SMTP`` and
through the engine's procedure on the blocking driver.
"""

from __future__ import annotations

import email.message
import sys
import uuid
from collections.abc import Callable

import pytest

import smtp_core
import smtpclient
from smtp_core import Connection, procedures
from tests._postfix import TEST_DOMAIN, PostfixServer, strip_trace_headers
from tests.servers import AiosmtpdServer, Step
from transports.sync import SyncDriver, connect

# Leading dots, a lone dot line, a line ".." and every kind of line ending:
# what reaches the server must be this with every ending made CRLF.
TRICKY = (
    b"Subject: tricky\r\nFrom: <sender@client.test>\r\n\r\n"
    b".leading dot\r\n.\r\n..\r\nbare LF\nbare CR\rend without newline"
)
TRICKY_AS_RECEIVED = (
    b"Subject: tricky\r\nFrom: <sender@client.test>\r\n\r\n"
    b".leading dot\r\n.\r\n..\r\nbare LF\r\nbare CR\r\nend without newline\r\n"
)


def _rcpt(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@{TEST_DOMAIN}"


Sender = Callable[[str, int, str, list[str], bytes], dict[str, tuple[int, bytes]]]


def _send_facade(
    host: str, port: int, sender: str, rcpts: list[str], msg: bytes
) -> dict[str, tuple[int, bytes]]:
    with smtpclient.SMTP(host, port, local_hostname="client.test", timeout=30) as smtp:
        return smtp.sendmail(sender, rcpts, msg)


def _send_client(
    host: str, port: int, sender: str, rcpts: list[str], msg: bytes
) -> dict[str, tuple[int, bytes]]:
    client = smtpclient.client_SMTP(host, port, local_hostname="client.test", timeout=30)
    assert client.status == smtpclient.CONNECT_SUCCESS
    try:
        return client.sendmail(sender, rcpts, msg)
    finally:
        assert client.send_quit()[0] == 221


def _send_engine(
    host: str, port: int, sender: str, rcpts: list[str], msg: bytes
) -> dict[str, tuple[int, bytes]]:
    conn = Connection()
    driver = SyncDriver(connect(host, port, timeout=30))
    try:
        driver.run(procedures.handshake(conn, "client.test"))
        result = driver.run(procedures.send_mail(conn, sender, rcpts, msg))
        assert driver.run(procedures.quit(conn)) is not None
    finally:
        driver.close()
    return {r: (reply.code, b"\n".join(reply.lines)) for r, reply in result.refused.items()}


SENDERS: dict[str, Sender] = {
    "facade": _send_facade,
    "client_SMTP": _send_client,
    "engine": _send_engine,
}


@pytest.mark.parametrize("how", SENDERS)
def test_aiosmtpd_receives_exact_bytes(aiosmtpd_server: AiosmtpdServer, how: str) -> None:
    rcpts = ["one@example.test", "two@example.test"]
    refused = SENDERS[how](
        aiosmtpd_server.host, aiosmtpd_server.port, "sender@client.test", rcpts, TRICKY
    )
    assert refused == {}
    [got] = aiosmtpd_server.messages
    assert got.mail_from == "sender@client.test"
    assert got.rcpt_tos == rcpts
    assert got.content == TRICKY_AS_RECEIVED


@pytest.mark.parametrize("how", SENDERS)
def test_postfix_receives_exact_bytes(postfix_server: PostfixServer, how: str) -> None:
    rcpt = _rcpt(how)
    refused = SENDERS[how](
        postfix_server.host, postfix_server.port, "sender@client.test", [rcpt], TRICKY
    )
    assert refused == {}
    [raw] = postfix_server.wait_for_messages(1, recipient=rcpt)
    assert strip_trace_headers(raw) == TRICKY_AS_RECEIVED


@pytest.mark.parametrize("how", SENDERS)
def test_postfix_pipelined_partial_refusal(postfix_server: PostfixServer, how: str) -> None:
    # postfix offers PIPELINING: MAIL, three RCPTs and DATA go out in one write
    # (facade and engine); a recipient outside the test domain is refused at
    # RCPT, the other two still get the message.
    good = [_rcpt("p1"), _rcpt("p2")]
    bad = "nobody@elsewhere.example"
    refused = SENDERS[how](
        postfix_server.host,
        postfix_server.port,
        "sender@client.test",
        [good[0], bad, good[1]],
        b"Subject: partial\r\n\r\nbody\r\n",
    )
    assert list(refused) == [bad]
    assert refused[bad][0] == 550
    for rcpt in good:
        [raw] = postfix_server.wait_for_messages(1, recipient=rcpt)
        assert strip_trace_headers(raw) == b"Subject: partial\r\n\r\nbody\r\n"


def test_aiosmtpd_refused_recipient_reported(aiosmtpd_server: AiosmtpdServer) -> None:
    with smtpclient.SMTP(aiosmtpd_server.host, aiosmtpd_server.port, timeout=30) as smtp:
        refused = smtp.sendmail("s@client.test", ["ok@example.test", "reject@example.test"], "x")
        assert refused == {"reject@example.test": (550, b"5.1.1 no such user")}
        with pytest.raises(smtpclient.SMTPRecipientsRefused) as info:
            smtp.sendmail("s@client.test", ["reject1@example.test"], "x")
        assert info.value.recipients == {"reject1@example.test": (550, b"5.1.1 no such user")}
        # The session is still usable after the refusal (RSET was sent).
        assert smtp.noop()[0] == 250
    assert [m.rcpt_tos for m in aiosmtpd_server.messages] == [["ok@example.test"]]


def test_send_message_via_facade(aiosmtpd_server: AiosmtpdServer) -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "Alice <alice@client.test>"
    msg["To"] = "bob@example.test"
    msg["Bcc"] = "carol@example.test"
    msg["Subject"] = "hello"
    msg.set_content(".starts with a dot\nsecond line\n")
    with smtpclient.SMTP(aiosmtpd_server.host, aiosmtpd_server.port, timeout=30) as smtp:
        assert smtp.send_message(msg) == {}
    [got] = aiosmtpd_server.messages
    assert got.mail_from == "alice@client.test"
    assert got.rcpt_tos == ["bob@example.test", "carol@example.test"]
    assert b"Bcc" not in got.content
    assert b"\r\n.starts with a dot\r\nsecond line\r\n" in got.content


def test_client_smtp_step_by_step(aiosmtpd_server: AiosmtpdServer) -> None:
    client = smtpclient.client_SMTP(aiosmtpd_server.host, aiosmtpd_server.port, "client.test")
    assert client.status == "connect success"
    assert client.send_helo()[0] == 250
    assert client.send_noop()[0] == 250
    assert client.send_vrfy("someone@example.test")[0] == 252
    assert client.send_mail("s@client.test")[0] == 250
    assert client.send_rset()[0] == 250
    assert client.send_mail("s@client.test")[0] == 250
    assert client.send_rcpt("r@example.test")[0] == 250
    assert client.send_data("Subject: steps\n\nbody\n")[0] == 250
    assert client.send_quit()[0] == 221
    with pytest.raises(smtpclient.ClientClosedError):
        client.send_noop()
    with pytest.raises(smtpclient.SMTPServerDisconnected):  # the parent class, too
        client.send_quit()
    [got] = aiosmtpd_server.messages
    assert got.content == b"Subject: steps\r\n\r\nbody\r\n"


def test_client_smtp_connect_failure_raises() -> None:
    from tests._postfix import free_port

    with pytest.raises(ConnectionRefusedError):
        smtpclient.client_SMTP("127.0.0.1", free_port(), timeout=5)


def test_lmtp_per_recipient_replies(aiosmtpd_lmtp_server: AiosmtpdServer) -> None:
    server = aiosmtpd_lmtp_server
    conn = Connection(lmtp=True)
    driver = SyncDriver(connect(server.host, server.port, timeout=30))
    try:
        driver.run(procedures.handshake(conn, "client.test"))
        result = driver.run(
            procedures.send_mail(
                conn,
                "s@client.test",
                ["a@example.test", "reject@example.test", "b@example.test"],
                b"Subject: lmtp\r\n\r\nhi\r\n",
            )
        )
        driver.run(procedures.quit(conn))
    finally:
        driver.close()
    assert [r.status for r in result.recipients] == ["accepted", "permanent", "accepted"]
    assert result.accepted == ("a@example.test", "b@example.test")
    assert [r.reply.recipient for r in result.recipients if r.status == "accepted"] == [
        "a@example.test",
        "b@example.test",
    ]
    assert server.messages[0].rcpt_tos == ["a@example.test", "b@example.test"]


def test_ehlo_extensions_of_real_servers(
    aiosmtpd_server: AiosmtpdServer, postfix_server: PostfixServer
) -> None:
    for host, port in (
        (aiosmtpd_server.host, aiosmtpd_server.port),
        (postfix_server.host, postfix_server.port),
    ):
        conn = Connection()
        driver = SyncDriver(connect(host, port, timeout=30))
        try:
            reply = driver.run(procedures.handshake(conn, "client.test"))
            assert isinstance(reply.command, smtp_core.Ehlo)
            assert conn.extensions.eightbitmime
            assert conn.extensions.smtputf8
            driver.run(procedures.quit(conn))
        finally:
            driver.close()


@pytest.mark.parametrize("bad", ["x@example.test\r\nRSET", '"a\nb"@e.test', "x\0@example.test"])
def test_bad_recipient_refused_before_any_byte_of_the_transaction(bad: str) -> None:
    from tests.servers import ScriptedServer

    steps: list[Step] = [b"220 scripted.test\r\n", ("expect", 1), b"250 scripted.test\r\n"]
    # An empty list is smtplib's: MAIL, RSET, then SMTPRecipientsRefused({}).
    steps += [("expect", 1), b"250 ok\r\n", ("expect", 1), b"250 reset\r\n"]
    steps += [("expect", 1), b"221 bye\r\n"]
    with ScriptedServer(steps) as server:
        with smtpclient.SMTP(server.host, server.port, "client.test", timeout=10) as smtp:
            with pytest.raises(ValueError, match="prohibited"):
                smtp.sendmail("a@client.test", ["ok@example.test", bad], b"x")
            with pytest.raises(smtpclient.SMTPRecipientsRefused):
                smtp.sendmail("a@client.test", [], b"x")
    # Not a byte of the first transaction (smtplib sends MAIL and the first RCPT).
    mail = b"mail from:" if sys.version_info >= (3, 13) else b"mail FROM:"
    assert server.received == (
        b"ehlo client.test\r\n" + mail + b"<a@client.test>\r\nrset\r\nQUIT\r\n"
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: smtp_core.Ehlo("client.test\r\nMAIL FROM:<x>"),
        lambda: smtp_core.Mail("a@b.test\n"),
        lambda: smtp_core.Rcpt("a\0@b.test"),
        lambda: smtp_core.Mail("a@b.test", ("SIZE=1\r\nRSET",)),
        lambda: smtp_core.Noop("x\ry"),
        lambda: smtp_core.Vrfy("x\ny"),
        lambda: smtp_core.Command("XFOO", "a\r\nb"),
    ],
)
def test_engine_refuses_cr_lf_nul_when_built(build: Callable[[], smtp_core.BaseCommand]) -> None:
    with pytest.raises(smtp_core.LocalProtocolError, match="CR, LF or NUL"):
        build()


def test_postfix_bdat_delivers_exact_bytes(postfix_server: PostfixServer) -> None:
    rcpt = _rcpt("bdat")
    conn = Connection()
    driver = SyncDriver(connect(postfix_server.host, postfix_server.port, timeout=30))
    try:
        driver.run(procedures.handshake(conn, "client.test"))
        assert conn.extensions.chunking
        result = driver.run(
            procedures.send_mail(conn, "sender@client.test", [rcpt], TRICKY, chunking=True)
        )
        assert result.delivered
        driver.run(procedures.quit(conn))
    finally:
        driver.close()
    [raw] = postfix_server.wait_for_messages(1, recipient=rcpt)
    assert strip_trace_headers(raw) == TRICKY_AS_RECEIVED
