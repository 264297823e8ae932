"""A server that closes the connection at any step: never a hang, never a success.

No real server closes mid-dialogue on request, so a scripted server on a real
loopback socket plays the part.
"""

from __future__ import annotations

import pytest

import smtpclient
from smtp_core import Connection, OutcomeUnknown, ServerDisconnected, State, procedures
from tests.servers import CLOSE, ScriptedServer, Step
from transports.sync import SyncDriver, connect

# The whole dialogue of one sendmail without PIPELINING: what the server says,
# and how many command lines it then reads before answering.
DIALOGUE: list[tuple[bytes, int]] = [
    (b"220 scripted.test ESMTP\r\n", 1),  # then reads EHLO
    (b"250-scripted.test\r\n250 8BITMIME\r\n", 1),  # then MAIL
    (b"250 2.1.0 ok\r\n", 1),  # then RCPT
    (b"250 2.1.5 ok\r\n", 1),  # then DATA
    (b"354 go ahead\r\n", 3),  # then the content's 3 lines (2 lines + ".")
    (b"250 2.0.0 queued\r\n", 1),  # then QUIT  (index FINAL_VERDICT)
    (b"221 bye\r\n", 0),
]
MESSAGE = b"Subject: x\r\n\r\n"
FINAL_VERDICT = 5  # closing instead of it leaves the message's fate unknown


def _script(close_after: int, *, partial: bool = False) -> list[Step]:
    """The dialogue, cut after ``close_after`` replies (optionally mid-reply)."""
    steps: list[Step] = []
    for index, (reply, reads) in enumerate(DIALOGUE):
        if index == close_after:
            if partial:
                steps.append(reply[:5])  # half a reply line, no CRLF
            steps.append(CLOSE)
            return steps
        steps.append(reply)
        steps.append(("expect", reads))
    return steps


STEPS = range(len(DIALOGUE) - 1)  # closing instead of the 221 is not an error


@pytest.mark.parametrize("partial", [False, True], ids=["clean", "mid-reply"])
@pytest.mark.parametrize("close_after", STEPS)
def test_facade_raises_server_disconnected(close_after: int, partial: bool) -> None:
    with ScriptedServer(_script(close_after, partial=partial)) as server:
        with pytest.raises(smtpclient.SMTPServerDisconnected):
            smtp = smtpclient.SMTP(server.host, server.port, "client.test", timeout=10)
            try:
                smtp.sendmail("a@client.test", ["b@example.test"], MESSAGE)
                smtp.quit()
            finally:
                smtp.close()


@pytest.mark.parametrize("partial", [False, True], ids=["clean", "mid-reply"])
@pytest.mark.parametrize("close_after", STEPS)
def test_engine_raises_server_disconnected(close_after: int, partial: bool) -> None:
    with ScriptedServer(_script(close_after, partial=partial)) as server:
        conn = Connection()
        driver = SyncDriver(connect(server.host, server.port, timeout=10))
        expected = OutcomeUnknown if close_after == FINAL_VERDICT else ServerDisconnected
        try:
            with pytest.raises(expected) as raised:
                driver.run(procedures.handshake(conn, "client.test"))
                driver.run(procedures.send_mail(conn, "a@client.test", ["b@example.test"], MESSAGE))
                driver.run(procedures.quit(conn))
        finally:
            driver.close()
        if isinstance(raised.value, OutcomeUnknown):
            assert raised.value.unknown == ("b@example.test",)
            assert raised.value.delivered == ()
            assert isinstance(raised.value.cause, ServerDisconnected)
        assert conn.state is State.CLOSED or conn.state is State.ERROR


def test_close_instead_of_221_is_not_an_error() -> None:
    with ScriptedServer(_script(len(DIALOGUE) - 1)) as server:
        conn = Connection()
        driver = SyncDriver(connect(server.host, server.port, timeout=10))
        try:
            driver.run(procedures.handshake(conn, "client.test"))
            result = driver.run(
                procedures.send_mail(conn, "a@client.test", ["b@example.test"], MESSAGE)
            )
            assert result.accepted == ("b@example.test",)
            assert driver.run(procedures.quit(conn)) is None
        finally:
            driver.close()


def test_silent_server_times_out_instead_of_hanging() -> None:
    with ScriptedServer([("expect", 1)]) as server:
        with pytest.raises(smtpclient.SMTPServerDisconnected, match="timed out"):
            smtpclient.SMTP(server.host, server.port, "client.test", timeout=0.5)


def test_421_closes_session_and_reports_it() -> None:
    steps: list[Step] = [
        b"220 scripted.test\r\n",
        ("expect", 1),
        b"250-scripted.test\r\n250 PIPELINING\r\n",
        ("expect", 4),  # MAIL, 2 RCPT, DATA
        b"250 ok\r\n421 4.3.0 shutting down\r\n",
        CLOSE,
    ]
    with ScriptedServer(steps) as server:
        conn = Connection()
        driver = SyncDriver(connect(server.host, server.port, timeout=10))
        try:
            driver.run(procedures.handshake(conn, "client.test"))
            result = driver.run(
                procedures.send_mail(conn, "a@client.test", ["b@x.test", "c@x.test"], MESSAGE)
            )
        finally:
            driver.close()
    assert [r.status for r in result.recipients] == ["temporary", "temporary"]
    assert all(r.reply.code == 421 for r in result.recipients)
    assert result.data_reply is None
