"""One fuzzing session against a live server: write the steps, read the replies, judge them.

The runner drives a permissive :class:`smtp_core.Connection` over a plain
blocking socket.  Clean lines go through ``send(CommandLine(...))`` so that the
engine follows the state and pairs each reply with its command; everything
else goes through ``send_unchecked``.  Every read has a deadline (the stage
timeout), so a session can never hang the fuzzer.

What a session can find:

* a **hang**: no reply within the stage timeout where one is due (the
  greeting, or the reply to a step whose reply count is known), or the server
  stopped taking our bytes;
* a **violation**: the engine's :class:`~smtp_core.RemoteProtocolError` (bad
  grammar, a reply nothing asked for) or one of :mod:`._checks`'s rules.

A crash (nothing listens any more) is seen by the next connection attempt:
the :class:`~smtpclient.fuzz.Fuzzer` does that.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from smtp_core import (
    NEED_DATA,
    CommandLine,
    Connection,
    ConnectionClosed,
    EndOfContent,
    Greeting,
    LocalProtocolError,
    Record,
    RemoteProtocolError,
    Reply,
    State,
    Unchecked,
)

from ._checks import check_reply, coverage_verb
from ._steps import Step, is_clean

__all__ = [
    "QUIET",
    "READ_SIZE",
    "TAIL_READ_LIMIT",
    "TAIL_WAIT",
    "Connect",
    "SessionResult",
    "SessionRunner",
]

log = logging.getLogger("smtpclient.fuzz")

#: What one ``recv`` asks for.
READ_SIZE: Final = 65536
#: The most bytes read from the server after a tail step (the rest is dropped).
TAIL_READ_LIMIT: Final = 64 * 1024
#: Seconds to wait for the server to close after a tail step (a timeout there
#: is no finding, so a short wait costs nothing).
TAIL_WAIT: Final = 1.0
#: Seconds of silence after which the replies to a pipelined STARTTLS are taken as all.
QUIET: Final = 0.2
#: Replies a closing QUIT after a tail step may pair with (any number up to it).
_TAIL_REPLIES: Final = 64

#: Opens a connection within the given seconds (raises ``OSError``).
Connect = Callable[[float], socket.socket]

Coverage = tuple[str, ...]
# End-of-data look-alikes that a correct server takes as content (RFC 5321
# §4.1.1.4: only CRLF.CRLF ends it); SMTP smuggling uses them (CVE-2023-51764).
_LOOK_ALIKES: Final = (b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n")
_DATA_STATES: Final = frozenset({State.DATA, State.DATA_EMPTY})
_OVER: Final = frozenset({State.CLOSED, State.ERROR, State.TLS})


@dataclass
class SessionResult:
    """What one session sent, saw and found.

    Attributes:
        steps: the steps that were asked for.
        records: the transcript records (``C:``/``S:``/``E:`` and the
            ``# step`` comments that let it be replayed).
        refused: the connection could not be made (``OSError`` from connect).
        refused_error: the connect error's text, if refused.
        finding: ``("hang" | "violation", description)`` or ``None``.
        finding_step: the index of the step during which it was found
            (``-1``: the greeting; ``len(steps)``: the closing QUIT).
        coverage: the coverage keys the session reached.
        states: the engine states the session went through.
        first_reached: for each ``(state, reply code)`` pair (AFLNet's notion
            of a server state), how many steps had been written when the
            session first reached it: the prefix that reaches it.
        codes: the reply codes, in order (the greeting's first).
        commands: writes made (steps and the closing QUIT).
        bytes_sent: bytes written.
        closed_without_421: the server closed while a reply was due, without
            saying 421 first.
        greeting: the greeting's lines, as the engine parsed them (``()`` if none came).
    """

    steps: tuple[Step, ...]
    records: list[Record] = field(default_factory=list)
    refused: bool = False
    refused_error: str = ""
    finding: tuple[Literal["hang", "violation"], str] | None = None
    finding_step: int | None = None
    coverage: set[Coverage] = field(default_factory=set)
    states: set[State] = field(default_factory=set)
    first_reached: dict[tuple[State, int], int] = field(default_factory=dict)
    codes: list[int] = field(default_factory=list)
    commands: int = 0
    bytes_sent: int = 0
    closed_without_421: bool = False
    greeting: tuple[bytes, ...] = ()


class _Stop(Exception):
    """Ends a session early (a finding, or the server went away)."""


class SessionRunner:
    """Runs sessions against one target with a stage timeout.

    Args:
        connect: opens the connection, given a timeout in seconds.
        stage_timeout: seconds a due reply may take before it is a hang.
    """

    def __init__(self, connect: Connect, stage_timeout: float) -> None:
        if stage_timeout <= 0:
            raise ValueError(f"stage_timeout must be positive: {stage_timeout}")
        self.connect = connect
        self.stage_timeout = stage_timeout

    def refuses_connections(self) -> bool:
        """True if connecting fails now and again 0.1 s later: the sign of a crash.

        Asked twice so that a server being restarted, or a transient refusal,
        is not taken for one; the fuzzer and the replay ask the same question.
        """
        for attempt in range(2):
            if attempt:
                time.sleep(0.1)
            try:
                sock = self.connect(self.stage_timeout)
            except OSError:
                continue
            sock.close()
            return False
        return True

    def run(self, steps: tuple[Step, ...]) -> SessionResult:
        """Run one session of ``steps`` and return what happened (never raises ``OSError``)."""
        result = SessionResult(steps)
        try:
            sock = self.connect(self.stage_timeout)
        except OSError as exc:
            result.refused = True
            result.refused_error = f"{type(exc).__name__}: {exc}"
            return result
        session = _Session(sock, result, self.stage_timeout)
        try:
            session.play()
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            result.records.append(Record("E", "client-close"))
        return result


class _Session:
    """The state of one running session (see :meth:`SessionRunner.run`)."""

    def __init__(self, sock: socket.socket, result: SessionResult, stage_timeout: float) -> None:
        self.sock = sock
        self.result = result
        self.timeout = stage_timeout
        self.conn = Connection(permissive=True, auth_in_clear=True, max_line_length=None)
        self.state_known = True
        self.eof = False
        self.step_index = -1
        self.last_code = 0
        self.write_failed = False
        self.reset = False
        # Raw bytes drew a 354: the server takes what follows as message content.
        self.raw_data_mode = False
        # Content held an end-of-data look-alike (bare CR or LF around a dot).
        self.smuggled = False

    # -- the session ---------------------------------------------------------------

    def play(self) -> None:
        try:
            self._play()
        except RemoteProtocolError as exc:  # from send(): bytes no command asked for
            self._find("violation", f"protocol error: {exc}")
        except LocalProtocolError as exc:  # not expected: the runner checks first
            log.info("session ended: the engine refused a step: %s", exc)
            self._note(f" the engine refused a step: {exc}")

    def _play(self) -> None:
        try:
            if not self._await_replies("greeting", hang=True):
                return
            steps = self.result.steps
            for index, step in enumerate(steps):
                self.step_index = index
                if self.conn.state in _OVER:
                    return
                self._drain()
                if self.conn.state in _OVER:
                    return
                if step.tail or _blind_bdat(step, self.conn):
                    self._tail(step)
                    return
                self._step(step)
            self.step_index = len(steps)
            self._close()
        except _Stop:
            return

    def _step(self, step: Step) -> None:
        conn = self.conn
        if self.raw_data_mode:
            self.raw_data_mode = False
            self._note(" implied end of data: the server said 354 to raw bytes")
            self._write(conn.send_unchecked(b"\r\n.\r\n"), "<end of data>", hang=True)
            self._await_replies("reply to <end of data>", hang=True)
            if conn.state in _OVER:
                return
        if conn.state in _DATA_STATES and step.kind != "content":
            self._end_of_data(b".\r\n", "implied end of data: the server said 354")
            if conn.state in _OVER:
                return
        if step.kind == "content":
            if conn.state not in _DATA_STATES:
                self._note(f" step content skipped {step.data!r}")
                return
            conn.send(EndOfContent())
            data = step.data
            self.smuggled = self.smuggled or any(x in data for x in _LOOK_ALIKES)
        elif step.kind in ("line", "group") and all(is_clean(x) for x in step.lines):
            data = b"".join(conn.send(CommandLine(x.decode())) for x in step.lines)
        else:
            # A line that is not clean but holds no line break: one reply.
            replies = step.replies if step.kind == "raw" else 1
            data = conn.send_unchecked(step.wire, replies=replies or 0)
        self._note(_step_comment(step))
        self._write(data, step.verb, hang=True)
        self._await_replies(f"reply to {step.verb or 'an empty line'}", hang=True)

    def _end_of_data(self, data: bytes, comment: str) -> None:
        self.conn.send(EndOfContent())
        self._note(f" {comment}")
        self._write(data, "<end of data>", hang=True)
        self._await_replies("reply to <end of data>", hang=True)

    def _tail(self, step: Step) -> None:
        """A step whose reply count is unknown, then QUIT, read until the server closes."""
        conn = self.conn
        self.state_known = False
        self._note(_step_comment(step))
        if b"STARTTLS" in step.data.upper():
            # A 220 would be followed by TLS: no QUIT, only the replies that
            # come until the server falls quiet.
            self._write(conn.send_unchecked(step.wire, replies=_TAIL_REPLIES), "<tail>", hang=False)
            self._read_to_close(min(self.timeout, TAIL_WAIT), tail=True, quiet=QUIET)
            return
        self._write(conn.send_unchecked(step.wire, replies=0), "<tail>", hang=False)
        # End a partial line and any message content first, so that the server
        # reads the QUIT as a command and closes soon.
        self._note(" closing QUIT (after a step whose reply count is unknown)")
        closing = conn.send_unchecked(b"\r\n.\r\nQUIT\r\n", replies=_TAIL_REPLIES)
        self._write(closing, "QUIT", hang=False)
        self._read_to_close(min(self.timeout, TAIL_WAIT), tail=True)

    def _close(self) -> None:
        conn = self.conn
        if conn.state in _OVER:
            return
        if conn.state in _DATA_STATES:
            self._end_of_data(b".\r\n", "implied end of data: the server said 354")
            if conn.state in _OVER:
                return
        if conn.state is State.AUTH:
            # RFC 4954 §4: "*" cancels the exchange; a QUIT would be a response.
            self._note(" cancel the SASL exchange before QUIT")
            self._write(conn.send(CommandLine("*")), "*", hang=True)
            self._await_replies("reply to the cancelled SASL exchange", hang=True)
        self._drain()
        if conn.state in _OVER:
            return
        self._note(" closing QUIT")
        self._write(conn.send(CommandLine("QUIT")), "QUIT", hang=True)
        if self._await_replies("reply to QUIT", hang=True):
            # After a 221 the server closes; after anything else, read only
            # what comes at once (a surplus reply), not until the timeout.
            wait = self.timeout if self.last_code == 221 else min(self.timeout, QUIET)
            self._read_to_close(wait, tail=False)

    # -- reading and writing ---------------------------------------------------------

    def _note(self, text: str) -> None:
        self.result.records.append(Record("#", text))

    def _write(self, data: bytes, verb: str, *, hang: bool) -> None:
        self.result.records.append(Record("C", data))
        self.result.commands += 1
        self.result.bytes_sent += len(data)
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
        except TimeoutError:
            if hang:
                self._find(
                    "hang",
                    f"the server took no more bytes for {self.timeout:g} s while {verb} "
                    f"was written ({len(data)} bytes)",
                )
            raise _Stop from None
        except OSError as exc:
            # Closed or reset under us: what it said before is still to be read.
            self.write_failed = True
            self._note(f" write failed: {type(exc).__name__}")

    def _recv(self, deadline: float) -> bytes | None:
        """One read before ``deadline``: bytes, ``b""`` at EOF, ``None`` on timeout."""
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            self.sock.settimeout(left)
            data = self.sock.recv(READ_SIZE)
        except TimeoutError:
            return None
        except OSError:
            self.reset = True
            return b""
        if data:
            self.result.records.append(Record("S", data))
        return data

    def _server_gone(self) -> None:
        if not self.eof:
            self.eof = True
            event = "server-reset" if self.reset else "server-close"
            self.result.records.append(Record("E", event))
            self.conn.receive_data(b"")

    def _drain(self) -> None:
        """Take what the server sent unasked before the next write (a surplus reply)."""
        if self.eof:
            return
        try:
            self.sock.settimeout(0)
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, TimeoutError):
            return
        except OSError:
            self.reset = True
            data = b""
        if data:
            self.result.records.append(Record("S", data))
            self.conn.receive_data(data)
        else:
            self._server_gone()
        self._events()

    def _await_replies(self, what: str, *, hang: bool) -> bool:
        """Read until no reply is due; True if every one came, False if the session is over."""
        deadline = time.monotonic() + self.timeout
        while True:
            if not self._events():
                return False
            if not self.conn.reply_due:
                return True
            if self.eof:  # the engine returns what is left, then ConnectionClosed
                continue
            data = self._recv(deadline)
            if data is None:
                if hang and not self.write_failed:
                    self._find(
                        "hang",
                        f"no {what} within {self.timeout:g} s (state {self.conn.state.name})",
                    )
                raise _Stop
            if data:
                self.conn.receive_data(data)
            else:
                self._server_gone()

    def _read_to_close(self, seconds: float, *, tail: bool, quiet: float | None = None) -> None:
        """Read until the server closes or ``seconds`` pass; a timeout is no finding.

        With ``quiet``, stop too once the server said something and then fell
        silent for that long.
        """
        deadline = time.monotonic() + seconds
        total = 0
        while not self.eof and total < TAIL_READ_LIMIT:
            limit = (
                deadline if quiet is None or not total else min(deadline, time.monotonic() + quiet)
            )
            data = self._recv(limit)
            if data is None:
                return
            total += len(data)
            if data:
                self.conn.receive_data(data)
            else:
                self._server_gone()
            if not self._events(tail=tail):
                return

    def _events(self, *, tail: bool = False) -> bool:
        """Take every whole event; False once the connection is over."""
        conn = self.conn
        result = self.result
        while True:
            state = conn.state
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                self._find("violation", f"protocol error: {exc}")
                raise _Stop from None
            if event is NEED_DATA:
                return conn.state not in _OVER
            if isinstance(event, ConnectionClosed):
                asked = [c for c in event.unanswered if not isinstance(c, Unchecked)]
                if asked and self.last_code != 421:
                    result.closed_without_421 = True
                return False
            code = event.code
            self.last_code = code
            result.codes.append(code)
            result.states.add(conn.state)
            result.first_reached.setdefault((conn.state, code), max(self.step_index + 1, 0))
            if isinstance(event, Greeting):
                result.greeting = event.lines
                result.coverage.add(("state", state.name, str(code)))
                continue
            self._judge(event, state, tail=tail)

    def _judge(self, reply: Reply, state: State, *, tail: bool) -> None:
        command = reply.command
        code = reply.code
        cover = self.result.coverage
        if isinstance(command, Unchecked):
            verb = "<tail>" if tail else "<raw>"
            if code // 100 == 2:
                self.state_known = False  # the server took raw bytes: its state is unknown
            self.raw_data_mode = code == 354 and not tail
        elif isinstance(command, EndOfContent):
            verb = "<end of data>"
        elif state is State.AUTH:
            # After a 334 the server reads a line as a SASL response, whatever
            # its first word (a LOGIN user name "NOOP" draws "334 Password:").
            verb = "<auth response>"
        else:
            verb = command.verb
        cover.add(("state", state.name, str(code)))
        cover.add(("transition", state.name, coverage_verb(verb), str(code)))
        if isinstance(command, Unchecked) or tail or state is State.AUTH:
            return
        problem = check_reply(verb, state, code, state_known=self.state_known)
        if problem is not None:
            self._find("violation", problem)
            raise _Stop

    def _find(self, kind: Literal["hang", "violation"], text: str) -> None:
        result = self.result
        if self.smuggled and "no command was waiting" in text:
            text += (
                " (after content with a bare CR or LF around a dot: the server may have "
                "ended the message there and run the rest as commands: SMTP smuggling)"
            )
        if result.finding is None:
            result.finding = (kind, text)
            result.finding_step = self.step_index
            result.records.append(Record("#", f" FINDING {kind}: {text}"))
            log.info("%s: %s", kind, text)


def _blind_bdat(step: Step, conn: Connection) -> bool:
    """A raw BDAT to a server without CHUNKING: its chunk may be read as commands."""
    return step.kind == "raw" and step.data[:5].upper() == b"BDAT " and not conn.extensions.chunking


def _step_comment(step: Step) -> str:
    """The ``# step`` comment that lets a transcript be replayed as the steps it ran."""
    if step.kind == "raw":
        return f" step raw {'?' if step.replies is None else step.replies}"
    return f" step {step.kind}"
