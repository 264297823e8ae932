"""The named deviations of ``smtpclient.aio`` from aiosmtplib, as rules.

Each rule stands for one documented difference (README, "Differences from aiosmtplib";
``smtpclient/aio/API.md`` sections 4 and 5) and has a ``name``, a one-line ``summary``,
``row``, the first cell of its README row (two rules may share one), and a predicate,
:meth:`Deviation.explain`, over one step at which the two runs differ (a :class:`Context`:
the policy, the script, the step, and both runs).  It answers ``None`` unless the
difference is exactly its own, and then an :class:`Explanation`:

- a *rewrite*: the step records with this deviation's difference taken out (only
  ``pipelining``); the rest of the step must then be equal, and the comparison goes on;
- a *whole step*: the deviation accounts for everything the step did differently.  If the
  client or the server is left in a different state, the sessions can no longer be
  compared and ``diverged`` ends the comparison.

Every rule checks its trigger in what the server sent and what each library sent, raised
and kept, never "anything after X", and never accepts a difference in an outcome it does
not name: aiosmtplib against itself needs no rule, and a tampered outcome is never
explained (``tests/test_differential_aio.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol

from aiosmtplib.email import parse_address

from smtp_core import MAX_REPLY_LINE_LENGTH, MAX_REPLY_LINES
from tests.differential.server import END_OF_DATA, Entry
from tests.differential_aio.compare import ClientState, Outcome, StepRecord, Transcript
from tests.differential_aio.scenarios import AioPolicy, Conversation, MessageSpec, Script, Step

__all__ = ["DEVIATIONS", "Context", "Deviation", "Explanation"]

CRLF = b"\r\n"
#: aiosmtplib's bound on a reply line (protocol.MAX_LINE_LENGTH), CRLF included.
AIOSMTPLIB_MAX_LINE = 8192
#: aiosmtplib's bound on the bytes of one reply (protocol.MAX_RESPONSE_LENGTH).
AIOSMTPLIB_MAX_REPLY = AIOSMTPLIB_MAX_LINE * 4
AUTH_METHODS = ("login", "auth_plain", "auth_login", "auth_crammd5", "auth_xoauth2")
#: Steps that may log in with the ``username``/``password`` options.
CONNECTING = ("connect", "__aenter__", "send")
TRANSACTIONS = ("sendmail", "send_message", "send")
#: The README row ``starttls-injection`` and ``unsolicited-reply`` share: one row for
#: bytes nobody asked for, at STARTTLS or between commands.
SHARED_INJECTION_ROW = (
    "bytes after the 220 to STARTTLS are discarded; unsolicited bytes between commands are dropped"
)


@dataclass(frozen=True)
class Context:
    """One step at which the runs differ, with everything a rule may look at.

    ``theirs_step`` (aiosmtplib) and ``ours_step`` are the step's records as earlier rules
    left them.
    """

    conversation: Conversation
    theirs: Transcript
    ours: Transcript
    index: int
    theirs_step: StepRecord
    ours_step: StepRecord

    @property
    def policy(self) -> AioPolicy:
        return self.conversation.policy

    @property
    def script(self) -> Script:
        return self.conversation.script

    @property
    def step(self) -> Step:
        return self.theirs_step.step

    def state_before(self, transcript: Transcript) -> ClientState:
        """The client's state before this step."""
        return transcript.steps[self.index - 1].state if self.index else ClientState()


@dataclass(frozen=True)
class Explanation:
    """A rule's account of a difference (module docstring)."""

    rule: str
    index: int
    note: str
    theirs_step: StepRecord
    ours_step: StepRecord
    diverged: bool = False


class Deviation(Protocol):
    """A rule: its ``name``, a one-line ``summary``, its README ``row``, and :meth:`explain`.

    ``row`` is the first cell (aiosmtplib's behaviour) of the row of README's "Differences
    from aiosmtplib" table the rule stands for, exactly as written there.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    row: ClassVar[str]

    def explain(self, context: Context) -> Explanation | None: ...


# -- helpers -----------------------------------------------------------------------------


def _replies(answer: bytes) -> list[list[bytes]]:
    """The replies in the bytes the server wrote, each a list of lines (CRLF removed)."""
    replies: list[list[bytes]] = []
    current: list[bytes] = []
    for line in answer.split(CRLF)[:-1]:
        current.append(line)
        if line[3:4] != b"-":
            replies.append(current)
            current = []
    if current:
        replies.append(current)
    return replies


def _code(answer: bytes) -> int | None:
    """The code of the first reply in ``answer`` (its last line's), or None."""
    replies = _replies(answer)
    if not replies:
        return None
    head = replies[0][-1][:3]
    return int(head) if len(head) == 3 and head.isdigit() else None


def _whole_step(context: Context, rule: str, note: str, *, diverged: bool = False) -> Explanation:
    """The deviation accounts for the whole step; the comparison stops if states differ."""
    t, o = context.theirs_step, context.ours_step
    diverged = diverged or t.state != o.state or t.server_state != o.server_state
    return Explanation(rule, context.index, note, o, o, diverged)


def _sent(record: StepRecord, key: str) -> bool:
    """The step sent a command ``key`` (or, for AUTH, a SASL response line)."""
    return any(
        (e.kind in ("command", "discarded") and e.key == key)
        or (key == "AUTH" and e.kind == "response")
        for e in record.entries
    )


def _text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _options(context: Context) -> dict[str, Any]:
    """The options the step runs with: the constructor's, and ``connect``/``send``'s own."""
    return {**dict(context.script.options), **context.step.kw()}


def _credentials(context: Context) -> tuple[object, object] | None:
    """The credentials the step may send: an AUTH method's, or login on connect."""
    step = context.step
    if step.method in AUTH_METHODS:
        return step.args[0], step.args[1]
    if step.method in CONNECTING:
        options = _options(context)
        if options.get("username") is not None:
            return options["username"], options.get("password") or ""
    return None


def _in_clear(record: StepRecord, before: ClientState) -> bool:
    """No TLS before the step, and no STARTTLS accepted during it."""
    started = any(
        e.kind == "command" and e.key == "STARTTLS" and _code(e.answer) == 220
        for e in record.entries
    )
    return before.tls != "True" and not started


def _signature(entry: Entry) -> tuple[str, bytes, bytes, bool]:
    return entry.kind, entry.raw, entry.answer, entry.closed


def _refused_locally(record: StepRecord) -> bool:
    """Raised an SMTPException that carries no server reply."""
    return record.outcome.is_a("SMTPException") and not record.outcome.is_a("SMTPResponseException")


def _disconnected_or_unparsable(record: StepRecord) -> bool:
    """Raised SMTPServerDisconnected, or SMTPResponseException with code -1."""
    outcome = record.outcome
    return outcome.is_a("SMTPServerDisconnected") or (
        outcome.is_a("SMTPResponseException") and outcome.code == -1
    )


def _pipelines(context: Context) -> bool:
    """smtpclient.aio may pipeline the step: a transaction, PIPELINING offered and allowed."""
    return (
        context.step.method in TRANSACTIONS
        and context.policy.offers("PIPELINING")
        and context.script.pipelining
    )


#: One reply line of RFC 5321 (section 4.2), as this module reads it: a code whose first
#: digit is 2 to 5, then a space or a hyphen and text without CR or LF, or nothing; CRLF.
_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])[^\r\n]*)?\r\n")


def _well_formed(answer: bytes) -> bool:
    """Every reply in the bytes the server wrote keeps RFC 5321's reply grammar: each line
    as :data:`_REPLY_LINE` (CRLF ends, no bare CR or LF), a hyphen after the code on every
    line but the last, and one code on every line of one reply.

    Written here, apart from smtp_core's parser: the engine is not judged by itself.
    """
    at, code = 0, None
    while at < len(answer):
        line = _REPLY_LINE.match(answer, at)
        if line is None or (code is not None and line.group(1) != code):
            return False
        code = line.group(1) if line.group(2) == b"-" else None
        at = line.end()
    return code is None


def _malformed(answer: bytes) -> bool:
    """The server wrote something, and it breaks the reply grammar (:func:`_well_formed`)."""
    return bool(answer) and not _well_formed(answer)


def _reply_text(answer: bytes) -> str:
    """The text of the first reply in ``answer`` as both libraries give it: each line's text
    stripped of blanks, decoded UTF-8 (``surrogateescape``), joined with LF."""
    lines = _replies(answer)[0] if _replies(answer) else []
    return "\n".join(
        line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape") for line in lines
    )


# -- the rules -----------------------------------------------------------------------------


class Pipelining:
    """pipelining -- ``sendmail`` writes MAIL, every RCPT and DATA in one write when the
    server offers PIPELINING (API.md section 5); aiosmtplib never pipelines.

    The harness compares the bytes of a step concatenated, and its server answers line by
    line, so a transaction that succeeds is the same for both.  The difference is what a
    pipelining client has already written when a reply refuses: the RCPTs behind a refused
    MAIL, the DATA behind refused recipients (the server answers those on its own, 503/554,
    without using up an answer of the policy), the end-of-data mark alone when such a DATA
    still draws 354 (RFC 2920 section 3.1), and lines written before the server closed
    (read after closing).

    Applies to ``sendmail``, ``send_message`` and ``send`` when the server offers
    PIPELINING and smtpclient.aio may use it; the outcome and the client's state must be
    equal; aiosmtplib's exchanges must be ours, in order, with only such extra ones
    (RCPT or DATA commands, lines read after closing, a bare end-of-data mark), all after
    our MAIL.  Rewrites ours to aiosmtplib's exchanges; if the extra commands changed the
    server's state (they were answered inside a transaction aiosmtplib's server does not
    have), the sessions have diverged.
    """

    name: ClassVar[str] = "pipelining"
    summary: ClassVar[str] = "MAIL, RCPT and DATA in one write: extra commands after a refusal"
    row: ClassVar[str] = "MAIL, each RCPT and DATA one round trip each"

    def explain(self, context: Context) -> Explanation | None:
        if context.step.method not in TRANSACTIONS:
            return None
        if not context.policy.offers("PIPELINING") or not context.script.pipelining:
            return None
        t, o = context.theirs_step, context.ours_step
        if t.outcome != o.outcome or t.state != o.state:
            return None
        ours = list(o.entries)
        matched: list[Entry] = []
        position = 0
        for entry in t.entries:
            while position < len(ours) and _signature(ours[position]) != _signature(entry):
                position += 1
            if position == len(ours):
                return None
            matched.append(ours[position])
            position += 1
        kept = {id(e) for e in matched}
        extra = [e for e in ours if id(e) not in kept]
        mail = next((e for e in ours if e.kind == "command" and e.key == "MAIL"), None)
        if not extra or mail is None or ours.index(extra[0]) < ours.index(mail):
            return None
        if not all(self._pipelined(e) for e in extra):
            return None
        rewritten = replace(o, entries=tuple(matched))
        shown = ", ".join(repr(e.raw.split(b" ")[0].rstrip(CRLF)) for e in extra)
        note = f"smtpclient.aio pipelined the transaction; aiosmtplib did not send {shown}"
        return Explanation(
            self.name, context.index, note, t, rewritten, t.server_state != o.server_state
        )

    @staticmethod
    def _pipelined(entry: Entry) -> bool:
        if entry.kind in ("command", "discarded") and entry.key in ("RCPT", "DATA"):
            return True
        if entry.kind == "discarded" and entry.key == "RSET":
            return True
        return entry.kind == "content" and entry.raw == b".\r\n"


class AuthInClearRefused:
    """auth-in-clear-refused -- credentials are refused on a connection without TLS unless
    the caller opted in: ``SMTP(..., auth_in_clear=True)`` (or ``send(...,
    auth_in_clear=True)``); API.md section 4, item 3.  aiosmtplib sends them (after an
    attacker stripped STARTTLS from EHLO, too).

    Applies to ``login``, ``auth_*``, and ``connect``/``__aenter__``/``send`` with a
    ``username``, when the script did not opt in and the connection was in the clear:
    smtpclient.aio raised an ``SMTPException`` that is not an ``SMTPResponseException``
    (no server reply) and sent no AUTH line and no SASL response; aiosmtplib sent an AUTH
    line, after the same bytes.  Whole step.
    """

    name: ClassVar[str] = "auth-in-clear-refused"
    summary: ClassVar[str] = "credentials refused without TLS unless auth_in_clear=True"
    row: ClassVar[str] = (
        "with `start_tls=None` (the default) and no STARTTLS offered, logs in in the clear"
    )

    def explain(self, context: Context) -> Explanation | None:
        if context.script.auth_in_clear or _credentials(context) is None:
            return None
        t, o = context.theirs_step, context.ours_step
        if not _in_clear(o, context.state_before(context.ours)):
            return None
        if not _refused_locally(o) or _sent(o, "AUTH"):
            return None
        if not _sent(t, "AUTH") or not t.received.startswith(o.received):
            return None
        return _whole_step(context, self.name, "smtpclient.aio refused credentials in clear")


class CredentialsControlCharacters:
    """credentials-control-characters -- NUL, CR or LF in a user name or password raise
    ``ValueError`` before any AUTH byte (API.md section 4, item 5); aiosmtplib encodes
    them (a NUL shifts PLAIN's fields).

    Applies to ``login``, ``auth_*`` and login on connect with such credentials:
    smtpclient.aio raised ``ValueError`` and sent no AUTH line and no SASL response;
    aiosmtplib sent an AUTH line, after the same bytes.  Whole step.
    """

    name: ClassVar[str] = "credentials-control-characters"
    summary: ClassVar[str] = "NUL, CR, LF in credentials: ValueError before any AUTH byte"
    row: ClassVar[str] = "NUL in a PLAIN user name or password is encoded"

    def explain(self, context: Context) -> Explanation | None:
        credentials = _credentials(context)
        if credentials is None:
            return None
        if not any(c in _text(value) for value in credentials for c in "\0\r\n"):
            return None
        t, o = context.theirs_step, context.ours_step
        if not o.outcome.is_a("ValueError") or _sent(o, "AUTH"):
            return None
        if not _sent(t, "AUTH") or not t.received.startswith(o.received):
            return None
        return _whole_step(context, self.name, "smtpclient.aio refused the credentials")


def _strings(value: object) -> Iterator[str]:
    """The str values in ``value``, through lists and tuples."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _addresses(step: Step) -> list[str]:
    """The addresses a transaction step is given (sender, recipients), never the message."""
    options = step.kw()
    given: list[object] = [options.get("sender"), options.get("recipients")]
    if step.method == "sendmail":
        given += step.args[:2]
    for arg in step.args:
        if isinstance(arg, MessageSpec):
            given += [arg.sender, arg.to, arg.cc, arg.bcc]
    return list(_strings(given))


def _only(entries: Sequence[Entry], keys: tuple[str, ...]) -> bool:
    """Every entry is a command with one of ``keys``, answered or read after closing."""
    return all(e.kind in ("command", "discarded") and e.key in keys for e in entries)


def _after(entries: list[Entry], at: int, keys: tuple[str, ...]) -> int:
    """The index after the commands (or lines read after closing) with these keys from ``at``."""
    while at < len(entries) and entries[at].kind in ("command", "discarded"):
        if entries[at].key not in keys:
            break
        at += 1
    return at


#: A C0 control character or DEL: aiosmtplib refuses every one in a command line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _unsendable(step: Step) -> set[str]:
    """The exceptions the step's addresses call for before any byte: ``ValueError`` for a
    control character, ``UnicodeEncodeError`` for non-ASCII without ``SMTPUTF8`` among the
    step's MAIL options (a message object: ``send_message`` adds it itself)."""
    addresses = _addresses(step)
    refusals = set()
    if any(_CONTROL.search(address) for address in addresses):
        refusals.add("ValueError")
    options = [str(o).upper() for o in step.kw().get("mail_options") or ()]
    message = step.method == "send_message" or any(isinstance(a, MessageSpec) for a in step.args)
    if not (message or "SMTPUTF8" in options or all(a.isascii() for a in addresses)):
        refusals.add("UnicodeEncodeError")
    return refusals


def _in_turn(entries: list[Entry]) -> bool:
    """Commands answered one by one, and once the server closed, only lines read after."""
    closed = False
    for entry in entries:
        if closed and entry.kind == "discarded":
            continue
        if closed or entry.kind != "command":
            return False
        closed = entry.closed
    return True


class AddressesCheckedFirst:
    """addresses-checked-first -- an address ``sendmail``, ``send_message`` or ``send``
    cannot send raises before the first byte of the transaction (no MAIL is sent; API.md
    section 4, item 1, the same rule as the smtplib face): a C0 control character or DEL,
    ``ValueError``; a non-ASCII address without ``SMTPUTF8``, ``UnicodeEncodeError``.
    aiosmtplib checks only blanks first: it sends MAIL and the RCPTs before the bad
    address, then raises the same for the bad line and leaves the server inside a
    transaction; or, when the server refuses its MAIL first, raises
    ``SMTPSenderRefused`` and resets; or, when the server closes at its MAIL or an RCPT,
    raises what that close gives (``SMTPServerDisconnected``).

    Applies to ``sendmail``, ``send_message`` and ``send`` when an address in the step's
    arguments (the sender and the recipients, through lists and tuples, never the message)
    holds a control character and smtpclient.aio raised ``ValueError`` itself (not a
    subclass), or a non-ASCII address without ``SMTPUTF8`` in the step's MAIL options and
    smtpclient.aio raised ``UnicodeEncodeError``; smtpclient.aio sent no MAIL, and
    aiosmtplib sent MAIL and either

    - raised the same exception, and its exchanges without that MAIL and the RCPTs right
      after it are smtpclient.aio's; or
    - raised ``SMTPSenderRefused`` with the code of its MAIL's reply, and its exchanges
      without that MAIL and the RSET right after it are smtpclient.aio's; or
    - raised ``SMTPServerDisconnected`` after the server closed at the last of that MAIL
      and the RCPTs right after it, and its exchanges without them are smtpclient.aio's.

    The client state must be equal, unless aiosmtplib is closed because the server closed
    at one of its exchanges left out (then ``send``'s QUIT is smtpclient.aio's alone).  The
    same exchanges means the same bytes, answers and closes: the EHLO before, the QUIT of
    ``send`` after.  Whole step; the server states differ (a transaction left open, or the
    uses of MAIL counted), so the sessions have diverged.
    """

    name: ClassVar[str] = "addresses-checked-first"
    summary: ClassVar[str] = "an address it cannot send raises before MAIL"
    row: ClassVar[str] = (
        "`sendmail` sends MAIL (and the RCPTs before it), then raises for an address it "
        "cannot send (a control character; non-ASCII without SMTPUTF8)"
    )

    def explain(self, context: Context) -> Explanation | None:
        step = context.step
        if step.method not in TRANSACTIONS:
            return None
        t, o = context.theirs_step, context.ours_step
        if o.outcome.exc_type not in _unsendable(step) or _sent(o, "MAIL"):
            return None
        theirs = list(t.entries)
        at = next((k for k, e in enumerate(theirs) if e.kind == "command" and e.key == "MAIL"), -1)
        if at < 0:
            return None
        mail_code = _code(theirs[at].answer)
        if t.outcome == o.outcome:
            end = _after(theirs, at + 1, ("RCPT",))
            if not _in_turn(theirs[at:end]):
                return None
        elif t.outcome.exc_type == "SMTPSenderRefused" and t.outcome.code == mail_code:
            end = _after(theirs, at + 1, ("RSET",))
            if end != at + 2:
                return None
        elif t.outcome.exc_type == "SMTPServerDisconnected":
            end = _after(theirs, at + 1, ("RCPT",))
            if not _in_turn(theirs[at:end]) or not any(e.closed for e in theirs[at:end]):
                return None
        else:
            return None
        closed = any(e.closed for e in theirs[at:end]) and not t.state.connected
        if t.state != o.state and not closed:
            return None
        rest = [_signature(e) for e in theirs[:at] + theirs[end:]]
        ours = [_signature(e) for e in o.entries]
        quit_alone = (
            closed
            and step.method == "send"
            and ours[:-1] == rest
            and o.entries[-1].kind == "command"
            and o.entries[-1].key == "QUIT"
        )
        if rest != ours and not quit_alone:
            return None
        note = "smtpclient.aio refused the address before MAIL; aiosmtplib sent MAIL"
        return _whole_step(context, self.name, note, diverged=True)


def _path(raw: bytes) -> str | None:
    """The path of a MAIL or RCPT line, or None for another line."""
    match = re.match(rb"(?i)(?:MAIL FROM|RCPT TO):<([^>]*)>", raw)
    return match.group(1).decode("utf-8", "replace") if match else None


class LineBreakInAddress:
    """line-break-in-address -- an address with a CR or LF inside it (not only at its ends)
    raises ``ValueError`` before any byte of the transaction; aiosmtplib
    lets ``email.utils.parseaddr`` join the pieces or cut at the break and mails the
    result, an address the caller never wrote (``crlf\\r\\nrset@x.test`` goes out as
    ``crlfrset@x.test``).

    Applies to ``sendmail``, ``send_message`` and ``send`` when an address in the step's
    arguments has a CR or LF once stripped; smtpclient.aio raised ``ValueError`` and sent no
    MAIL (``send`` then QUIT); aiosmtplib sent, after the same bytes, a MAIL or RCPT line
    whose path is what aiosmtplib's ``parse_address`` makes of such an address.  Whole
    step; the server has a transaction (or a message) smtpclient.aio's server has not, so
    the sessions diverged.
    """

    name: ClassVar[str] = "line-break-in-address"
    summary: ClassVar[str] = "a line break inside an address: ValueError, not a mangled address"
    row: ClassVar[str] = (
        "an address with a line break inside is cut or joined there by `parseaddr` and "
        "the result is mailed"
    )

    def explain(self, context: Context) -> Explanation | None:
        step = context.step
        if step.method not in TRANSACTIONS:
            return None
        broken = [a for a in _addresses(step) if "\r" in a.strip() or "\n" in a.strip()]
        t, o = context.theirs_step, context.ours_step
        if not broken or not o.outcome.is_a("ValueError") or _sent(o, "MAIL"):
            return None
        before = o.received
        if step.method == "send" and before.endswith(b"QUIT\r\n"):
            before = before[: -len(b"QUIT\r\n")]  # send() ends its own session
        if not t.received.startswith(before):
            return None
        mangled = set()
        for address in broken:
            try:
                mangled.add(parse_address(address))
            except ValueError:
                continue
        paths = {_path(e.raw) for e in t.entries if e.kind == "command"}
        if not mangled & paths:
            return None
        note = "smtpclient.aio refused the address; aiosmtplib mailed what parseaddr made of it"
        return _whole_step(context, self.name, note, diverged=True)


def _rcpt_address(raw: bytes) -> str:
    match = re.match(rb"(?i)RCPT TO:<([^>]*)>", raw)
    return match.group(1).decode("utf-8", "replace") if match else ""


def _normalised(address: str) -> str:
    try:
        return parse_address(address)
    except ValueError:
        return address


def _unknown_are_accepted(context: Context) -> bool:
    """Ours' ``SMTPOutcomeUnknownError`` names as ``unknown`` exactly the recipients the
    server accepted in the step (any 2yz: smtpclient.aio's reading, two-hundred-is-success),
    and nothing as ``delivered`` (``data`` by hand: no check).
    """
    if context.step.method == "data":
        return True
    o = context.ours_step
    accepted = set()
    for e in o.entries:
        code = _code(e.answer) if e.kind == "command" and e.key == "RCPT" else None
        if code is not None and code // 100 == 2:
            accepted.add(_rcpt_address(e.raw))
    exc = o.outcome.raw
    unknown = getattr(exc, "unknown", None)
    if unknown is None or {_normalised(u) for u in unknown} != accepted:
        return False
    return not tuple(getattr(exc, "delivered", ()))


def _lenient_code(answer: bytes) -> int | None:
    """aiosmtplib's code for the first reply in ``answer``: ``int()`` of the first three
    octets of its last line, lines ending at LF; None where it refuses the reply."""
    if _unparsable(answer) or len(answer) > AIOSMTPLIB_MAX_REPLY:
        return None
    for line in answer.split(b"\n")[:-1]:
        if line[3:4] != b"-":
            return int(line[:3])
    return None


def _lenient_verdict(outcome: Outcome, answer: bytes) -> bool:
    """``outcome`` is what aiosmtplib makes of ``answer`` to the final dot: code -1 if it
    refuses the reply, else success for 250 and ``SMTPDataError`` for any other code."""
    code = _lenient_code(answer)
    if code is None:
        return outcome.exc_type == "SMTPResponseException" and outcome.code == -1
    if code == 250:
        return outcome.kind == "return"
    return outcome.exc_type == "SMTPDataError" and outcome.code == code


class OutcomeUnknown:
    """outcome-unknown -- when the connection fails after the final dot, before the
    verdict, or the verdict is a reply the engine refuses (malformed, or over a limit),
    smtpclient.aio raises ``SMTPOutcomeUnknownError`` (the message may have been
    delivered: do not retry blindly); aiosmtplib raises ``SMTPServerDisconnected`` (or
    ``SMTPReadTimeoutError``), which code written for it retries, or reads a malformed
    verdict its own way (``SMTPResponseException(-1)``, or its lenient code).  API.md
    section 4, item 8.

    Applies to ``data``, ``sendmail``, ``send_message`` and ``send`` when, the same
    exchange in both runs,

    - the server read the message up to its final dot and closed without a reply (the
      same bytes in both runs, the same client state): aiosmtplib raised
      ``SMTPServerDisconnected`` or ``SMTPReadTimeoutError``; or
    - the server answered the final dot with a reply that breaks RFC 5321's grammar
      (:func:`_well_formed`, this module's own check) or that aiosmtplib cannot read (a
      line whose code ``int()`` refuses, or over 8192 octets): aiosmtplib raised
      ``SMTPResponseException`` with code -1 if it cannot read it, else took the code of
      its last line (lines ending at LF) as it is (success for 250, ``SMTPDataError``
      otherwise), and sent nothing after it but RSET and QUIT; smtpclient.aio is closed,
      sent nothing after the message, and its bytes are a prefix of aiosmtplib's.

    smtpclient.aio raised ``SMTPOutcomeUnknownError`` (whether it is also an instance of
    aiosmtplib's class is smtpclient.aio's choice), and for a whole transaction its
    ``unknown`` recipients are exactly those the server accepted, and ``delivered`` is
    empty.  Whole step; for a malformed verdict the sessions have diverged.
    """

    name: ClassVar[str] = "outcome-unknown"
    summary: ClassVar[str] = "no verdict after the final dot: SMTPOutcomeUnknownError"
    row: ClassVar[str] = (
        "a timeout, a close or a reply it cannot read after the final dot raises "
        "`SMTPReadTimeoutError`, `SMTPServerDisconnected` or `SMTPResponseException(-1)`"
    )

    def explain(self, context: Context) -> Explanation | None:
        step = context.step
        if step.method not in ("data", *TRANSACTIONS):
            return None
        t, o = context.theirs_step, context.ours_step
        if not o.outcome.is_a("SMTPOutcomeUnknownError") or not _unknown_are_accepted(context):
            return None
        ours = list(o.entries)
        silent = [e for e in ours if e.kind == "content" and e.closed and not e.answer]
        if len(silent) == 1 and _signature(silent[0]) in map(_signature, t.entries):
            lost = t.outcome.is_a("SMTPServerDisconnected") or t.outcome.is_a(
                "SMTPReadTimeoutError"
            )
            if not lost or t.received != o.received or t.state != o.state:
                return None
            note = "the server closed after the final dot: the outcome is unknown"
            return _whole_step(context, self.name, note)
        verdict = ours[-1] if ours else None
        if verdict is None or verdict.kind != "content":
            return None
        if not (_malformed(verdict.answer) or _unparsable(verdict.answer)):
            return None
        theirs = [_signature(e) for e in t.entries]
        if _signature(verdict) not in theirs or o.state.connected:
            return None
        after = t.entries[theirs.index(_signature(verdict)) + 1 :]
        if not _only(after, ("RSET", "QUIT")):
            return None
        if not t.received.startswith(o.received) or not _lenient_verdict(t.outcome, verdict.answer):
            return None
        note = "a malformed verdict: smtpclient.aio says the outcome is unknown"
        return _whole_step(context, self.name, note, diverged=True)


def _injected(entry: Entry) -> bool:
    """A 220 to STARTTLS with more bytes after it in the same write."""
    replies = _replies(entry.answer)
    return (
        entry.kind == "command"
        and entry.key == "STARTTLS"
        and len(replies) > 1
        and replies[0][-1][:4] == b"220 "
    )


class StartTLSInjection:
    """starttls-injection -- bytes after the 220 to STARTTLS, before the TLS handshake, are
    an attack (response injection, RFC 3207 section 4.2) and end the session; aiosmtplib
    discards them and goes on in TLS.  API.md section 4, item 6.

    Applies where the server answered STARTTLS with a 220 and a further reply in the same
    write (the same exchange in both runs): smtpclient.aio raised
    ``SMTPServerDisconnected`` or ``SMTPResponseException`` with code -1, is closed, and
    sent nothing after the STARTTLS line; aiosmtplib went on in TLS (it is in TLS after the
    step, or sent more after STARTTLS).  Whole step; the sessions have diverged.
    """

    name: ClassVar[str] = "starttls-injection"
    summary: ClassVar[str] = "bytes after the 220 to STARTTLS end the session"
    row: ClassVar[str] = SHARED_INJECTION_ROW

    def explain(self, context: Context) -> Explanation | None:
        t, o = context.theirs_step, context.ours_step
        ours = list(o.entries)
        injected = next((e for e in ours if _injected(e)), None)
        if injected is None or _signature(injected) not in map(_signature, t.entries):
            return None
        if not _disconnected_or_unparsable(o) or o.state.connected:
            return None
        if ours[ours.index(injected) + 1 :] or not t.received.startswith(o.received):
            return None
        theirs = list(t.entries)
        at = [_signature(e) for e in theirs].index(_signature(injected))
        if t.state.tls != "True" and not theirs[at + 1 :]:
            return None
        note = "bytes after the 220 to STARTTLS: smtpclient.aio ended the session"
        return _whole_step(context, self.name, note, diverged=True)


def _surplus(entry: Entry) -> bool:
    return (
        entry.kind in ("command", "response")
        and entry.replies > 1
        and entry.key not in ("STARTTLS", END_OF_DATA)
    )


class UnsolicitedReply:
    """unsolicited-reply -- a reply nobody asked for (a second reply to one command) is a
    protocol error: smtpclient.aio closes; aiosmtplib keeps it, when it came with the
    first, and reads it as the answer to the next command (out of step from then on), or
    drops it.  API.md section 4, item 7.

    Applies at a step where smtpclient.aio is closed and aiosmtplib is not, when the server
    sent a surplus reply (the same exchange in both runs) in this step, or in an earlier
    one and ours has exchanged nothing since (the step where it could notice); ours
    returned what aiosmtplib returned (it noticed afterwards) or raised
    ``SMTPServerDisconnected`` or ``SMTPResponseException`` with code -1, and sent no more
    than aiosmtplib.  Whole step; the sessions have diverged.
    """

    name: ClassVar[str] = "unsolicited-reply"
    summary: ClassVar[str] = "a reply nobody asked for ends the session"
    row: ClassVar[str] = SHARED_INJECTION_ROW

    def explain(self, context: Context) -> Explanation | None:
        t, o = context.theirs_step, context.ours_step
        if not t.state.connected or o.state.connected:
            return None
        steps = context.ours.steps
        found = None
        for k in range(context.index, -1, -1):
            record = o if k == context.index else steps[k]
            surplus = [e for e in record.entries if _surplus(e)]
            if surplus:
                found = surplus[-1]
                break
            if k != context.index and record.commands():
                return None  # ours exchanged more since: it should have noticed
        theirs_log = [e for k in range(context.index + 1) for e in context.theirs.steps[k].entries]
        if found is None or _signature(found) not in map(_signature, theirs_log):
            return None
        if t.outcome != o.outcome and not _disconnected_or_unparsable(o):
            return None
        if not t.received.startswith(o.received):
            return None
        note = f"surplus reply to {found.raw!r}: smtpclient.aio ended the session"
        return _whole_step(context, self.name, note, diverged=True)


def _unparsable(answer: bytes) -> bool:
    """A line aiosmtplib refuses: ``int(line[:3])`` fails, or it is over 8192 octets."""
    for line in answer.split(b"\n")[:-1]:
        if len(line) + 1 > AIOSMTPLIB_MAX_LINE:
            return True
        try:
            int(line[:3])
        except ValueError:
            return True
    return False


class UnparsableReplyCloses:
    """unparsable-reply-closes -- after a reply it cannot parse, smtpclient.aio raises
    ``SMTPResponseException(-1, ...)`` as aiosmtplib does, and closes; aiosmtplib keeps the
    connection, with the bad line left in its buffer, so every later reply raises the same
    (API.md section 5, "Reply grammar leniency"); in a transaction it still writes its
    RSET (and ``send`` its QUIT), each refused the same way.

    Applies at the step where the server sent a reply aiosmtplib refuses (a line whose
    first three octets are not a number to ``int()``, or a line over 8192 octets), after
    the same exchanges in both runs, when both raised the same ``SMTPResponseException``
    with code -1, smtpclient.aio is closed and exchanged nothing after that reply but the
    RCPT and DATA lines it had pipelined with the command (a transaction, PIPELINING
    offered and allowed), and aiosmtplib wrote nothing after it but RSET and QUIT.  Whole
    step; the sessions have diverged.
    """

    name: ClassVar[str] = "unparsable-reply-closes"
    summary: ClassVar[str] = "an unparsable reply raises code -1 and closes"
    row: ClassVar[str] = "a malformed reply line is parsed leniently (`int(line[:3])`)"

    def explain(self, context: Context) -> Explanation | None:
        t, o = context.theirs_step, context.ours_step
        theirs, ours = list(t.entries), list(o.entries)
        at = next((k for k, e in enumerate(ours) if e.answer and _unparsable(e.answer)), -1)
        if at < 0 or len(theirs) <= at:
            return None
        if [_signature(e) for e in theirs[: at + 1]] != [_signature(e) for e in ours[: at + 1]]:
            return None
        if t.outcome != o.outcome or not o.outcome.is_a("SMTPResponseException"):
            return None
        if o.outcome.code != -1 or o.state.connected:
            return None
        after = ours[at + 1 :]
        if after and not (_pipelines(context) and all(_pipelined_command(e) for e in after)):
            return None
        if not _only(theirs[at + 1 :], ("RSET", "QUIT")):
            return None
        note = "unparsable reply: smtpclient.aio closed, aiosmtplib keeps the bad line"
        return _whole_step(context, self.name, note, diverged=True)


def _over_our_limits(answer: bytes) -> bool:
    """A reply the engine refuses for its size: a line over ``MAX_REPLY_LINE_LENGTH`` octets
    (CRLF included), or more than ``MAX_REPLY_LINES`` lines (refused once that many
    continuation lines are read)."""
    for reply in _replies(answer):
        if any(len(line) + len(CRLF) > MAX_REPLY_LINE_LENGTH for line in reply):
            return True
        if sum(line[3:4] == b"-" for line in reply) >= MAX_REPLY_LINES:
            return True
    return False


def _pipelined_command(entry: Entry) -> bool:
    return entry.kind in ("command", "discarded") and entry.key in ("RCPT", "DATA")


class ReplyLimits:
    """reply-limits -- the engine refuses a reply of more than ``smtp_core.MAX_REPLY_LINES``
    lines or with a line over ``smtp_core.MAX_REPLY_LINE_LENGTH`` octets (CRLF included):
    smtpclient.aio raises ``SMTPResponseException(-1, ...)`` (at ``connect()`` too: the
    greeting) and closes; after the final dot the verdict is then unknown
    (``SMTPOutcomeUnknownError``, as for any failure there).  aiosmtplib reads lines up to
    8192 octets and replies up to 32768 octets.

    Applies at the step where the server sent such a reply (the same exchange in both runs)
    that aiosmtplib can read (no line over 8192 octets, every line's code a number to
    ``int()``, at most 32768 octets): smtpclient.aio raised ``SMTPResponseException``
    itself with code -1, or, for the reply to the final dot, ``SMTPOutcomeUnknownError``
    naming as ``unknown`` exactly the recipients the server accepted; it is closed; it
    exchanged nothing after that reply but the RCPT and DATA lines it had pipelined with
    the command (a transaction, PIPELINING offered and allowed); and its bytes are a
    prefix of aiosmtplib's.  Whole step; the sessions have diverged.
    """

    name: ClassVar[str] = "reply-limits"
    summary: ClassVar[str] = "a reply over the engine's line or length limit: code -1, closed"
    row: ClassVar[str] = "a reply is read up to 8192 octets a line, 32768 a reply"

    def explain(self, context: Context) -> Explanation | None:
        t, o = context.theirs_step, context.ours_step
        ours = list(o.entries)
        at = next((k for k, e in enumerate(ours) if _over_our_limits(e.answer)), -1)
        if at < 0:
            return None
        over = ours[at]
        if _signature(over) not in map(_signature, t.entries):
            return None
        if _unparsable(over.answer) or len(over.answer) > AIOSMTPLIB_MAX_REPLY:
            return None  # aiosmtplib refuses it too: unparsable-reply-closes
        outcome = o.outcome
        if over.kind == "content":
            if not outcome.is_a("SMTPOutcomeUnknownError") or not _unknown_are_accepted(context):
                return None
        elif outcome.exc_type != "SMTPResponseException" or outcome.code != -1:
            return None
        if not _ended_at(context, at):
            return None
        note = "a reply over the engine's limits: smtpclient.aio refused it and closed"
        return _whole_step(context, self.name, note, diverged=True)


class MalformedReplyRefused:
    """malformed-reply-refused -- a reply that breaks RFC 5321's reply grammar is refused:
    smtpclient.aio raises ``SMTPResponseException(-1, ...)`` (at ``connect()`` too: the
    greeting) and closes (API.md section 5, "Reply grammar leniency"); aiosmtplib reads
    it its own way (``int(line[:3])`` of the last line, lines ending at LF: ``+25`` is 25,
    ``2_5`` is 25, ``250-a`` then ``251 b`` is 251, a bare LF ends a line) and goes on.

    "Malformed" is decided here, apart from smtp_core's parser (:func:`_well_formed`):
    every line a code with 2 to 5 first, then a space, a hyphen or nothing, text without
    CR or LF, and CRLF; a hyphen on every line but the last; one code in one reply.

    Applies at the step where the server sent such a reply (the same exchange in both
    runs) that aiosmtplib can read (every line's code a number to ``int()``, no line over
    8192 octets; else unparsable-reply-closes), other than the verdict on a message
    (outcome-unknown): smtpclient.aio raised ``SMTPResponseException`` itself with code
    -1 and is closed; it exchanged nothing after that reply but the RCPT and DATA lines it
    had pipelined with the command (a transaction, PIPELINING offered and allowed); and
    its bytes are a prefix of aiosmtplib's.  Whole step; the sessions have diverged.
    """

    name: ClassVar[str] = "malformed-reply-refused"
    summary: ClassVar[str] = "a reply that breaks RFC 5321's grammar: code -1, closed"
    row: ClassVar[str] = "a malformed reply line is parsed leniently (`int(line[:3])`)"

    def explain(self, context: Context) -> Explanation | None:
        t, o = context.theirs_step, context.ours_step
        ours = list(o.entries)
        at = next((k for k, e in enumerate(ours) if _malformed(e.answer)), -1)
        if at < 0:
            return None
        bad = ours[at]
        if bad.kind == "content" or _signature(bad) not in map(_signature, t.entries):
            return None
        if _unparsable(bad.answer) or len(bad.answer) > AIOSMTPLIB_MAX_REPLY:
            return None  # aiosmtplib refuses it too: unparsable-reply-closes
        if o.outcome.exc_type != "SMTPResponseException" or o.outcome.code != -1:
            return None
        if not _ended_at(context, at):
            return None
        note = "a malformed reply: smtpclient.aio refused it and closed"
        return _whole_step(context, self.name, note, diverged=True)


def _ended_at(context: Context, at: int) -> bool:
    """smtpclient.aio is closed, exchanged nothing after its ``at``-th exchange but the RCPT
    and DATA lines it had pipelined with it, and its bytes are a prefix of aiosmtplib's."""
    t, o = context.theirs_step, context.ours_step
    if o.state.connected or not t.received.startswith(o.received):
        return False
    after = o.entries[at + 1 :]
    return not after or (_pipelines(context) and all(_pipelined_command(e) for e in after))


#: The codes aiosmtplib takes as success, by the key of the exchange.
_STRICT: Mapping[str, tuple[int, ...]] = {"MAIL": (250,), "RCPT": (250, 251), END_OF_DATA: (250,)}
#: A reading of a transaction: ``("return", errors, text)``, ``("SMTPSenderRefused", code)``,
#: ``("SMTPRecipientsRefused", ((code, text, address), ...))`` or ``("SMTPDataError", code)``.
_Reading = tuple[object, ...]


def _accepts(key: str, code: int, lenient: bool) -> bool:
    return code // 100 == 2 if lenient else code in _STRICT[key]


def _two_hundred(entry: Entry) -> bool:
    """A well-formed 2yz to MAIL, RCPT or the final dot that aiosmtplib refuses."""
    if entry.kind not in ("command", "content") or entry.key not in _STRICT:
        return False
    code = _code(entry.answer)
    well_formed = _well_formed(entry.answer) and len(_replies(entry.answer)) == 1
    return well_formed and code is not None and not _accepts(entry.key, code, lenient=False)


def _answered(entries: list[Entry], k: int, key: str, kind: str = "command") -> int | None:
    """The code of the one well-formed reply to the ``k``-th exchange, if it is a ``key``
    of ``kind`` the server answered without closing; else None."""
    if k >= len(entries):
        return None
    entry = entries[k]
    if entry.kind != kind or entry.key != key or entry.closed:
        return None
    if not _well_formed(entry.answer) or len(_replies(entry.answer)) != 1:
        return None
    return _code(entry.answer)


def _reset(entries: list[Entry], k: int, reading: _Reading) -> tuple[_Reading, int] | None:
    """A refusal: the RSET at ``k`` follows it (answered or read after closing)."""
    if _only(entries[k : k + 1], ("RSET",)) and k < len(entries):
        return reading, k + 1
    return None


def _read_transaction(
    entries: list[Entry], at: int, *, lenient: bool, pipelined: bool
) -> tuple[_Reading, int] | None:
    """What a client makes of the transaction whose MAIL is the ``at``-th exchange, taking
    as success 250 (251 for RCPT: aiosmtplib), or with ``lenient`` every 2yz
    (smtpclient.aio): the outcome, and where its exchanges end (the RSET after a refusal
    included).  ``pipelined``: after every recipient was refused, the DATA written with
    them (and a bare end-of-data mark after a 354) come before the RSET.  None if the
    exchanges are not such a transaction's (a close, a reply this module finds
    malformed, a command missing or out of order)."""
    code = _answered(entries, at, "MAIL")
    if code is None:
        return None
    k = at + 1
    if not _accepts("MAIL", code, lenient):
        return _reset(entries, k, ("SMTPSenderRefused", code))
    refused: list[tuple[int, str, str]] = []
    errors: dict[str, tuple[int, str]] = {}
    count = 0
    while k < len(entries) and entries[k].kind == "command" and entries[k].key == "RCPT":
        code = _answered(entries, k, "RCPT")
        if code is None:
            return None
        if not _accepts("RCPT", code, lenient):
            address, text = _rcpt_address(entries[k].raw), _reply_text(entries[k].answer)
            refused.append((code, text, address))
            errors[address] = (code, text)
        count, k = count + 1, k + 1
    if not count:
        return None
    if len(refused) == count:
        if pipelined and _answered(entries, k, "DATA") is not None:
            k += 1
            mark = k < len(entries) and entries[k].kind == "content"
            if mark and _code(entries[k - 1].answer) == 354 and entries[k].raw == b".\r\n":
                k += 1
        return _reset(entries, k, ("SMTPRecipientsRefused", tuple(refused)))
    code = _answered(entries, k, "DATA")
    if code is None:
        return None
    if code != 354:
        return _reset(entries, k + 1, ("SMTPDataError", code))
    code = _answered(entries, k + 1, END_OF_DATA, "content")
    if code is None:
        return None
    if not _accepts(END_OF_DATA, code, lenient):
        return _reset(entries, k + 2, ("SMTPDataError", code))
    return ("return", errors, _reply_text(entries[k + 1].answer)), k + 2


def _is_reading(outcome: Outcome, reading: _Reading) -> bool:
    """The step's outcome is the reading's (addresses compared as parse_address gives them)."""
    if reading[0] == "return":
        value = outcome.raw
        if outcome.kind != "return" or not isinstance(value, tuple) or len(value) != 2:
            return False
        errors, text = value
        if not isinstance(errors, dict):
            return False
        got = {_normalised(str(k)): (v[0], v[1]) for k, v in errors.items()}
        return got == reading[1] and text == reading[2]
    if outcome.exc_type != reading[0]:
        return False
    if reading[0] == "SMTPRecipientsRefused":
        refused = getattr(outcome.raw, "recipients", ())
        listed = tuple((r.code, r.message, _normalised(r.recipient)) for r in refused)
        return listed == reading[1]
    return outcome.code == reading[1]


#: A method called by hand, the key of its exchange, and what aiosmtplib raises there.
_BY_HAND = {
    "mail": ("MAIL", "SMTPSenderRefused"),
    "rcpt": ("RCPT", "SMTPRecipientRefused"),
    "data": (END_OF_DATA, "SMTPDataError"),
}


class TwoHundredIsSuccess:
    """two-hundred-is-success -- every 2yz to MAIL, RCPT and the end of data is a success
    (RFC 5321 section 4.2.1: the command was completed); aiosmtplib takes only 250 (and
    251 for RCPT) and refuses any other 2yz: ``SMTPSenderRefused``, a recipient in the
    ``errors`` dict (``SMTPRecipientsRefused`` if that leaves none), ``SMTPDataError``,
    with an RSET in a transaction.  A 252 to the final dot means delivered: reporting a
    failure invites a duplicate.  API.md section 4.

    Applies where the first reply of the step that aiosmtplib and this reading take
    differently (a well-formed 2yz other than 250 to MAIL, other than 250 and 251 to RCPT,
    other than 250 to the final dot) is the same exchange in both runs, after the same
    exchanges, and

    - by hand (``mail``, ``rcpt``, ``data``), it is the step's last exchange in both runs;
      aiosmtplib raised its exception for that verb with the reply's code, and
      smtpclient.aio returned the reply aiosmtplib's exception holds (code and text);
    - in a transaction (``sendmail``, ``send_message``, ``send``), each run's outcome and
      exchanges from MAIL on are what its reading of the server's replies gives
      (:func:`_read_transaction`: aiosmtplib's strictly, one command at a time;
      smtpclient.aio's taking every 2yz as success, pipelined when it may be), and the
      exchanges after the transaction (``send``'s QUIT) are the same.

    Whole step; the sessions have diverged if the server's states differ (aiosmtplib
    reset where smtpclient.aio went on).
    """

    name: ClassVar[str] = "two-hundred-is-success"
    summary: ClassVar[str] = "every 2yz to MAIL, RCPT and the end of data is a success"
    row: ClassVar[str] = "in a transaction, a 2yz other than 250 (251 for RCPT) is a refusal"

    def explain(self, context: Context) -> Explanation | None:
        step = context.step
        t, o = context.theirs_step, context.ours_step
        theirs, ours = list(t.entries), list(o.entries)
        pivot = next((k for k, e in enumerate(theirs) if _two_hundred(e)), -1)
        if pivot < 0 or len(ours) <= pivot:
            return None
        if [_signature(e) for e in theirs[: pivot + 1]] != [
            _signature(e) for e in ours[: pivot + 1]
        ]:
            return None
        if step.method in TRANSACTIONS:
            explained = self._transaction(context, theirs, ours, pivot)
        elif step.method in _BY_HAND:
            explained = self._by_hand(context, theirs, ours, pivot)
        else:
            explained = False
        if not explained:
            return None
        code = _code(theirs[pivot].answer)
        note = f"{code} to {theirs[pivot].key}: smtpclient.aio took it as a success"
        return _whole_step(context, self.name, note)

    @staticmethod
    def _by_hand(context: Context, theirs: list[Entry], ours: list[Entry], pivot: int) -> bool:
        key, refusal = _BY_HAND[context.step.method]
        if theirs[pivot].key != key or len(theirs) != pivot + 1 or len(ours) != pivot + 1:
            return False
        t, o = context.theirs_step.outcome, context.ours_step.outcome
        code = _code(theirs[pivot].answer)
        if t.exc_type != refusal or t.code != code or o.kind != "return":
            return False
        value = o.raw
        return isinstance(value, tuple) and tuple(value) == (code, getattr(t.raw, "message", None))

    @staticmethod
    def _transaction(context: Context, theirs: list[Entry], ours: list[Entry], pivot: int) -> bool:
        at = next((k for k, e in enumerate(theirs) if e.kind == "command" and e.key == "MAIL"), -1)
        if not 0 <= at <= pivot:
            return False
        strict = _read_transaction(theirs, at, lenient=False, pipelined=False)
        lenient = _read_transaction(ours, at, lenient=True, pipelined=_pipelines(context))
        if strict is None or lenient is None or strict[0] == lenient[0]:
            return False
        if not _is_reading(context.theirs_step.outcome, strict[0]):
            return False
        if not _is_reading(context.ours_step.outcome, lenient[0]):
            return False
        after = [_signature(e) for e in theirs[strict[1] :]]
        if after != [_signature(e) for e in ours[lenient[1] :]]:
            return False
        quits = _only(theirs[strict[1] :], ("QUIT",))
        return not after or (context.step.method == "send" and quits)


class ClosedAfter421:
    """closed-after-421 -- a 421 means the server is closing the channel (RFC 5321 section
    3.8): smtpclient.aio closes at once and writes nothing more; aiosmtplib closes after a
    421 to any command but DATA and the final dot (its data path does not look), raises
    the same exception there, and then, in a transaction, still writes its RSET to the
    closing server.

    Applies where smtpclient.aio's DATA or message was answered with a well-formed 421,
    the same exchanges in both runs up to it; both raised the same exception (class, code
    and the rest compared); smtpclient.aio exchanged nothing after it but the RCPT and DATA
    lines it had pipelined with the command (a transaction, PIPELINING offered and
    allowed) and is closed; aiosmtplib wrote more after it, only RSET.  Whole
    step; the sessions have diverged if the server's states differ.
    """

    name: ClassVar[str] = "closed-after-421"
    summary: ClassVar[str] = "after a 421 nothing more is written: the connection is closed"
    row: ClassVar[str] = (
        "after a 421 to DATA or to the final dot, RSET is still written to the closing server"
    )

    def explain(self, context: Context) -> Explanation | None:
        t, o = context.theirs_step, context.ours_step
        if t.outcome != o.outcome or o.outcome.kind != "raise" or o.state.connected:
            return None
        theirs, ours = list(t.entries), list(o.entries)
        at = next((k for k, e in enumerate(ours) if _closing(e)), -1)
        if at < 0 or len(theirs) <= at + 1:
            return None
        if [_signature(e) for e in theirs[: at + 1]] != [_signature(e) for e in ours[: at + 1]]:
            return None
        after = ours[at + 1 :]
        if after and not (_pipelines(context) and all(_pipelined_command(e) for e in after)):
            return None
        more = theirs[at + 1 :]
        if not _only(more, ("RSET",)):
            return None
        shown = ", ".join(e.key for e in more)
        note = f"a 421: smtpclient.aio closed; aiosmtplib still wrote {shown}"
        return _whole_step(context, self.name, note)


def _closing(entry: Entry) -> bool:
    """A well-formed 421 to DATA or to the message."""
    data = (entry.kind == "command" and entry.key == "DATA") or entry.kind == "content"
    return data and _code(entry.answer) == 421 and _well_formed(entry.answer)


#: Every rule, by name, in the order they are asked (the rewrite first).
DEVIATIONS: Mapping[str, Deviation] = {
    rule.name: rule
    for rule in (
        Pipelining(),
        AuthInClearRefused(),
        CredentialsControlCharacters(),
        AddressesCheckedFirst(),
        LineBreakInAddress(),
        OutcomeUnknown(),
        StartTLSInjection(),
        UnsolicitedReply(),
        UnparsableReplyCloses(),
        ReplyLimits(),
        MalformedReplyRefused(),
        TwoHundredIsSuccess(),
        ClosedAfter421(),
    )
}
