"""Per-stage timeouts, lost connections and unknown outcomes, decided in the core.

The engine reads no clock: these tests play the driver by hand, stepping the
procedures and raising into them what a driver raises when its I/O fails.
"""

from __future__ import annotations

import pickle

import pytest

import smtp_core as sc
from smtp_core import (
    Connection,
    OutcomeUnknown,
    ServerDisconnected,
    Stage,
    StageTimeout,
    State,
    Timeouts,
    procedures,
)

EHLO = b"250-srv.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"


def state_of(conn: Connection) -> State:
    return conn.state


def stage_of(conn: Connection) -> Stage:
    return conn.reply_stage


def greeted(ehlo: bytes = EHLO, *, lmtp: bool = False) -> Connection:
    conn = Connection(tls_policy="none", lmtp=lmtp)
    conn.receive_data(b"220 srv.test\r\n")
    assert isinstance(conn.next_event(), sc.Greeting)
    conn.send(sc.Lhlo("c.test") if lmtp else sc.Ehlo("c.test"))
    conn.receive_data(ehlo)
    assert isinstance(conn.next_event(), sc.Reply)
    return conn


def step_to_read(proc: sc.Procedure[object], replies: list[bytes]) -> sc.Read:
    """Answer writes and feed ``replies`` one per read until a read finds none left."""
    request = next(proc)
    while True:
        if isinstance(request, sc.Read):
            if not replies:
                return request
            request = proc.send(replies.pop(0))
        else:
            request = proc.send(None)


# -- Timeouts and Stage -------------------------------------------------------------------


def test_defaults_are_rfc_5321_section_4_5_3_2() -> None:
    t = Timeouts()
    assert (t.greeting, t.mail, t.rcpt, t.data, t.data_block, t.data_end) == (
        300,
        300,
        300,
        120,
        180,
        600,
    )
    assert t.seconds(Stage.DATA_END) == 600
    assert t.total is None


def test_every_sets_each_stage() -> None:
    t = Timeouts.every(7.0, total=30.0)
    assert {t.seconds(stage) for stage in Stage} == {7.0}
    assert t.total == 30.0


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_timeouts_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="rcpt"):
        Timeouts(rcpt=bad)


def test_every_stage_has_a_description() -> None:
    assert Stage.MAIL.description == "the reply to MAIL"
    assert len({stage.description for stage in Stage}) == len(Stage)


def test_stage_timeout_names_the_stage_and_pickles() -> None:
    exc = StageTimeout(Stage.RCPT, 2.5)
    assert isinstance(exc, TimeoutError) and isinstance(exc, OSError)
    assert str(exc) == "timed out waiting for the reply to RCPT (the limit of 2.5 s)"
    overall = StageTimeout(Stage.DATA, 60, overall=True)
    assert "overall deadline of 60 s" in str(overall)
    copy = pickle.loads(pickle.dumps(overall))
    assert (copy.stage, copy.seconds, copy.overall, str(copy)) == (
        Stage.DATA,
        60,
        True,
        str(overall),
    )


def test_outcome_unknown_pickles() -> None:
    exc = OutcomeUnknown(StageTimeout(Stage.DATA_END, 1), ("a@x",), ("b@x", "c@x"))
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.delivered, copy.unknown, str(copy)) == (("a@x",), ("b@x", "c@x"), str(exc))
    assert "2 recipient(s) (b@x, c@x)" in str(exc)


# -- which stage each read belongs to -----------------------------------------------------


def test_reply_stage_follows_the_oldest_command_awaited() -> None:
    conn = Connection(tls_policy="none")
    assert conn.reply_stage is Stage.GREETING
    conn = greeted()
    assert conn.reply_stage is Stage.COMMAND  # nothing awaited
    conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("c@d.test"), sc.Data()])
    stages = []
    for reply in (b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
        stages.append(conn.reply_stage)
        conn.receive_data(reply)
        conn.next_event()
    conn.send(sc.Content(b"x\r\n"))
    conn.send(sc.EndOfContent())
    stages.append(conn.reply_stage)
    assert stages == [Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.DATA_END]


def test_bdat_chunks_wait_a_data_block_and_the_last_the_end_of_data() -> None:
    conn = greeted()
    conn.send(sc.Mail("a@b.test"))
    conn.receive_data(b"250 ok\r\n")
    conn.next_event()
    conn.send(sc.Rcpt("c@d.test"))
    conn.receive_data(b"250 ok\r\n")
    conn.next_event()
    conn.send(sc.Bdat(b"one"))
    assert stage_of(conn) is Stage.DATA_BLOCK
    conn.send(sc.Bdat(b"two", last=True))
    conn.receive_data(b"250 ok\r\n")
    conn.next_event()
    assert stage_of(conn) is Stage.DATA_END


def test_reads_and_writes_carry_their_stage() -> None:
    conn = greeted()
    proc = procedures.send_mail(conn, "a@b.test", ["c@d.test"], b"hi\r\n")
    group = next(proc)
    assert isinstance(group, sc.Write) and group.stage is Stage.COMMAND
    first = proc.send(None)
    assert first == sc.Read(starts_reply=True, stage=Stage.MAIL)
    more = proc.send(b"250 o")
    assert more == sc.Read(starts_reply=False, stage=Stage.MAIL)
    read_rcpt = proc.send(b"k\r\n")
    assert read_rcpt == sc.Read(starts_reply=True, stage=Stage.RCPT)
    assert proc.send(b"250 ok\r\n") == sc.Read(starts_reply=True, stage=Stage.DATA)
    content = proc.send(b"354 go\r\n")
    assert isinstance(content, sc.Write) and content.stage is Stage.DATA_BLOCK
    assert proc.send(None) == sc.Read(starts_reply=True, stage=Stage.DATA_END)


# -- an I/O error raised into a procedure -------------------------------------------------


def test_connection_lost_is_idempotent_and_keeps_error() -> None:
    conn = greeted()
    conn.send(sc.Noop())
    assert conn.connection_lost() == (sc.Noop(),)
    assert conn.connection_lost() == ()
    assert state_of(conn) is State.CLOSED
    with pytest.raises(sc.LocalProtocolError):
        conn.send(sc.Noop())
    broken = greeted()
    broken.receive_data(b"garbage\r\n")
    with pytest.raises(sc.RemoteProtocolError):
        broken.next_event()
    broken.connection_lost()
    assert state_of(broken) is State.ERROR


def test_timeout_while_reading_the_greeting_closes_the_connection() -> None:
    conn = Connection()
    proc = procedures.greet(conn)
    assert next(proc).stage is Stage.GREETING  # type: ignore[union-attr]
    with pytest.raises(StageTimeout):
        proc.throw(StageTimeout(Stage.GREETING, 1))
    assert state_of(conn) is State.CLOSED


def test_error_while_reading_a_reply_closes_the_connection() -> None:
    conn = greeted()
    proc = procedures.command(conn, sc.Noop())
    next(proc)
    proc.send(None)
    with pytest.raises(ConnectionResetError):
        proc.throw(ConnectionResetError())
    assert state_of(conn) is State.CLOSED


def test_error_while_writing_a_command_closes_the_connection() -> None:
    conn = greeted()
    proc = procedures.command(conn, sc.Noop())
    next(proc)
    with pytest.raises(BrokenPipeError):
        proc.throw(BrokenPipeError())
    assert state_of(conn) is State.CLOSED


def test_error_while_writing_quit_closes_the_connection() -> None:
    conn = greeted()
    proc = procedures.quit(conn)
    next(proc)
    with pytest.raises(BrokenPipeError):
        proc.throw(BrokenPipeError())
    assert state_of(conn) is State.CLOSED


def test_failed_tls_handshake_closes_the_connection() -> None:
    conn = greeted(b"250-srv.test\r\n250 STARTTLS\r\n")
    proc = procedures.starttls(conn)
    next(proc)  # STARTTLS
    proc.send(None)
    assert proc.send(b"220 go ahead\r\n") is sc.UPGRADE_TLS
    with pytest.raises(OSError, match="certificate"):
        proc.throw(OSError("certificate verify failed"))
    assert state_of(conn) is State.CLOSED


def test_reset_during_the_content_write_is_not_an_unknown_outcome() -> None:
    conn = greeted()
    proc = procedures.send_mail(conn, "a@b.test", ["c@d.test"], b"hi\r\n")
    next(proc)  # the pipelined group
    proc.send(None)
    content = proc.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert isinstance(content, sc.Write) and content.stage is Stage.DATA_BLOCK
    with pytest.raises(ConnectionResetError):
        proc.throw(ConnectionResetError())
    assert state_of(conn) is State.CLOSED


@pytest.mark.parametrize(
    "failure",
    [StageTimeout(Stage.DATA_END, 600), ConnectionResetError(), b"", b"garbage\r\n"],
    ids=["timeout", "reset", "close", "broken reply"],
)
def test_failure_after_the_final_dot_is_outcome_unknown(failure: Exception | bytes) -> None:
    conn = greeted()
    proc = procedures.send_mail(conn, "a@b.test", ["c@d.test", "e@d.test"], b"hi\r\n")
    next(proc)
    proc.send(None)
    proc.send(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")  # the content is next
    assert proc.send(None).stage is Stage.DATA_END  # type: ignore[union-attr]
    with pytest.raises(OutcomeUnknown) as raised:
        if isinstance(failure, bytes):
            proc.send(failure)
        else:
            proc.throw(failure)
    assert raised.value.unknown == ("c@d.test", "e@d.test")
    assert raised.value.delivered == ()
    assert raised.value.__cause__ is raised.value.cause
    if isinstance(failure, Exception):
        assert raised.value.cause is failure
    elif failure == b"":
        assert isinstance(raised.value.cause, ServerDisconnected)
    assert state_of(conn) in (State.CLOSED, State.ERROR)


def test_lmtp_knows_who_got_the_message_before_the_drop() -> None:
    conn = greeted(b"250-srv.test\r\n250 PIPELINING\r\n", lmtp=True)
    rcpts = ["one@d.test", "two@d.test", "three@d.test", "four@d.test"]
    proc = procedures.send_mail(conn, "a@b.test", rcpts, b"hi\r\n")
    next(proc)
    proc.send(None)
    proc.send(b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    proc.send(None)  # content written; now the verdicts
    with pytest.raises(OutcomeUnknown) as raised:
        proc.send(b"250 2.0.0 one delivered\r\n550 5.2.2 two is full\r\n")
        proc.send(b"")
    assert raised.value.delivered == ("one@d.test",)
    assert raised.value.unknown == ("three@d.test", "four@d.test")


def test_pipelined_bdat_failure_after_the_last_chunk_is_outcome_unknown() -> None:
    conn = greeted(b"250-srv.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n", lmtp=True)
    proc = procedures.send_mail(
        conn, "a@b.test", ["one@d.test", "two@d.test"], [b"a\r\n", b"b\r\n"], chunking=True
    )
    next(proc)
    proc.send(None)
    first_chunk = proc.send(b"250 ok\r\n250 ok\r\n250 ok\r\n")
    assert isinstance(first_chunk, sc.Write) and first_chunk.stage is Stage.DATA_BLOCK
    last_chunk = proc.send(None)
    assert isinstance(last_chunk, sc.Write) and b"LAST" in last_chunk.data
    assert proc.send(None).stage is Stage.DATA_BLOCK  # type: ignore[union-attr]
    with pytest.raises(OutcomeUnknown) as raised:
        proc.send(b"250 chunk ok\r\n250 one delivered\r\n")
        proc.throw(StageTimeout(Stage.DATA_END, 600))
    assert raised.value.delivered == ("one@d.test",)
    assert raised.value.unknown == ("two@d.test",)


def test_pipelined_bdat_421_to_a_chunk_is_the_answer() -> None:
    conn = greeted()
    proc = procedures.send_mail(conn, "a@b.test", ["c@d.test"], [b"a\r\n", b"b\r\n"], chunking=True)
    next(proc)
    proc.send(None)
    proc.send(b"250 ok\r\n250 ok\r\n")  # first chunk
    proc.send(None)  # last chunk
    proc.send(None)
    with pytest.raises(StopIteration) as stop:
        proc.send(b"421 4.3.2 going away\r\n")
    result: sc.TransactionResult = stop.value.value
    assert result.final_reply is not None and result.final_reply.code == 421
    assert result.recipients[0].status == "temporary"


def test_reset_during_the_pipelined_group_write_closes_the_connection() -> None:
    conn = greeted()
    proc = procedures.send_mail(conn, "a@b.test", ["c@d.test"], b"hi\r\n")
    group = next(proc)
    assert isinstance(group, sc.Write) and group.data.startswith(b"MAIL FROM:")
    with pytest.raises(ConnectionResetError):
        proc.throw(ConnectionResetError())
    assert state_of(conn) is State.CLOSED
