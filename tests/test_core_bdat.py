"""BDAT (RFC 3030 CHUNKING, BINARYMIME) in the connection and the procedures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smtp_core as sc
from smtp_core import Connection, LocalProtocolError, State, procedures
from tests.test_core_connection import feed, ready, state
from tests.test_core_procedures import GREETING, Replay

CHUNKING = b"250-srv.test\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 8BITMIME\r\n"
CHUNKING_PIPE = b"250-srv.test\r\n250-CHUNKING\r\n250-PIPELINING\r\n250 BINARYMIME\r\n"


def in_transaction(ehlo: bytes = CHUNKING, *, params: tuple[str, ...] = ()) -> Connection:
    conn = ready(ehlo)
    conn.send(sc.Mail("a@b.test", params))
    feed(conn, b"250 ok\r\n")
    conn.send(sc.Rcpt("x@y.test"))
    feed(conn, b"250 ok\r\n")
    return conn


def test_chunk_sizes_count_the_normalised_bytes() -> None:
    conn = in_transaction()
    assert conn.send(sc.Bdat(b"a\nb\r")) == b"BDAT 6\r\na\r\nb\r\n"
    feed(conn, b"250 ok\r\n")
    assert conn.state is State.BDAT
    # The LF after the previous chunk's CR is part of that line ending.
    assert conn.send(sc.Bdat(b"\n.c", last=True)) == b"BDAT 4 LAST\r\n.c\r\n"
    feed(conn, b"250 2.0.0 queued\r\n")
    assert state(conn) is State.READY


def test_binarymime_is_sent_byte_for_byte() -> None:
    conn = in_transaction(params=("BODY=BINARYMIME",))
    assert conn.send(sc.Bdat(b"\x00\r\n.\n\r", last=True)) == b"BDAT 6 LAST\r\n\x00\r\n.\n\r"


def test_binarymime_through_data_is_refused() -> None:
    conn = in_transaction(params=("BODY=BINARYMIME",))
    with pytest.raises(LocalProtocolError, match="must be sent with BDAT"):
        conn.send(sc.Data())


def test_binarymime_needs_binarymime_and_chunking() -> None:
    conn = ready(b"250-x\r\n250 BINARYMIME\r\n")
    with pytest.raises(LocalProtocolError, match="BINARYMIME and CHUNKING"):
        conn.send(sc.Mail("a@b.test", ("BODY=BINARYMIME",)))
    assert conn.send(sc.Mail("a@b.test", ("BODY=7BIT",)))


def test_bdat_needs_chunking() -> None:
    conn = in_transaction(b"250 x\r\n")
    with pytest.raises(LocalProtocolError, match="CHUNKING"):
        conn.send(sc.Bdat(b"x", last=True))


def test_refused_chunk_aborts_until_rset() -> None:
    conn = in_transaction(CHUNKING_PIPE)
    conn.send_many([sc.Bdat(b"one"), sc.Bdat(b"two"), sc.Bdat(b"three", last=True)])
    events = feed(conn, b"552 5.3.4 too big\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n")
    assert [e.code for e in events if isinstance(e, sc.Reply)] == [552, 503, 503]
    assert conn.state is State.ABORTED
    with pytest.raises(LocalProtocolError, match="in state ABORTED"):
        conn.send(sc.Bdat(b"x", last=True))
    conn.send(sc.Rset())
    feed(conn, b"250 ok\r\n")
    assert state(conn) is State.READY


def test_server_accepting_a_chunk_after_refusing_one_is_an_error() -> None:
    conn = in_transaction(CHUNKING_PIPE)
    conn.send_many([sc.Bdat(b"one"), sc.Bdat(b"two", last=True)])
    with pytest.raises(sc.RemoteProtocolError):
        feed(conn, b"552 too big\r\n250 ok\r\n")


def test_lmtp_bdat_last_draws_one_reply_per_recipient() -> None:
    conn = ready(CHUNKING_PIPE.replace(b"BINARYMIME", b"8BITMIME"), lmtp=True)
    conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("x@y.test"), sc.Rcpt("z@y.test")])
    feed(conn, b"250 ok\r\n250 ok\r\n250 ok\r\n")
    conn.send(sc.Bdat(b"hi", last=True))
    events = feed(conn, b"250 x ok\r\n550 z no\r\n")
    assert [(e.recipient, e.code) for e in events if isinstance(e, sc.Reply)] == [
        ("x@y.test", 250),
        ("z@y.test", 550),
    ]


def test_bdat_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        sc.Bdat("text")  # type: ignore[arg-type]


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=8))
def test_chunked_content_equals_data_content(parts: list[bytes]) -> None:
    """BDAT delivers what DATA delivers: the same lines, counted exactly."""
    conn = in_transaction()
    wire = b""
    for part in parts:
        wire += conn.send(sc.Bdat(part))
        feed(conn, b"250 ok\r\n")
    wire += conn.send(sc.Bdat(b"", last=True))
    delivered = b""
    while wire:
        head, _, wire = wire.partition(b"\r\n")
        size = int(head.split()[1])
        delivered, wire = delivered + wire[:size], wire[size:]
    encoder = sc.DataEncoder()
    via_data = b"".join(encoder.encode(p) for p in parts) + encoder.end()
    unstuffed = via_data[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
    if unstuffed.startswith(b".."):
        unstuffed = unstuffed[1:]
    assert delivered == unstuffed


# -- the procedure -----------------------------------------------------------------------


def chunking_session(ehlo: bytes) -> tuple[Connection, Replay]:
    # Bodies here are single huge lines, to count chunks: no line limit.
    conn = Connection(tls_policy="none", max_line_length=None)
    replay = Replay([GREETING, ehlo])
    replay.run(procedures.handshake(conn, "client.test"))
    replay.written = b""
    return conn, replay


def test_pipelined_chunks_back_to_back() -> None:
    conn, replay = chunking_session(CHUNKING_PIPE)
    body = b"x" * (procedures.CONTENT_CHUNK + 5)
    replay.chunks = iter([b"250 ok\r\n250 ok\r\n", b"250 ok\r\n250 2.0.0 queued\r\n"])
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y"], body, chunking=True))
    assert replay.written.startswith(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y>\r\n")
    assert f"BDAT {procedures.CONTENT_CHUNK}\r\n".encode() in replay.written
    assert b"BDAT 7 LAST\r\nxxxxx\r\n" in replay.written
    assert result.delivered and result.final_reply is not None
    assert result.final_reply.code == 250


def test_non_pipelined_chunk_refusal_stops_and_resets() -> None:
    conn, replay = chunking_session(CHUNKING)
    body = b"x" * (procedures.CONTENT_CHUNK * 2)
    replay.chunks = iter([b"250 ok\r\n", b"250 ok\r\n", b"552 5.3.4 too big\r\n", b"250 reset\r\n"])
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y"], body, chunking=True))
    assert replay.written.count(b"BDAT") == 1
    assert replay.written.endswith(b"RSET\r\n")
    assert result.recipients[0].reply.code == 552
    assert conn.state is State.READY


def test_pipelined_chunk_refusal_is_the_verdict() -> None:
    conn, replay = chunking_session(CHUNKING_PIPE)
    body = b"x" * (procedures.CONTENT_CHUNK + 1)
    replay.chunks = iter([b"250 ok\r\n250 ok\r\n", b"552 too big\r\n503 no\r\n", b"250 reset\r\n"])
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y"], body, chunking=True))
    assert result.recipients[0].reply.code == 552
    assert replay.written.endswith(b"RSET\r\n")


def test_empty_message_is_one_bdat_0_last() -> None:
    conn, replay = chunking_session(CHUNKING)
    replay.chunks = iter([b"250 ok\r\n", b"250 ok\r\n", b"250 queued\r\n"])
    replay.run(procedures.send_mail(conn, "a@b.test", ["x@y"], b"", chunking=True))
    assert replay.written.endswith(b"BDAT 0 LAST\r\n")


def test_chunking_without_server_support_refused_before_any_byte() -> None:
    conn, replay = chunking_session(b"250 x\r\n")
    with pytest.raises(LocalProtocolError, match="CHUNKING"):
        replay.run(procedures.send_mail(conn, "a@b.test", ["x@y"], b"m", chunking=True))
    assert replay.written == b""


def test_all_recipients_refused_sends_no_chunk() -> None:
    conn, replay = chunking_session(CHUNKING_PIPE)
    replay.chunks = iter([b"250 ok\r\n550 no\r\n", b"250 reset\r\n"])
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y"], b"m", chunking=True))
    assert b"BDAT" not in replay.written
    assert not result.delivered


def test_421_to_a_pipelined_chunk() -> None:
    conn, replay = chunking_session(CHUNKING_PIPE)
    body = b"x" * (procedures.CONTENT_CHUNK + 1)
    replay.chunks = iter([b"250 ok\r\n250 ok\r\n", b"421 4.3.0 bye\r\n"])
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y"], body, chunking=True))
    assert result.recipients[0].reply.code == 421
    assert conn.state is State.CLOSED


def test_non_pipelined_chunks_one_round_trip_each() -> None:
    conn, replay = chunking_session(CHUNKING)
    body = b"y" * (procedures.CONTENT_CHUNK + 3)
    replay.chunks = iter([b"250 ok\r\n", b"250 ok\r\n", b"250 ok\r\n", b"250 queued\r\n"])
    replay.writes = 0
    result = replay.run(procedures.send_mail(conn, "a@b.test", ["x@y"], body, chunking=True))
    assert replay.writes == 4  # MAIL, RCPT, BDAT, BDAT LAST
    assert result.accepted == ("x@y",)


def test_bdat_line_describes_the_chunk() -> None:
    assert sc.Bdat(b"abc", last=True).line() == "BDAT 3 LAST"
    assert sc.Bdat(memoryview(b"ab")).line() == "BDAT 2"


def test_lmtp_bdat_last_waits_for_rcpt_replies() -> None:
    conn = ready(CHUNKING_PIPE.replace(b"BINARYMIME", b"8BITMIME"), lmtp=True)
    with pytest.raises(LocalProtocolError, match="must wait for the replies to RCPT"):
        conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("x@y.test"), sc.Bdat(b"m", last=True)])
    conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("x@y.test"), sc.Bdat(b"part")])
    feed(conn, b"250 ok\r\n250 ok\r\n250 ok\r\n")
    assert conn.send(sc.Bdat(b"end", last=True)).startswith(b"BDAT 5 LAST")
