"""The shared procedures, run against scripted server bytes with no network."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import pytest

import smtp_core as sc
from smtp_core import Connection, Procedure, ReplyError, ServerDisconnected, procedures

T = TypeVar("T")

GREETING = b"220 srv.test ESMTP\r\n"
EHLO_PIPE = b"250-srv.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_PLAIN = b"250-srv.test\r\n250 8BITMIME\r\n"


class Replay:
    """A driver that answers each Read with the next scripted chunk (b"" when done)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.written = b""
        self.writes = 0
        self.upgrades = 0

    def run(self, procedure: Procedure[T]) -> T:
        try:
            request = next(procedure)
            while True:
                if isinstance(request, sc.Write):
                    self.written += request.data
                    self.writes += 1
                    request = procedure.send(None)
                elif isinstance(request, sc.Read):
                    request = procedure.send(next(self.chunks, b""))
                else:
                    self.upgrades += 1
                    request = procedure.send(None)
        except StopIteration as stop:
            result: T = stop.value
            return result


def session(ehlo: bytes = EHLO_PIPE, *, lmtp: bool = False) -> tuple[Connection, Replay]:
    # max_line_length=None: some bodies here are one huge line, to count chunks.
    conn = Connection(lmtp=lmtp, tls_policy="none", max_line_length=None)
    replay = Replay([GREETING, ehlo])
    replay.run(procedures.handshake(conn, "client.test"))
    return conn, replay


def test_handshake_says_ehlo() -> None:
    conn, replay = session()
    assert replay.written == b"EHLO client.test\r\n"
    assert conn.extensions.pipelining


def test_helo_fallback_is_a_visible_step() -> None:
    conn = Connection()
    replay = Replay([GREETING, b"502 5.5.1 EHLO not implemented\r\n", b"250 srv.test\r\n"])
    reply = replay.run(procedures.handshake(conn, "client.test"))
    assert replay.written == b"EHLO client.test\r\nHELO client.test\r\n"
    assert isinstance(reply.command, sc.Helo)
    assert dict(conn.extensions) == {}


def test_hello_refused_twice_raises_reply_error() -> None:
    conn = Connection()
    replay = Replay([GREETING, b"500 no\r\n", b"501 5.5.4 still no\r\n"])
    with pytest.raises(ReplyError, match="HELO drew 501") as info:
        replay.run(procedures.handshake(conn, "client.test"))
    assert info.value.code == 501
    assert info.value.text == "5.5.4 still no"
    assert info.value.reply.enhanced == (5, 5, 4)


def test_transient_ehlo_failure_is_not_a_fallback() -> None:
    conn = Connection()
    replay = Replay([GREETING, b"451 try later\r\n"])
    with pytest.raises(ReplyError, match="EHLO drew 451"):
        replay.run(procedures.handshake(conn, "client.test"))
    assert replay.written == b"EHLO client.test\r\n"


def test_lmtp_says_lhlo() -> None:
    _, replay = session(lmtp=True)
    assert replay.written == b"LHLO client.test\r\n"


def test_refused_greeting_raises() -> None:
    with pytest.raises(ReplyError, match="the greeting drew 554"):
        Replay([b"554 no service\r\n"]).run(procedures.greet(Connection()))


def test_close_before_greeting_raises() -> None:
    with pytest.raises(ServerDisconnected, match="before its greeting"):
        Replay([]).run(procedures.greet(Connection()))


def test_driver_must_answer_read_with_bytes() -> None:
    proc = procedures.greet(Connection())
    assert next(proc) == sc.Read(starts_reply=True, stage=sc.Stage.GREETING)
    with pytest.raises(TypeError, match="answer Read with bytes"):
        proc.send(None)


def test_pipelined_transaction_is_one_write_then_content() -> None:
    conn, replay = session()
    replay.chunks = iter([b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"])
    replay.written, replay.writes = b"", 0
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test", "z@y.test"], b".hi"))
    assert replay.written == (
        b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nRCPT TO:<z@y.test>\r\nDATA\r\n..hi\r\n.\r\n"
    )
    assert replay.writes == 2
    assert result.delivered and result.accepted == ("x@y.test", "z@y.test")
    assert result.final_reply is not None and result.final_reply.code == 250


def test_non_pipelined_transaction_one_command_at_a_time() -> None:
    conn, replay = session(EHLO_PLAIN)
    replay.chunks = iter([b"250 ok\r\n", b"550 no\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 q\r\n"])
    replay.written, replay.writes = b"", 0
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["bad@y.test", "z@y.test"], b"x\n"))
    assert replay.writes == 5  # MAIL, RCPT, RCPT, DATA, content
    assert result.refused.keys() == {"bad@y.test"}
    assert [r.status for r in result.recipients] == ["permanent", "accepted"]


def test_every_recipient_refused_skips_data_without_pipelining() -> None:
    conn, replay = session(EHLO_PLAIN)
    replay.chunks = iter([b"250 ok\r\n", b"550 no\r\n", b"250 reset\r\n"])
    replay.written = b""
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["bad@y.test"], b"x"))
    assert replay.written == b"MAIL FROM:<a@b.test>\r\nRCPT TO:<bad@y.test>\r\nRSET\r\n"
    assert result.reset
    assert result.data_reply is None and not result.delivered
    assert conn.state is sc.State.READY


def test_refused_sender_without_pipelining() -> None:
    conn, replay = session(EHLO_PLAIN)
    replay.chunks = iter([b"451 4.7.1 greylisted\r\n"])
    replay.written = b""
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test", "z@y.test"], b"x"))
    assert replay.written == b"MAIL FROM:<a@b.test>\r\n"
    assert not result.reset  # no transaction of ours was opened
    assert [(r.status, r.rcpt_reply) for r in result.recipients] == [("temporary", None)] * 2
    assert result.refused["x@y.test"].code == 451


def test_pipelined_data_refused_then_rset() -> None:
    conn, replay = session()
    replay.chunks = iter([b"250 ok\r\n250 ok\r\n554 5.3.0 no\r\n", b"250 reset\r\n"])
    replay.written = b""
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test"], b"x"))
    assert replay.written.endswith(b"DATA\r\nRSET\r\n")
    assert result.reset
    assert result.recipients[0].reply.code == 554
    assert result.recipients[0].status == "permanent"


def test_final_reply_refusal_counts_for_every_recipient() -> None:
    conn, replay = session()
    replay.chunks = iter([b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", b"452 4.3.1 full\r\n"])
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test", "z@y.test"], b"x"))
    assert [r.status for r in result.recipients] == ["temporary", "temporary"]


def test_content_streams_from_an_iterable() -> None:
    conn, replay = session()
    replay.chunks = iter([b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 q\r\n"])
    replay.written, replay.writes = b"", 0
    parts = [b"line one\r", b"\n.dot\r", b"\nend"]
    replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test"], iter(parts)))
    assert replay.written.endswith(b"DATA\r\nline one\r\n..dot\r\nend\r\n.\r\n")
    assert replay.writes == 4  # the commands, then one write per chunk, end with the last


def test_large_bytes_are_cut_into_chunks() -> None:
    conn, replay = session()
    replay.chunks = iter([b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 q\r\n"])
    replay.writes = 0
    body = b"x" * (procedures.CONTENT_CHUNK * 2 + 10)
    replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test"], body))
    assert replay.writes == 1 + 3


def test_empty_content() -> None:
    conn, replay = session()
    replay.chunks = iter([b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 q\r\n"])
    replay.written = b""
    replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test"], b""))
    assert replay.written.endswith(b"DATA\r\n.\r\n")


def test_lmtp_transaction_and_421_midway() -> None:
    conn, replay = session(lmtp=True)
    replay.chunks = iter(
        [b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", b"250 x ok\r\n421 4.3.0 bye\r\n"]
    )
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y", "y@y", "z@y"], b"m"))
    assert [(r.status, r.reply.code) for r in result.recipients] == [
        ("accepted", 250),
        ("temporary", 421),
        ("temporary", 421),
    ]


def test_421_after_accepted_recipient() -> None:
    conn, replay = session()
    replay.chunks = iter([b"250 ok\r\n250 ok\r\n421 4.3.0 bye\r\n"])
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test", "z@y.test"], b"m"))
    assert [r.reply.code for r in result.recipients] == [421, 421]
    assert conn.state is sc.State.CLOSED


def test_bad_arguments_refused_before_any_byte() -> None:
    conn, replay = session()
    replay.written = b""
    with pytest.raises(sc.LocalProtocolError, match="at least one recipient"):
        replay.run(procedures.send_mail(conn, "a@b.test", [], b"x"))
    with pytest.raises(TypeError, match="not one str"):
        replay.run(procedures.send_mail(conn, "a@b.test", "x@y.test", b"x"))
    with pytest.raises(sc.LocalProtocolError, match="CR, LF or NUL"):
        replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test", "z@y.test\r\nRSET"], b"x"))
    assert replay.written == b""


def test_starttls_procedure() -> None:
    conn, replay = session(b"250-srv\r\n250 STARTTLS\r\n")
    replay.chunks = iter([b"220 go ahead\r\n"])
    replay.run(procedures.starttls(conn))
    assert replay.upgrades == 1
    assert conn.state is sc.State.CONNECTED


def test_starttls_refused() -> None:
    conn, replay = session(b"250-srv\r\n250 STARTTLS\r\n")
    replay.chunks = iter([b"454 4.7.0 TLS not available\r\n"])
    with pytest.raises(ReplyError, match="STARTTLS drew 454"):
        replay.run(procedures.starttls(conn))
    assert replay.upgrades == 0


def test_quit_with_and_without_221() -> None:
    conn, replay = session()
    replay.chunks = iter([b"221 bye\r\n"])
    reply = replay.run(procedures.quit(conn))
    assert reply is not None and reply.code == 221
    conn, replay = session()
    replay.chunks = iter([])
    assert replay.run(procedures.quit(conn)) is None


def test_close_while_waiting_names_the_commands() -> None:
    conn, replay = session()
    replay.chunks = iter([b"250 ok\r\n"])
    with pytest.raises(ServerDisconnected, match="unanswered: RCPT, DATA"):
        replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test"], b"m"))


def test_reply_error_on_greeting_has_code_and_text() -> None:
    conn = Connection()
    with pytest.raises(ReplyError) as info:
        Replay([b"554 5.7.1 no\r\n"]).run(procedures.greet(conn))
    assert (info.value.code, info.value.text) == (554, "5.7.1 no")


def test_421_without_pipelining_stops_the_transaction() -> None:
    conn, replay = session(EHLO_PLAIN)
    replay.chunks = iter([b"250 ok\r\n", b"421 4.3.0 bye\r\n"])
    replay.written = b""
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test", "z@y.test"], b"m"))
    assert replay.written == b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\n"
    assert [r.reply.code for r in result.recipients] == [421, 421]
    assert [r.rcpt_reply is None for r in result.recipients] == [False, True]


STARTTLS_EHLO = b"250-srv.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n"


def test_opportunistic_handshake_starts_tls_and_greets_again() -> None:
    conn = Connection()
    replay = Replay([GREETING, STARTTLS_EHLO, b"220 go\r\n", EHLO_PIPE])
    reply = replay.run(procedures.handshake(conn, "client.test"))
    assert replay.written == b"EHLO client.test\r\nSTARTTLS\r\nEHLO client.test\r\n"
    assert replay.upgrades == 1
    assert conn.tls_active and conn.extensions.pipelining
    assert isinstance(reply.command, sc.Ehlo)


def test_policy_none_leaves_tls_to_the_caller() -> None:
    conn = Connection(tls_policy="none")
    replay = Replay([GREETING, STARTTLS_EHLO])
    replay.run(procedures.handshake(conn, "client.test"))
    assert replay.upgrades == 0
    assert not conn.tls_active


def test_required_policy_refuses_a_server_without_starttls() -> None:
    conn = Connection(tls_policy="required")
    replay = Replay([GREETING, EHLO_PIPE])
    with pytest.raises(sc.LocalProtocolError, match="TLS is required"):
        replay.run(procedures.handshake(conn, "client.test"))
    with pytest.raises(sc.LocalProtocolError, match="TLS policy is 'required'"):
        conn.send(sc.Mail("a@b.test"))
    assert replay.written == b"EHLO client.test\r\n"


def test_required_policy_with_implicit_tls() -> None:
    conn = Connection(tls_policy="required", tls_active=True)
    replay = Replay([GREETING, EHLO_PIPE])
    replay.run(procedures.handshake(conn, "client.test"))
    assert conn.send(sc.Mail("a@b.test")) == b"MAIL FROM:<a@b.test>\r\n"


def test_unknown_tls_policy() -> None:
    with pytest.raises(ValueError, match="tls_policy"):
        Connection(tls_policy="sometimes")  # type: ignore[arg-type]


def test_pipelining_can_be_turned_off() -> None:
    conn, replay = session()
    assert conn.extensions.pipelining
    replay.chunks = iter([b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 q\r\n"])
    replay.writes = 0
    procedure = procedures.send_mail(conn, "a@b.test", ["x@y.test"], b"m", pipelining=False)
    assert replay.run(procedure).delivered
    assert replay.writes == 4  # MAIL, RCPT, DATA, content: one round trip each


def test_driver_must_answer_read_with_bytes_while_waiting_for_a_reply() -> None:
    conn, _ = session()
    proc = procedures.command(conn, sc.Noop())
    assert isinstance(next(proc), sc.Write)
    assert proc.send(None) is sc.READ
    with pytest.raises(TypeError, match="answer Read with bytes"):
        proc.send(None)


def test_lmtp_verdicts_are_taken_in_order_even_for_a_recipient_given_twice() -> None:
    conn, _ = session(b"250-srv.test\r\n250 PIPELINING\r\n", lmtp=True)
    replay = Replay([b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", b"250 one\r\n421 4.3.0 bye\r\n"])
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y.test", "x@y.test"], b"m\r\n"))
    assert [r.reply.code for r in result.recipients] == [250, 421]
    assert result.accepted == ("x@y.test",)
