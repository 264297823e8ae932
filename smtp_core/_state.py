"""States and the one transition table; nothing else lives here.

Theory of operation
-------------------
The client's session moves through :class:`State` as the server answers.  The
table maps ``(state, input, outcome)`` to the next state, where the input is
the kind of command a reply answers (or a pseudo-input: the greeting, the end
of a TLS handshake) and the outcome is the class of the reply.  Sending is
checked against the same table: a command may be sent only if the table has a
row for it with the outcome it hopes for, in the state the session will be in
once every command already sent has been answered as hoped (with PIPELINING
that can be several commands ahead).  A row the table lacks is an error: on
the sending side, a ``LocalProtocolError`` before any byte exists; on the
receiving side, a ``RemoteProtocolError`` that latches.

Negative replies have rows too, because with PIPELINING a command can arrive
at the server after the one before it failed (RCPT after a refused MAIL).
The table is data: tests walk every pair, and a script could draw it.
"""

from __future__ import annotations

import enum

__all__ = ["FOLLOW", "REPLY_ONLY", "TRANSITIONS", "Input", "Outcome", "State"]


class State(enum.Enum):
    """Where the session stands, as confirmed by the server's replies."""

    # Enum's own __hash__ is Python code run on every table lookup; members
    # are singletons, so identity hashing is equivalent and runs in C.
    __hash__ = object.__hash__

    GREETING = "GREETING"  # connected, waiting for the 220 greeting
    CONNECTED = "CONNECTED"  # greeted (or TLS just started); no EHLO/HELO yet
    REFUSED = "REFUSED"  # the greeting was 554: only QUIT makes sense (RFC 5321 §3.1)
    READY = "READY"  # EHLO/HELO/LHLO accepted, no mail transaction open
    MAIL = "MAIL"  # MAIL accepted, no recipient yet
    RCPT = "RCPT"  # at least one recipient accepted
    DATA = "DATA"  # DATA drew 354: message content is being sent
    # DATA drew 354 although no recipient was accepted (a pipelined DATA after
    # refused RCPTs): RFC 2920 §3.1 has the client send the end-of-data
    # marker alone, and nothing else may follow.
    DATA_EMPTY = "DATA_EMPTY"
    BDAT = "BDAT"  # BDAT chunks accepted, the LAST one not yet
    ABORTED = "ABORTED"  # a BDAT chunk was refused: RSET must follow (RFC 3030 §3)
    TLS = "TLS"  # STARTTLS drew 220: the driver must start TLS now
    AUTH = "AUTH"  # AUTH drew 334: the client owes a response (RFC 4954 §4)
    CLOSED = "CLOSED"  # QUIT answered, or the server closed the connection
    ERROR = "ERROR"  # a protocol error happened; nothing more can be done


class Input(enum.Enum):
    """What a transition answers to: the kind of command, or a pseudo-input."""

    # Enum's own __hash__ is Python code run on every table lookup; members
    # are singletons, so identity hashing is equivalent and runs in C.
    __hash__ = object.__hash__

    GREETING = "greeting"
    HELLO = "EHLO/HELO/LHLO"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    CONTENT = "content"
    END_OF_DATA = "end of data"
    BDAT = "BDAT"
    BDAT_LAST = "BDAT LAST"
    RSET = "RSET"
    STARTTLS = "STARTTLS"
    TLS_DONE = "TLS handshake done"
    AUTH = "AUTH"
    AUTH_RESPONSE = "AUTH response"
    QUIT = "QUIT"
    OTHER = "NOOP/VRFY/EXPN/HELP/other"
    UNCHECKED = "unchecked bytes"  # Connection.send_unchecked: never changes the state


class Outcome(enum.Enum):
    """The class of a reply (RFC 5321 §4.2.1), or ``SENT`` for inputs that get none."""

    # Enum's own __hash__ is Python code run on every table lookup; members
    # are singletons, so identity hashing is equivalent and runs in C.
    __hash__ = object.__hash__

    POSITIVE = 2  # 2yz
    INTERMEDIATE = 3  # 3yz
    NEGATIVE = 4  # 4yz and 5yz: the command failed and changed nothing
    SENT = 0  # message content and the TLS handshake draw no reply


S, I, O = State, Input, Outcome  # noqa: E741 - short names keep the table readable
_POS, _MID, _NEG = O.POSITIVE, O.INTERMEDIATE, O.NEGATIVE

#: (state, input, outcome) -> next state.  RFC 5321 §4.1.4 (order of
#: commands), §3.3 (mail transactions), RFC 2920 (pipelining), RFC 3207
#: (STARTTLS), RFC 2033 (LMTP: several replies after the end of data).
TRANSITIONS: dict[tuple[State, Input, Outcome], State] = {
    # The greeting: 220 opens the session; 554 refuses it (§3.1, §4.3.1).
    (S.GREETING, I.GREETING, _POS): S.CONNECTED,
    (S.GREETING, I.GREETING, _NEG): S.REFUSED,
}


def _rows(state: State, rows: dict[tuple[Input, Outcome], State]) -> None:
    for (inp, outcome), target in rows.items():
        TRANSITIONS[(state, inp, outcome)] = target


# Commands that may be sent "at any time" (§4.1.4: NOOP, HELP, EXPN, VRFY and
# RSET) keep the state, except that a successful RSET ends a transaction.
# QUIT always ends the session: the server closes whatever it answers.
for _state, _reset_to in (
    (S.CONNECTED, S.CONNECTED),
    (S.READY, S.READY),
    (S.MAIL, S.READY),
    (S.RCPT, S.READY),
):
    _rows(
        _state,
        {
            (I.OTHER, _POS): _state,
            (I.OTHER, _MID): _state,
            (I.OTHER, _NEG): _state,
            (I.RSET, _POS): _reset_to,
            (I.RSET, _NEG): _state,
            (I.QUIT, _POS): S.CLOSED,
            (I.QUIT, _NEG): S.CLOSED,
            # EHLO/HELO in any state resets the transaction (§4.1.4).
            (I.HELLO, _POS): S.READY,
            (I.HELLO, _NEG): _state,
        },
    )

_rows(S.REFUSED, {(I.QUIT, _POS): S.CLOSED, (I.QUIT, _NEG): S.CLOSED})

_rows(
    S.READY,
    {
        (I.MAIL, _POS): S.MAIL,
        (I.MAIL, _NEG): S.READY,
        (I.STARTTLS, _POS): S.TLS,
        (I.STARTTLS, _NEG): S.READY,
        # After a refused MAIL, pipelined RCPT and DATA arrive here and must fail.
        (I.RCPT, _NEG): S.READY,
        (I.DATA, _NEG): S.READY,
        # LMTP: the second and later replies to the end of data (RFC 2033 §4.2).
        (I.END_OF_DATA, _POS): S.READY,
        (I.END_OF_DATA, _NEG): S.READY,
    },
)

_rows(
    S.MAIL,
    {
        (I.RCPT, _POS): S.RCPT,
        (I.RCPT, _NEG): S.MAIL,
        # DATA with no accepted recipient: 503 or 554 (§3.3); the transaction stays.
        (I.DATA, _NEG): S.MAIL,
        # ... or, from a server that pipelines carelessly, 354: RFC 2920 §3.1
        # "the client ... MUST send the end-of-data marker" alone.
        (I.DATA, _MID): S.DATA_EMPTY,
    },
)
_rows(S.DATA_EMPTY, {(I.END_OF_DATA, _POS): S.READY, (I.END_OF_DATA, _NEG): S.READY})

_rows(
    S.RCPT,
    {
        (I.RCPT, _POS): S.RCPT,
        (I.RCPT, _NEG): S.RCPT,
        (I.DATA, _MID): S.DATA,
        (I.DATA, _NEG): S.RCPT,
    },
)

_rows(
    S.DATA,
    {
        (I.CONTENT, O.SENT): S.DATA,
        # Whatever the verdict on the message, the transaction is over (§4.1.1.4).
        (I.END_OF_DATA, _POS): S.READY,
        (I.END_OF_DATA, _NEG): S.READY,
    },
)

# RFC 3030 §3: a refused chunk fails the transaction; the client "MUST NOT
# send any additional BDAT segments" and issues RSET.  Chunks already
# pipelined arrive in ABORTED and must be refused too.  The reply to BDAT LAST
# is the verdict on the message, like the reply to the end of data.
for _state in (S.RCPT, S.BDAT):
    _rows(
        _state,
        {
            (I.BDAT, _POS): S.BDAT,
            (I.BDAT, _NEG): S.ABORTED,
            (I.BDAT_LAST, _POS): S.READY,
            (I.BDAT_LAST, _NEG): S.READY,
        },
    )
_rows(
    S.BDAT,
    {
        (I.RSET, _POS): S.READY,
        (I.RSET, _NEG): S.BDAT,
        (I.OTHER, _POS): S.BDAT,
        (I.OTHER, _MID): S.BDAT,
        (I.OTHER, _NEG): S.BDAT,
        (I.QUIT, _POS): S.CLOSED,
        (I.QUIT, _NEG): S.CLOSED,
    },
)
_rows(
    S.ABORTED,
    {
        (I.BDAT, _NEG): S.ABORTED,
        (I.BDAT_LAST, _NEG): S.ABORTED,
        (I.RSET, _POS): S.READY,
        (I.RSET, _NEG): S.ABORTED,
        (I.OTHER, _POS): S.ABORTED,
        (I.OTHER, _MID): S.ABORTED,
        (I.OTHER, _NEG): S.ABORTED,
        (I.QUIT, _POS): S.CLOSED,
        (I.QUIT, _NEG): S.CLOSED,
        (I.HELLO, _POS): S.READY,
        (I.HELLO, _NEG): S.ABORTED,
    },
)
# LMTP: the second and later replies to BDAT LAST (RFC 2033 §4.2 with RFC 3030).
_rows(S.READY, {(I.BDAT_LAST, _POS): S.READY, (I.BDAT_LAST, _NEG): S.READY})

# RFC 4954 §4: AUTH outside a mail transaction; 334 asks for one more
# response line; 235 (or any final reply) ends the exchange.
_rows(
    S.READY,
    {
        (I.AUTH, _POS): S.READY,
        (I.AUTH, _MID): S.AUTH,
        (I.AUTH, _NEG): S.READY,
    },
)
_rows(
    S.AUTH,
    {
        (I.AUTH_RESPONSE, _POS): S.READY,
        (I.AUTH_RESPONSE, _MID): S.AUTH,
        (I.AUTH_RESPONSE, _NEG): S.READY,
    },
)

_rows(S.TLS, {(I.TLS_DONE, O.SENT): S.CONNECTED})

#: Rows that only a reply may take, never a command being sent: in LMTP the
#: second and later verdicts on a message arrive in READY (RFC 2033 §4.2), but
#: a client in READY has no message to end.
#: Likewise a 354 to a DATA that was pipelined after RCPTs which were all
#: refused arrives in MAIL, where a client sends no DATA.
REPLY_ONLY: frozenset[tuple[State, Input]] = frozenset(
    {(S.READY, I.END_OF_DATA), (S.READY, I.BDAT_LAST), (S.MAIL, I.DATA)}
)

#: Where a reply puts a *permissive* connection (``Connection(permissive=True)``,
#: the smtplib facade's) when :data:`TRANSITIONS` has no row for it: the
#: command was sent out of the table's order because the caller asked, and
#: the server's answer is the only judge.  A positive reply moves the session
#: where the command leads from any state; any reply not listed here keeps the
#: state.  Strict connections never use this table.
FOLLOW: dict[tuple[Input, Outcome], State] = {
    (I.HELLO, _POS): S.READY,
    (I.MAIL, _POS): S.MAIL,
    (I.RCPT, _POS): S.RCPT,
    (I.DATA, _MID): S.DATA,
    (I.CONTENT, O.SENT): S.DATA,
    (I.END_OF_DATA, _POS): S.READY,
    (I.END_OF_DATA, _NEG): S.READY,
    (I.RSET, _POS): S.READY,
    (I.STARTTLS, _POS): S.TLS,
    (I.AUTH, _MID): S.AUTH,
    (I.AUTH_RESPONSE, _MID): S.AUTH,
    (I.AUTH_RESPONSE, _POS): S.READY,
    (I.AUTH_RESPONSE, _NEG): S.READY,
    (I.QUIT, _POS): S.CLOSED,
    (I.QUIT, _NEG): S.CLOSED,
}

del _state, _reset_to
