"""Harness ``session``: a whole client session against arbitrary server bytes.

A scripted client drives a ``Connection`` like a driver would: it waits for the
greeting, then sends the commands of a plan (by default EHLO/LHLO, MAIL, RCPT,
DATA, content, end of data, QUIT; the input may choose its own plan from
``OPS``, which has STARTTLS, RSET, NOOP, VRFY, EXPN, HELP, an unknown verb,
parameters for SMTPUTF8, DSN, SIZE and BINARYMIME, BDAT, and content with a
line over the 998-octet limit too), reading
events whenever it must wait.  A command the engine refuses with
``LocalProtocolError`` is skipped.  With pipelining chosen, runs of commands up
to one that ends a group are sent with ``send_many`` (one by one if that is
refused), and a command is sent as soon as the engine allows it; without it,
every reply is read before the next command.  When the engine needs data the
client feeds it the next piece of the server's bytes; when they run out it
feeds end of file (if the input says so) or stops (a silent server).  After a
STARTTLS accepted with 220 the client finishes the handshake
(``start_tls_done``) and the rest of the server's bytes count as arriving
over TLS.

INVARIANT: the session is run three times, with the server's bytes fed whole,
one byte at a time, and cut at the fuzzer's split points.  The three traces --
the sequence of (event type, code, lines, enhanced code, command verb,
recipient), of bytes sent, of commands refused, and how the session ended --
are equal, up to a surplus reply that ``send`` refuses with
``RemoteProtocolError`` (bytes buffered while no reply is awaited): fed in
smaller pieces they arrive after the next command and pair with it, so runs
are compared only up to the point where the whole-input run refused them.
The other documented exception: bytes that arrive together with the
220 reply to STARTTLS are refused (RFC 3207 §5, CVE-2011-0411) before that
reply is returned, and after it when they come in a later read, so a 2yz reply
to STARTTLS directly followed by an error is left out of the comparison.
Only ``LocalProtocolError`` escapes ``send``/``send_many`` (and leaves the
connection exactly as it was, or in ``ERROR`` if its message says so:
invariant ``refusal-unchanged``), only ``RemoteProtocolError`` (or its subclass
``ServerDisconnected``, only after end of file) escapes ``next_event``;
after it the state is ``ERROR`` and stays there (``next_event`` raises
again, ``send`` raises ``LocalProtocolError``).  Each reply pairs with the
oldest command awaiting one; ``ConnectionClosed`` leaves the state ``CLOSED``.
Message content and its end are accepted by ``send`` only when the state the
engine sends in is ``DATA``, and BDAT only in ``RCPT`` or ``BDAT``
(invariant ``content-outside-data``).  When the first reply to the end of a
message (end of data, BDAT LAST) arrives, the engine awaits one reply per
recipient accepted since MAIL in LMTP (at least one), exactly one in SMTP
(invariant ``verdicts``).  Once no reply is awaited, the state the engine
plans sends from equals its confirmed state (invariant ``projection``).

Input layout: byte 0: flags -- bit 0 LMTP, bit 1 pipelining, bit 2
``lowercase_commands``, bit 3 feed end of file when the server's bytes run
out, bits 4-5 ``tls_policy`` (0 opportunistic, 1 none, 2 required, 3 required
with TLS already active); byte 1, low 6 bits: number of plan steps P (0: the
default plan); bytes 2-3: little-endian offset where the bytes that arrive
over TLS start (0: none do); byte 4, low 5 bits: number of split points N;
then P plan opcodes (see ``OPS``, taken modulo their number), N little-endian
16-bit split offsets; the rest is the server's byte stream.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from fuzz._common import Header, bytewise, check_refusal, freeze, pack_splits, split_at
from smtp_core import (
    NEED_DATA,
    BaseCommand,
    Bdat,
    Command,
    Connection,
    ConnectionClosed,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Expn,
    Greeting,
    Helo,
    Help,
    Lhlo,
    LocalProtocolError,
    Mail,
    Noop,
    Quit,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Rset,
    ServerDisconnected,
    StartTLS,
    State,
    TLSPolicy,
    Vrfy,
)

__all__ = ["DEFAULT_PLAN", "MAX_LEN", "OPS", "check", "make_input", "run_session"]

MAX_LEN = 8192

#: Message content with a leading dot, a bare LF and a bare CR in it.
MESSAGE = (
    b"From: <sender@example.org>\r\nTo: <rcpt1@example.org>\r\nSubject: fuzz\r\n\r\n"
    b".a line with a leading dot\nbare LF\rbare CR\r\nlast line"
)

Entry = tuple[object, ...]


@dataclass
class _Plan:
    lmtp: bool
    recipients: int = 0

    def rcpt(self, *params: str) -> Rcpt:
        self.recipients += 1
        return Rcpt(f"rcpt{self.recipients}@example.org", params)


OPS: tuple[tuple[str, Callable[[_Plan], BaseCommand]], ...] = (
    ("HELLO", lambda p: Lhlo("client.example") if p.lmtp else Ehlo("client.example")),
    ("HELO", lambda p: Helo("client.example")),
    ("STARTTLS", lambda p: StartTLS()),
    ("MAIL", lambda p: Mail("sender@example.org")),
    ("MAIL_PARAMS", lambda p: Mail("sender@example.org", ("SIZE=242", "BODY=8BITMIME"))),
    ("MAIL_UTF8", lambda p: Mail("s\u00e9nder@example.org", ("SMTPUTF8",))),
    ("MAIL_DSN", lambda p: Mail("sender@example.org", ("RET=HDRS", "ENVID=QQ314159"))),
    ("RCPT", lambda p: p.rcpt()),
    ("RCPT_UTF8", lambda p: Rcpt("\u7528\u6237@\u4f8b\u3048.jp")),
    ("RCPT_DSN", lambda p: p.rcpt("NOTIFY=SUCCESS,DELAY,FAILURE", "ORCPT=rfc822;x@example.org")),
    ("DATA", lambda p: Data()),
    ("CONTENT", lambda p: Content(MESSAGE)),
    ("END", lambda p: EndOfContent()),
    ("RSET", lambda p: Rset()),
    ("NOOP", lambda p: Noop()),
    ("VRFY", lambda p: Vrfy("postmaster")),
    ("EXPN", lambda p: Expn("postmaster")),
    ("HELP", lambda p: Help()),
    ("XYZZY", lambda p: Command("XYZZY")),
    ("QUIT", lambda p: Quit()),
    ("MAIL_BINARY", lambda p: Mail("sender@example.org", ("BODY=BINARYMIME",))),
    ("BDAT", lambda p: Bdat(b"From: <sender@example.org>\r\n\r\n.dot\nbare LF\r")),
    ("BDAT_LAST", lambda p: Bdat(b"\nlast line", last=True)),
    ("CONTENT_LONG", lambda p: Content(b"x" * 1200 + b"\r\n")),
)
OP_INDEX = {name: index for index, (name, _) in enumerate(OPS)}
DEFAULT_PLAN = ("HELLO", "MAIL", "RCPT", "DATA", "CONTENT", "END", "QUIT")
_POLICIES: tuple[tuple[TLSPolicy, bool], ...] = (
    ("opportunistic", False),
    ("none", False),
    ("required", False),
    ("required", True),
)


@dataclass(frozen=True)
class Options:
    """What the input's header chose."""

    lmtp: bool
    pipelining: bool
    lowercase: bool
    eof: bool
    policy: int
    plan: tuple[int, ...]


class _Over(Exception):
    """The session ended: closed, failed, or the server went silent."""


class _Feeder:
    """Hands out the server's bytes: segment 0 in the clear, segment 1 over TLS."""

    def __init__(self, segments: list[list[bytes]], eof: bool) -> None:
        self._segments = segments
        self._segment = 0
        self._next = 0
        self.eof = eof
        self.eof_fed = False

    def exhausted(self) -> bool:
        return self._next >= len(self._segments[self._segment])

    def chunk(self) -> bytes | None:
        if self.exhausted():
            return None
        chunk = self._segments[self._segment][self._next]
        self._next += 1
        return chunk

    def tls_started(self) -> None:
        assert self.exhausted()
        if self._segment + 1 < len(self._segments):
            self._segment += 1
            self._next = 0


#: Invariants a fuzzing run may skip (``fuzz/run.py --skip NAME``) to get past
#: a failure already reported; the seed replay in the tests never skips any.
SKIP: set[str] = set()


def _check_in_transaction(command: BaseCommand, projected: State) -> None:
    """Content and the end of a message only go where a message is being sent."""
    if "content-outside-data" in SKIP:
        return
    if isinstance(command, (Content, EndOfContent)):
        assert projected is State.DATA, f"{command.verb} accepted in state {projected.name}"
    elif isinstance(command, Bdat):
        assert projected in (State.RCPT, State.BDAT), f"BDAT accepted in state {projected.name}"


@dataclass
class _Session:
    conn: Connection
    feeder: _Feeder
    pipelining: bool
    trace: list[Entry] = field(default_factory=list)
    accepted: int = 0  # recipients accepted since the last reply to MAIL
    verdicts: list[BaseCommand] = field(default_factory=list)  # messages whose replies began

    def fail(self, exc: RemoteProtocolError) -> NoReturn:
        conn = self.conn
        self.trace.append(("error", type(exc).__name__))
        if isinstance(exc, ServerDisconnected):
            assert self.feeder.eof_fed, "ServerDisconnected before end of file"
        assert conn.state is State.ERROR, conn.state
        try:
            conn.next_event()
        except RemoteProtocolError:
            pass
        else:
            raise AssertionError("next_event did not raise again after an error") from exc
        try:
            conn.send(Noop())
        except LocalProtocolError:
            pass
        else:
            raise AssertionError("send worked after a RemoteProtocolError") from exc
        assert conn.state is State.ERROR, conn.state
        raise _Over from exc

    def surplus(self, exc: RemoteProtocolError) -> NoReturn:
        """``send`` found server bytes that no command asked for: a surplus reply."""
        assert not self.conn.awaiting or self.conn.state is State.ERROR, "surplus while awaiting"
        self.trace.append(("surplus",))
        self.fail(exc)

    def read_event(self) -> None:
        """Take the next event, feeding server bytes as needed; ``_Over`` at the end."""
        conn = self.conn
        while True:
            awaited = conn.awaiting
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                self.fail(exc)
            if event is NEED_DATA:
                chunk = self.feeder.chunk()
                if chunk is not None:
                    conn.receive_data(chunk)
                    continue
                if self.feeder.eof and not self.feeder.eof_fed:
                    self.feeder.eof_fed = True
                    conn.receive_data(b"")
                    continue
                self.trace.append(("stalled", conn.state.name))
                raise _Over
            break
        if isinstance(event, Greeting):
            assert not self.trace, "a greeting after other events"
            self.trace.append(("greeting", event.code, event.lines, event.enhanced))
        elif isinstance(event, Reply):
            assert awaited, "a reply while nothing was awaited"
            assert event.command is awaited[0], (event.command, awaited)
            self.count_verdicts(event, awaited)
            self.trace.append(
                (
                    "reply",
                    event.command.verb,
                    event.code,
                    event.lines,
                    event.enhanced,
                    event.recipient,
                )
            )
        else:
            assert isinstance(event, ConnectionClosed), event
            assert conn.state is State.CLOSED, conn.state
            self.trace.append(("closed", tuple(c.verb for c in event.unanswered)))
            raise _Over
        if not conn.awaiting and "projection" not in SKIP:
            # Every reply is in: the state the engine plans from is the real one.
            assert conn._projected is conn.state, (conn._projected, conn.state)
        if conn.state is State.TLS:
            self.tls()

    def count_verdicts(self, reply: Reply, awaited: tuple[BaseCommand, ...]) -> None:
        """Expect one verdict per accepted recipient in LMTP (one in SMTP) after a message."""
        command = reply.command
        if isinstance(command, Mail):
            self.accepted = 0
        elif isinstance(command, Rcpt) and reply.is_positive:
            self.accepted += 1
        final = isinstance(command, EndOfContent) or (isinstance(command, Bdat) and command.last)
        if not final or "verdicts" in SKIP or any(c is command for c in self.verdicts):
            return
        self.verdicts.append(command)
        slots = sum(1 for c in awaited if c is command)
        expected = max(1, self.accepted) if self.conn.lmtp else 1
        assert slots == expected, f"{slots} replies due to {command.verb}, {expected} accepted"

    def tls(self) -> None:
        """The 220 to STARTTLS arrived: shake hands, unless clear-text bytes are pending."""
        if not self.feeder.exhausted():
            # More bytes arrived before the handshake: the engine must refuse them.
            self.read_event()
            raise AssertionError("bytes after the 220 to STARTTLS were accepted")
        self.conn.start_tls_done()
        self.feeder.tls_started()
        self.trace.append(("tls", self.conn.state.name))

    def send_one(self, command: BaseCommand) -> None:
        conn = self.conn
        if not self.pipelining:
            while conn.awaiting:
                self.read_event()
        while True:
            projected = conn._projected  # the state the engine plans to send in
            before = freeze(conn)
            try:
                wire = conn.send(command)
            except RemoteProtocolError as exc:
                self.surplus(exc)
            except LocalProtocolError as exc:
                if "refusal-unchanged" not in SKIP:
                    check_refusal(before, conn, exc)
                if conn.state is State.ERROR:
                    self.trace.append(("refused", command.verb, "ERROR"))
                    raise _Over from exc
                if self.pipelining and conn.awaiting:
                    self.read_event()
                    continue
                self.trace.append(("refused", command.verb))
                return
            _check_in_transaction(command, projected)
            self.trace.append(("sent", command.verb, wire))
            return

    def send_group(self, group: list[BaseCommand]) -> None:
        if self.pipelining and len(group) > 1:
            before = freeze(self.conn)
            try:
                wire = self.conn.send_many(group)
            except RemoteProtocolError as exc:
                self.surplus(exc)
            except LocalProtocolError as exc:
                if "refusal-unchanged" not in SKIP:
                    check_refusal(before, self.conn, exc)
                if self.conn.state is State.ERROR:
                    self.trace.append(("refused", "send_many", "ERROR"))
                    raise _Over from exc
            else:
                self.trace.append(("sent_many", tuple(c.verb for c in group), wire))
                return
        for command in group:
            self.send_one(command)


def _groups(commands: list[BaseCommand], pipelining: bool) -> list[list[BaseCommand]]:
    if not pipelining:
        return [[command] for command in commands]
    groups: list[list[BaseCommand]] = [[]]
    for command in commands:
        groups[-1].append(command)
        if command.ends_group:
            groups.append([])
    return [group for group in groups if group]


def run_session(options: Options, segments: list[list[bytes]]) -> list[Entry]:
    """Run the scripted client against ``segments`` of server bytes; return the trace."""
    policy, tls_active = _POLICIES[options.policy]
    conn = Connection(
        lmtp=options.lmtp,
        lowercase_commands=options.lowercase,
        tls_policy=policy,
        tls_active=tls_active,
    )
    plan = _Plan(options.lmtp)
    commands = [OPS[op % len(OPS)][1](plan) for op in options.plan]
    session = _Session(conn, _Feeder(segments, options.eof), options.pipelining)
    try:
        session.read_event()
        for group in _groups(commands, options.pipelining):
            session.send_group(group)
        while True:  # whatever else the server sends, up to the end
            session.read_event()
    except _Over:
        pass
    session.trace.append(("state", conn.state.name))
    return session.trace


def _comparable(trace: list[Entry], cut: int | None = None) -> list[Entry]:
    """``trace`` without a 2yz STARTTLS reply directly followed by an error.

    With ``cut``, only the entries before it: the reference run refused a
    surplus reply there.  ``send`` refuses server bytes that no command asked
    for when they are already buffered; fed in smaller pieces they arrive
    after the next command was sent and are (unavoidably) taken for its
    reply, so the runs agree only up to that point.  The whole-input run
    buffers everything at once, so it finds a surplus first or not at all.
    """
    trace = trace if cut is None else trace[:cut]
    out = []
    for index, entry in enumerate(trace):
        following = trace[index + 1] if index + 1 < len(trace) else ()
        if (
            entry[:2] == ("reply", "STARTTLS")
            and isinstance(entry[2], int)
            and 200 <= entry[2] < 300
            and following[:1] == ("error",)
        ):
            continue
        out.append(entry)
    return out


def parse(data: bytes) -> tuple[Options, bytes, int, list[int]]:
    """Split a fuzz input into its options, payload, TLS offset and raw split points."""
    header = Header(data)
    flags = header.byte()
    steps = header.byte() & 0x3F
    tls_at = header.u16()
    splits = header.byte() & 0x1F
    plan = tuple(header.byte() for _ in range(steps)) or tuple(OP_INDEX[n] for n in DEFAULT_PLAN)
    raw_points = header.splits(splits)
    options = Options(
        lmtp=bool(flags & 0x01),
        pipelining=bool(flags & 0x02),
        lowercase=bool(flags & 0x04),
        eof=bool(flags & 0x08),
        policy=(flags >> 4) & 0x03,
        plan=plan,
    )
    return options, header.rest(), tls_at, raw_points


def check(data: bytes) -> None:
    """Run one fuzz input; raise ``AssertionError`` if the invariant breaks."""
    options, payload, tls_at, raw_points = parse(data)
    cut = tls_at % (len(payload) + 1) if tls_at else len(payload)
    clear, over_tls = payload[:cut], payload[cut:]
    points = [p % (len(payload) + 1) for p in raw_points]
    runs = {
        "whole": [[clear] if clear else [], [over_tls] if over_tls else []],
        "bytewise": [bytewise(clear), bytewise(over_tls)],
        "split": [
            split_at(clear, [p for p in points if p < cut]),
            split_at(over_tls, [p - cut for p in points if p > cut]),
        ],
    }
    traces = {name: run_session(options, segments) for name, segments in runs.items()}
    whole = traces["whole"]
    surplus_at = whole.index(("surplus",)) if ("surplus",) in whole else None
    expected = _comparable(whole, surplus_at)
    for name in ("bytewise", "split"):
        got = _comparable(traces[name], surplus_at)
        assert got == expected, (name, got, expected)


def make_input(
    payload: bytes,
    *,
    plan: tuple[str, ...] = (),
    lmtp: bool = False,
    pipelining: bool = False,
    lowercase: bool = False,
    eof: bool = True,
    policy: int = 0,
    tls_at: int = 0,
    splits: list[int] | None = None,
) -> bytes:
    """A fuzz input (for seed files); ``plan`` names ``OPS`` entries."""
    flags = lmtp | pipelining << 1 | lowercase << 2 | eof << 3 | (policy & 0x03) << 4
    steps = [OP_INDEX[name] for name in plan[:63]]
    packed = pack_splits(splits or [])
    return (
        bytes([flags, len(steps)])
        + struct.pack("<H", tls_at)
        + packed[:1]
        + bytes(steps)
        + packed[1:]
        + payload
    )
