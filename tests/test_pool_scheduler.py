"""The pool's decisions (:mod:`smtp_core.pool`), played by hand and by a simulator.

The scheduler reads no clock and does no I/O, so the first half of this file
plays the runner step by step: poll, start, report, at chosen times.  The
second half lets hypothesis draw a whole world (arrivals, how long each action
takes, what the servers answer; see ``tests/pool_sim.py``) and checks the
pool's promises on every run.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import given, note, settings

import smtp_core as sc
from smtp_core.pool import (
    Action,
    Check,
    Close,
    Message,
    MessageResult,
    Open,
    Policy,
    PoolClosed,
    RecipientOutcome,
    Scheduler,
    Send,
)
from tests.pool_sim import (
    SENDER,
    Ended,
    Scenario,
    Started,
    Trace,
    reply,
    scenarios,
    simulate,
    too_many,
    transaction,
)

A = TypeVar("A", Open, Send, Check, Close)


def message(*to: str, key: object = None) -> Message:
    return Message(SENDER, to or ("rcpt@example.test",), b"Hi\r\n", key=key)


def only(actions: list[Action], kind: type[A]) -> A:
    """The one action polled, which must be a ``kind``."""
    assert len(actions) == 1, actions
    action = actions[0]
    assert isinstance(action, kind), actions
    return action


def is_done(scheduler: Scheduler) -> bool:
    return scheduler.done  # read through a call: mypy would narrow the property


def accepted(send: Send) -> sc.TransactionResult:
    return transaction(send, [250] * len(send.recipients))


def ready(scheduler: Scheduler, now: float = 0.0) -> Open:
    """Poll for one Open and report it opened."""
    action = only(scheduler.poll(now), Open)
    scheduler.report(action, reply(250, sc.Ehlo("client.test")), now)
    return action


def statuses(result: MessageResult) -> list[str]:
    return [o.status for o in result.outcomes]


# -- the values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_connections", 0),
        ("max_messages", 0),
        ("max_attempts", 0),
        ("rate_limit", 0),
        ("max_recipients", 0),
        ("idle_timeout", -1.0),
        ("check_after", math.nan),
        ("backoff", -0.5),
        ("max_backoff", -1.0),
        ("rate_interval", 0.0),
        ("rate_interval", math.nan),
        ("backoff_factor", 0.5),
    ],
)
def test_policy_validation_errors(field: str, value: float) -> None:
    """A limit that makes no sense (zero, negative, NaN) is refused when the Policy is built."""
    with pytest.raises(ValueError, match=field):
        Policy(**{field: value})  # type: ignore[arg-type]


def test_policy_delay_grows_by_the_factor_up_to_max_backoff() -> None:
    """delay(n) is the wait after try n: backoff, then times backoff_factor, capped."""
    policy = Policy(backoff=2.0, backoff_factor=3.0, max_backoff=20.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [2.0, 6.0, 18.0, 20.0]
    assert Policy(rate_limit=None, max_recipients=None, idle_timeout=0, check_after=0)


def test_message_refuses_what_cannot_be_sent_and_keeps_tuples() -> None:
    """A Message needs recipients (not one str) and bytes content; sequences become tuples."""
    with pytest.raises(TypeError, match="not one str"):
        Message(SENDER, "rcpt@example.test", b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one recipient"):
        Message(SENDER, (), b"x")
    with pytest.raises(TypeError, match="bytes"):
        Message(SENDER, ("a@example.test",), "x")  # type: ignore[arg-type]
    built = Message(SENDER, ["a@example.test"], b"x", ["SIZE=1"], ["NOTIFY=NEVER"])  # type: ignore[arg-type]
    assert built.recipients == ("a@example.test",)
    assert built.mail_params == ("SIZE=1",)
    assert built.rcpt_params == ("NOTIFY=NEVER",)


def test_message_result_reads_status_accepted_unknown_failed() -> None:
    """One status if all share it, else "partial"; the accepted, unknown and failed at a glance."""
    m = message("a@example.test", "b@example.test", "c@example.test")
    refused = RecipientOutcome("c@example.test", "refused", reply(550))
    result = MessageResult(
        m,
        (
            RecipientOutcome("a@example.test", "accepted"),
            RecipientOutcome("b@example.test", "unknown"),
            refused,
        ),
    )
    assert result.status == "partial"
    assert result.accepted == ("a@example.test",)
    assert result.unknown == ("b@example.test",)
    assert set(result.failed) == {"b@example.test", "c@example.test"}
    assert result.failed["c@example.test"] is refused
    assert MessageResult(m, (refused,)).status == "refused"


# -- one connection, one message -----------------------------------------------------


def test_a_message_opens_a_connection_is_sent_and_finish_closes_with_quit() -> None:
    """Open, Send, the result; idle until finish(); then Close with QUIT and done."""
    s = Scheduler()
    m = message(key="k")
    s.submit(m)
    assert s.unsettled == 1
    opened = ready(s)
    assert s.connections == 1
    send = only(s.poll(0.0), Send)
    assert (send.conn, send.message, send.recipients, send.attempt) == (
        opened.conn,
        m,
        m.recipients,
        1,
    )
    s.report(send, accepted(send), 1.0)
    [result] = s.results()
    assert result.message is m and result.status == "accepted"
    assert result.outcomes[0].reply is not None and result.outcomes[0].reply.code == 250
    assert s.results() == []  # drained
    assert s.poll(1.0) == []
    assert s.deadline() == 1.0 + Policy().idle_timeout
    assert not is_done(s)
    s.finish()
    close = only(s.poll(1.0), Close)
    assert close.quit
    s.report(close, None, 1.5)
    assert is_done(s) and s.connections == 0 and s.unsettled == 0


def test_submit_after_finish_raises_pool_closed() -> None:
    """finish() means no more messages: submit() refuses with PoolClosed."""
    s = Scheduler()
    s.finish()
    assert is_done(s)
    with pytest.raises(PoolClosed):
        s.submit(message())


def test_nothing_to_wait_for_means_no_deadline() -> None:
    """With no connection and no work, deadline() is None: poll again only when told."""
    s = Scheduler()
    assert s.poll(0.0) == [] and s.deadline() is None


def test_connections_opened_never_exceed_max_connections_nor_the_work() -> None:
    """Five messages, max_connections=2: two Opens; one message: one Open."""
    s = Scheduler(Policy(max_connections=2))
    for _ in range(5):
        s.submit(message())
    assert [type(a) for a in s.poll(0.0)] == [Open, Open]
    assert s.poll(0.0) == []
    s = Scheduler(Policy(max_connections=2))
    s.submit(message())
    only(s.poll(0.0), Open)


def test_max_recipients_splits_a_message_into_transactions_with_one_result() -> None:
    """max_recipients=2 sends five recipients in three transactions; one result, in order."""
    s = Scheduler(Policy(max_recipients=2, max_connections=1))
    m = message(*(f"r{i}@example.test" for i in range(5)))
    s.submit(m)
    ready(s)
    sent = []
    for t in (1.0, 2.0, 3.0):
        send = only(s.poll(t), Send)
        sent.append(send.recipients)
        s.report(send, accepted(send), t)
    assert [len(r) for r in sent] == [2, 2, 1]
    [result] = s.results()
    assert [o.recipient for o in result.outcomes] == list(m.recipients)


# -- idle connections: NOOP, idle timeout, most recently used -------------------------


def test_idle_past_check_after_is_checked_with_noop_before_it_takes_a_message() -> None:
    """A connection idle past check_after is checked with NOOP before it takes a message."""
    s = Scheduler(Policy(check_after=10.0))
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, accepted(send), 1.0)
    s.submit(message())
    assert s.deadline() == 11.0  # the NOOP would be due then
    second = only(s.poll(5.0), Send)  # idle 4 s: no NOOP needed
    s.report(second, accepted(second), 6.0)
    s.submit(message())
    check = only(s.poll(20.0), Check)
    assert check.conn == send.conn
    assert s.poll(20.0) == []  # the message waits for the NOOP, no second connection
    s.report(check, reply(250), 20.5)
    assert only(s.poll(20.5), Send).conn == send.conn


def test_connection_just_opened_or_checked_takes_the_message_even_with_zero_timers() -> None:
    """check_after=0 checks before every reuse but not in a loop; idle_timeout=0 still sends.

    Before the fix, check_after=0 answered each NOOP with another NOOP and
    idle_timeout=0 closed each new connection unused, forever.
    """
    s = Scheduler(Policy(check_after=0.0, max_connections=1))
    s.submit(message())
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)  # just opened: no NOOP
    s.report(send, accepted(send), 1.0)
    check = only(s.poll(1.0), Check)  # reused: NOOP first
    s.report(check, reply(250), 1.0)
    only(s.poll(1.0), Send)

    s = Scheduler(Policy(idle_timeout=0.0))
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, accepted(send), 1.0)
    assert only(s.poll(1.0), Close).quit  # idle at once, closed at once


@pytest.mark.parametrize(
    ("outcome", "quit"),
    [
        (reply(421), False),
        (reply(451), True),
        (ConnectionResetError("reset"), False),
    ],
)
def test_a_failed_noop_closes_the_connection_and_a_fresh_one_takes_the_message(
    outcome: sc.Reply | OSError, quit: bool
) -> None:
    """A 421 reply closes the connection without QUIT (RFC 5321 §3.8); another refusal with QUIT.

    A connection that fails its NOOP is closed, never sent on; the message
    goes to a new connection.
    """
    s = Scheduler(Policy(check_after=1.0, max_connections=1))
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, accepted(send), 0.0)
    s.submit(message())
    check = only(s.poll(5.0), Check)
    s.report(check, outcome, 5.5)
    assert only(s.poll(5.5), Close) == Close(check.conn, quit)
    s.report(Close(check.conn, quit), None, 6.0)
    opening = only(s.poll(6.0), Open)
    s.report(opening, None, 6.0)
    assert only(s.poll(6.0), Send).conn == opening.conn


def test_idle_connection_closes_with_quit_at_idle_timeout() -> None:
    """An idle connection closes (with QUIT) once idle_timeout passed; deadline() says when."""
    s = Scheduler(Policy(idle_timeout=30.0))
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, accepted(send), 2.0)
    assert s.deadline() == 32.0
    assert s.poll(31.0) == []
    assert only(s.poll(32.0), Close) == Close(send.conn, True)


def test_a_poll_at_the_deadline_acts_even_where_floats_round() -> None:
    """Woken at deadline() = idle_since + idle_timeout, poll closes the connection.

    3.1 + 1.0 is 4.1, but 4.1 - 3.1 < 1.0: before the fix poll() measured
    the idle time by subtraction, did nothing, and left deadline() in the
    past, so a runner spun (found by the simulator).
    """
    s = Scheduler(Policy(idle_timeout=1.0, check_after=0.5))
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, accepted(send), 3.1)
    deadline = s.deadline()
    assert deadline is not None and deadline - 3.1 < 1.0
    assert only(s.poll(deadline), Close).conn == send.conn


def test_most_recently_used_connection_takes_the_next_message() -> None:
    """Of two idle connections the warmer one sends; the colder one times out first."""
    s = Scheduler(Policy(max_connections=2, idle_timeout=60.0))
    s.submit(message())
    s.submit(message())
    opens = s.poll(0.0)
    for action in opens:
        s.report(action, None, 0.0)
    first, second = s.poll(0.0)
    assert isinstance(first, Send) and isinstance(second, Send)
    s.report(first, accepted(first), 1.0)
    s.report(second, accepted(second), 2.0)
    s.submit(message())
    assert only(s.poll(3.0), Send).conn == second.conn
    assert only(s.poll(61.0), Close).conn == first.conn


def test_max_messages_closes_the_connection_with_quit_and_opens_a_fresh_one() -> None:
    """After max_messages transactions a connection closes (QUIT) and a new one takes over."""
    s = Scheduler(Policy(max_messages=2, max_connections=1))
    for _ in range(3):
        s.submit(message())
    opened = ready(s)
    for t in (1.0, 2.0):
        send = only(s.poll(t), Send)
        s.report(send, accepted(send), t)
    close = only(s.poll(2.0), Close)
    assert close == Close(opened.conn, True)
    s.report(close, None, 2.5)
    assert only(s.poll(2.5), Open).conn != opened.conn


# -- the rate limit -------------------------------------------------------------------


def test_rate_limit_is_a_sliding_window_over_the_pool() -> None:
    """rate_limit=2 per 10 s: the third transaction waits until the first is 10 s old."""
    s = Scheduler(Policy(rate_limit=2, rate_interval=10.0, max_connections=1))
    for _ in range(3):
        s.submit(message())
    ready(s)
    for t in (0.0, 1.0):
        send = only(s.poll(t), Send)
        s.report(send, accepted(send), t + 0.5)
    assert s.poll(2.0) == []
    assert s.deadline() == 10.0
    assert s.poll(9.9) == []
    only(s.poll(10.0), Send)


def test_no_noop_and_no_new_connection_while_the_rate_limit_holds() -> None:
    """While the rate limit holds a message back, no connection opens and none is NOOP-checked.

    A NOOP then would be stale by the time the message may go; before the
    fix, check_after=0 NOOPed in a loop for the whole window.
    """
    s = Scheduler(Policy(rate_limit=1, rate_interval=100.0, check_after=1.0, idle_timeout=500.0))
    for _ in range(2):
        s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, accepted(send), 1.0)
    assert s.poll(50.0) == []
    assert s.deadline() == 100.0
    check = only(s.poll(100.0), Check)
    s.report(check, reply(250), 100.5)
    only(s.poll(100.5), Send)


# -- what a transaction's replies decide ---------------------------------------------


def test_452_after_some_recipients_were_accepted_carries_the_rest_at_once_without_a_try() -> None:
    """452 after some recipients were accepted carries the rest into a further transaction at once.

    RFC 5321 §4.5.3.1.10: the client sends the message to the recipients
    taken, then the others in a further transaction.  It needs no backoff and
    costs no try (the attempt number stays), and the accepted never get a second copy.
    """
    s = Scheduler(Policy(max_attempts=1))
    m = message("a@example.test", "b@example.test", "c@example.test")
    s.submit(m)
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, transaction(send, [250, 452, 452]), 1.0)
    assert s.results() == []
    carry = only(s.poll(1.0), Send)
    assert (carry.recipients, carry.attempt) == (("b@example.test", "c@example.test"), 1)
    s.report(carry, transaction(carry, [250, 452]), 2.0)
    last = only(s.poll(2.0), Send)
    assert (last.recipients, last.attempt) == (("c@example.test",), 1)
    s.report(last, accepted(last), 3.0)
    [result] = s.results()
    assert result.status == "accepted"
    assert [o.attempts for o in result.outcomes] == [1, 1, 1]


def test_552_with_5_5_3_is_taken_as_452() -> None:
    """RFC 5321 §4.5.3.1.10: a 552 "too many recipients" (5.5.3) is carried over like 452."""
    s = Scheduler()
    s.submit(message("a@example.test", "b@example.test"))
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, transaction(send, [250, 552]), 1.0)
    assert only(s.poll(1.0), Send).recipients == ("b@example.test",)


def test_too_many_recipients_with_nothing_delivered_is_retried_after_backoff_not_refused() -> None:
    """452 or 552 5.5.3 in a transaction that delivered nothing: a temporary failure, retried.

    RFC 5321 §4.5.3.1.10 asks clients to treat the 552 as temporary; before
    the fix it was final ("refused") whenever the end of data failed.
    """
    s = Scheduler(Policy(backoff=5.0))
    s.submit(message("a@example.test", "b@example.test", "c@example.test"))
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, transaction(send, [250, 552, 452], final=451), 1.0)
    assert s.results() == [] and s.poll(1.0) == []
    assert s.deadline() == 6.0
    retry = only(s.poll(6.0), Send)
    assert (retry.recipients, retry.attempt) == (send.recipients, 2)


def test_temporary_failure_is_retried_after_backoff_then_deferred_after_max_attempts() -> None:
    """A 4yz reply is tried again delay(n) after try n; after max_attempts it ends "deferred"."""
    s = Scheduler(Policy(max_attempts=3, backoff=2.0, backoff_factor=2.0))
    s.submit(message())
    ready(s)
    t = 0.0
    for attempt in (1, 2):
        send = only(s.poll(t), Send)
        assert send.attempt == attempt
        s.report(send, transaction(send, [450]), t + 1.0)
        t += 1.0 + s.policy.delay(attempt)  # 2 s, then 4 s
        assert s.deadline() == t and s.poll(t - 0.01) == [] and s.results() == []
    last = only(s.poll(t), Send)
    assert last.attempt == 3
    s.report(last, transaction(last, [450]), t + 1.0)
    [result] = s.results()
    [outcome] = result.outcomes
    assert (outcome.status, outcome.attempts) == ("deferred", 3)
    assert outcome.reply is not None and outcome.reply.code == 450


def test_each_deferred_recipient_keeps_its_own_reply() -> None:
    """Recipients deferred by one transaction each keep the 4yz reply they got.

    Before the fix, all of them got the last 4yz reply of the transaction.
    """
    s = Scheduler(Policy(max_attempts=1))
    s.submit(message("a@example.test", "b@example.test"))
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, transaction(send, [450, 451]), 1.0)
    [result] = s.results()
    assert statuses(result) == ["deferred", "deferred"]
    assert [o.reply.code if o.reply else None for o in result.outcomes] == [450, 451]


def test_a_connection_failure_on_the_last_try_ends_deferred_with_the_error() -> None:
    """A connection lost on try max_attempts ends "deferred", carrying the exception."""
    s = Scheduler(Policy(max_attempts=1))
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    lost = sc.ServerDisconnected("gone")
    s.report(send, lost, 1.0)
    [outcome] = s.results()[0].outcomes
    assert (outcome.status, outcome.error, outcome.reply, outcome.attempts) == (
        "deferred",
        lost,
        None,
        1,
    )


def test_permanent_refusal_and_refused_mail_are_final() -> None:
    """A 5yz for a recipient (or for MAIL) settles it as "refused" with that reply, no retry."""
    s = Scheduler(Policy(max_connections=1))
    s.submit(message("a@example.test", "b@example.test"))
    s.submit(message("c@example.test"))
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, transaction(send, [250, 550]), 1.0)
    send = only(s.poll(1.0), Send)
    s.report(send, transaction(send, [250], mail=550), 2.0)
    first, second = s.results()
    assert statuses(first) == ["accepted", "refused"]
    assert statuses(second) == ["refused"]
    assert second.outcomes[0].reply is not None and second.outcomes[0].reply.code == 550


def test_a_421_reply_closes_the_connection_without_quit() -> None:
    """A 421 reply closes the connection without QUIT (RFC 5321 §3.8); its recipients are retried.

    Nothing is opened until the retry is due.
    """
    s = Scheduler(Policy(backoff=1.0))
    s.submit(message("a@example.test", "b@example.test"))
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, transaction(send, [250, 421]), 1.0)
    assert only(s.poll(1.0), Close) == Close(send.conn, False)
    assert s.deadline() == 2.0
    assert only(s.poll(2.0), Open).conn != send.conn


def test_outcome_unknown_is_never_retried() -> None:
    """Once the dot was sent, no verdict means "unknown", never a second copy.

    RFC 5321 §4.5.4.1 and §6.1: a message the server may have taken must not
    be sent again.  Recipients LMTP confirmed before the failure are accepted.
    The connection is closed without QUIT.
    """
    s = Scheduler(Policy(max_attempts=5))
    s.submit(message("a@example.test", "b@example.test"))
    ready(s)
    send = only(s.poll(0.0), Send)
    lost = sc.OutcomeUnknown(
        sc.StageTimeout(sc.Stage.DATA_END, 600.0), ("a@example.test",), ("b@example.test",)
    )
    s.report(send, lost, 1.0)
    [result] = s.results()
    assert statuses(result) == ["accepted", "unknown"]
    assert result.outcomes[1].error is lost
    assert only(s.poll(1.0), Close) == Close(send.conn, False)
    s.finish()
    assert s.deadline() is None


def test_outcome_unknown_keeps_the_recipients_refused_before_the_dot_refused() -> None:
    """A recipient refused at RCPT was never delivered, whatever came after the dot.

    Only the recipients the server had accepted when the verdict failed to
    come are "unknown"; the refused one is "refused" (OutcomeUnknown keeps
    no reply for it, so the outcome carries the exception).
    """
    s = Scheduler()
    s.submit(message("a@example.test", "no@example.test"))
    ready(s)
    send = only(s.poll(0.0), Send)
    lost = sc.OutcomeUnknown(sc.ServerDisconnected("gone"), (), ("a@example.test",))
    s.report(send, lost, 1.0)
    [result] = s.results()
    assert statuses(result) == ["unknown", "refused"]
    assert result.outcomes[1].reply is None
    assert result.outcomes[1].error is lost


@pytest.mark.parametrize(
    "error",
    [
        sc.ServerDisconnected("gone"),
        ConnectionResetError("reset"),
        sc.StageTimeout(sc.Stage.RCPT, 5.0),
        sc.RemoteProtocolError("garbage"),
        EOFError(),
    ],
)
def test_connection_failure_before_the_dot_is_retried_on_a_new_connection(
    error: BaseException,
) -> None:
    """A connection lost before the end of data delivered nothing: close (no QUIT), retry later."""
    s = Scheduler(Policy(backoff=3.0))
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, error, 1.0)
    assert only(s.poll(1.0), Close) == Close(send.conn, False)
    assert s.results() == [] and s.deadline() == 4.0
    assert only(s.poll(4.0), Open).conn != send.conn


def test_local_protocol_error_fails_the_message_and_keeps_the_connection() -> None:
    """LocalProtocolError: the message is refused locally ("error"); the connection goes on."""
    s = Scheduler(Policy(max_connections=1))
    s.submit(message())
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    refused = sc.LocalProtocolError("no SMTPUTF8")
    s.report(send, refused, 1.0)
    [result] = s.results()
    assert result.status == "error" and result.outcomes[0].error is refused
    assert only(s.poll(1.0), Send).conn == send.conn


def test_unexpected_error_fails_the_message_and_closes_without_quit() -> None:
    """Any other exception from a Send settles it as "error" and drops the connection."""
    s = Scheduler()
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, ValueError("bug"), 1.0)
    assert s.results()[0].status == "error"
    assert only(s.poll(1.0), Close) == Close(send.conn, False)


def test_a_send_reported_with_no_outcome_is_a_runner_bug() -> None:
    """A Send must end in a TransactionResult or an exception; None trips an assertion."""
    s = Scheduler()
    s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    with pytest.raises(AssertionError):
        s.report(send, None, 1.0)


# -- opening fails -------------------------------------------------------------------


class _CertificateError(OSError):
    verify_code = 62  # as ssl.SSLCertVerificationError has


@pytest.mark.parametrize(
    "error",
    [
        sc.ReplyError(sc.Greeting(554, (b"go away",))),
        sc.LocalProtocolError("TLS required, no STARTTLS offered"),
        _CertificateError("hostname mismatch"),
    ],
)
def test_permanent_open_failure_with_no_live_connection_fails_every_waiting_message(
    error: BaseException,
) -> None:
    """A permanent open failure with no live connection fails every waiting message as error.

    Not thousands of doomed connects: a 5yz greeting, a local refusal (TLS
    required) or a certificate that does not verify will not mend.
    """
    s = Scheduler(Policy(max_connections=1))
    for _ in range(50):
        s.submit(message())
    opening = only(s.poll(0.0), Open)
    s.report(opening, error, 1.0)
    results = s.results()
    assert len(results) == 50
    assert {r.status for r in results} == {"error"}
    assert all(r.outcomes[0].error is error and r.outcomes[0].attempts == 0 for r in results)
    assert only(s.poll(1.0), Close) == Close(opening.conn, False)
    s.report(Close(opening.conn, False), None, 1.0)
    s.submit(message())  # before the backoff ends: at once the same way, no connection
    assert s.poll(1.5) == []
    late = s.results()
    assert [r.status for r in late] == ["error"]
    assert late[0].outcomes[0].error is error
    s.submit(message())  # after it: one probe
    probe = only(s.poll(2.0), Open)
    s.report(probe, None, 2.5)  # it opens: the pool works again
    assert isinstance(only(s.poll(2.5), Send), Send)


def test_transient_open_failures_back_off_probe_one_at_a_time_then_defer() -> None:
    """Failed opens back off, then probe one at a time; max_attempts failures defer the waiting.

    The failures of one burst of opens count as one try: a server busy for a
    moment refuses them all at once, and that is one failure, not three.
    """
    s = Scheduler(Policy(max_connections=3, max_attempts=3, backoff=1.0, backoff_factor=2.0))
    s.submit(message())
    s.submit(message())
    a, b = s.poll(0.0)
    assert isinstance(a, Open) and isinstance(b, Open)
    s.report(a, sc.ReplyError(sc.Greeting(421, (b"busy",))), 1.0)
    assert only(s.poll(1.0), Close) == Close(a.conn, False)  # no new Open before 2.0
    assert s.deadline() == 2.0
    assert s.poll(2.0) == []  # b is still opening: one probe at a time
    s.report(b, ConnectionRefusedError(), 2.0)  # the same burst: still one failure
    close, probe = s.poll(2.0)
    assert close == Close(b.conn, False)
    assert isinstance(probe, Open)
    for closed in (Close(a.conn, False), close):
        s.report(closed, None, 2.0)
    s.report(probe, ConnectionRefusedError(), 3.0)  # second failure: wait delay(2) = 2
    s.report(only(s.poll(3.0), Close), None, 3.0)
    assert s.deadline() == 5.0
    probe = only(s.poll(5.0), Open)
    s.report(probe, ConnectionRefusedError(), 6.0)  # third: max_attempts
    results = s.results()
    assert [r.status for r in results] == ["deferred", "deferred"]
    assert results[0].outcomes[0].attempts == 0
    s.report(only(s.poll(6.0), Close), None, 6.0)
    s.submit(message())  # before the next probe (6 + delay(3) = 10): deferred at once
    assert s.poll(7.0) == []
    assert [r.status for r in s.results()] == ["deferred"]
    s.submit(message())
    only(s.poll(10.0), Open)


def test_open_failure_with_a_live_connection_leaves_the_messages_to_it() -> None:
    """A connection that works carries on; a failed second open fails no message."""
    s = Scheduler(Policy(max_connections=2, max_attempts=1))
    for _ in range(3):
        s.submit(message())
    first, second = s.poll(0.0)
    s.report(first, None, 0.0)
    send = only(s.poll(0.0), Send)
    s.report(second, sc.ReplyError(sc.Greeting(554, (b"no",))), 0.5)
    assert s.results() == []
    only(s.poll(0.5), Close)
    s.report(send, accepted(send), 1.0)
    only(s.poll(1.0), Send)


def test_open_failures_while_others_are_still_opening_fail_no_message() -> None:
    """A server taking two connections refuses the third at once: the two still opening carry on.

    Before the fix, three quick 421 greetings out of five opens counted as
    max_attempts failures with "no live connection" and deferred every message.
    """
    s = Scheduler(Policy(max_connections=5, max_attempts=3))
    for _ in range(10):
        s.submit(message())
    opens = s.poll(0.0)
    assert len(opens) == 5
    busy = sc.ReplyError(sc.Greeting(421, (b"4.7.0 too many connections",)))
    for action in opens[2:]:
        s.report(action, busy, 0.1)
    assert s.results() == []
    for action in opens[:2]:
        s.report(action, None, 0.2)
    sends = [a for a in s.poll(0.2) if isinstance(a, Send)]
    assert {a.conn for a in sends} == {opens[0].conn, opens[1].conn}


def test_a_successful_open_resets_the_backoff_of_failed_opens() -> None:
    """After an open succeeds, the next failure waits delay(1) again, not a longer one."""
    s = Scheduler(Policy(max_connections=1, backoff=1.0, backoff_factor=4.0, max_messages=1))
    s.submit(message())
    s.submit(message())
    opening = only(s.poll(0.0), Open)
    s.report(opening, ConnectionRefusedError(), 0.0)
    s.report(only(s.poll(0.0), Close), None, 0.0)
    ready(s, 1.0)
    send = only(s.poll(1.0), Send)
    s.report(send, accepted(send), 2.0)
    s.report(only(s.poll(2.0), Close), None, 2.0)  # max_messages=1
    opening = only(s.poll(2.0), Open)
    s.report(opening, ConnectionRefusedError(), 3.0)
    s.poll(3.0)
    assert s.deadline() == 4.0


# -- finish and cancel ---------------------------------------------------------------


def test_finish_keeps_a_connection_for_a_retry_that_is_due() -> None:
    """After finish(), an idle connection stays while a retry waits, and closes after it."""
    s = Scheduler(Policy(backoff=5.0))
    s.submit(message())
    s.finish()
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, transaction(send, [450]), 1.0)
    assert s.poll(1.0) == []
    retry = only(s.poll(6.0), Send)
    s.report(retry, accepted(retry), 7.0)
    s.report(only(s.poll(7.0), Close), None, 7.0)
    assert is_done(s)


def test_cancel_fails_the_waiting_and_lets_the_transaction_under_way_end() -> None:
    """cancel(): waiting messages end as "error" (PoolClosed); the one under way ends as it ends."""
    s = Scheduler(Policy(max_connections=1, backoff=1.0))
    for _ in range(3):
        s.submit(message())
    ready(s)
    send = only(s.poll(0.0), Send)
    s.cancel("shutting down")
    waiting = s.results()
    assert [r.status for r in waiting] == ["error", "error"]
    error = waiting[0].outcomes[0].error
    assert isinstance(error, PoolClosed) and str(error) == "shutting down"
    assert waiting[0].outcomes[0].attempts == 0
    with pytest.raises(PoolClosed):
        s.submit(message())
    s.report(send, transaction(send, [450]), 1.0)  # no retry after cancel
    [under_way] = s.results()
    assert under_way.status == "deferred" and under_way.outcomes[0].attempts == 1
    s.report(only(s.poll(1.0), Close), None, 1.0)
    assert is_done(s)


def test_cancel_begins_no_further_transaction_for_a_452() -> None:
    """After cancel(), recipients refused with 452 end "deferred": no new transaction begins."""
    s = Scheduler()
    s.submit(message("a@example.test", "b@example.test"))
    ready(s)
    send = only(s.poll(0.0), Send)
    s.cancel()
    s.report(send, transaction(send, [250, 452]), 1.0)
    [result] = s.results()
    assert statuses(result) == ["accepted", "deferred"]
    assert result.outcomes[1].reply is not None and result.outcomes[1].reply.code == 452
    assert only(s.poll(1.0), Close).quit


def test_a_carried_over_recipient_cancelled_while_waiting_counts_its_try() -> None:
    """A 452 carry-over held back (rate limit) then cancelled reports the try it had."""
    s = Scheduler(Policy(rate_limit=1, rate_interval=100.0))
    s.submit(message("a@example.test", "b@example.test"))
    ready(s)
    send = only(s.poll(0.0), Send)
    s.report(send, transaction(send, [250, 452]), 1.0)
    assert s.poll(1.0) == []  # held back by the rate limit
    s.cancel()
    [result] = s.results()
    assert statuses(result) == ["accepted", "error"]
    assert [o.attempts for o in result.outcomes] == [1, 1]


# -- properties, over worlds hypothesis draws (tests/pool_sim.py) --------------------

# Each property is a function of one run (a Trace), raising AssertionError
# when the run breaks it; one test checks them all on every run, so each run
# (whose drawing costs more than its checking) serves every property.


def _the_scheduler_never_spins_and_every_run_ends(trace: Trace) -> None:
    """After poll(now), deadline() is None or later than now, and every run reaches done.

    So a runner that sleeps until deadline() never wakes where nothing
    happens, and nothing is left waiting for a wake-up that never comes.
    """
    assert not trace.spins, f"spin: {trace.spins}"
    assert trace.stall is None, f"stall: {trace.stall}"
    assert trace.done, f"not done after {trace.steps} steps"


def _never_more_than_max_connections(trace: Trace) -> None:
    """Connections counted from Open begun to Close ended never exceed max_connections."""
    live = 0
    for event in trace.events:
        if isinstance(event, Started) and isinstance(event.action, Open):
            live += 1
            assert live <= trace.policy.max_connections, f"{live} connections at {event.time}"
        elif isinstance(event, Ended) and isinstance(event.action, Close):
            live -= 1


def _the_rate_limit_holds_in_every_window(trace: Trace) -> None:
    """For every Send begun at t, at most rate_limit Sends began in [t, t + rate_interval)."""
    limit, interval = trace.policy.rate_limit, trace.policy.rate_interval
    if limit is None:
        return
    begun = sorted(
        e.time for e in trace.events if isinstance(e, Started) and isinstance(e.action, Send)
    )
    for t in begun:
        window = [u for u in begun if t <= u < t + interval]
        assert len(window) <= limit, f"{len(window)} transactions begun in [{t}, {t + interval})"


def _every_message_gets_exactly_one_result(trace: Trace) -> None:
    """One MessageResult per message submitted, one outcome per recipient, in order."""
    counts = Counter(id(r.message) for r in trace.results)
    for m in trace.messages:
        assert counts[id(m)] == 1, f"message {m.key}: {counts[id(m)]} results"
    assert len(trace.results) == len(trace.messages)
    for result in trace.results:
        assert tuple(o.recipient for o in result.outcomes) == result.message.recipients


def _nothing_is_sent_again_after_its_final_dot(trace: Trace) -> None:
    """A recipient accepted, or in a Send whose outcome was unknown, is in no later Send.

    RFC 5321 §4.5.4.1 and §6.1: once the end of data was sent and no verdict
    came, the message may have been delivered; sending it again may deliver it twice.
    """
    final: set[str] = set()
    for event in trace.events:
        if not isinstance(event.action, Send):
            continue
        if isinstance(event, Started):
            again = final.intersection(event.action.recipients)
            assert not again, f"sent again at {event.time}: {sorted(again)}"
        elif isinstance(event.outcome, sc.OutcomeUnknown):
            final.update(event.action.recipients)
        elif isinstance(event.outcome, sc.TransactionResult):
            final.update(event.outcome.accepted)


def _a_connection_carries_at_most_max_messages(trace: Trace) -> None:
    """No connection is given more than max_messages Sends."""
    sends = Counter(
        e.action.conn for e in trace.events if isinstance(e, Started) and isinstance(e.action, Send)
    )
    for conn, count in sends.items():
        assert count <= trace.policy.max_messages, f"connection {conn} carried {count}"


def _after(action: Action, outcome: object) -> str:
    """The state a connection is left in when ``action`` ends with ``outcome``."""
    if isinstance(action, Close):
        return "closed"
    if isinstance(outcome, sc.Reply) and not isinstance(action, Send):
        if outcome.is_positive:
            return "idle"
        return "broken" if outcome.code == 421 else "refusing"
    if isinstance(outcome, sc.TransactionResult):
        codes = [outcome.mail_reply.code] + [r.reply.code for r in outcome.recipients]
        codes += [r.rcpt_reply.code for r in outcome.recipients if r.rcpt_reply is not None]
        return "broken" if 421 in codes else "idle"
    if isinstance(outcome, sc.LocalProtocolError) and isinstance(action, Send):
        return "idle"  # refused before a byte was written
    return "broken" if isinstance(outcome, BaseException) else "idle"


def _sends_only_on_an_open_idle_connection_and_quit_only_on_a_sound_one(trace: Trace) -> None:
    """Send and Check only on a connection opened (or answered) and idle; one action at a time.

    None before its Open succeeded, none after its Close; a connection that
    failed, broke or said 421 is closed next, without QUIT (RFC 5321 §3.8);
    one that refused a NOOP, or is idle, is closed with QUIT.
    """
    state: dict[int, str] = {}
    for event in trace.events:
        action, now = event.action, event.time
        if isinstance(event, Ended):
            state[action.conn] = _after(action, event.outcome)
        elif isinstance(action, Open):
            assert action.conn not in state, f"connection {action.conn} opened twice"
            state[action.conn] = "opening"
        elif isinstance(action, Close):
            was = state.get(action.conn)
            assert was in ("idle", "broken", "refusing"), f"{action} at {now} on {was}"
            assert action.quit == (was != "broken"), f"{action} at {now} on {was}"
            state[action.conn] = "closing"
        else:
            was = state.get(action.conn)
            assert was == "idle", f"{action} at {now} on a connection {was}"
            state[action.conn] = "busy"


def _carried(end: Ended, to: str) -> bool:
    """True if ``to`` was left out of a transaction that delivered to others (452)."""
    result = end.outcome
    if not isinstance(result, sc.TransactionResult) or not result.delivered:
        return False
    return any(r.recipient == to and too_many(r.reply) for r in result.recipients)


def _tries(trace: Trace) -> dict[str, list[tuple[Started, Ended]]]:
    """Each recipient's Sends with their ends, in order."""
    tries: dict[str, list[tuple[Started, Ended]]] = defaultdict(list)
    for start, end in trace.sends():
        assert isinstance(start.action, Send)
        for to in start.action.recipients:
            tries[to].append((start, end))
    return tries


def _retries_wait_their_backoff_and_tries_stop_at_max_attempts(trace: Trace) -> None:
    """Try n + 1 begins no sooner than delay(n) after try n failed; no try past max_attempts.

    A 452 carry-over (RFC 5321 §4.5.3.1.10) is the exception: it may begin at
    once and keeps the try's number.
    """
    policy = trace.policy
    for to, tries in _tries(trace).items():
        first = tries[0][0].action
        assert isinstance(first, Send) and first.attempt == 1, f"{to}: first try {first}"
        for (before, end), (after, _) in itertools.pairwise(tries):
            assert isinstance(before.action, Send) and isinstance(after.action, Send)
            n, m = before.action.attempt, after.action.attempt
            assert m <= policy.max_attempts, f"{to}: try {m}"
            if _carried(end, to):
                assert m == n, f"{to}: a 452 carry-over counted as try {m} after {n}"
            else:
                assert m == n + 1, f"{to}: try {m} after {n}"
                due = end.time + policy.delay(n)
                assert after.time >= due, f"{to}: try {m} at {after.time}, due at {due}"


def _each_outcome_tells_what_its_last_transaction_said(trace: Trace) -> None:
    """A recipient's outcome follows its last Send; its attempts are that Send's try number."""
    tries = _tries(trace)
    for result in trace.results:
        for outcome in result.outcomes:
            to = outcome.recipient
            if not tries[to]:
                assert outcome.status in ("error", "deferred") and outcome.attempts == 0
                continue
            start, end = tries[to][-1]
            assert isinstance(start.action, Send)
            assert outcome.attempts == start.action.attempt, f"{to}: {outcome}"
            said = end.outcome
            if isinstance(said, sc.TransactionResult):
                [mine] = [r for r in said.recipients if r.recipient == to]
                if mine.status == "accepted":
                    expected: tuple[str, ...] = ("accepted",)
                elif mine.status == "permanent" and not too_many(mine.reply):
                    expected = ("refused",)
                else:
                    expected = ("deferred", "error")  # error: cancelled while waiting
                assert outcome.status in expected, f"{to}: {outcome} after {mine}"
                if outcome.error is None:  # settled by this reply, not by a later failure
                    assert outcome.reply == mine.reply, f"{to}: {outcome} after {mine}"
            elif isinstance(said, sc.OutcomeUnknown):
                status = "accepted" if to in said.delivered else "refused"
                status = "unknown" if to in said.unknown else status
                assert outcome.status == status, f"{to}: {outcome} after {said!r}"
            elif isinstance(said, sc.LocalProtocolError):
                assert outcome.status == "error" and outcome.error is said
            else:
                assert outcome.status in ("deferred", "error"), f"{to}: {outcome} after {said!r}"


PROPERTIES = (
    _the_scheduler_never_spins_and_every_run_ends,
    _never_more_than_max_connections,
    _the_rate_limit_holds_in_every_window,
    _every_message_gets_exactly_one_result,
    _nothing_is_sent_again_after_its_final_dot,
    _a_connection_carries_at_most_max_messages,
    _sends_only_on_an_open_idle_connection_and_quit_only_on_a_sound_one,
    _retries_wait_their_backoff_and_tries_stop_at_max_attempts,
    _each_outcome_tells_what_its_last_transaction_said,
)


@settings(deadline=None, max_examples=min(settings().max_examples, 300))
@given(scenarios())
def test_property_every_run_keeps_every_promise(scenario: Scenario) -> None:
    """Every one of PROPERTIES holds on every run drawn; a failure names the ones broken."""
    trace = simulate(scenario)
    broken: list[str] = []
    for check in PROPERTIES:
        try:
            check(trace)
        except AssertionError as error:
            broken.append(f"{check.__name__.strip('_')}: {error}")
    if broken:
        note(trace.story())
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("check", PROPERTIES, ids=lambda c: c.__name__.strip("_"))
def test_property_holds_on_a_plain_run(check: Callable[[Trace], None]) -> None:
    """Each property, by name, on a run where every server says yes at once."""
    arrivals = tuple((float(t), message(f"m{t}@example.test", key=t)) for t in range(4))
    check(simulate(Scenario(Policy(max_connections=2, rate_limit=2), arrivals, None, b"")))
