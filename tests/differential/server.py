"""A reactive, deterministic SMTP/LMTP server for the differential harness.

:class:`ReactiveServer` listens on 127.0.0.1 (port 0), accepts one connection in
one thread, and answers every line the client sends from a :class:`Policy`:
what the server says to the *n*-th use of each verb.  It is reactive (it reads
the client's bytes line by line and answers each command as it comes, so a
client that waits for each reply and one that pipelines see the same answers)
and deterministic (the answers depend only on the policy and on what the
client sent, never on timing).  Every byte received is recorded, and every
exchange is logged as an :class:`Entry` with its offset in the received stream,
so the harness can tell which call of the client drew it.

What the server does beyond the policy, like a real server would:

- after a 354 to DATA it reads the content up to the line ``.`` and answers the
  end of data ("." in the policy); in LMTP mode with one verdict per accepted
  RCPT, each verdict counted as one use of ".";
- a 334 to AUTH (or to a response) makes the next line a SASL response,
  answered from ``AUTH-RESPONSE`` (a line ``*`` cancels: 501);
- commands out of order are refused with the server's own 503/554 (RCPT
  before MAIL, a nested MAIL, DATA without MAIL or without an accepted
  recipient, AUTH once authenticated).  These answers are *not* counted as a
  use of the verb, so a pipelining client that sends RCPT and DATA after a
  refused MAIL does not shift the policy's later answers;
- RSET has one answer, whatever the count (:attr:`Policy.rset`), for the same
  reason: smtpclient sends an RSET after a failed pipelined transaction where
  smtplib does not (README, PIPELINING);
- after it has sent a reply nobody asked for (a surplus reply, or LMTP verdicts
  that smtplib does not read) the server knows a client such as smtplib is
  out of step: it no longer answers DATA with 354 (its own 503 instead), so
  such a client can never have its next commands swallowed as message content.

Closing is graceful so both clients see the same thing (no RST races): the
server shuts its side (``SHUT_WR``), then reads and records until the client
closes.  A client that closes without reading the last answers (one out of
step) makes the server's writes fail; the server then goes on answering, unheard,
every line it received, so its log never depends on when the client left (the
harness lets it read everything before the client closes:
:meth:`ReactiveServer.wait_received`).  The server never stalls unless the
client does: the content of a message must arrive within ``content_timeout``
(a client waiting for a reply to a line the server reads as content would
otherwise wait forever), and any other silence longer than ``idle_timeout``
ends the session.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

__all__ = [
    "AUTH_RESPONSE",
    "END_OF_DATA",
    "GREETING",
    "OTHER",
    "RSET_OK",
    "Answer",
    "Entry",
    "Policy",
    "ReactiveServer",
    "ServerState",
    "close_silently",
    "entries_between",
    "reply",
]

CRLF = b"\r\n"

#: The policy key of the end of the message data (the line ".").
END_OF_DATA = "."
#: The policy key of a line sent in answer to a 334 challenge.
AUTH_RESPONSE = "AUTH-RESPONSE"
#: The policy key of every verb not in :data:`VERBS`.
OTHER = "OTHER"
#: The verbs the policy answers under their own name ("" is an empty line).
VERBS = frozenset(
    {
        "EHLO",
        "HELO",
        "LHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "RSET",
        "NOOP",
        "QUIT",
        "HELP",
        "VRFY",
        "EXPN",
        "AUTH",
        "STARTTLS",
        "",
    }
)

#: The CRAM-MD5 challenge of the default answer to ``AUTH CRAM-MD5``.
CRAM_CHALLENGE = base64.b64encode(b"<1896.697170952@differential.test>").decode()


@dataclass(frozen=True)
class Answer:
    """What the server writes for one command: reply lines, then perhaps a close.

    Attributes:
        lines: the reply's lines without CRLF, as written (so a malformed or an
            oversized reply is just other lines).  Empty: nothing is written.
        close: after writing, the server closes (gracefully) and answers nothing more.
        surplus: the lines of a second reply nobody asked for, written in the
            same ``sendall`` as the first (so a client reads both at once).
    """

    lines: tuple[bytes, ...] = ()
    close: bool = False
    surplus: tuple[bytes, ...] = ()

    def wire(self) -> bytes:
        """The bytes written."""
        return b"".join(line + CRLF for line in (*self.lines, *self.surplus))

    @property
    def code(self) -> int | None:
        """The last line's code (smtplib's), or None (no reply, or not three digits)."""
        if not self.lines:
            return None
        head = self.lines[-1][:3]
        return int(head) if len(head) == 3 and head.isdigit() else None

    @property
    def malformed(self) -> bool:
        """A line of the reply has no three-digit code."""
        return any(not line[:3].isdigit() or len(line[:3]) < 3 for line in self.lines)

    def describe(self) -> str:
        """A short human form: ``250 ok``, ``421 bye + close``, ``close silently``."""
        if not self.lines:
            shown = "close silently" if self.close else "(nothing)"
        else:
            first = self.lines[0]
            text = first if len(first) <= 60 else first[:40] + b"...(%d octets)" % len(first)
            shown = text.decode("latin-1")
            if len(self.lines) > 1:
                shown += f" (+{len(self.lines) - 1} lines)"
            if self.close:
                shown += " + close"
        if self.surplus:
            shown += " + surplus " + b" / ".join(self.surplus).decode("latin-1")
        return shown

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def reply(code: int | str, *texts: str | None, close: bool = False) -> Answer:
    """A well-formed reply: one line per text (``None``: the bare code), last line ``code SP``.

    ``reply(250, "a", "b")`` is ``250-a`` then ``250 b``; ``reply(250)`` is ``250``.
    """
    texts = texts or (None,)
    lines = []
    for index, text in enumerate(texts):
        sep = " " if index == len(texts) - 1 else "-"
        lines.append(f"{code}".encode() + (b"" if text is None else (sep + text).encode()))
    return Answer(tuple(lines), close=close)


def close_silently() -> Answer:
    """Close without a word."""
    return Answer(close=True)


#: The default greeting and answer to RSET.
GREETING = reply(220, "differential.test ESMTP")
RSET_OK = reply(250, "2.0.0 Ok")


@dataclass(frozen=True)
class Policy:
    """What the server says.

    Attributes:
        greeting: the first reply.
        extensions: the EHLO/LHLO keyword lines offered (``"SIZE 100"``...).
        answers: for each verb key, the answers to its first, second...
            policy-answered use (keys: a verb of :data:`VERBS`,
            :data:`END_OF_DATA`, :data:`AUTH_RESPONSE`, :data:`OTHER`).  When
            they run out, the verb's default answer is used.
        rset: the answer to every RSET.
        lmtp: LMTP mode (LHLO; one verdict per accepted recipient).
    """

    greeting: Answer = GREETING
    extensions: tuple[str, ...] = ()
    answers: tuple[tuple[str, tuple[Answer, ...]], ...] = ()
    rset: Answer = RSET_OK
    lmtp: bool = False

    def drawn(self, key: str, count: int) -> Answer | None:
        """The policy's answer to the ``count``-th use (from 1) of ``key``, if it has one."""
        for name, answers in self.answers:
            if name == key and count <= len(answers):
                return answers[count - 1]
        return None

    def hello_reply(self) -> Answer:
        """The positive EHLO/LHLO reply: the host name, then one line per extension."""
        return reply(250, "differential.test", *self.extensions)

    def offers(self, keyword: str) -> bool:
        """True if an extension line starts with ``keyword`` (any case)."""
        return any(line.split(" ", 1)[0].upper() == keyword.upper() for line in self.extensions)

    def describe(self) -> str:
        """The policy as a few readable lines."""
        mode = "LMTP" if self.lmtp else "SMTP"
        out = [
            f"{mode} server; greeting {self.greeting.describe()}",
            f"  extensions: {', '.join(self.extensions) or '(none)'}",
            f"  every RSET: {self.rset.describe()}",
        ]
        for key, answers in self.answers:
            if answers:
                shown = "; ".join(f"#{i} {a.describe()}" for i, a in enumerate(answers, 1))
                out.append(f"  {key or '(empty line)'}: {shown}")
        return "\n".join(out)


@dataclass(frozen=True)
class ServerState:
    """The server's state after an exchange: what decides its later answers."""

    counts: tuple[tuple[str, int], ...] = ()
    in_transaction: bool = False
    accepted: int = 0
    authenticated: bool = False
    closed: bool = False
    out_of_step: bool = False
    mode: str = "command"


@dataclass(frozen=True)
class Entry:
    """One exchange of the session, as the server saw it.

    Attributes:
        kind: ``greeting``, ``command``, ``response`` (a SASL response line),
            ``content`` (the message data with its final ``.`` line),
            ``discarded`` (a line read after the server closed), or
            ``unterminated`` (bytes left when the client closed).
        raw: the bytes received for it, exactly (CRLF included).
        end: the offset in the received stream just after ``raw``.
        key: the policy key it was answered under (the verb, ``.``...).
        count: which use of ``key`` it was; 0 for the server's own answers.
        answer: the bytes the server wrote in answer.
        closed: the server closed after answering.
        state: the server's state afterwards.
        note: why the server answered by itself, if it did.
        replies: how many replies it wrote (LMTP verdicts; a surplus reply counts).
    """

    kind: str
    raw: bytes
    end: int
    key: str
    count: int
    answer: bytes
    closed: bool
    state: ServerState
    note: str = ""
    replies: int = 0

    def describe(self) -> list[str]:
        """``C:``/``S:`` lines for a transcript."""
        out: list[str] = []
        if self.kind == "content":
            body = self.raw
            shown = body if len(body) <= 120 else body[:100] + b"...(%d octets)" % len(body)
            out.append(f"C: <content {shown!r}>")
        elif self.kind != "greeting":
            tag = {"discarded": " (read after closing)", "unterminated": " (no CRLF)"}
            raw = self.raw if len(self.raw) <= 160 else self.raw[:140] + b"..."
            out.append(f"C: {raw!r}{tag.get(self.kind, '')}")
        lines = self.answer.split(CRLF)[:-1]
        for line in lines[:6]:
            shown_line = line if len(line) <= 100 else line[:80] + b"...(%d octets)" % len(line)
            out.append(f"S: {shown_line!r}")
        if len(lines) > 6:
            out.append(f"S: ... ({len(lines) - 6} more lines)")
        if self.note:
            out.append(f"   ({self.note})")
        if self.closed:
            out.append("S: <closes>")
        return out


class _Timeout:
    """The marker :meth:`ReactiveServer._read_line` returns when the client is silent."""


_TIMEOUT = _Timeout()


class ReactiveServer:
    """One connection on loopback, answered from ``policy``; records every byte.

    Use as a context manager: the thread starts on entry, and on exit it is
    joined and the listener closed (the client must have closed by then, or
    the server's timeouts end it).

    Attributes:
        host, port: where it listens.
        received: every byte the client sent, in order.
        log: the exchanges, in order.
        error: an exception that ended the server thread (a harness bug).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        idle_timeout: float = 10.0,
        content_timeout: float = 1.5,
        drain_timeout: float = 10.0,
    ) -> None:
        self.policy = policy
        self.idle_timeout = idle_timeout
        self.content_timeout = content_timeout
        self.drain_timeout = drain_timeout
        self.received = bytearray()
        self.log: list[Entry] = []
        self.error: BaseException | None = None
        self._pos = 0
        self._counts: dict[str, int] = {}
        self._in_transaction = False
        self._accepted = 0
        self._authenticated = False
        self._closed = False
        self._out_of_step = False
        self._mode = "command"
        self._login_user_pending = False  # AUTH LOGIN without an initial response
        self._client_gone = False
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.host, self.port = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._serve, name="differential-server")

    # -- lifetime ----------------------------------------------------------------------

    def __enter__(self) -> ReactiveServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """End the session (if the client has not) and join the thread; idempotent."""
        self._stopping.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)
        self._listener.close()
        if self._thread.is_alive():  # pragma: no cover - only a harness bug gets here
            raise RuntimeError("the differential server thread did not stop")

    def wait_received(self, count: int, timeout: float = 2.0) -> None:
        """Wait until the server has read ``count`` bytes (or the thread ended, or ``timeout``).

        Called before the client closes: a socket closed with unread input
        sends RST, and an RST can make the server lose bytes it has not read
        yet.
        """
        deadline = time.monotonic() + timeout
        while (
            len(self.received) < count and self._thread.is_alive() and time.monotonic() < deadline
        ):
            time.sleep(0.001)

    def _serve(self) -> None:
        try:
            conn = self._accept()
            if conn is None:
                return
            with conn:
                self._converse(conn)
        except BaseException as exc:  # reported by the harness (ReactiveServer.error)
            self.error = exc

    def _accept(self) -> socket.socket | None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            return conn
        return None

    # -- reading -----------------------------------------------------------------------

    def _recv(self, conn: socket.socket, limit: float) -> bytes | None:
        """Up to 64 KiB; ``b""`` at end of file (or reset); None after ``limit`` seconds.

        Once :meth:`stop` was called (the client has closed by then, so the end
        of file is on its way), a second of silence is enough.
        """
        deadline = time.monotonic() + limit
        while True:
            conn.settimeout(0.05)
            try:
                return conn.recv(65536)
            except TimeoutError:
                now = time.monotonic()
                if self._stopping.is_set():
                    deadline = min(deadline, now + 1.0)
                if now >= deadline:
                    return None
            except OSError:
                return b""

    def _read_line(self, conn: socket.socket, limit: float) -> bytes | _Timeout | None:
        """The next line with its CRLF; None at end of file; ``_TIMEOUT`` after ``limit``."""
        while True:
            end = self.received.find(CRLF, self._pos)
            if end >= 0:
                line = bytes(self.received[self._pos : end + 2])
                self._pos = end + 2
                return line
            chunk = self._recv(conn, limit)
            if chunk is None:
                return _TIMEOUT
            if not chunk:
                return None
            self.received += chunk

    # -- the conversation ----------------------------------------------------------------

    def _state(self) -> ServerState:
        return ServerState(
            counts=tuple(sorted(self._counts.items())),
            in_transaction=self._in_transaction,
            accepted=self._accepted,
            authenticated=self._authenticated,
            closed=self._closed,
            out_of_step=self._out_of_step,
            mode=self._mode,
        )

    def _count(self, key: str) -> int:
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count

    def _write(
        self,
        conn: socket.socket,
        *,
        kind: str,
        raw: bytes,
        key: str,
        count: int,
        answers: list[Answer],
        note: str = "",
    ) -> None:
        """Write ``answers`` in one ``sendall`` (up to a closing one) and log the exchange."""
        data = b""
        replies = 0
        for answer in answers:
            data += answer.wire()
            replies += bool(answer.lines) + bool(answer.surplus)
            if answer.surplus:
                self._out_of_step = True
            if answer.close:
                self._closed = True
                break
        if data and not self._client_gone:
            try:
                conn.sendall(data)
            except OSError:
                # The client has gone (a client out of step closes without
                # reading the last answers).  Every line it sent is still
                # answered (unheard) until the end of file, so the server's log
                # and state never depend on when that happened.
                self._client_gone = True
        state = self._state()
        self.log.append(
            Entry(kind, raw, self._pos, key, count, data, self._closed, state, note, replies)
        )

    def _converse(self, conn: socket.socket) -> None:
        self._write(
            conn, kind="greeting", raw=b"", key="greeting", count=0, answers=[self.policy.greeting]
        )
        while not self._closed:
            raw = self._read_line(conn, self.idle_timeout)
            if not isinstance(raw, bytes):
                break  # the client closed, or went silent
            if self._mode == "content":
                self._content(conn, raw)
            elif self._mode == "response":
                self._response(conn, raw)
            else:
                self._command(conn, raw)
        if self._closed:
            self._drain(conn)
        self._log_rest()

    def _drain(self, conn: socket.socket) -> None:
        """Shut our side, then read until the client closes (no RST: no race)."""
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            return
        while (chunk := self._recv(conn, self.drain_timeout)) is not None and chunk:
            self.received += chunk

    def _log_rest(self) -> None:
        """Log what was read but not answered: lines after closing, a line without CRLF."""
        state = self._state()
        while (end := self.received.find(CRLF, self._pos)) >= 0:
            raw = bytes(self.received[self._pos : end + 2])
            self._pos = end + 2
            self.log.append(Entry("discarded", raw, self._pos, _key(raw), 0, b"", True, state))
        if self._pos < len(self.received):
            raw = bytes(self.received[self._pos :])
            self._pos = len(self.received)
            self.log.append(
                Entry("unterminated", raw, self._pos, _key(raw), 0, b"", self._closed, state)
            )

    def _answer(self, key: str, default: Answer) -> tuple[int, Answer]:
        count = self._count(key)
        drawn = self.policy.drawn(key, count)
        return count, default if drawn is None else drawn

    def _command(self, conn: socket.socket, raw: bytes) -> None:
        key = _key(raw)
        policy = self.policy
        own: Answer | None = None
        note = ""
        if key == "MAIL" and self._in_transaction:
            own, note = reply(503, "5.5.1 Error: nested MAIL command"), "nested MAIL"
        elif key == "RCPT" and not self._in_transaction:
            own, note = reply(503, "5.5.1 Error: need MAIL command"), "RCPT before MAIL"
        elif key == "DATA" and not self._in_transaction:
            own, note = reply(503, "5.5.1 Error: need RCPT command"), "DATA before MAIL"
        elif key == "DATA" and not self._accepted:
            own, note = reply(554, "5.5.1 Error: no valid recipients"), "DATA, no recipient"
        elif key == "DATA" and self._out_of_step:
            own, note = reply(503, "5.5.1 Error: out of step"), "client out of step"
        elif key == "AUTH" and self._authenticated:
            own, note = reply(503, "5.5.1 Error: already authenticated"), "AUTH twice"
        elif key == "RSET":
            own, note = policy.rset, "every RSET alike"
        if own is not None:
            self._after(key, raw, own)
            self._write(conn, kind="command", raw=raw, key=key, count=0, answers=[own], note=note)
            return
        count, answer = self._answer(key, self._default(key, raw))
        self._after(key, raw, answer)
        self._write(conn, kind="command", raw=raw, key=key, count=count, answers=[answer])

    def _default(self, key: str, raw: bytes) -> Answer:
        lmtp = self.policy.lmtp
        if key in ("EHLO", "LHLO"):
            ok = (key == "LHLO") == lmtp
            return self.policy.hello_reply() if ok else reply(500, "5.5.1 Error: wrong hello")
        if key == "HELO":
            return reply(500, "5.5.1 Error: LHLO expected") if lmtp else reply(250, "hello")
        if key == "AUTH":
            return self._default_auth(raw)
        return {
            "MAIL": reply(250, "2.1.0 Ok"),
            "RCPT": reply(250, "2.1.5 Ok"),
            "DATA": reply(354, "End data with <CR><LF>.<CR><LF>"),
            "NOOP": reply(250, "2.0.0 Ok"),
            "QUIT": reply(221, "2.0.0 Bye", close=True),
            "HELP": reply(214, "2.0.0 See RFC 5321"),
            "VRFY": reply(252, "2.0.0 Cannot VRFY user"),
            "EXPN": reply(502, "5.5.1 EXPN not available"),
            "STARTTLS": reply(454, "4.7.0 TLS not available"),
            "": reply(500, "5.5.2 Error: bad syntax"),
        }.get(key, reply(502, "5.5.2 Error: command not recognized"))

    def _default_auth(self, raw: bytes) -> Answer:
        words = raw.split()
        mechanism = words[1].upper() if len(words) > 1 else b""
        initial = len(words) > 2
        self._login_user_pending = mechanism == b"LOGIN" and not initial
        if mechanism == b"PLAIN":
            return reply(235, "2.7.0 Authentication successful") if initial else reply(334, "")
        if mechanism == b"LOGIN":
            return reply(334, "UGFzc3dvcmQ6" if initial else "VXNlcm5hbWU6")
        if mechanism == b"CRAM-MD5":
            return reply(334, CRAM_CHALLENGE)
        return reply(504, "5.5.4 Unrecognized authentication type")

    def _after(self, key: str, raw: bytes, answer: Answer) -> None:
        """The state change an answer makes."""
        code = answer.code
        positive = code is not None and 200 <= code <= 299
        if key in ("EHLO", "HELO", "LHLO", "RSET") and positive:
            self._in_transaction, self._accepted = False, 0
        elif key == "MAIL" and positive:
            self._in_transaction, self._accepted = True, 0
        elif key == "RCPT" and positive:
            self._accepted += 1
        elif key == "DATA" and code == 354 and not answer.close:
            self._mode = "content"
        elif key == "AUTH":
            if code == 334 and not answer.close:
                self._mode = "response"
            elif code == 235:
                self._authenticated = True

    def _response(self, conn: socket.socket, raw: bytes) -> None:
        """A line in answer to a 334 challenge."""
        if raw == b"*\r\n":
            self._mode = "command"
            answer = reply(501, "5.7.0 Authentication cancelled")
            self._write(
                conn,
                kind="response",
                raw=raw,
                key=AUTH_RESPONSE,
                count=0,
                answers=[answer],
                note="AUTH cancelled",
            )
            return
        pending, self._login_user_pending = self._login_user_pending, False
        default = reply(334, "UGFzc3dvcmQ6") if pending else reply(235, "2.7.0 Authenticated")
        count, answer = self._answer(AUTH_RESPONSE, default)
        code = answer.code
        if code != 334 or answer.close:
            self._mode = "command"
        if code == 235:
            self._authenticated = True
        self._write(
            conn, kind="response", raw=raw, key=AUTH_RESPONSE, count=count, answers=[answer]
        )

    def _content(self, conn: socket.socket, first: bytes) -> None:
        """The message data, from ``first`` to the line ``.``; then the verdict(s)."""
        start = self._pos - len(first)
        line: bytes | _Timeout | None = first
        while line != b".\r\n":
            line = self._read_line(conn, self.content_timeout)
            if not isinstance(line, bytes):
                # The client stopped sending in the middle of the data: it is
                # waiting for a reply to a line read as content.  Close.
                self._mode = "command"
                self._closed = True
                raw = bytes(self.received[start : self._pos])
                note = "content timed out" if line is _TIMEOUT else "closed in the content"
                self.log.append(
                    Entry("content", raw, self._pos, END_OF_DATA, 0, b"", True, self._state(), note)
                )
                return
        raw = bytes(self.received[start : self._pos])
        self._mode = "command"
        self._in_transaction = False
        verdicts = max(self._accepted, 1) if self.policy.lmtp else 1
        self._accepted = 0
        answers = []
        first_count = 0
        for _ in range(verdicts):
            count, answer = self._answer(END_OF_DATA, reply(250, "2.0.0 Ok: queued"))
            first_count = first_count or count
            answers.append(answer)
            if answer.close:
                break
        if len(answers) > 1:
            self._out_of_step = True  # smtplib reads only the first verdict
        self._write(
            conn, kind="content", raw=raw, key=END_OF_DATA, count=first_count, answers=answers
        )


def _key(raw: bytes) -> str:
    """The policy key of a command line: its verb in upper case, or ``OTHER``."""
    verb = raw.rstrip(b"\r\n").split(b" ", 1)[0].decode("latin-1").upper()
    return verb if verb in VERBS else OTHER


def entries_between(log: list[Entry], start: int, end: int) -> Iterator[Entry]:
    """The entries whose bytes end in ``(start, end]`` (never the greeting)."""
    for entry in log:
        if start < entry.end <= end and entry.kind != "greeting":
            yield entry
