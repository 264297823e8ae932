"""Permissive connections: the server judges, the engine follows (the smtplib facade's mode).

``Connection(permissive=True)`` sends what the caller asks whatever the table,
the pipelining rules or the extensions say, takes :class:`CommandLine`, and
moves the state by :data:`FOLLOW` where the table has no row.  What it never
relaxes is checked here too.
"""

from __future__ import annotations

import pytest

import smtp_core as sc
from smtp_core import (
    FOLLOW,
    NEED_DATA,
    CommandLine,
    Connection,
    Input,
    LocalProtocolError,
    Outcome,
    Reply,
    State,
    procedures,
)
from tests.test_core_procedures import GREETING, Replay


def state_of(conn: Connection) -> State:
    """The state, read through a call (mypy would narrow the property between asserts)."""
    return conn.state


def feed(conn: Connection, data: bytes) -> list[Reply]:
    conn.receive_data(data)
    replies = []
    while (event := conn.next_event()) is not NEED_DATA:
        assert isinstance(event, (Reply, sc.Greeting))
        if isinstance(event, Reply):
            replies.append(event)
    return replies


def greeted(*, ehlo: bytes | None = b"250-srv.test\r\n250 SIZE 100\r\n") -> Connection:
    conn = Connection(
        permissive=True, lowercase_commands=True, max_line_length=None, auth_in_clear=True
    )
    feed(conn, GREETING)
    if ehlo is not None:
        conn.send(CommandLine("ehlo client.test"))
        feed(conn, ehlo)
    return conn


def test_a_command_line_needs_a_permissive_connection() -> None:
    conn = Connection()
    feed(conn, GREETING)
    with pytest.raises(LocalProtocolError, match="permissive"):
        conn.send(CommandLine("NOOP"))


def test_command_line_refuses_cr_lf_nul() -> None:
    for bad in ("NOOP\r\nRSET", "NOOP\n", "NO\0OP"):
        with pytest.raises(LocalProtocolError, match="CR, LF or NUL"):
            CommandLine(bad)
    with pytest.raises(LocalProtocolError, match="CR, LF or NUL"):
        CommandLine("rcpt to:<a@b>", recipient="a@b\r\n")


def test_command_line_parts() -> None:
    line = CommandLine("MAIL FROM: <a@b.test> SIZE=10 SMTPUTF8")
    assert line.verb == "MAIL"
    assert line.arguments() == "FROM: <a@b.test> SIZE=10 SMTPUTF8"
    assert line.params() == ("SIZE=10", "SMTPUTF8")
    assert line.line() == line.text
    assert CommandLine("").verb == ""
    assert CommandLine("rcpt to:<a@b>", recipient="given").path() == "given"
    assert CommandLine('rcpt to:<"a>b"@c> NOTIFY=NEVER').path() == '"a>b"@c'
    assert CommandLine("rcpt to:a@b NOTIFY=NEVER").path() == "to:a@b NOTIFY=NEVER"
    assert CommandLine("mail from:a@b SIZE=1").params() == ("SIZE=1",)


def test_out_of_order_commands_go_out_and_the_reply_decides() -> None:
    conn = greeted()
    # DATA before MAIL: sent; the server's 503 keeps the state.
    assert conn.send(CommandLine("DATA")) == b"DATA\r\n"
    [reply] = feed(conn, b"503 5.5.1 need MAIL\r\n")
    assert reply.code == 503
    assert state_of(conn) is State.READY
    # RCPT before MAIL, SIZE over the limit: the server judges.
    conn.send(CommandLine("RCPT TO:<x@y.test>"))
    feed(conn, b"503 need MAIL\r\n")
    conn.send(sc.Mail("a@b.test", ("SIZE=1000",)))
    feed(conn, b"552 too big\r\n")
    assert state_of(conn) is State.READY


def test_a_reply_the_table_has_no_row_for_follows_the_server() -> None:
    conn = greeted()
    # A 354 to DATA with no recipient: the server wants content; follow it.
    conn.send(CommandLine("mail from:<a@b.test>"))
    feed(conn, b"250 ok\r\n")
    conn.send(CommandLine("data"))
    [reply] = feed(conn, b"354 go\r\n")
    assert state_of(conn) is State.DATA
    assert conn.send(sc.Content(b"hi\n")) + conn.send(sc.EndOfContent()) == b"hi\r\n.\r\n"
    feed(conn, b"250 queued\r\n")
    assert state_of(conn) is State.READY
    assert reply.code == 354
    # A typed command with no row at all (MAIL inside TLS's handshake state is
    # absurd, but MAIL before EHLO is what smtplib users send).
    fresh = greeted(ehlo=None)
    fresh.send(sc.Mail("a@b.test"))
    feed(fresh, b"250 ok\r\n")
    assert state_of(fresh) is State.MAIL


def test_a_pipelined_reply_without_a_row_does_not_fail() -> None:
    # 250 to RCPT after a refused MAIL: a strict connection calls it an error.
    conn = greeted(ehlo=b"250-srv.test\r\n250 PIPELINING\r\n")
    conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("x@y.test")])
    replies = feed(conn, b"550 no\r\n250 ok anyway\r\n")
    assert [r.code for r in replies] == [550, 250]
    assert state_of(conn) is FOLLOW[(Input.RCPT, Outcome.POSITIVE)]
    assert conn.accepted_recipients == ("x@y.test",)


def test_commands_without_waiting_for_replies() -> None:
    # No PIPELINING offered: a permissive caller (smtplib's putcmd) may still
    # write two lines before reading.
    conn = greeted()
    conn.send(CommandLine("NOOP"))
    conn.send(CommandLine("NOOP"))
    assert [r.code for r in feed(conn, b"250 a\r\n250 b\r\n")] == [250, 250]


def test_content_without_data_gets_an_encoder() -> None:
    conn = greeted()
    conn.send(CommandLine("mail from:<a@b.test>"))
    feed(conn, b"250 ok\r\n")
    assert conn.send(sc.Content(b".x\n")) == b"..x\r\n"


def test_verbs_are_followed() -> None:
    conn = greeted(ehlo=None)
    conn.send(CommandLine("HELO client.test"))
    feed(conn, b"250-srv.test\r\n250 PIPELINING\r\n")
    assert state_of(conn) is State.READY
    assert not conn.extensions.pipelining  # a HELO reply advertises nothing
    conn.send(CommandLine("mail from:<a@b.test> SMTPUTF8"))
    feed(conn, b"250 ok\r\n")
    conn.send(CommandLine("rcpt to:<ü@b.test>", recipient="ü@b.test"))
    feed(conn, b"250 ok\r\n")
    assert conn.accepted_recipients == ("ü@b.test",)
    conn.send(CommandLine("RSET"))
    feed(conn, b"250 ok\r\n")
    assert state_of(conn) is State.READY
    conn.send(CommandLine("AUTH PLAIN"))
    feed(conn, b"334 \r\n")
    assert state_of(conn) is State.AUTH
    # While AUTH awaits a response, any line is that response.
    conn.send(CommandLine("AGZvbwBiYXI="))
    feed(conn, b"235 ok\r\n")
    assert state_of(conn) is State.READY
    conn.send(CommandLine("QUIT"))
    feed(conn, b"221 bye\r\n")
    assert state_of(conn) is State.CLOSED


def test_line_limits_are_never_relaxed() -> None:
    conn = greeted()
    with pytest.raises(LocalProtocolError, match="over the limit of 2048"):
        conn.send(CommandLine("NOOP " + "x" * 2048))
    assert conn.send(CommandLine("AUTH PLAIN " + "x" * 3000)).startswith(b"AUTH PLAIN")
    feed(conn, b"334 \r\n")
    assert conn.send(CommandLine("x" * 12000))  # the response: RFC 4954's 12288 octets
    feed(conn, b"334 \r\n")
    with pytest.raises(LocalProtocolError, match="over the limit of 12288"):
        conn.send(CommandLine("x" * 12289))


def test_reply_checks_are_never_relaxed() -> None:
    conn = greeted()
    conn.send(CommandLine("NOOP"))
    with pytest.raises(sc.RemoteProtocolError, match="2yz-5yz code"):
        feed(conn, b"XYZ nope\r\n")


def test_pipelined_group_stops_writing_at_a_421_between_windows() -> None:
    conn = Connection(tls_policy="none")
    replay = Replay([GREETING, b"250-srv.test\r\n250 PIPELINING\r\n"])
    replay.run(procedures.handshake(conn, "client.test"))
    recipients = [f"user{i:05d}@example.test" for i in range(3000)]  # ~100 KiB of RCPTs
    answers = [b"250 ok\r\n" * 10 + b"421 4.7.0 closing\r\n", b""]
    replay = Replay(answers)
    result = replay.run(procedures.send_mail(conn, "a@b.test", recipients, b"x\r\n"))
    assert replay.writes == 2  # the window after the 421 was never written
    assert len(replay.written) <= 2 * procedures.PIPELINE_WINDOW
    assert result.recipients[9].reply.code == 421
    assert not result.delivered
    assert state_of(conn) is State.CLOSED


def reply_due(conn: Connection) -> bool:
    return conn.reply_due  # through a call: mypy would narrow the property


def test_reply_due_counts_the_greeting_and_every_command() -> None:
    conn = Connection(permissive=True)
    assert reply_due(conn)  # the greeting
    feed(conn, GREETING)
    assert not reply_due(conn)
    conn.send(CommandLine("NOOP"))
    assert reply_due(conn)
    feed(conn, b"250 ok\r\n")
    assert not reply_due(conn)


def test_no_content_after_a_refused_mail_even_if_the_server_says_354() -> None:
    # A server out of step (its RSET failed, its old transaction is open)
    # refuses the pipelined MAIL as nested, then takes RCPT and DATA into
    # the old transaction: the message must not go there.
    conn = Connection(permissive=True, tls_policy="none")
    Replay([GREETING, b"250-srv.test\r\n250 PIPELINING\r\n"]).run(
        procedures.handshake(conn, "client.test")
    )
    replay = Replay([b"503 nested MAIL\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n", b"250 ok\r\n"])
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test"], b"secret\r\n"))
    assert b"secret" not in replay.written
    assert replay.written.endswith(b"DATA\r\n.\r\n")
    assert not result.delivered
    assert result.recipients[0].reply.code == 503
    assert state_of(conn) is State.READY


def test_a_close_after_the_lone_end_marker_still_reports_the_refusal() -> None:
    conn = Connection(permissive=True, tls_policy="none")
    Replay([GREETING, b"250-srv.test\r\n250 PIPELINING\r\n"]).run(
        procedures.handshake(conn, "client.test")
    )
    replay = Replay([b"503 nested MAIL\r\n250 ok\r\n354 go\r\n", b""])
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test"], b"secret\r\n"))
    assert result.mail_reply.code == 503
    assert result.final_reply is None
    assert not result.delivered
    assert state_of(conn) is State.CLOSED


def test_no_rset_of_ours_after_a_refused_mail() -> None:
    # The server is out of step (mid-AUTH): MAIL draws 334, RCPT 235, DATA 503.
    conn = greeted(ehlo=b"250-srv.test\r\n250-PIPELINING\r\n250 AUTH LOGIN\r\n")
    conn.send(CommandLine("AUTH LOGIN"))
    feed(conn, b"334 VXNlcm5hbWU6\r\n")
    replay = Replay([b"334 UGFzc3dvcmQ6\r\n235 ok\r\n503 need RCPT\r\n"])
    mail = CommandLine("mail from:<a@b.test>")
    result = replay.run(
        procedures.transaction(conn, mail, [CommandLine("rcpt to:<x@y.test>")], b"")
    )
    assert result.mail_reply.code == 334
    assert not result.delivered
    assert b"RSET" not in replay.written.upper()  # the caller decides (smtplib resets)


def test_permissive_auth_line_keeps_the_tls_policy() -> None:
    conn = Connection(permissive=True, tls_policy="none")
    conn.receive_data(b"220 x\r\n")
    conn.next_event()
    conn.send(CommandLine("EHLO a"))
    conn.receive_data(b"250-x\r\n250 AUTH PLAIN\r\n")
    conn.next_event()
    with pytest.raises(LocalProtocolError, match="TLS is off"):
        conn.send(CommandLine("AUTH PLAIN AGFAYg=="))
    conn.auth_in_clear = True
    assert conn.send(CommandLine("AUTH PLAIN AGFAYg==")) == b"AUTH PLAIN AGFAYg==\r\n"
