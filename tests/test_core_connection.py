"""The connection: the state table, pipelining, STARTTLS, LMTP, errors that latch."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smtp_core as sc
from smtp_core import (
    NEED_DATA,
    TRANSITIONS,
    Connection,
    ConnectionClosed,
    Greeting,
    Input,
    LocalProtocolError,
    Outcome,
    RemoteProtocolError,
    Reply,
    State,
)

EHLO_PIPELINING = b"250-srv.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 DSN\r\n"
EHLO_PLAIN = b"250-srv.test\r\n250 8BITMIME\r\n"


def feed(conn: Connection, data: bytes) -> list[sc.Event]:
    """Feed ``data`` and collect events until NEED_DATA or ConnectionClosed."""
    conn.receive_data(data)
    events: list[sc.Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events


def state(conn: Connection) -> State:
    """The connection's state, read afresh (mypy would narrow ``conn.state``)."""
    return conn.state


def state_of(conn: Connection) -> State:
    """The state through a call (mypy would narrow the property between asserts)."""
    return conn.state


def ready(ehlo: bytes = EHLO_PIPELINING, *, lmtp: bool = False) -> Connection:
    conn = Connection(lmtp=lmtp)
    feed(conn, b"220 srv.test ESMTP\r\n")
    conn.send(sc.Lhlo("client.test") if lmtp else sc.Ehlo("client.test"))
    feed(conn, ehlo)
    assert conn.state is State.READY
    return conn


def in_data(ehlo: bytes = EHLO_PLAIN) -> Connection:
    """A connection whose DATA drew 354: message content may be sent."""
    conn = ready(ehlo)
    for command, reply in (
        (sc.Mail("a@b.test"), b"250 ok\r\n"),
        (sc.Rcpt("x@y.test"), b"250 ok\r\n"),
        (sc.Data(), b"354 go\r\n"),
    ):
        conn.send(command)
        feed(conn, reply)
    assert conn.state is State.DATA
    return conn


# -- greeting ------------------------------------------------------------------------


def test_nothing_may_be_sent_before_the_greeting() -> None:
    conn = Connection()
    with pytest.raises(LocalProtocolError, match="before the reply to the greeting"):
        conn.send(sc.Ehlo("client.test"))
    [greeting] = feed(conn, b"220 srv.test\r\n")
    assert greeting == Greeting(220, (b"srv.test",))
    assert conn.send(sc.Ehlo("client.test")) == b"EHLO client.test\r\n"


def test_554_greeting_allows_only_quit() -> None:
    conn = Connection()
    [greeting] = feed(conn, b"554 5.7.1 go away\r\n")
    assert isinstance(greeting, Greeting)
    assert greeting.is_permanent and greeting.enhanced == (5, 7, 1)
    assert conn.state is State.REFUSED
    with pytest.raises(LocalProtocolError, match="in state REFUSED"):
        conn.send(sc.Ehlo("client.test"))
    assert conn.send(sc.Quit()) == b"QUIT\r\n"
    feed(conn, b"221 bye\r\n")
    assert state(conn) is State.CLOSED


def test_421_greeting_closes() -> None:
    conn = Connection()
    feed(conn, b"421 4.3.2 busy\r\n")
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send(sc.Quit())


def test_3yz_greeting_is_a_remote_error() -> None:
    conn = Connection()
    with pytest.raises(RemoteProtocolError, match="not a valid greeting"):
        feed(conn, b"354 what\r\n")


# -- hello, extensions, modes ----------------------------------------------------------


def test_ehlo_sets_extensions_and_helo_clears_them() -> None:
    conn = ready()
    assert conn.extensions.pipelining and conn.extensions.size == 1000
    conn.send(sc.Helo("client.test"))
    feed(conn, b"250 srv.test\r\n")
    assert dict(conn.extensions) == {}


def test_lmtp_and_smtp_greetings_are_not_mixed() -> None:
    smtp = Connection()
    feed(smtp, b"220 x\r\n")
    with pytest.raises(LocalProtocolError, match="LMTP only"):
        smtp.send(sc.Lhlo("client.test"))
    lmtp = Connection(lmtp=True)
    feed(lmtp, b"220 x\r\n")
    for hello in (sc.Ehlo("client.test"), sc.Helo("client.test")):
        with pytest.raises(LocalProtocolError, match="not LMTP"):
            lmtp.send(hello)


def test_non_ascii_hello_name_refused() -> None:
    conn = Connection()
    feed(conn, b"220 x\r\n")
    with pytest.raises(LocalProtocolError, match="A-label"):
        conn.send(sc.Ehlo("bücher.example"))


def test_lowercase_commands_match_smtplib_bytes() -> None:
    conn = Connection(lowercase_commands=True)
    feed(conn, b"220 x\r\n")
    conn.send(sc.Ehlo("client.test"))
    feed(conn, b"250-x\r\n250 SIZE 100\r\n")
    assert conn.send(sc.Mail("John", ("size=14",), strict=False)) == b"mail from:<John> size=14\r\n"
    feed(conn, b"250 ok\r\n")
    assert conn.send(sc.Rcpt("Sally", strict=False)) == b"rcpt to:<Sally>\r\n"


# -- pipelining ----------------------------------------------------------------------


def test_without_pipelining_one_command_at_a_time() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(sc.Mail("a@b.test"))
    with pytest.raises(LocalProtocolError, match="did not offer PIPELINING"):
        conn.send(sc.Rcpt("c@d.test"))
    assert conn.awaiting == (sc.Mail("a@b.test"),)  # unchanged by the refusal
    feed(conn, b"250 ok\r\n")
    assert conn.send(sc.Rcpt("c@d.test")) == b"RCPT TO:<c@d.test>\r\n"


def test_pipelined_group_in_one_write_and_replies_in_order() -> None:
    conn = ready()
    data = conn.send_many(
        [sc.Mail("a@b.test"), sc.Rcpt("x@y.test"), sc.Rcpt("z@y.test"), sc.Data()]
    )
    assert data == b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nRCPT TO:<z@y.test>\r\nDATA\r\n"
    events = feed(conn, b"250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n")
    assert [e.command.verb for e in events if isinstance(e, Reply)] == [
        "MAIL",
        "RCPT",
        "RCPT",
        "DATA",
    ]
    assert conn.state is State.DATA
    assert conn.accepted_recipients == ("z@y.test",)


@pytest.mark.parametrize("ender", [sc.Data(), sc.Noop(), sc.Vrfy("x"), sc.Ehlo("c.test")])
def test_group_ending_commands_must_be_answered_first(ender: sc.BaseCommand) -> None:
    conn = ready()
    conn.send(sc.Mail("a@b.test"))
    conn.send(sc.Rcpt("x@y.test"))
    conn.send(ender)
    with pytest.raises(LocalProtocolError, match=f"before the reply to {ender.verb}"):
        conn.send(sc.Rset())


def test_send_many_is_all_or_nothing() -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError, match="SMTPUTF8"):
        conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("ok@y.test"), sc.Rcpt("ü@y.test")])
    assert conn.awaiting == ()
    # Nothing counts as sent: MAIL is still allowed, as if the call never happened.
    assert conn.send(sc.Mail("a@b.test")).startswith(b"MAIL")


def test_refused_mail_makes_pipelined_commands_fail() -> None:
    conn = ready()
    conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("x@y.test"), sc.Data()])
    events = feed(conn, b"550 bad sender\r\n503 need MAIL\r\n503 need RCPT\r\n")
    assert [e.code for e in events if isinstance(e, Reply)] == [550, 503, 503]
    assert conn.state is State.READY
    assert conn.send(sc.Mail("a@b.test"))  # a new transaction may start


def test_server_accepting_rcpt_after_refusing_mail_is_an_error() -> None:
    conn = ready()
    conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("x@y.test")])
    with pytest.raises(RemoteProtocolError, match="not a valid reply to RCPT in state READY"):
        feed(conn, b"550 bad sender\r\n250 ok\r\n")


def test_354_when_no_recipient_was_accepted_takes_the_end_marker_alone() -> None:
    # RFC 2920 §3.1: the client sends the end-of-data marker and nothing else.
    conn = ready()
    conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("x@y.test"), sc.Data()])
    feed(conn, b"250 ok\r\n550 no\r\n354 go ahead anyway\r\n")
    assert state_of(conn) is State.DATA_EMPTY
    with pytest.raises(LocalProtocolError, match="in state DATA_EMPTY"):
        conn.send(sc.Content(b"Subject: x\r\n\r\nbody\r\n"))
    assert conn.send(sc.EndOfContent()) == b".\r\n"
    [verdict] = feed(conn, b"554 no valid recipients\r\n")
    assert isinstance(verdict, sc.Reply)
    assert verdict.code == 554
    assert conn.state is State.READY


def test_a_surplus_reply_is_refused_before_the_next_command() -> None:
    conn = ready()
    conn.send(sc.Noop())
    conn.receive_data(b"250 one\r\n250 two\r\n")
    first = conn.next_event()
    assert isinstance(first, sc.Reply)
    assert first.lines == (b"one",)
    # Never paired with the next command: refused when it is seen.
    with pytest.raises(RemoteProtocolError, match="no command was waiting"):
        conn.send(sc.Noop())
    assert conn.state is State.ERROR


def test_authentication_is_forgotten_after_starttls() -> None:
    # RFC 3207 §4.2: nothing learnt before TLS counts inside it.
    conn = Connection(auth_in_clear=True)
    feed(conn, b"220 srv.test\r\n")
    conn.send(sc.Ehlo("client.test"))
    feed(conn, b"250-srv.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n")
    conn.send(sc.Auth("PLAIN", b"\0u\0p"))
    feed(conn, b"235 ok\r\n")
    with pytest.raises(LocalProtocolError, match="already authenticated"):
        conn.send(sc.Auth("PLAIN", b"\0u\0p"))
    conn.send(sc.StartTLS())
    feed(conn, b"220 go\r\n")
    conn.start_tls_done()
    conn.send(sc.Ehlo("client.test"))
    feed(conn, b"250-srv.test\r\n250 AUTH PLAIN\r\n")
    assert conn.send(sc.Auth("PLAIN", b"\0u\0p")).startswith(b"AUTH PLAIN ")


# -- content -------------------------------------------------------------------------


def test_content_only_after_354_and_end_returns_to_ready() -> None:
    conn = ready(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError, match="in state READY"):
        conn.send(sc.Content(b"x"))
    conn.send(sc.Mail("a@b.test"))
    feed(conn, b"250 ok\r\n")
    conn.send(sc.Rcpt("x@y.test"))
    feed(conn, b"250 ok\r\n")
    conn.send(sc.Data())
    with pytest.raises(LocalProtocolError, match="before the reply to DATA"):
        conn.send(sc.Content(b"x"))
    feed(conn, b"354 go\r\n")
    assert conn.send(sc.Content(b".a\nb")) == b"..a\r\nb"
    assert conn.send(sc.EndOfContent()) == b"\r\n.\r\n"
    [reply] = feed(conn, b"250 2.0.0 queued\r\n")
    assert isinstance(reply, Reply) and isinstance(reply.command, sc.EndOfContent)
    assert conn.state is State.READY


def test_lmtp_one_reply_per_accepted_recipient() -> None:
    conn = ready(EHLO_PIPELINING, lmtp=True)
    conn.send_many(
        [
            sc.Mail("a@b.test"),
            sc.Rcpt("x@y.test"),
            sc.Rcpt("bad@y.test"),
            sc.Rcpt("z@y.test"),
            sc.Data(),
        ]
    )
    feed(conn, b"250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n")
    conn.send(sc.Content(b"hi\r\n"))
    conn.send(sc.EndOfContent())
    assert len(conn.awaiting) == 2
    events = feed(conn, b"250 2.0.0 x delivered\r\n452 4.2.2 z over quota\r\n")
    assert [(e.recipient, e.code) for e in events if isinstance(e, Reply)] == [
        ("x@y.test", 250),
        ("z@y.test", 452),
    ]
    assert state(conn) is State.READY
    assert not conn.awaiting


# -- server-dependent checks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("ehlo", "command", "message"),
    [
        (EHLO_PIPELINING, sc.Mail("a@b.test", ("SIZE=1001",)), "over the server's SIZE"),
        (EHLO_PLAIN, sc.Mail("a@b.test", ("SIZE=10",)), "needs SIZE"),
        (EHLO_PIPELINING, sc.Mail("a@b.test", ("SMTPUTF8",)), "needs SMTPUTF8"),
        (b"250 x\r\n", sc.Mail("a@b.test", ("BODY=8BITMIME",)), "needs 8BITMIME"),
        (EHLO_PLAIN, sc.Mail("a@b.test", ("RET=HDRS",)), "needs DSN"),
        (EHLO_PIPELINING, sc.Mail("ü@b.test"), "SMTPUTF8 parameter"),
        (EHLO_PIPELINING, sc.Vrfy("ü"), "needs SMTPUTF8"),
    ],
)
def test_refused_by_what_the_server_offers(
    ehlo: bytes, command: sc.BaseCommand, message: str
) -> None:
    conn = ready(ehlo)
    with pytest.raises(LocalProtocolError, match=message):
        conn.send(command)
    assert conn.awaiting == ()


def test_rcpt_params_need_their_extension() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(sc.Mail("a@b.test"))
    feed(conn, b"250 ok\r\n")
    with pytest.raises(LocalProtocolError, match="RCPT parameter NOTIFY needs DSN"):
        conn.send(sc.Rcpt("x@y.test", ("NOTIFY=NEVER",)))


def test_utf8_transaction() -> None:
    ehlo = b"250-x\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n"
    conn = ready(ehlo)
    assert (
        conn.send(sc.Mail("jő@b.test", ("SMTPUTF8",)))
        == "MAIL FROM:<jő@b.test> SMTPUTF8\r\n".encode()
    )
    feed(conn, b"250 ok\r\n")
    assert conn.send(sc.Rcpt("jános@y.test")) == "RCPT TO:<jános@y.test>\r\n".encode()
    feed(conn, b"250 ok\r\n")
    assert conn.send(sc.Vrfy("jő")) == "VRFY jő\r\n".encode()


def test_size_zero_means_no_limit() -> None:
    conn = ready(b"250-x\r\n250 SIZE 0\r\n")
    assert conn.send(sc.Mail("a@b.test", ("SIZE=999999999",)))


def test_overlong_line_refused() -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError, match="over the limit of 2048"):
        conn.send(sc.Noop("x" * sc.MAX_COMMAND_LINE))


# -- STARTTLS ------------------------------------------------------------------------


def test_starttls_forgets_extensions_and_needs_fresh_ehlo() -> None:
    conn = ready(b"250-x\r\n250-STARTTLS\r\n250 PIPELINING\r\n")
    conn.send(sc.StartTLS())
    feed(conn, b"220 go ahead\r\n")
    assert conn.state is State.TLS
    with pytest.raises(LocalProtocolError):
        conn.send(sc.Ehlo("client.test"))
    conn.start_tls_done()
    assert state(conn) is State.CONNECTED and dict(conn.extensions) == {}
    with pytest.raises(LocalProtocolError, match="in state CONNECTED"):
        conn.send(sc.Mail("a@b.test"))
    conn.send(sc.Ehlo("client.test"))


def test_starttls_response_injection_refused() -> None:
    # CVE-2011-0411 class: the reply to a command sent inside TLS arrives,
    # already, in the clear right after the 220.
    conn = ready(b"250-x\r\n250 STARTTLS\r\n")
    conn.send(sc.StartTLS())
    with pytest.raises(RemoteProtocolError, match="after the 220 reply to STARTTLS"):
        feed(conn, b"220 go ahead\r\n250 injected\r\n")
    with pytest.raises(LocalProtocolError, match="ERROR"):
        conn.start_tls_done()


def test_starttls_bytes_arriving_later_refused() -> None:
    conn = ready(b"250-x\r\n250 STARTTLS\r\n")
    conn.send(sc.StartTLS())
    feed(conn, b"220 go ahead\r\n")
    with pytest.raises(RemoteProtocolError, match="after the 220"):
        feed(conn, b"2")


def test_start_tls_done_out_of_turn() -> None:
    with pytest.raises(LocalProtocolError, match="no TLS handshake is due"):
        ready().start_tls_done()


# -- errors, closing ------------------------------------------------------------------


def test_unsolicited_reply_latches_error() -> None:
    conn = ready()
    with pytest.raises(RemoteProtocolError, match="no command was waiting"):
        feed(conn, b"250 surprise\r\n")
    assert conn.state is State.ERROR
    with pytest.raises(RemoteProtocolError, match="ERROR state"):
        conn.next_event()
    with pytest.raises(LocalProtocolError, match="ERROR state"):
        conn.send(sc.Noop())


def test_bad_reply_grammar_latches_error() -> None:
    conn = ready()
    conn.send(sc.Noop())
    with pytest.raises(RemoteProtocolError, match="2yz-5yz"):
        feed(conn, b"hello\r\n")
    assert conn.state is State.ERROR


def test_close_reports_unanswered_commands() -> None:
    conn = ready()
    conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("x@y.test")])
    [event] = feed(conn, b"")
    assert event == ConnectionClosed((sc.Mail("a@b.test"), sc.Rcpt("x@y.test")))
    assert conn.state is State.CLOSED
    assert conn.next_event() == ConnectionClosed(())
    with pytest.raises(ValueError, match="after end of file"):
        conn.receive_data(b"x")


def test_close_mid_reply_is_server_disconnected() -> None:
    conn = ready()
    conn.send(sc.Noop())
    with pytest.raises(sc.ServerDisconnected, match="middle of a reply"):
        feed(conn, b"250-half\r\n250")
        feed(conn, b"")


def test_421_mid_pipeline_drops_the_rest() -> None:
    conn = ready()
    conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("x@y.test"), sc.Data()])
    events = feed(conn, b"250 ok\r\n421 4.3.0 closing\r\n")
    assert [e.code for e in events if isinstance(e, Reply)] == [250, 421]
    assert conn.state is State.CLOSED and conn.awaiting == ()


def test_quit() -> None:
    conn = ready()
    conn.send(sc.Quit())
    with pytest.raises(LocalProtocolError):
        conn.send(sc.Noop())
    feed(conn, b"221 bye\r\n")
    assert conn.state is State.CLOSED


# -- the table, walked ---------------------------------------------------------------

# A command for every input that a caller can send.
SENDABLE: dict[Input, Callable[[], sc.BaseCommand]] = {
    Input.HELLO: lambda: sc.Ehlo("client.test"),
    Input.MAIL: lambda: sc.Mail("a@b.test"),
    Input.RCPT: lambda: sc.Rcpt("x@y.test"),
    Input.DATA: sc.Data,
    Input.CONTENT: lambda: sc.Content(b"x"),
    Input.END_OF_DATA: sc.EndOfContent,
    Input.BDAT: lambda: sc.Bdat(b"x"),
    Input.BDAT_LAST: lambda: sc.Bdat(b"x", last=True),
    Input.AUTH: lambda: sc.Auth("PLAIN", b"\0user\0pass"),
    Input.AUTH_RESPONSE: lambda: sc.AuthResponse(b"x"),
    Input.RSET: sc.Rset,
    Input.STARTTLS: sc.StartTLS,
    Input.QUIT: sc.Quit,
    Input.OTHER: sc.Noop,
}
EXPECTED = {Input.DATA: Outcome.INTERMEDIATE, Input.CONTENT: Outcome.SENT}
EHLO_ALL = (
    b"250-x\r\n250-STARTTLS\r\n250-CHUNKING\r\n250-AUTH PLAIN\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
)


def reach(state: State) -> Connection:
    """A connection in ``state``, brought there by ordinary replies."""
    conn = Connection(auth_in_clear=True)
    if state is State.GREETING:
        return conn
    if state is State.REFUSED:
        feed(conn, b"554 no\r\n")
        return conn
    feed(conn, b"220 x\r\n")
    if state is State.CONNECTED:
        return conn
    if state is State.ERROR:
        with pytest.raises(RemoteProtocolError):
            feed(conn, b"250 unsolicited\r\n")
        return conn
    conn.send(sc.Ehlo("client.test"))
    feed(conn, EHLO_ALL)
    steps: dict[State, list[tuple[sc.BaseCommand, bytes]]] = {
        State.READY: [],
        State.MAIL: [(sc.Mail("a@b.test"), b"250 ok\r\n")],
        State.RCPT: [(sc.Mail("a@b.test"), b"250 ok\r\n"), (sc.Rcpt("x@y.test"), b"250 ok\r\n")],
        State.DATA: [
            (sc.Mail("a@b.test"), b"250 ok\r\n"),
            (sc.Rcpt("x@y.test"), b"250 ok\r\n"),
            (sc.Data(), b"354 go\r\n"),
        ],
        State.BDAT: [
            (sc.Mail("a@b.test"), b"250 ok\r\n"),
            (sc.Rcpt("x@y.test"), b"250 ok\r\n"),
            (sc.Bdat(b"x"), b"250 ok\r\n"),
        ],
        State.ABORTED: [
            (sc.Mail("a@b.test"), b"250 ok\r\n"),
            (sc.Rcpt("x@y.test"), b"250 ok\r\n"),
            (sc.Bdat(b"x"), b"552 too big\r\n"),
        ],
        State.TLS: [(sc.StartTLS(), b"220 go\r\n")],
        State.AUTH: [(sc.Auth("PLAIN"), b"334 \r\n")],
        State.CLOSED: [(sc.Quit(), b"221 bye\r\n")],
    }
    if state is State.DATA_EMPTY:  # only a pipelined DATA gets there (RFC 2920 §3.1)
        conn.send_many([sc.Mail("a@b.test"), sc.Rcpt("x@y.test"), sc.Data()])
        feed(conn, b"250 ok\r\n550 no\r\n354 go\r\n")
    for command, reply in steps.get(state, []):
        conn.send(command)
        feed(conn, reply)
    assert conn.state is state
    return conn


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
@pytest.mark.parametrize("inp", list(SENDABLE), ids=lambda i: i.name)
def test_every_state_and_input_is_the_table_or_an_error(state: State, inp: Input) -> None:
    conn = reach(state)
    expected = EXPECTED.get(inp, Outcome.POSITIVE)
    row = TRANSITIONS.get((state, inp, expected))
    hopeless = state in (State.ERROR, State.GREETING) or (state, inp) in sc.REPLY_ONLY
    if row is None or hopeless:
        with pytest.raises(LocalProtocolError):
            conn.send(SENDABLE[inp]())
        assert conn.state is state
        return
    conn.send(SENDABLE[inp]())
    if inp is Input.CONTENT:
        assert conn.state is row
        return
    # Every reply class: the table's row, or a remote error that latches.
    for code in (250, 354, 550):
        trial = reach(state)
        trial.send(SENDABLE[inp]())
        outcome = {2: Outcome.POSITIVE, 3: Outcome.INTERMEDIATE, 5: Outcome.NEGATIVE}[code // 100]
        target = TRANSITIONS.get((state, inp, outcome))
        if target is None:
            with pytest.raises(RemoteProtocolError):
                feed(trial, b"%d x\r\n" % code)
            assert trial.state is State.ERROR
        else:
            feed(trial, b"%d x\r\n" % code)
            assert trial.state is target


def test_every_table_row_is_reached_by_the_walk() -> None:
    states_with_rows = {state for state, _, _ in TRANSITIONS}
    assert states_with_rows == set(State) - {State.CLOSED, State.ERROR}
    assert all(isinstance(target, State) for target in TRANSITIONS.values())


COMMANDS = st.sampled_from(list(SENDABLE.values()))
REPLIES = st.sampled_from(
    [b"250 ok\r\n", b"354 go\r\n", b"421 bye\r\n", b"451 later\r\n", b"550 no\r\n", b"220 go\r\n"]
)


@given(st.lists(st.one_of(COMMANDS, REPLIES), max_size=40), st.booleans())
def test_random_walk_only_documented_outcomes(
    steps: list[Callable[[], sc.BaseCommand] | bytes], pipelining: bool
) -> None:
    conn = Connection()
    feed(conn, b"220 x\r\n")
    conn.send(sc.Ehlo("client.test"))
    feed(conn, b"250-x\r\n250-PIPELINING\r\n250 STARTTLS\r\n" if pipelining else b"250 x\r\n")
    for step in steps:
        if state(conn) is State.ERROR:
            break
        before = (conn.state, conn.awaiting)
        if isinstance(step, bytes):
            try:
                feed(conn, step)
            except RemoteProtocolError:
                assert conn.state is State.ERROR
            continue
        try:
            conn.send(step())
        except LocalProtocolError:
            assert (conn.state, conn.awaiting) == before  # refused: nothing changed
        if conn.state is State.TLS:
            conn.start_tls_done()
        assert conn.state in State


def test_send_many_rollback_restores_the_encoder() -> None:
    # A refused group must not leave the encoder thinking a line is open: the
    # next chunk's leading "." would then go out unstuffed and end the data.
    conn = in_data()
    assert conn.send(sc.Content(b"abc\r\n")) == b"abc\r\n"
    with pytest.raises(LocalProtocolError):
        conn.send_many([sc.Content(b"x"), sc.Mail("a@b.test")])
    assert conn.send(sc.Content(b".\r\nMAIL FROM:<evil@x>\r\n")) == b"..\r\nMAIL FROM:<evil@x>\r\n"


def test_size_with_non_ascii_digits_is_refused_not_a_crash() -> None:
    conn = ready(b"250-x\r\n250-SIZE 10\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n")
    with pytest.raises(LocalProtocolError, match="SMTPUTF8"):
        conn.send(sc.Mail("a@b.test", ("SIZE=²",), strict=False))
    line = conn.send(sc.Mail("a@b.test", ("SIZE=²", "SMTPUTF8"), strict=False))
    assert line == "MAIL FROM:<a@b.test> SIZE=² SMTPUTF8\r\n".encode()


# -- raw mode ------------------------------------------------------------------------


def test_send_unchecked_puts_bytes_as_given_and_pairs_replies() -> None:
    conn = ready()
    raw = b"MAIL FROM:<x>\r\nRCPT TO:<\x00>\r\n"
    assert conn.send_unchecked(raw, replies=2) == raw
    events = feed(conn, b"250 ok\r\n501 bad\r\n")
    assert [(type(e.command).__name__, e.code) for e in events if isinstance(e, Reply)] == [
        ("Unchecked", 250),
        ("Unchecked", 501),
    ]
    assert conn.state is State.READY  # raw bytes never move the table
    assert "MAIL FROM" in events[0].command.line() if isinstance(events[0], Reply) else False


def test_unchecked_only_through_its_loud_method() -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError, match="send_unchecked"):
        conn.send(sc.Unchecked(b"x\r\n"))
    with pytest.raises(TypeError):
        conn.send_unchecked("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0 or more"):
        conn.send_unchecked(b"x", replies=-1)
    assert conn.send_unchecked(b"garbage", replies=0) == b"garbage"
    conn.send(sc.Quit())
    feed(conn, b"221 bye\r\n")
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        conn.send_unchecked(b"x")


@pytest.mark.parametrize(
    "verb", ["MAIL", "rcpt", "DATA", "BDAT", "STARTTLS", "AUTH", "EHLO", "QUIT"]
)
def test_generic_command_cannot_impersonate_a_stateful_one(verb: str) -> None:
    with pytest.raises(LocalProtocolError, match="own command class"):
        sc.Command(verb, "x")


def test_starttls_only_when_offered() -> None:
    conn = ready(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError, match="STARTTLS was not offered"):
        conn.send(sc.StartTLS())


def test_fast_reply_construction_is_a_real_reply() -> None:
    """next_event builds replies through the slot descriptors; they equal Reply(...)."""
    conn = ready(EHLO_PLAIN)
    conn.send(sc.Noop())
    [made] = feed(conn, b"250 2.0.0 ok\r\n")
    assert isinstance(made, sc.Reply)
    built = sc.Reply(sc.Noop(), 250, (b"2.0.0 ok",))
    assert made == built
    assert hash(made) == hash(built)
    assert made.enhanced == built.enhanced == (2, 0, 0)
    assert made.recipient is None
    with pytest.raises(AttributeError):
        made.code = 500  # type: ignore[misc]


@pytest.mark.parametrize("code", [220, 354, 421, 554])
def test_reply_class_properties_of_both_reply_events(code: int) -> None:
    klass = code // 100
    for event in (sc.Greeting(code, (b"x.1.1 y",)), sc.Reply(sc.Noop(), code, (b"x.1.1 y",))):
        flags = (event.is_positive, event.is_intermediate, event.is_transient, event.is_permanent)
        assert flags == (klass == 2, klass == 3, klass == 4, klass == 5)
        assert event.enhanced is None
        assert event.text == "x.1.1 y"
    # An enhanced code whose class matches the reply's, on either event.
    text = b"%d.1.1 y" % klass
    assert sc.Greeting(code, (text,)).enhanced == sc.Reply(sc.Noop(), code, (text,)).enhanced
    assert sc.Greeting(code, ()).enhanced is None


def test_a_close_instead_of_the_tls_handshake_is_reported() -> None:
    # The server accepted STARTTLS, then closed: no handshake will come.
    conn = ready(b"250-srv.test\r\n250 STARTTLS\r\n")
    conn.send(sc.StartTLS())
    feed(conn, b"220 go ahead\r\n")
    assert state_of(conn) is State.TLS
    conn.receive_data(b"")
    event = conn.next_event()
    assert isinstance(event, sc.ConnectionClosed)
    assert state_of(conn) is State.CLOSED
