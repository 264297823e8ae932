"""Hypothesis strategies: what the server does (:class:`AioPolicy`) and what the client calls.

A :class:`Conversation` is a policy and a :class:`Script`.  A script is one of three kinds:

- ``manual``: ``smtp = SMTP(hostname=..., port=..., **options)``, then the steps (one of
  them ``connect()``, usually the first), then ``smtp.close()``;
- ``context``: the same object used as ``async with smtp:`` around the steps; the harness
  calls ``__aenter__`` and ``__aexit__`` itself so that each is a step of its own, and with
  ``propagate`` the first exception leaves the block (``__aexit__`` receives it, the later
  steps are not run), as it would without ``try``;
- ``send``: one call of the module's ``send(message, hostname=..., port=..., ...)``.

In ``manual`` and ``context`` scripts a step that raises does not end the script: the next
step runs, as code with ``try``/``except`` around each call would, so that the state a
failure leaves behind is compared too.

What the server may do (:func:`policies`): any reply class at each step, a 421 (which
closes) or a close without a word anywhere, PIPELINING, SIZE, AUTH, 8BITMIME, SMTPUTF8,
STARTTLS offered or not, a 220 to STARTTLS (the harness's server then speaks TLS), replies
aiosmtplib parses its own way (``+25``, ``2_5``, a bare LF, codes that differ between
lines, lines over its 8192-octet limit), replies it reads and the engine refuses for their
size (a line over 2048 octets, 300 lines), a second reply nobody asked for, and writes that
come late or in two pieces (:class:`Pace`), always well within the client's timeout.

Inputs left out on purpose, and why (each would make a library's run depend on timing, so
that it no longer agrees with itself: ``test_aiosmtplib_agrees_with_itself``):

- ``DATA`` and ``STARTTLS`` through ``execute_command``: the server then reads the next
  commands as message content, or waits for a TLS handshake nobody starts;
- a reply that runs past aiosmtplib's 32768-octet bound: it is cut where a read happens
  to end, and the rest is read, or dropped, depending on when it arrives;
- a second reply in a separate write: aiosmtplib drops bytes that arrive while no command
  waits, and keeps them when they come with the first reply (they are written in one
  ``sendall``, so they arrive together; :class:`Pace` never splits there).

A second ``connect()`` after a close is drawn: the server accepts one connection and then
stops listening, so it is refused at once, the same for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, TypeVar

from hypothesis import strategies as st

from tests.differential.scenarios import weighted
from tests.differential.server import (
    AUTH_RESPONSE,
    CRAM_CHALLENGE,
    END_OF_DATA,
    OTHER,
    RSET_OK,
    Answer,
    Policy,
    close_silently,
    reply,
)

__all__ = [
    "AioPolicy",
    "Conversation",
    "MessageSpec",
    "Pace",
    "Script",
    "Step",
    "conversations",
    "policies",
    "scripts",
]

T = TypeVar("T")

# -- the server's side -------------------------------------------------------------------


@dataclass(frozen=True)
class Pace:
    """How the server's ``write``-th write (from 1; the greeting is the first) goes out.

    It waits ``delay`` seconds first; with ``split`` it writes the first ``split``
    octets of the *first* reply, waits ``delay`` again, then writes the rest (a second
    reply written with it stays with the rest).  A negative ``split`` counts from the end
    of the first reply (``-1``: between CR and LF).
    """

    write: int
    delay: float
    split: int | None = None

    def describe(self) -> str:
        how = "" if self.split is None else f", split at {self.split}"
        return f"write #{self.write} after {self.delay * 1000:.0f} ms{how}"


@dataclass(frozen=True)
class AioPolicy:
    """The reactive server's policy, and the pace of its writes.

    Attributes:
        policy: what the server answers (``tests/differential/server.py``).
        pace: the writes that come late or in two pieces.
    """

    policy: Policy
    pace: tuple[Pace, ...] = ()

    def offers(self, keyword: str) -> bool:
        """True if the server offers the extension ``keyword``."""
        return self.policy.offers(keyword)

    def describe(self) -> str:
        lines = [self.policy.describe()]
        if self.pace:
            lines.append("  paced: " + "; ".join(p.describe() for p in self.pace))
        return "\n".join(lines)


# -- the client's side ------------------------------------------------------------------


@dataclass(frozen=True)
class MessageSpec:
    """An ``email.message.EmailMessage`` to build afresh for each run (it is mutable)."""

    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = "hello"
    body: str = "body\n"

    def build(self) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        if self.to:
            msg["To"] = ", ".join(self.to)
        if self.cc:
            msg["Cc"] = ", ".join(self.cc)
        if self.bcc:
            msg["Bcc"] = ", ".join(self.bcc)
        msg["Subject"] = self.subject
        msg.set_content(self.body)
        return msg

    def __repr__(self) -> str:
        parts = [f"From={self.sender!r}", f"To={list(self.to)!r}"]
        if self.cc:
            parts.append(f"Cc={list(self.cc)!r}")
        if self.bcc:
            parts.append(f"Bcc={list(self.bcc)!r}")
        parts.append(f"body={self.body!r}")
        return f"EmailMessage({', '.join(parts)})"


@dataclass(frozen=True)
class Step:
    """One call on the client object (or of the module's ``send``).

    ``method`` is the method's name; ``args`` and ``kwargs`` are passed as they are, except
    that a :class:`MessageSpec` becomes a fresh ``EmailMessage``.  ``__aenter__`` and
    ``__aexit__`` are added by the harness for ``context`` scripts; ``send`` is the module's
    function.
    """

    method: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def kw(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def __repr__(self) -> str:
        shown = []
        for arg in self.args:
            text = repr(arg)
            shown.append(text if len(text) <= 80 else text[:60] + f"...({len(text)} chars)")
        for name, value in self.kwargs:
            text = repr(value)
            text = text if len(text) <= 60 else text[:40] + f"...({len(text)} chars)"
            shown.append(f"{name}={text}")
        return f"{self.method}({', '.join(shown)})"


@dataclass(frozen=True)
class Script:
    """The calls of one session.

    Attributes:
        kind: ``manual``, ``context`` or ``send`` (module docstring).
        steps: the calls, in order (for ``send``: the one ``send`` step).
        options: keyword arguments of the constructor (besides hostname and port).
        propagate: ``context`` only: the first exception leaves the block.
        auth_in_clear: ``smtpclient.aio`` is given its opt-in to credentials in the clear
            (``auth_in_clear=True``); aiosmtplib has no such option.
        pipelining: ``smtpclient.aio`` may pipeline (its ``pipelining`` option).
    """

    kind: str
    steps: tuple[Step, ...]
    options: tuple[tuple[str, Any], ...] = ()
    propagate: bool = False
    auth_in_clear: bool = True
    pipelining: bool = True

    def describe(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options)
        ours = f"[smtpclient.aio: auth_in_clear={self.auth_in_clear}, "
        ours += f"pipelining={self.pipelining}]"
        if self.kind == "send":
            return "\n".join(["send(...) " + ours, *(f"  {s!r}" for s in self.steps)])
        head = f"SMTP(hostname, port{', ' if options else ''}{options}) {ours}"
        if self.kind == "context":
            head += "; async with" + (" (exceptions leave the block)" if self.propagate else "")
        return "\n".join([head, *(f"  {s!r}" for s in self.steps)])


@dataclass(frozen=True)
class Conversation:
    """A server policy and the client's script."""

    policy: AioPolicy
    script: Script

    def describe(self) -> str:
        return f"Server policy:\n{self.policy.describe()}\nClient script:\n{self.script.describe()}"


# -- inputs -------------------------------------------------------------------------------

SENDERS = ("alice@client.test", "", "Alice <alice@client.test>", "postmaster")
RECIPIENTS = ("bob@x.test", "carol@x.test", "Dave <dave@x.test>", "erin@x.test")
#: Rare addresses: NUL and other C0 controls or DEL, bare and with a display name
#: (ValueError before MAIL; aiosmtplib after it), CR/LF (parseaddr drops them), non-ASCII
#: (UnicodeEncodeError, or UTF-8 with SMTPUTF8), whitespace and quoting (parse_address).
ODD_ADDRESSES = (
    "nul\0byte@x.test",
    "Nul <nul\0named@x.test>",
    "a\x01b@x.test",
    "Del <d\x7fel@x.test>",
    "crlf\r\nrset@x.test",
    "jürgen@x.test",
    "sp ace@x.test",
    '"quoted local"@x.test',
    "tab\tbed@x.test",
)
STR_MESSAGES = (
    "Subject: hello\n\nhello world\n",
    "Subject: dots\r\n\r\n.leading dot\r\n..two\r\nend",
    "",
    "no line end at all",
    "Subject: bare\rcr\n\nlast\n",
)
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
CREDENTIALS: tuple[tuple[str | bytes, str | bytes], ...] = (
    ("user", "secret"),
    ("user@x.test", "pass word"),
    ("user", ""),
    ("jürgen", "pässwörd"),
)
#: Rare credentials: control characters (aiosmtplib encodes them; ours refuses), bytes.
ODD_CREDENTIALS: tuple[tuple[str | bytes, str | bytes], ...] = (
    ("us\0er", "secret"),
    ("user", "pw\r\nRSET"),
    (b"user", b"secret"),
)
#: Raw commands for ``execute_command`` (never DATA or STARTTLS: module docstring).
RAW_COMMANDS: tuple[tuple[bytes, ...], ...] = (
    (b"NOOP",),
    (b"XFOO", b"bar"),
    (b"HELP", b"RCPT"),
    (b"",),
    (b"VRFY", b"bob"),
    (b"RSET",),
    (b"MAIL", b"FROM:<x@y.test>"),
    (b"RCPT", b"TO:<bob@x.test>"),
    (b"EHLO", b"other.test"),
    (b"QUIT",),
    (b"noop",),
)
#: Rare raw commands: a C0 control in an argument (aiosmtplib: ValueError before a byte).
ODD_RAW_COMMANDS: tuple[tuple[bytes, ...], ...] = ((b"NOOP", b"a\0b"), (b"NOOP", b"a\tb"))
HOSTNAMES = ("client.test", "other.test", "  padded.test  ")
ODD_HOSTNAMES = ("bad host", "", "tab\there")


def _rare(common: Sequence[T], rare: Sequence[T], weight: int = 8) -> st.SearchStrategy[T]:
    """One of ``common`` (the first when shrinking), once in ``weight + 1`` one of ``rare``."""
    return weighted((weight, st.sampled_from(list(common))), (1, st.sampled_from(list(rare))))


def senders() -> st.SearchStrategy[str]:
    return _rare(SENDERS, ODD_ADDRESSES, weight=14)


def recipient_lists() -> st.SearchStrategy[list[str]]:
    return st.lists(_rare(RECIPIENTS, ODD_ADDRESSES, weight=18), min_size=1, max_size=4)


def bytes_messages() -> st.SearchStrategy[bytes]:
    long_line = st.just(b"Subject: long\r\n\r\n" + b"x" * 1100 + b"\r\n")
    pieces = st.lists(st.sampled_from(_BYTES_PIECES), max_size=10).map(b"".join)
    return weighted((8, pieces), (1, long_line))


def messages() -> st.SearchStrategy[str | bytes]:
    """str messages (a non-ASCII one, rarely: UnicodeEncodeError) and bytes messages."""
    strs = _rare(STR_MESSAGES, ["Subject: caf\u00e9\n\nnon-ASCII text\n"], weight=20)
    return st.one_of(strs, bytes_messages())


def message_specs() -> st.SearchStrategy[MessageSpec]:
    return st.builds(
        MessageSpec,
        _rare(("alice@client.test", "Alice <alice@client.test>"), ["jürgen@x.test"], 12),
        st.lists(st.sampled_from(("bob@x.test", "carol@x.test")), min_size=0, max_size=2).map(
            tuple
        ),
        st.sampled_from(((), (), ("cc@x.test",))),
        st.sampled_from(((), (), (), ("hidden@x.test",))),
        st.sampled_from(("hello", "a subject")),
        st.sampled_from(("body\n", ".dot first\nline\n", "", "caf\u00e9 au lait\n")),
    )


def _kwargs(**options: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((k, v) for k, v in options.items() if v is not _OMIT)


_OMIT: Any = object()


def sendmail_steps() -> st.SearchStrategy[Step]:
    """``sendmail``: to 1-4 recipients (sometimes one address as a str, or none)."""
    odd_to: list[st.SearchStrategy[str | list[str]]] = [st.just(RECIPIENTS[0]), st.just([])]
    to: st.SearchStrategy[str | list[str]] = weighted(
        (12, recipient_lists()), (1, st.one_of(odd_to))
    )
    return st.builds(
        lambda sender, to, msg, mopts, ropts: Step(
            "sendmail", (sender, to, msg), _kwargs(mail_options=mopts, rcpt_options=ropts)
        ),
        senders(),
        to,
        messages(),
        st.sampled_from([_OMIT, *MAIL_OPTIONS]).map(lambda o: o if o is _OMIT else list(o)),
        st.sampled_from([_OMIT, *RCPT_OPTIONS]).map(lambda o: o if o is _OMIT else list(o)),
    )


def send_message_steps() -> st.SearchStrategy[Step]:
    """``send_message``: sender and recipients from the headers, or given."""
    explicit = st.sampled_from(
        [
            (),
            (),
            (),
            (("sender", "other@client.test"),),
            (("recipients", ["erin@x.test"]),),
            (("recipients", "erin@x.test"),),
        ]
    )
    return st.builds(lambda spec, kw: Step("send_message", (spec,), kw), message_specs(), explicit)


def _credentials() -> st.SearchStrategy[tuple[str | bytes, str | bytes]]:
    return _rare(CREDENTIALS, ODD_CREDENTIALS, weight=10)


def simple_steps() -> st.SearchStrategy[Step]:
    """One call other than ``sendmail``/``send_message``."""
    plain = st.sampled_from(
        [
            Step("noop"),
            Step("rset"),
            Step("quit"),
            Step("ehlo"),
            Step("helo"),
            Step("starttls"),
            Step("help"),
            Step("vrfy", ("bob@x.test",)),
            Step("vrfy", ("Dave <dave@x.test>",)),
            Step("vrfy", ("jürgen@x.test",), (("options", ["SMTPUTF8"]),)),
            Step("expn", ("staff",)),
            Step("close"),
            Step("connect"),
        ]
    )
    hello = st.builds(
        lambda verb, host: Step(verb, (), (("hostname", host),)),
        st.sampled_from(("ehlo", "helo")),
        _rare(HOSTNAMES, ODD_HOSTNAMES, weight=6),
    )
    auth = st.builds(
        Step,
        st.sampled_from(("login", "login", "auth_plain", "auth_login", "auth_crammd5")),
        _credentials(),
    )
    mail = st.builds(
        lambda a, o: Step("mail", (a,), _kwargs(options=o)),
        senders(),
        st.sampled_from([_OMIT, *MAIL_OPTIONS]).map(lambda o: o if o is _OMIT else list(o)),
    )
    rcpt = st.builds(
        lambda a, o: Step("rcpt", (a,), _kwargs(options=o)),
        _rare(RECIPIENTS, ODD_ADDRESSES, weight=10),
        st.sampled_from([_OMIT, *RCPT_OPTIONS]).map(lambda o: o if o is _OMIT else list(o)),
    )
    raw = _rare(RAW_COMMANDS, ODD_RAW_COMMANDS, weight=16).map(
        lambda args: Step("execute_command", args)
    )
    return weighted(
        (8, plain),
        (1, hello),
        (3, auth),
        (1, mail),
        (1, rcpt),
        (1, messages().map(lambda m: Step("data", (m,)))),
        (2, raw),
    )


def by_hand_transactions() -> st.SearchStrategy[list[Step]]:
    """``mail``, ``rcpt`` (one or more) and ``data`` by hand."""
    return st.builds(
        lambda sender, to, msg: [
            Step("mail", (sender,)),
            *(Step("rcpt", (r,)) for r in to),
            Step("data", (msg,)),
        ],
        senders(),
        recipient_lists(),
        messages(),
    )


def steps() -> st.SearchStrategy[list[Step]]:
    one: st.SearchStrategy[list[Step]] = weighted(
        (3, sendmail_steps()), (1, send_message_steps()), (4, simple_steps())
    ).map(lambda s: [s])
    groups = weighted((6, one), (1, by_hand_transactions()))
    return st.lists(groups, min_size=0, max_size=5).map(
        lambda groups: [s for group in groups for s in group][:9]
    )


_TIMEOUTS = _rare([5.0, 5.0, 10.0], [None], weight=12)


def options() -> st.SearchStrategy[tuple[tuple[str, Any], ...]]:
    """Constructor options: start_tls, use_tls, timeout, local_hostname, login on connect."""
    return st.builds(
        lambda start_tls, use_tls, timeout, local, creds: _kwargs(
            start_tls=start_tls,
            use_tls=use_tls,
            timeout=timeout,
            local_hostname=local,
            username=creds[0] if creds else _OMIT,
            password=creds[1] if creds else _OMIT,
        ),
        st.sampled_from([_OMIT, None, False, False, True]),
        st.sampled_from([_OMIT, _OMIT, False]),
        _TIMEOUTS,
        _rare(["client.test", "client.test", "  padded.test  "], ["bad host", None], weight=12),
        weighted((10, st.just(None)), (1, _credentials())),
    )


#: Every strategy is made once, here: a strategy made inside a composite for each example
#: costs more than running the conversation.
_STEPS = steps()
_OPTIONS = options()
_MESSAGES = messages()
_MESSAGE_SPECS = message_specs()
_SEND_SENDERS = _rare(SENDERS, ["", *ODD_ADDRESSES], weight=10)
_SEND_RECIPIENTS = weighted((10, recipient_lists()), (1, st.just([])))
_MAIL_OPTIONS = st.sampled_from([_OMIT, *MAIL_OPTIONS])


def _manual(draw: st.DrawFn) -> Script:
    body = draw(_STEPS)
    # connect() first, or after one call made on an object not yet connected.
    late = draw(st.sampled_from([False] * 8 + [True]))
    at = 1 if late and body else 0
    return Script("manual", (*body[:at], Step("connect"), *body[at:]), draw(_OPTIONS))


def _send_step(draw: st.DrawFn) -> Step:
    kwargs: dict[str, Any] = {}
    message: Any
    if draw(st.booleans()):
        message = draw(_MESSAGES)
        kwargs["sender"] = draw(_SEND_SENDERS)
        kwargs["recipients"] = draw(_SEND_RECIPIENTS)
    else:
        message = draw(_MESSAGE_SPECS)
    for name, value in draw(_OPTIONS):
        kwargs[name] = value
    mail_options = draw(_MAIL_OPTIONS)
    if mail_options is not _OMIT:
        kwargs["mail_options"] = list(mail_options)
    return Step("send", (message,), tuple(kwargs.items()))


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    """A ``manual`` script (most), a ``context`` one, or the module's ``send``."""
    kind = draw(st.sampled_from(["manual"] * 5 + ["context"] * 2 + ["send"]))
    if kind == "send":
        script = Script("send", (_send_step(draw),))
    elif kind == "context":
        script = Script("context", tuple(draw(_STEPS)), draw(_OPTIONS), draw(st.booleans()))
    else:
        script = _manual(draw)
    auth_in_clear = draw(st.sampled_from([True] * 6 + [False]))
    pipelining = draw(st.sampled_from([True] * 4 + [False]))
    return Script(
        script.kind, script.steps, script.options, script.propagate, auth_in_clear, pipelining
    )


# -- the server's side ---------------------------------------------------------------------

CLOSE_421 = reply(421, "4.3.0 Service shutting down", close=True)
#: Over aiosmtplib's 8192-octet line (it raises SMTPResponseException(-1)).
HUGE_LINE = Answer((b"250 " + b"y" * 9000,))
#: Over the engine's 2048-octet line, under aiosmtplib's.
LONG_LINE = Answer((b"250 " + b"x" * 2100,))
#: 300 lines (the engine's limit is 256), well under aiosmtplib's 32768 octets.
MANY_LINES = Answer((*(b"250-line %d" % i for i in range(299)), b"250 end"))
MALFORMED = Answer((b"abc not a reply code",))
MALFORMED_LAST = Answer((b"250-first line", b"xyz last line"))
#: Lines aiosmtplib parses its own way: int(line[:3]) takes "+25", "2_5"; the code is the
#: last line's; a bare LF ends a line.
LENIENT = (
    Answer((b"+25 plus sign",)),
    Answer((b"2_5 underscore",)),
    Answer((b"250-first", b"251 second has another code")),
    Answer((b"250-bare\n250 lf",)),
)
#: Codes aiosmtplib reads as any other (599, 499), and positive codes that are not the one
#: a method wants (252 to MAIL, 251 to the end of data, 250 to DATA).
_ODD_CODES = (599, 499, 252, 251)

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


#: Replies only the engine refuses, for their size (LONG_LINE, MANY_LINES), are drawn as
#: often as every other strange reply together: the ci profile's 300 conversations meet
#: them (reply-limits).
_STRANGE = weighted(
    (1, st.sampled_from([MALFORMED, MALFORMED_LAST, HUGE_LINE, *LENIENT])),
    (1, st.sampled_from([LONG_LINE, MANY_LINES])),
)


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
    """An answer: mostly positive (``weight`` to 1), sometimes a refusal, a close, or odd."""
    good = st.just(ok) if ok is not None else _replies(positive)
    kinds: list[tuple[int, st.SearchStrategy[Answer]]] = [(weight, good), (2, _replies(negative))]
    if closing:
        kinds += [(1, st.just(CLOSE_421)), (1, st.just(close_silently()))]
    if odd:
        kinds.append((1, st.one_of(_replies(_ODD_CODES), _STRANGE)))
    if surplus:
        base = _replies(positive)
        kinds.append((1, base.map(lambda a: Answer(a.lines, surplus=(b"250 2.0.0 surplus",)))))
    return weighted(*kinds)


def _answer_lists(
    answer: st.SearchStrategy[Answer], size: int = 2
) -> st.SearchStrategy[tuple[Answer, ...]]:
    return st.lists(answer, max_size=size).map(tuple)


_CHALLENGES = ("UGFzc3dvcmQ6", "VXNlcm5hbWU6", "", CRAM_CHALLENGE)
#: Stands for the positive EHLO reply, made from the extensions once drawn.
_HELLO = Answer((b"250 <the hello reply>",))
#: STARTTLS accepted, then a reply nobody asked for in the same write (response injection).
STARTTLS_INJECTED = Answer((b"220 2.0.0 Ready to start TLS",), surplus=(b"250 injected",))


def _starttls_answers() -> st.SearchStrategy[Answer]:
    go = reply(220, "2.0.0 Ready to start TLS")
    return weighted(
        (4, st.just(go)),
        (3, _replies([454, 501, 502, 250])),
        (1, st.sampled_from([CLOSE_421, close_silently(), STARTTLS_INJECTED])),
    )


def _auth_answers() -> st.SearchStrategy[Answer]:
    return weighted(
        (8, answers([235], [535, 504, 454], odd=False)),
        (4, st.sampled_from(_CHALLENGES).map(lambda c: reply(334, c))),
        (1, st.just(reply(334, "!!!not base64"))),
    )


_TABLE: list[tuple[str, st.SearchStrategy[tuple[Answer, ...]]]] = [
    (key, _answer_lists(strategy, 4 if key in ("RCPT", END_OF_DATA) else 2))
    for key, strategy in {
        "EHLO": answers([250], [500, 502, 550], ok=_HELLO),
        "HELO": answers([250], [500, 502, 501]),
        "MAIL": answers([250], [451, 452, 550, 553, 552, 501, 530]),
        "RCPT": answers([250, 251], [550, 450, 452, 553, 551, 501]),
        "DATA": answers([354], [554, 451, 503]),
        END_OF_DATA: answers([250], [552, 451, 554, 550]),
        "NOOP": answers([250], [500, 502], surplus=True),
        "HELP": answers([214, 211, 250], [502], surplus=True),
        "VRFY": answers([252, 250, 251], [550, 502], surplus=True),
        "EXPN": answers([250], [550, 502], surplus=True),
        "QUIT": answers([221], [500], ok=reply(221, "2.0.0 Bye", close=True), odd=False, weight=10),
        "STARTTLS": _starttls_answers(),
        "AUTH": _auth_answers(),
        AUTH_RESPONSE: st.one_of(
            answers([235], [535, 501], odd=False), st.just(reply(334, _CHALLENGES[0]))
        ),
        "": answers([500], [501], odd=False),
        OTHER: answers([502], [500, 250], surplus=True),
    }.items()
]

_AUTH_LINES = [
    None,
    "AUTH PLAIN LOGIN",
    "AUTH LOGIN",
    "AUTH CRAM-MD5 PLAIN",
    "AUTH PLAIN",
    "AUTH LOGIN CRAM-MD5 PLAIN",
    "AUTH XOAUTH2",
]
_GREETINGS = weighted(
    (4, answers([220], [554], ok=reply(220, "differential.test ESMTP"), weight=60)),
    (1, _replies([220])),
)
_ODD_EXTENSIONS = _rare(
    [()],
    [("AUTH=LOGIN PLAIN",), ("size 1000",), ("X-EXT  two  spaces ",), ("-junk",)],
    weight=12,
)
_RSET = weighted(
    (8, st.just(RSET_OK)),
    (2, _replies([500, 451])),
    (1, st.just(CLOSE_421)),
    (1, st.just(close_silently())),
)
_PACE = st.builds(
    Pace,
    st.integers(1, 10),
    st.sampled_from((0.002, 0.01, 0.03)),
    st.sampled_from((None, None, 1, 3, 4, -1, -2)),
)


@st.composite
def policies(draw: st.DrawFn) -> AioPolicy:
    """A server: greeting, extensions, answers to each verb's first uses, and pace."""
    extensions: list[str] = []
    if draw(st.sampled_from([True, True, False])):
        extensions.append("PIPELINING")
    size_line = draw(st.sampled_from([None, None, "SIZE", "SIZE 0", "SIZE 100000", "SIZE 60"]))
    if size_line:
        extensions.append(size_line)
    auth = draw(st.sampled_from(_AUTH_LINES))
    if auth:
        extensions.append(auth)
    for keyword in ("8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"):
        if draw(st.booleans()):
            extensions.append(keyword)
    if draw(st.sampled_from([False, False, True])):
        extensions.append("STARTTLS")
    extensions += draw(_ODD_EXTENSIONS)
    hello = reply(250, "differential.test", *extensions)
    greeting = draw(_GREETINGS)
    table: list[tuple[str, tuple[Answer, ...]]] = []
    for key, strategy in _TABLE:
        chosen = tuple(hello if a is _HELLO else a for a in draw(strategy))
        if chosen:
            table.append((key, chosen))
    policy = Policy(greeting, tuple(extensions), tuple(table), draw(_RSET))
    pace = draw(st.sampled_from([0, 0, 0, 1, 2]))
    paced = draw(st.lists(_PACE, min_size=pace, max_size=pace, unique_by=lambda p: p.write))
    return AioPolicy(policy, tuple(sorted(paced, key=lambda p: p.write)))


def conversations() -> st.SearchStrategy[Conversation]:
    """A policy and a script, the unit the differential tests draw."""
    return st.builds(Conversation, policies(), scripts())
