"""Hypothesis strategies: what the server does (:class:`Policy`) and what the client calls.

A :class:`Conversation` is a policy and a :class:`Script`: the calls made on one
``SMTP`` (or ``LMTP``) object, each a :class:`Step`.  After a step raises, the
script carries on with the next one, as code with ``try``/``except`` around each
call would, so the state a failure leaves behind is compared too.

Inputs left out on purpose, and why.  First, those whose outcome under
*smtplib itself* is not a function of the conversation (the harness must see
the same thing twice when it runs a library twice:
``test_the_harness_is_deterministic``):

- ``DATA`` through ``docmd``/``putcmd``/``send``, and ``getreply()`` with no
  command before it: the server then reads the next commands as message
  content, or has nothing to say; only a timeout ends either;
- a surplus reply (two replies to one command) or a malformed line *before the
  end* of a multi-line reply, to MAIL, RCPT, DATA or EHLO: smtplib then reads
  each later reply as the answer to the command after it, and whether it is
  still in step when the server expects message content depends on timing.
  Surplus replies are drawn for NOOP, HELP, VRFY and unknown verbs only; a
  malformed line is always the last line of its reply;
- replies with a line over smtplib's 8192-octet limit, and SASL challenges that
  are not base64 (smtplib's own errors there are not what is compared).

Then those left out for other reasons:

- a 220 to STARTTLS: the server speaks no TLS (so README's TLS_VERIFY row is
  not exercised);
- closing answers (421, or a close without a word) to RSET when the server
  offers PIPELINING or speaks LMTP: the RSETs one library sends and the other
  does not (README: smtpclient's after a failed pipelined transaction,
  smtplib's after an LMTP message whose first verdict is not 250) would then
  close one session and not the other, and every later step would differ for
  that documented reason.

NUL, CR and LF in the message *text* are drawn freely (they are data); in
arguments they are drawn, rarely, for ``NUL_REFUSED``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import strategies as st

from tests.differential.server import (
    AUTH_RESPONSE,
    END_OF_DATA,
    OTHER,
    RSET_OK,
    Answer,
    Policy,
    close_silently,
    reply,
)

__all__ = [
    "Conversation",
    "Script",
    "Step",
    "conversations",
    "policies",
    "scripts",
]

# -- the client's side -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One call on the client object.

    ``method`` is the method's name, with four made-up ones: ``putcmd+getreply``
    and ``send+getreply`` (the second call only if the first returned),
    ``send_message`` (``args`` are the From, To list, Subject, body and Bcc of
    an ``email.message.Message`` made for the call), and ``auth`` (``args``:
    mechanism, user, password; ``smtp.user``/``smtp.password`` are set and the
    ``auth_<mechanism>`` authobject passed).
    """

    method: str
    args: tuple[Any, ...] = ()

    def __repr__(self) -> str:
        shown = []
        for arg in self.args:
            text = repr(arg)
            shown.append(text if len(text) <= 80 else text[:60] + f"...({len(text)} chars)")
        return f"{self.method}({', '.join(shown)})"


@dataclass(frozen=True)
class Script:
    """The calls of one session.

    Attributes:
        steps: the calls, in order.
        construct: connect in the constructor (``SMTP(host, port, ...)``), or
            make the object first and call ``connect(host, port)``.
        with_block: run the steps in a ``with`` block (``__exit__`` is a step).
    """

    steps: tuple[Step, ...]
    construct: bool = True
    with_block: bool = False

    def describe(self) -> str:
        """The script as readable lines."""
        head = "SMTP(host, port, ...)" if self.construct else "SMTP(...); connect(host, port)"
        lines = [head + (", in a with block" if self.with_block else "")]
        lines.extend(f"  {step!r}" for step in self.steps)
        return "\n".join(lines)


@dataclass(frozen=True)
class Conversation:
    """A server policy and the client's script."""

    policy: Policy
    script: Script

    def describe(self) -> str:
        """Both, for a failure message."""
        return f"Server policy:\n{self.policy.describe()}\nClient script:\n{self.script.describe()}"


# -- addresses, messages, options ----------------------------------------------------------------

SENDERS = ("alice@client.test", "", "Alice <alice@client.test>", "postmaster")
RECIPIENTS = ("bob@x.test", "carol@x.test", "Dave <dave@x.test>", "erin@x.test")
#: Rare arguments: NUL and CR/LF (refused by smtpclient: NUL_REFUSED), non-ASCII.
ODD_ADDRESSES = ("nul\0byte@x.test", "crlf\r\nrset@x.test", "jürgen@x.test")

STR_MESSAGES = (
    "Subject: hello\n\nhello world\n",
    "Subject: dots\r\n\r\n.leading dot\r\n..two\r\nend",
    "",
    "no line end at all",
    "Subject: bare\rcr\n\nlast\n",
)
MAIL_OPTIONS: tuple[tuple[str, ...], ...] = (
    (),
    (),
    (),
    ("BODY=8BITMIME",),
    ("SMTPUTF8",),
    ("BODY=8BITMIME", "SMTPUTF8"),
    ("X-TEST=1",),
)
RCPT_OPTIONS: tuple[tuple[str, ...], ...] = ((), (), (), (), ("NOTIFY=SUCCESS",))
CREDENTIALS = (
    ("user", "secret"),
    ("user@x.test", "pass word"),
    ("user", ""),
    ("jürgen", "pässwörd"),  # NFKC-stable: SASLprep leaves them as they are
)


T = TypeVar("T")


@st.composite
def _pick(
    draw: st.DrawFn, index: st.SearchStrategy[int], options: tuple[st.SearchStrategy[T], ...]
) -> T:
    return draw(options[draw(index)])


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """One of the strategies, chosen with the given weights (the first when shrinking).

    Not ``st.one_of(s, s, s, t)``: hypothesis drops repeated branches, so that
    is ``one_of(s, t)``.  Not ``flatmap`` either: a strategy made per draw makes
    generation several times slower.  The strategies here are made once.
    """
    index = st.sampled_from([i for i, (w, _) in enumerate(choices) for _ in range(w)])
    return _pick(index, tuple(s for _, s in choices))


def _rare(common: Sequence[Any], rare: Sequence[Any], weight: int = 8) -> st.SearchStrategy[Any]:
    """One of ``common`` (the first when shrinking), once in ``weight + 1`` one of ``rare``."""
    return weighted((weight, st.sampled_from(list(common))), (1, st.sampled_from(list(rare))))


def senders() -> st.SearchStrategy[str]:
    return _rare(SENDERS, ODD_ADDRESSES, weight=12)


def recipients() -> st.SearchStrategy[list[str]]:
    return st.lists(_rare(RECIPIENTS, ODD_ADDRESSES, weight=16), min_size=1, max_size=4)


_BYTES_PIECES = (
    b"text",
    b"\r\n",
    b"\n",
    b".",
    b"\r",
    b"..",
    b" ",
    b"Subject: b",
    b"\x00",
    b"\xc3\xa9",
)


def bytes_messages() -> st.SearchStrategy[bytes]:
    long_line = st.just(b"Subject: long\r\n\r\n" + b"x" * 1100 + b"\r\n")
    pieces = st.lists(st.sampled_from(_BYTES_PIECES), max_size=10).map(b"".join)
    return weighted((8, pieces), (1, long_line))


def messages() -> st.SearchStrategy[str | bytes]:
    """str messages (a non-ASCII one, rarely) and bytes messages with bare CR and LF."""
    strs = _rare(STR_MESSAGES, ["Subject: caf\u00e9\n\nnon-ASCII text\n"], weight=20)
    return st.one_of(strs, bytes_messages())


# -- steps ----------------------------------------------------------------------------------------


def sendmail_steps() -> st.SearchStrategy[Step]:
    """``sendmail``: to a list of 1-4 recipients (sometimes one address as a str, or none)."""
    odd_to: list[st.SearchStrategy[str | list[str]]] = [st.just(RECIPIENTS[0]), st.just([])]
    to: st.SearchStrategy[str | list[str]] = weighted((12, recipients()), (1, st.one_of(odd_to)))
    return st.builds(
        lambda sender, to, msg, mopts, ropts: Step("sendmail", (sender, to, msg, mopts, ropts)),
        senders(),
        to,
        messages(),
        st.sampled_from(MAIL_OPTIONS).map(list),
        st.sampled_from(RCPT_OPTIONS).map(list),
    )


def send_message_steps() -> st.SearchStrategy[Step]:
    return st.builds(
        lambda sender, to, subject, body, bcc: Step(
            "send_message", (sender, tuple(to), subject, body, bcc)
        ),
        _rare(("alice@client.test", "Alice <alice@client.test>"), ["jürgen@x.test"]),
        st.lists(st.sampled_from(("bob@x.test", "carol@x.test")), min_size=1, max_size=2),
        st.sampled_from(("hello", "a subject")),
        st.sampled_from(("body\n", ".dot first\nline\n", "")),
        st.sampled_from(("", "", "", "hidden@x.test")),
    )


DOCMD_CALLS: tuple[tuple[str, str], ...] = (
    ("NOOP", ""),
    ("noop", ""),
    ("MAIL FROM: <x@y.test>", ""),
    ("HELP RCPT", ""),
    ("", ""),
    ("AUTH", "XOAUTH2 dG9rZW4="),
    ("HELP", ""),
    ("VRFY", "bob"),
    ("XFOO", "bar"),
    ("RSET", ""),
    ("mail", "from:<alice@client.test>"),
    ("rcpt", "to:<bob@x.test>"),
    ("QUIT", ""),
    ("EHLO", "other.test"),
)
RARE_DOCMD_CALLS: tuple[tuple[str, str], ...] = (("NOOP", "a\0b"),)
PUTCMD_CALLS: tuple[tuple[str, str], ...] = (
    ("noop", ""),
    ("HELP", ""),
    ("mail", "from:<alice@client.test>"),
    ("XFOO", ""),
    ("rset", ""),
)
SEND_DATA: tuple[str | bytes, ...] = (b"NOOP\r\n", "NOOP\r\n", b"HELP\r\n", b"RSET\r\n")


def simple_steps() -> st.SearchStrategy[Step]:
    """One call other than ``sendmail``/``send_message``."""
    return weighted(
        (
            6,
            st.sampled_from(
                [
                    Step("noop"),
                    Step("rset"),
                    Step("quit"),
                    Step("ehlo"),
                    Step("helo"),
                    Step("starttls"),
                    Step("help"),
                    Step("verify", ("bob@x.test",)),
                    Step("verify", ("Dave <dave@x.test>",)),
                    Step("expn", ("staff",)),
                    Step("ehlo", ("other.test",)),
                    Step("ehlo_or_helo_if_needed"),
                ]
            ),
        ),
        (3, _rare(DOCMD_CALLS, RARE_DOCMD_CALLS, weight=20).map(lambda c: Step("docmd", c))),
        (1, st.sampled_from(PUTCMD_CALLS).map(lambda c: Step("putcmd+getreply", c))),
        (1, st.sampled_from(SEND_DATA).map(lambda d: Step("send+getreply", (d,)))),
        (2, st.sampled_from(CREDENTIALS).map(lambda c: Step("login", c))),
        (
            1,
            st.tuples(
                st.sampled_from(("PLAIN", "LOGIN", "CRAM-MD5")), st.sampled_from(CREDENTIALS)
            ).map(lambda m: Step("auth", (m[0], *m[1]))),
        ),
        (
            1,
            st.builds(
                lambda a, o: Step("mail", (a, o)),
                senders(),
                st.sampled_from(MAIL_OPTIONS).map(list),
            ),
        ),
        (
            1,
            st.builds(
                lambda a, o: Step("rcpt", (a, o)),
                st.sampled_from(RECIPIENTS),
                st.sampled_from(RCPT_OPTIONS).map(list),
            ),
        ),
        (1, messages().map(lambda m: Step("data", (m,)))),
    )


def by_hand_transactions() -> st.SearchStrategy[list[Step]]:
    """``ehlo``/``helo``, then ``mail``, ``rcpt`` (one or more) and ``data`` by hand."""
    return st.builds(
        lambda hello, sender, to, msg: [
            Step(hello),
            Step("mail", (sender, [])),
            *(Step("rcpt", (r,)) for r in to),
            Step("data", (msg,)),
        ],
        st.sampled_from(("ehlo", "helo")),
        senders(),
        recipients(),
        messages(),
    )


def steps() -> st.SearchStrategy[list[Step]]:
    one: st.SearchStrategy[list[Step]] = weighted(
        (2, sendmail_steps()), (1, send_message_steps()), (3, simple_steps())
    ).map(lambda s: [s])
    groups = weighted((6, one), (1, by_hand_transactions()))
    return st.lists(groups, min_size=1, max_size=5).map(
        lambda groups: [s for group in groups for s in group][:10]
    )


def scripts() -> st.SearchStrategy[Script]:
    return st.builds(
        lambda s, construct, with_block: Script(tuple(s), construct, with_block),
        steps(),
        st.booleans(),
        st.sampled_from((False, False, True)),
    )


# -- the server's side -----------------------------------------------------------------------------

_CLOSE_421 = reply(421, "4.3.0 Service shutting down", close=True)
#: An oversized reply line (over smtpclient's 2048 octets, under smtplib's 8192).
_LONG_LINE = Answer((b"250 " + b"x" * 2100,))
#: A reply of 300 lines (smtpclient's limit is 256).
_MANY_LINES = Answer((*(b"250-line %d" % i for i in range(299)), b"250 end"))
_MALFORMED = Answer((b"abc not a reply code",))
_MALFORMED_LAST = Answer((b"250-first line", b"xyz last line"))
#: Codes smtplib reads as any other: 599/499 (RFC 5321 allows second digits 0-5
#: only), and 252, a positive code that is not the 250 smtplib's ``sendmail``
#: wants from MAIL, RCPT and the end of the data.
_ODD_CODES = (599, 499, 252)


#: Reply texts; ``STATUS`` becomes an enhanced status code that fits the reply's code.
_STATUS = "STATUS"
_TEXTS: list[tuple[str | None, ...]] = [
    (_STATUS,),
    ("plain text",),
    (None,),
    ("first line", "second line"),
    ("trailing space ",),
    ("\tpadded\t ",),
]


def _reply(code: int, texts: tuple[str | None, ...]) -> Answer:
    status = f"{code // 100}.0.0 Ok" if code < 400 else f"{code // 100}.0.0 Refused"
    return reply(code, *(status if t == _STATUS else t for t in texts))


def _replies(codes: Sequence[int]) -> st.SearchStrategy[Answer]:
    return st.builds(_reply, st.sampled_from(list(codes)), st.sampled_from(_TEXTS))


def answers(
    positive: Sequence[int],
    negative: Sequence[int],
    *,
    ok: Answer | None = None,
    surplus: bool = False,
    closing: bool = True,
    odd: bool = True,
    weight: int = 8,
) -> st.SearchStrategy[Answer]:
    """An answer: mostly positive (``weight`` to 1), sometimes a refusal, a close, or odd.

    Odd: a code smtplib takes but RFC 5321 does not (599, 499), a positive
    code other than 250 (252), a malformed line, an oversized reply.
    """
    good = st.just(ok) if ok is not None else _replies(positive)
    kinds: list[tuple[int, st.SearchStrategy[Answer]]] = [(weight, good), (2, _replies(negative))]
    if closing:
        kinds += [(1, st.just(_CLOSE_421)), (1, st.just(close_silently()))]
    if odd:
        strange = st.sampled_from([_MALFORMED, _MALFORMED_LAST, _LONG_LINE, _MANY_LINES])
        kinds.append((1, st.one_of(_replies(_ODD_CODES), strange)))
    if surplus:
        base = _replies(positive)
        kinds.append((1, base.map(lambda a: Answer(a.lines, surplus=(b"250 2.0.0 surplus",)))))
    return weighted(*kinds)


def _answer_lists(
    answer: st.SearchStrategy[Answer], size: int = 2
) -> st.SearchStrategy[tuple[Answer, ...]]:
    return st.lists(answer, max_size=size).map(tuple)


_CHALLENGES = ("UGFzc3dvcmQ6", "VXNlcm5hbWU6", "")


#: Stands for the positive EHLO/LHLO reply, made from the extensions once drawn.
_HELLO = Answer((b"250 <the hello reply>",))
_AUTH_LINES = [
    None,
    "AUTH PLAIN LOGIN",
    "AUTH LOGIN",
    "AUTH CRAM-MD5 PLAIN",
    "AUTH PLAIN",
    "AUTH SCRAM-SHA-256 PLAIN",
]
#: Every strategy is made once, here: a strategy made inside the composite
#: for each example costs more than the whole conversation.
_GREETINGS = weighted(
    (4, answers([220], [554], ok=reply(220, "differential.test ESMTP"), weight=60)),
    (1, _replies([220])),
)
_ODD_EXTENSIONS = _rare(
    [()], [("AUTH=LOGIN PLAIN",), ("size 1000",), ("X-EXT  two  spaces ",), ("-junk",)], weight=12
)


def _table(lmtp: bool) -> list[tuple[str, st.SearchStrategy[tuple[Answer, ...]]]]:
    hello_key = "LHLO" if lmtp else "EHLO"
    end = answers([250], [552, 451, 554, 550], odd=not lmtp)
    strategies: dict[str, st.SearchStrategy[Answer]] = {
        hello_key: answers([250], [500, 502, 550], ok=_HELLO),
        "HELO": answers([250], [500, 502, 501]),
        "MAIL": answers([250], [451, 452, 550, 553, 552, 501, 530]),
        "RCPT": answers([250, 251], [550, 450, 452, 553, 551, 501]),
        "DATA": answers([354], [554, 451, 503]),
        END_OF_DATA: end,
        "NOOP": answers([250], [500, 502], surplus=True),
        "HELP": answers([214, 250], [502], surplus=True),
        "VRFY": answers([252, 250], [550, 502], surplus=True),
        "QUIT": answers([221], [500], ok=reply(221, "2.0.0 Bye", close=True), odd=False),
        # Never 220 (the server speaks no TLS); a 250 is a refusal too for smtplib.
        "STARTTLS": answers([454], [501, 502, 250], odd=False),
        "AUTH": st.one_of(
            answers([235], [535, 504, 454], odd=False),
            st.sampled_from(_CHALLENGES).map(lambda c: reply(334, c)),
        ),
        AUTH_RESPONSE: st.one_of(
            answers([235], [535, 501], odd=False), st.just(reply(334, _CHALLENGES[0]))
        ),
        "": answers([500], [501], odd=False),
        OTHER: answers([502], [500, 250], surplus=True),
    }
    lists = [
        (key, _answer_lists(strategy, 4 if key in ("RCPT", END_OF_DATA) else 2))
        for key, strategy in strategies.items()
    ]
    # smtplib gives up after 5 challenges: sometimes a server that never stops.
    # It closes after the last one: neither library cancels the exchange when
    # it gives up, so both would leave the server inside it, taking the next
    # commands for SASL responses (garbage in, garbage out: not compared).
    # (The fifth response is the last smtplib sends after an initial response.)
    challenge, last = reply(334, _CHALLENGES[0]), reply(334, _CHALLENGES[0], close=True)
    endless = st.just((challenge,) * 4 + (last,))
    return [
        (key, weighted((20, chosen), (1, endless)) if key == AUTH_RESPONSE else chosen)
        for key, chosen in lists
    ]


_TABLES = {lmtp: _table(lmtp) for lmtp in (False, True)}
_RSET_KEEPS = weighted((4, st.just(RSET_OK)), (1, _replies([500, 451])))
_RSET_ANY = weighted((6, _RSET_KEEPS), (1, st.just(_CLOSE_421)), (1, st.just(close_silently())))


@st.composite
def policies(draw: st.DrawFn, lmtp: bool | None = None) -> Policy:
    """A server: greeting, extensions, and answers to each verb's first uses."""
    is_lmtp = draw(st.sampled_from([False] * 4 + [True])) if lmtp is None else lmtp
    extensions: list[str] = []
    pipelining = draw(st.sampled_from([True, True, False]))
    if pipelining:
        extensions.append("PIPELINING")
    size_line = draw(st.sampled_from([None, None, "SIZE", "SIZE 0", "SIZE 100000", "SIZE 60"]))
    if size_line:
        extensions.append(size_line)
    auth = draw(st.sampled_from(_AUTH_LINES))
    if auth:
        extensions.append(auth)
    for keyword in ("8BITMIME", "SMTPUTF8", "STARTTLS", "ENHANCEDSTATUSCODES"):
        if draw(st.booleans()):
            extensions.append(keyword)
    # Lines smtplib parses its own way (old-style AUTH=, case, spaces, junk).
    extensions += draw(_ODD_EXTENSIONS)
    hello = reply(250, "differential.test", *extensions)
    greeting = draw(_GREETINGS)
    table: list[tuple[str, tuple[Answer, ...]]] = []
    for key, strategy in _TABLES[is_lmtp]:
        chosen = tuple(hello if a is _HELLO else a for a in draw(strategy))
        if chosen:
            table.append((key, chosen))
    rset = draw(_RSET_KEEPS if pipelining or is_lmtp else _RSET_ANY)
    return Policy(greeting, tuple(extensions), tuple(table), rset, is_lmtp)


def conversations() -> st.SearchStrategy[Conversation]:
    """A policy and a script, the unit the differential test draws."""
    return st.builds(Conversation, policies(), scripts())
