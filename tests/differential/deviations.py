"""The named deviations: each documented difference from smtplib, as a rule.

One rule per row of README's "Differences from smtplib" table (the
credentials row has two: UTF-8 and SCRAM).  :data:`DEVIATIONS` maps each name
to its rule.

A rule is asked about one step at which the two runs differ (a
:class:`Context`).  It answers ``None`` unless the difference is exactly its
own, and then an :class:`Explanation`, in one of two forms:

- a *rewrite*: the step records with this deviation's difference taken out
  (BARE_LF, PIPELINING); the rest of the step must then be
  equal, and the comparison goes on;
- a *whole step*: the deviation accounts for everything the step did
  differently (NUL_REFUSED, REPLY_LIMITS, ...).  If the client or the server
  is left in a different state (smtpclient closed where smtplib carries on;
  the server saw other commands), the two sessions can no longer be compared
  and ``diverged`` ends the comparison; otherwise it goes on.

Each rule checks its trigger precisely (what the server sent, what each
library sent and raised), never "anything after X".
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol

from tests.differential.compare import ClientState, StepRecord, Transcript
from tests.differential.scenarios import Conversation, Step
from tests.differential.server import END_OF_DATA, Entry

__all__ = ["DEVIATIONS", "Context", "Deviation", "Explanation"]

CRLF = b"\r\n"
#: smtpclient's reply limits (README, "a reply is read line by line...").
MAX_REPLY_LINE = 2048
MAX_REPLY_LINES = 256


@dataclass(frozen=True)
class Context:
    """One step at which the runs differ, with everything a rule may look at.

    ``std_step`` and ``ours_step`` are the step's records as earlier rules left
    them (rewrites apply one after the other).
    """

    conversation: Conversation
    std: Transcript
    ours: Transcript
    index: int
    std_step: StepRecord
    ours_step: StepRecord

    @property
    def step(self) -> Step:
        return self.std_step.step

    def state_before(self, transcript: Transcript) -> ClientState:
        """The client's state before this step."""
        return transcript.steps[self.index - 1].state if self.index else ClientState()


@dataclass(frozen=True)
class Explanation:
    """A rule's account of a difference (see the module docstring)."""

    rule: str
    index: int
    note: str
    std_step: StepRecord
    ours_step: StepRecord
    diverged: bool = False


class Deviation(Protocol):
    """A rule: ``name``, the README ``row`` it stands for, and :meth:`explain`."""

    name: ClassVar[str]
    row: ClassVar[str]

    def explain(self, context: Context) -> Explanation | None: ...


# -- helpers -----------------------------------------------------------------------------------


def _replies(answer: bytes) -> list[list[bytes]]:
    """The replies in bytes the server wrote: each a list of lines without CRLF."""
    replies: list[list[bytes]] = []
    current: list[bytes] = []
    for line in answer.split(CRLF)[:-1]:
        current.append(line)
        if line[3:4] != b"-" or not line[:3].isdigit():
            replies.append(current)
            current = []
    if current:
        replies.append(current)
    return replies


def _code(answer: bytes) -> int | None:
    """smtplib's code for the first reply in ``answer`` (-1: not a number; None: no reply)."""
    replies = _replies(answer)
    if not replies:
        return None
    head = replies[0][-1][:3]
    return int(head) if len(head) == 3 and head.isdigit() else -1


def _whole_step(context: Context, rule: str, note: str, *, diverged: bool = False) -> Explanation:
    """The deviation accounts for the whole step; the comparison stops if states differ."""
    s, o = context.std_step, context.ours_step
    diverged = diverged or s.state != o.state or s.server_state != o.server_state
    return Explanation(rule, context.index, note, o, o, diverged)


def _strings(values: Iterable[Any]) -> Iterable[str]:
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from _strings(value)


def _first(entries: Iterable[Entry], key: str) -> Entry | None:
    return next((e for e in entries if e.kind == "command" and e.key == key), None)


def _leading(entries: list[Entry], stop: Entry) -> bytes:
    """The bytes of the entries before ``stop``."""
    return b"".join(e.raw for e in entries[: entries.index(stop)])


# -- the rules ---------------------------------------------------------------------------------


def smtplib_data(msg: bytes) -> bytes:
    """What smtplib writes for a bytes message: dots doubled after LF, CRLF added, ``.``."""
    quoted = re.sub(rb"(?m)^\.", b"..", msg)
    if quoted[-2:] != CRLF:
        quoted += CRLF
    return quoted + b".\r\n"


def normalised_data(msg: bytes) -> bytes:
    """What smtpclient writes: every line ending CRLF, then dots doubled, CRLF, ``.``."""
    quoted = re.sub(rb"(?m)^\.", b"..", re.sub(rb"\r\n|\r|\n", CRLF, msg))
    if not quoted.endswith(CRLF):
        quoted += CRLF
    return quoted + b".\r\n"


class BareLineEndings:
    """BARE_LF -- README row "bytes messages are sent as given: a bare LF or CR goes on the
    wire" / "every line ending becomes CRLF and leading dots are stuffed, for bytes too".

    Applies to ``sendmail`` and ``data`` with a bytes message holding a bare CR
    or LF: smtplib's content must be the message as given (dots doubled after
    each LF), smtpclient's the message with every line ending made CRLF and
    dots doubled.  Rewrites smtpclient's content to smtplib's.
    """

    name: ClassVar[str] = "BARE_LF"
    row: ClassVar[str] = "bytes messages: bare LF or CR normalised to CRLF, dots stuffed"

    def explain(self, context: Context) -> Explanation | None:
        step = context.step
        position = {"sendmail": 2, "data": 0}.get(step.method)
        if position is None:
            return None
        msg = step.args[position]
        if not isinstance(msg, bytes) or not re.search(rb"\r(?!\n)|(?<!\r)\n", msg):
            return None
        s, o = context.std_step, context.ours_step
        std_content = [e for e in s.entries if e.kind == "content"]
        ours_content = [e for e in o.entries if e.kind == "content"]
        if len(std_content) != 1 or len(ours_content) != 1:
            return None
        if std_content[0].raw != smtplib_data(msg) or ours_content[0].raw != normalised_data(msg):
            return None
        target = ours_content[0]
        entries = tuple(replace(e, raw=std_content[0].raw) if e is target else e for e in o.entries)
        ours = replace(o, entries=entries)
        note = "smtpclient sent the message with CRLF line endings"
        return Explanation(self.name, context.index, note, s, ours)


class Pipelining:
    """PIPELINING -- README row "PIPELINING is never used" / "MAIL, every RCPT and DATA in
    one write when the server offers PIPELINING".

    Applies to ``sendmail``/``send_message`` when the server offers PIPELINING.
    smtpclient sends MAIL, every RCPT and DATA before reading a reply, so after
    a refusal (or a close) the server has received commands smtplib never sent:
    RCPTs after a refused MAIL, DATA after every RCPT was refused, all of them
    after a close; the server answers those by itself (they do not use up
    policy answers).  And smtpclient sends RSET after a failed pipelined
    transaction, also after a refused DATA, where smtplib does not; and when a
    DATA pipelined behind a refused MAIL or refused RCPTs still draws 354, the
    end-of-data marker alone (RFC 2920 §3.1), never the message.  When one of
    the commands smtplib never sent ends the session (a 421, a close), both
    raise, smtpclient possibly ``SMTPServerDisconnected`` where smtplib raised
    the refusal it stopped at; the sessions have diverged.

    Rewrites smtpclient's step to the commands smtplib would have sent, one at
    a time, given the same answers (smtplib's ``sendmail``: RSET after a refused
    MAIL, after all recipients refused and after refused data; nothing more
    after a 421 or a close; no RSET after a refused DATA).  Only RCPT, DATA,
    RSET and lines read after closing may be dropped; smtplib's bytes must then
    be exactly these, and the outcome and the client's state must be equal as
    they are.  If the server's state differs (the commands smtplib did not send
    changed it: an RSET that ended a transaction smtplib's server still has),
    the sessions have diverged and the comparison ends there.
    """

    name: ClassVar[str] = "PIPELINING"
    row: ClassVar[str] = "PIPELINING: MAIL, every RCPT and DATA in one write; RSET after a failure"

    def explain(self, context: Context) -> Explanation | None:
        if context.step.method not in ("sendmail", "send_message"):
            return None
        if not context.conversation.policy.offers("PIPELINING"):
            return None
        s, o = context.std_step, context.ours_step
        entries = list(o.entries)
        sequential = _sequential(entries, _envelope_recipients(context.step) or [])
        if sequential is None:
            return None
        kept = {id(e) for e in sequential}
        for entry in entries:
            if (
                id(entry) not in kept
                and not (
                    entry.kind == "discarded"
                    or entry.key in ("RCPT", "DATA", "RSET")
                    # a server still inside an AUTH exchange took it for a response
                    or (entry.kind == "response" and entry.raw[:4].upper() in (b"RCPT", b"DATA"))
                    or (entry.kind == "content" and entry.raw == b".\r\n")
                )
            ):
                return None
        ours = replace(o, entries=tuple(sequential))
        dropped = [e for e in entries if id(e) not in kept]
        if any(e.closed or _code(e.answer) == 421 for e in dropped):
            # A command smtplib never sent ended the session (a server that
            # answered a pipelined RCPT in a transaction of its own, then the
            # end-of-data marker with 421): smtplib's later RSET found a
            # server smtpclient had already lost.  Diverged.
            missing = list(s.entries[len(sequential) :])
            # smtpclient reports the close (SMTPServerDisconnected) where it
            # came before the verdict smtplib stopped at; never a success.
            same = s.outcome == o.outcome or o.outcome.is_a("SMTPServerDisconnected")
            if (
                same
                and s.outcome.kind == "raise"
                and s.received.startswith(ours.received)
                and all(e.key == "RSET" for e in missing)
            ):
                note = (
                    "smtpclient pipelined the transaction; a command smtplib did not send ended it"
                )
                return Explanation(self.name, context.index, note, s, ours, diverged=True)
            return None
        if ours.received == o.received or ours.received != s.received:
            return None
        note = "smtpclient pipelined the transaction; smtplib did not send " + ", ".join(
            repr(e.raw.split(b" ")[0].rstrip(CRLF)) for e in dropped
        )
        # The commands smtplib did not send may have changed the server's state
        # (the RSET after a refused DATA ends a transaction smtplib's server still
        # has; RCPTs pipelined behind a nested MAIL are answered in the open
        # transaction): then the sessions are no longer comparable.
        diverged = (
            s.outcome == o.outcome and s.state == o.state and s.server_state != o.server_state
        )
        return Explanation(self.name, context.index, note, s, ours, diverged)


def _sequential(entries: list[Entry], recipients: list[str]) -> list[Entry] | None:
    """The entries smtplib's ``sendmail`` would have made, given the same answers.

    As smtplib decides: every recipient is refused when its dict of refusals,
    keyed by address, is as long as the list of recipients (so with a
    duplicate address it sends DATA even though no RCPT was accepted).
    """
    mail = _first(entries, "MAIL") or next(
        (e for e in entries if e.kind == "discarded" and e.key == "MAIL"), None
    )
    if mail is None:
        return None
    start = entries.index(mail)
    out = entries[: start + 1]
    rest = entries[start + 1 :]

    def ends(entry: Entry) -> bool:
        return entry.closed or _code(entry.answer) == 421

    need_rset = False
    if ends(mail):
        pass
    elif _code(mail.answer) != 250:
        need_rset = True
    else:
        refused: set[str] = set()
        closed = False
        # Every RCPT smtpclient wrote: answered, or read after the server closed.
        rcpts = [e for e in rest if e.key == "RCPT" and e.kind in ("command", "discarded")]
        if len(rcpts) != len(recipients):
            return None
        for address, rcpt in zip(recipients, rcpts, strict=True):
            out.append(rcpt)
            if _code(rcpt.answer) not in (250, 251):
                refused.add(address)
            if ends(rcpt):
                closed = True
                break
        if closed:
            pass
        elif len(refused) == len(recipients):
            need_rset = True
        else:
            data = _first(rest, "DATA")
            if data is None:
                return None
            out.append(data)
            if _code(data.answer) == 354 and not data.closed:
                content = next((e for e in rest if e.kind == "content"), None)
                if content is None:
                    return None
                out.append(content)
                verdict = _code(content.answer)
                need_rset = not ends(content) and verdict != 250
    if need_rset:
        rset = _first(rest, "RSET")
        if rset is not None:
            out.append(rset)
    return out


def _control_characters(step: Step) -> bool:
    """NUL, CR or LF in an argument of the step (the message and raw ``send`` data aside),
    or a non-ASCII address or option of ``sendmail`` (no line may go out that the
    session cannot carry: ``UnicodeEncodeError``, a ``ValueError``, as smtplib's)."""
    args = step.args
    if step.method == "sendmail":
        args = (args[0], args[1], args[3], args[4])
        if not all(text.isascii() for text in _strings(args)):
            return True
    elif step.method in ("data", "send+getreply"):
        return False
    return any(c in text for text in _strings(args) for c in "\0\r\n")


class ControlCharactersRefused:
    """NUL_REFUSED -- README row "NUL in an argument is sent; ``sendmail`` sends MAIL and the
    RCPTs before it finds an address it cannot send" / "CR, LF and NUL refused in every
    argument (``ValueError``); every line of ``sendmail`` checked before the first byte of
    the transaction".

    Applies when an argument (not the message) holds a NUL, CR or LF,
    smtpclient raised ``ValueError`` and sent nothing in the step but the
    EHLO/HELO that smtplib's ``sendmail`` also says before the transaction
    (README says "before anything is sent"; the facade checks every line
    before the first byte of the *transaction*), and smtplib sent at least as
    much.  What smtplib does with the argument is its own: it sends a NUL,
    raises ``ValueError`` for CR/LF in a command, drops CR/LF from an address
    (``email.utils.parseaddr``), or reports a closed session first.
    Whole step.
    """

    name: ClassVar[str] = "NUL_REFUSED"
    row: ClassVar[str] = "CR, LF and NUL refused in every argument before anything is sent"

    def explain(self, context: Context) -> Explanation | None:
        s, o = context.std_step, context.ours_step
        if not _control_characters(context.step):
            return None
        if not o.outcome.is_a("ValueError"):
            return None
        # Nothing sent but the EHLO (or HELO) smtplib also sends first, in sendmail.
        hellos = o.commands()
        if any(e.key not in ("EHLO", "LHLO", "HELO") for e in hellos):
            return None
        if not s.received.startswith(o.received):
            return None
        return _whole_step(context, self.name, "smtpclient refused the argument, sent nothing")


def _oversized(answer: bytes) -> bool:
    return any(
        len(reply) > MAX_REPLY_LINES or any(len(line) > MAX_REPLY_LINE for line in reply)
        for reply in _replies(answer)
    )


def _answers(record: StepRecord) -> list[bytes]:
    return [e.answer for e in record.entries]


class ReplyLimits:
    """REPLY_LIMITS -- README row "a reply is read line by line up to 8192 bytes per line,
    any number of lines" / "lines over 2048 octets or replies over 256 lines raise
    ``SMTPResponseException``".

    Applies when the server sent, in this step of both runs, a reply with a line
    over 2048 octets or more than 256 lines, and smtpclient raised
    ``SMTPResponseException`` (or a subclass: ``SMTPConnectError`` for a
    greeting) and closed.  Whole step.
    """

    name: ClassVar[str] = "REPLY_LIMITS"
    row: ClassVar[str] = "replies: lines over 2048 octets or over 256 lines refused"

    def explain(self, context: Context) -> Explanation | None:
        s, o = context.std_step, context.ours_step
        big = [a for a in _answers(o) if _oversized(a)]
        if not big or not all(a in _answers(s) for a in big):
            return None
        if not o.outcome.is_a("SMTPResponseException") or o.state.connected:
            return None
        return _whole_step(context, self.name, "smtpclient refused an oversized reply and closed")


def _malformed(answer: bytes) -> bool:
    return any(not line[:3].isdigit() for reply in _replies(answer) for line in reply)


class MalformedReply:
    """MALFORMED_REPLY -- README row "a reply line whose code is not a number: code -1,
    and the session goes on" / "``SMTPResponseException(-1, ...)``, closed".

    smtplib gives code -1 to a reply line whose code is not a number and carries
    on.  Applies when the server sent such a line in this step of both runs,
    and smtpclient raised ``SMTPResponseException`` (or a subclass) with
    ``smtp_code == -1`` and closed.  Whole step.
    """

    name: ClassVar[str] = "MALFORMED_REPLY"
    row: ClassVar[str] = "engine refuses bad reply grammar: SMTPResponseException(-1), closed"

    def explain(self, context: Context) -> Explanation | None:
        s, o = context.std_step, context.ours_step
        bad = [a for a in _answers(o) if _malformed(a)]
        if not bad or not all(a in _answers(s) for a in bad):
            return None
        raw = o.outcome.raw
        code = raw.get("smtp_code") if isinstance(raw, dict) else None
        if not o.outcome.is_a("SMTPResponseException") or code != -1 or o.state.connected:
            return None
        return _whole_step(context, self.name, "smtpclient refused a malformed reply and closed")


def _surplus(entry: Entry) -> bool:
    return entry.replies > 1 and entry.key != END_OF_DATA


class SurplusReply:
    """SURPLUS_REPLY -- README row "a reply nothing asked for is taken as the next
    command's" / "refused: ``SMTPResponseException(-1, ...)``, closed".

    smtplib pairs a second reply to one command (e.g. two replies to NOOP) with
    the next command, and every later reply with the command after its own.
    smtpclient refuses the reply as unsolicited: it raises an ``SMTPException``
    (``SMTPResponseException`` or ``SMTPServerDisconnected``) and closes.
    Applies at the first difference at or after the server sent a surplus
    reply (to the same command in both runs), when smtpclient raised one of
    those and closed.  Usually that is its next command; after a raw
    ``send()`` + ``getreply()`` smtpclient pairs replies as smtplib does until
    its engine sees a reply no command of its own was waiting for.  Whole
    step; the sessions have diverged.
    """

    name: ClassVar[str] = "SURPLUS_REPLY"
    row: ClassVar[str] = "engine refuses a reply nothing asked for: SMTPException, closed"

    def explain(self, context: Context) -> Explanation | None:
        o = context.ours_step
        ours_log = [e for k in range(context.index + 1) for e in context.ours.steps[k].entries]
        std_log = [e for k in range(context.index + 1) for e in context.std.steps[k].entries]
        surplus = [e for e in ours_log if _surplus(e)]
        if not surplus or not any(_surplus(e) and e.raw == surplus[0].raw for e in std_log):
            return None
        raised = o.outcome.is_a("SMTPResponseException") or o.outcome.is_a("SMTPServerDisconnected")
        if not raised or o.state.connected:
            return None
        note = f"surplus reply to {surplus[0].raw!r}; smtpclient refused it and closed"
        return _whole_step(context, self.name, note, diverged=True)


class LmtpAllReplies:
    """LMTP_ALL_REPLIES -- README row "LMTP: ``data()`` reads one reply, the others are read
    as answers to later commands" / "every per-recipient reply is read
    (``lmtp_replies``); refused recipients are in ``sendmail``'s dict".

    Two cases, LMTP servers only:

    - the step that sent the data (``sendmail``/``send_message``): smtpclient's
      refused recipients (returned, or in ``SMTPRecipientsRefused``) are exactly
      the refused RCPTs and the recipients whose verdict was not 250 (after a
      421 verdict, the server closed: the recipients left without one are
      refused with that 421, and smtpclient closes too), and
      smtplib's bytes are smtpclient's, plus the RSET smtplib sends after a
      first verdict that is not 250 (``SMTPDataError``).  The sessions diverge
      if the server sent more than one verdict (smtplib is out of step).  A
      server that closes before the last verdict: smtplib has returned after
      the first, smtpclient raises ``SMTPServerDisconnected`` (diverged);
    - a later step, when the server sent smtplib more than one verdict for an
      earlier message: smtplib is reading old verdicts as answers.  Whole step,
      diverged.
    """

    name: ClassVar[str] = "LMTP_ALL_REPLIES"
    row: ClassVar[str] = "LMTP: every per-recipient reply is read"

    def explain(self, context: Context) -> Explanation | None:
        if not context.conversation.policy.lmtp:
            return None
        earlier = [
            k
            for k in range(context.index)
            if any(e.kind == "content" and e.replies > 1 for e in context.std.steps[k].entries)
        ]
        if earlier:
            note = f"smtplib left LMTP verdicts of step [{earlier[0]}] unread"
            return _whole_step(context, self.name, note, diverged=True)
        s, o = context.std_step, context.ours_step
        content = [e for e in o.entries if e.kind == "content"]
        if (
            len(content) == 1
            and content[0].closed
            and content[0].answer
            and b"421" not in [r[-1][:3] for r in _replies(content[0].answer)]
            and o.outcome.is_a("SMTPServerDisconnected")
            and not o.state.connected
            and s.outcome.kind == "return"
            and s.received.startswith(o.received)
        ):
            # The server closed after some verdicts, before the last one,
            # which smtplib never reads: smtpclient reports the close.
            note = "smtpclient waited for an LMTP verdict the server never sent"
            return _whole_step(context, self.name, note, diverged=True)
        return self._data_step(context)

    def _data_step(self, context: Context) -> Explanation | None:
        s, o = context.std_step, context.ours_step
        addresses = _envelope_recipients(context.step)
        content = [e for e in o.entries if e.kind == "content"]
        if addresses is None or len(content) != 1 or s.server_state != o.server_state:
            return None
        verdicts = [_code(b"".join(line + CRLF for line in r)) for r in _replies(content[0].answer)]
        # Each RCPT answered, paired with its address; the accepted ones with a verdict.
        rcpts = [e for e in o.entries if e.kind == "command" and e.key == "RCPT"]
        if len(rcpts) != len(addresses):
            return None
        refusals: dict[str, set[int | None]] = {}
        accepted = []
        for address, rcpt in zip(addresses, rcpts, strict=True):
            code = _code(rcpt.answer)
            if code in (250, 251):
                accepted.append(address)
            else:
                refusals.setdefault(address, set()).add(code)
        # After a 421 verdict the server has closed: the recipients it gave no
        # verdict for are refused with that 421.
        closing = 421 in verdicts
        for position, address in enumerate(accepted):
            code = verdicts[position] if position < len(verdicts) else (421 if closing else None)
            if code != 250:
                refusals.setdefault(address, set()).add(code)
        raw = o.outcome.raw
        if o.outcome.kind == "return" and isinstance(raw, dict):
            refused = raw
        elif o.outcome.exc_type == "SMTPRecipientsRefused" and isinstance(raw, dict):
            refused = raw.get("recipients", {})
        else:
            return None
        if set(refused) != set(refusals) or any(
            code not in refusals[address] for address, (code, _) in refused.items()
        ):
            return None
        # smtplib's bytes: smtpclient's, and an RSET after a first verdict not 250.
        first = verdicts[0] if verdicts else None
        extra = s.received[len(o.received) :]
        rset = [e for e in s.entries if e.key == "RSET"]
        if not s.received.startswith(o.received) or (
            extra and not (first not in (250, 421) and len(rset) == 1 and extra == rset[0].raw)
        ):
            return None
        # smtpclient closes after a 421 verdict that smtplib never read.
        closed_421 = 421 in verdicts[1:] and not o.state.connected
        if s.state != o.state and not (closed_421 and replace(o.state, connected=True) == s.state):
            return None
        note = "smtpclient read every LMTP verdict and reported the refused recipients"
        return _whole_step(context, self.name, note, diverged=len(verdicts) > 1)


def _envelope_recipients(step: Step) -> list[str] | None:
    """The recipients of a ``sendmail``/``send_message`` step, as smtplib's dict keys them."""
    if step.method == "sendmail":
        to = step.args[1]
        return [to] if isinstance(to, str) else list(to)
    if step.method == "send_message":
        _, to, _, _, bcc = step.args
        return [*to, *([bcc] if bcc else [])]
    return None


def _credentials(step: Step) -> tuple[str, str] | None:
    if step.method == "login":
        return step.args[0], step.args[1]
    if step.method == "auth":
        return step.args[1], step.args[2]
    return None


class Utf8Credentials:
    """AUTH_UTF8_SASLPREP -- README row "credentials are encoded as ASCII: a non-ASCII
    password raises ``UnicodeEncodeError``" / "UTF-8 after SASLprep (RFC 4013)".

    Applies to ``login``/``auth`` with a non-ASCII user or password: smtplib
    raised ``UnicodeEncodeError`` after sending a prefix of what smtpclient
    sent, and smtpclient's AUTH PLAIN or LOGIN initial response, if that is
    what it sent, is the UTF-8 of the credentials (the test credentials are
    NFKC-stable, so SASLprep leaves them as they are).  Whole step.
    """

    name: ClassVar[str] = "AUTH_UTF8_SASLPREP"
    row: ClassVar[str] = "credentials: UTF-8 after SASLprep"

    def explain(self, context: Context) -> Explanation | None:
        credentials = _credentials(context.step)
        if credentials is None or "".join(credentials).isascii():
            return None
        s, o = context.std_step, context.ours_step
        if s.outcome.exc_type != "UnicodeEncodeError" or not o.received.startswith(s.received):
            return None
        auth = _first(o.entries, "AUTH")
        if auth is not None:
            words = auth.raw.split()
            user, password = (c.encode() for c in credentials)
            expected = {b"PLAIN": b"\0" + user + b"\0" + password, b"LOGIN": user}
            mechanism = words[1].upper() if len(words) > 1 else b""
            if (
                len(words) == 3
                and mechanism in expected
                and base64.b64decode(words[2]) != expected[mechanism]
            ):
                return None
        return _whole_step(context, self.name, "smtpclient sent UTF-8 credentials")


class ScramPreferred:
    """SCRAM_PREFERRED -- README row (credentials) "SCRAM-SHA-256/SHA-1 preferred when
    offered".

    Applies to ``login`` when the server offers SCRAM-SHA-256 or SCRAM-SHA-1:
    smtpclient's first AUTH is SCRAM, smtplib's is not, and both sent the same
    bytes before it.  Whole step.
    """

    name: ClassVar[str] = "SCRAM_PREFERRED"
    row: ClassVar[str] = "credentials: SCRAM preferred when offered"

    def explain(self, context: Context) -> Explanation | None:
        if context.step.method != "login":
            return None
        if not any("SCRAM-SHA" in line for line in context.conversation.policy.extensions):
            return None
        s, o = context.std_step, context.ours_step
        ours_entries = list(o.entries)
        auth = _first(ours_entries, "AUTH")
        if auth is None or auth.raw.split()[1:2] not in ([b"SCRAM-SHA-256"], [b"SCRAM-SHA-1"]):
            return None
        std_auth = _first(s.entries, "AUTH")
        if std_auth is not None and b"SCRAM" in std_auth.raw.upper():
            return None
        if not s.received.startswith(_leading(ours_entries, auth)):
            return None
        return _whole_step(context, self.name, "smtpclient tried SCRAM first")


def _reply_code(answer: bytes) -> int | None:
    code = _code(answer)
    return None if code is None or code < 0 else code


#: What smtplib's sendmail takes from each command; any other 2yz it refuses.
_SMTPLIB_TAKES = {"MAIL": (250,), "RCPT": (250, 251), END_OF_DATA: (250,)}


class FirstDigit:
    """FIRST_DIGIT -- README row "``sendmail`` takes only 250 from MAIL and the end of data,
    250/251 from RCPT" / "every 2yz is a success (RFC 5321 §4.2.1)".

    Applies to ``sendmail``/``send_message`` when, in smtplib's run, the server
    answered MAIL, a RCPT or the end of data with a 2yz code smtplib does not
    take, and smtplib raised ``SMTPSenderRefused``, ``SMTPRecipientsRefused``
    or ``SMTPDataError`` carrying that code (or returned it in its dict of
    refused recipients), while smtpclient went on (it returned, or raised an
    ``SMTPException`` of its own).  Whole step; the
    sessions have diverged (the server took a message smtplib gave up on).
    """

    name: ClassVar[str] = "FIRST_DIGIT"
    row: ClassVar[str] = "sendmail: every 2yz reply is a success"

    def explain(self, context: Context) -> Explanation | None:
        if context.step.method not in ("sendmail", "send_message"):
            return None
        s, o = context.std_step, context.ours_step
        odd = {
            code
            for e in s.entries
            if e.kind in ("command", "content") and e.key in _SMTPLIB_TAKES
            for code in [_reply_code(e.answer)]
            if code is not None and 200 <= code < 300 and code not in _SMTPLIB_TAKES[e.key]
        }
        if not odd:
            return None
        raw = s.outcome.raw if isinstance(s.outcome.raw, dict) else {}
        if s.outcome.kind == "return":
            # smtplib delivered to the others and counts the 2yz one as refused.
            codes = {value[0] for value in raw.values() if isinstance(value, tuple)}
        else:
            kinds = ("SMTPSenderRefused", "SMTPRecipientsRefused", "SMTPDataError")
            if not any(s.outcome.is_a(k) for k in kinds):
                return None
            codes = {raw.get("smtp_code")}
            codes |= {value[0] for value in (raw.get("recipients") or {}).values()}
        if not odd & codes:
            return None
        if o.outcome.kind != "return" and not o.outcome.is_a("SMTPException"):
            return None
        note = "smtpclient took a 2yz smtplib refuses"
        return _whole_step(context, self.name, note, diverged=True)


def _closing_421(entries: Iterable[Entry]) -> Entry | None:
    """The first entry answered with a 421 (in LMTP, among its verdicts)."""
    return next((e for e in entries if any(r[-1][:3] == b"421" for r in _replies(e.answer))), None)


class CloseOn421:
    """CLOSE_ON_421 -- README row "after a 421 the socket stays open until a later command
    finds the close" / "closed at once; the next call raises ``SMTPServerDisconnected``
    without writing".

    Two cases:

    - the step whose command drew the 421 (in both runs, the same command):
      smtpclient is closed afterwards; smtplib wrote nothing more in the step
      but lines the server read after closing; the outcomes agree, or both
      are ``SMTPServerDisconnected`` (smtplib found the close by writing its
      next command: HELO after a 421 to EHLO, the next AUTH of ``login``);
    - a later step: smtplib only wrote lines the server read after closing
      (or nothing), smtpclient wrote nothing, and the outcomes agree (both
      raise ``SMTPServerDisconnected``, or both return, as ``close()``), or
      smtpclient raised ``SMTPServerDisconnected`` where smtplib, its socket
      still open, failed before writing (``UnicodeEncodeError``).

    Whole step; the sessions go on being compared when the server did close
    (both clients are then talking to nobody), and have diverged if it did not.
    """

    name: ClassVar[str] = "CLOSE_ON_421"
    row: ClassVar[str] = "a 421 closes the socket at once"

    def explain(self, context: Context) -> Explanation | None:
        s, o = context.std_step, context.ours_step
        if o.state.connected:
            return None
        here = _closing_421(o.entries)
        same = s.outcome == o.outcome or (
            o.outcome.is_a("SMTPServerDisconnected")
            # smtplib finds the close, or (a later step) fails before it
            # writes, on an open socket (UnicodeEncodeError...).
            and (s.outcome.is_a("SMTPServerDisconnected") or (here is None and not s.received))
        )
        if not same:
            return None
        if here is not None:
            std_here = _closing_421(s.entries)
            if std_here is None or std_here.raw != here.raw:
                return None
            std_entries, ours_entries = list(s.entries), list(o.entries)
            after_std = std_entries[std_entries.index(std_here) + 1 :]
            after_ours = ours_entries[ours_entries.index(here) + 1 :]
            if after_ours or any(e.kind != "discarded" for e in after_std):
                return None
            if _leading(std_entries, std_here) != _leading(ours_entries, here):
                return None
            closed = here.closed
        else:
            earlier = [e for k in range(context.index) for e in context.ours.steps[k].entries]
            before = _closing_421(earlier)
            if before is None or o.entries or any(e.kind != "discarded" for e in s.entries):
                return None
            closed = before.closed
        note = "smtpclient closed at the 421; smtplib finds the close later"
        explanation = _whole_step(context, self.name, note, diverged=not closed)
        if closed and s.server_state == o.server_state:
            explanation = replace(explanation, diverged=False)
        return explanation


class StartTLSNot220:
    """STARTTLS_NOT_220 -- README row "``starttls()`` answered with a 2yz other than 220
    raises and the session goes on in the clear" / "raises and closes".

    Applies to ``starttls`` when the server answered STARTTLS with a 2yz other
    than 220, both raised the same ``SMTPResponseException``, and smtpclient
    closed (the server now waits for a TLS handshake).  Whole step; diverged.
    """

    name: ClassVar[str] = "STARTTLS_NOT_220"
    row: ClassVar[str] = "starttls(): another 2yz closes"

    def explain(self, context: Context) -> Explanation | None:
        if context.step.method != "starttls":
            return None
        s, o = context.std_step, context.ours_step
        starttls = _first(o.entries, "STARTTLS")
        code = None if starttls is None else _reply_code(starttls.answer)
        if code is None or not 200 <= code < 300 or code == 220:
            return None
        if s.outcome != o.outcome or not o.outcome.is_a("SMTPResponseException"):
            return None
        if o.state.connected or s.received != o.received:
            return None
        return _whole_step(context, self.name, "smtpclient closed", diverged=True)


class BadChallenge:
    """AUTH_BAD_CHALLENGE -- README row "a 334 challenge that is not base64 raises
    ``binascii.Error``" / "the exchange is cancelled with ``*``;
    ``SMTPAuthenticationError(334, ...)``".

    Applies to ``login``/``auth`` when the server answered a 334 whose text
    ``base64.decodebytes`` refuses, smtplib raised ``binascii.Error``, and
    smtpclient wrote ``*`` after it and raised ``SMTPAuthenticationError`` (or
    went on to the next mechanism of ``login``).  Whole step.
    """

    name: ClassVar[str] = "AUTH_BAD_CHALLENGE"
    row: ClassVar[str] = "a challenge that is not base64 cancels the exchange"

    def explain(self, context: Context) -> Explanation | None:
        if context.step.method not in ("login", "auth"):
            return None
        s, o = context.std_step, context.ours_step
        if s.outcome.exc_type != "Error" or "ValueError" not in s.outcome.exc_mro:
            return None
        if not any(e.raw == b"*\r\n" for e in o.entries):
            return None
        if not (o.outcome.is_a("SMTPException") or o.outcome.kind == "return"):
            return None
        return _whole_step(context, self.name, "smtpclient cancelled the exchange")


def _long_line(step: Step) -> bool:
    """An argument that makes a command line over the engine's 2048 octets."""
    if step.method in ("data", "send+getreply", "sendmail", "send_message"):
        return False
    return sum(len(text.encode("utf-8", "replace")) for text in _strings(step.args)) > 2048


class LineLength:
    """LINE_LENGTH -- README row "command lines of any length" / "over 2048 octets (AUTH
    12288) refused: ``SMTPProtocolError``".

    Applies when the step's arguments make a line over 2048 octets, smtpclient
    raised ``SMTPProtocolError`` (an ``SMTPException`` and a ``ValueError``)
    and wrote nothing in the step, and smtplib wrote the line.  Whole step.
    """

    name: ClassVar[str] = "LINE_LENGTH"
    row: ClassVar[str] = "command lines over 2048 octets refused"

    def explain(self, context: Context) -> Explanation | None:
        if not _long_line(context.step):
            return None
        s, o = context.std_step, context.ours_step
        if not o.outcome.is_a("SMTPProtocolError") or o.commands():
            return None
        if not any(len(e.raw) > 2048 for e in s.commands()):
            return None
        return _whole_step(context, self.name, "smtpclient refused the long line")


class CertificateVerified:
    """TLS_VERIFY -- README row "``starttls()`` and ``SMTP_SSL`` without a context do not
    check the certificate" / "``ssl.create_default_context()``" (and bytes after the 220
    to STARTTLS refused).

    Never applies here: the harness's server answers STARTTLS but never with
    220 (it speaks no TLS), so no handshake takes place.  Registered so that
    the registry has one rule per README row.
    """

    name: ClassVar[str] = "TLS_VERIFY"
    row: ClassVar[str] = "starttls()/SMTP_SSL: certificate verified by default"

    def explain(self, context: Context) -> Explanation | None:
        return None


class WholeReplyTimeout:
    """TIMEOUT -- README row "``timeout`` bounds each ``recv``" / "``timeout`` bounds each
    whole reply".

    Never applies here: the harness's server writes each answer at once and
    never trickles, so no timeout is reached.  Registered so that the registry
    has one rule per README row.
    """

    name: ClassVar[str] = "TIMEOUT"
    row: ClassVar[str] = "timeout bounds each whole reply"

    def explain(self, context: Context) -> Explanation | None:
        return None


#: Every rule, by name, in the order they are asked (rewrites first).
DEVIATIONS: Mapping[str, Deviation] = {
    rule.name: rule
    for rule in (
        BareLineEndings(),
        Pipelining(),
        ControlCharactersRefused(),
        ReplyLimits(),
        MalformedReply(),
        SurplusReply(),
        LmtpAllReplies(),
        Utf8Credentials(),
        ScramPreferred(),
        FirstDigit(),
        CloseOn421(),
        StartTLSNot220(),
        BadChallenge(),
        LineLength(),
        CertificateVerified(),
        WholeReplyTimeout(),
    )
}
