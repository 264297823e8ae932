"""Session transcripts: the ``smtp-transcript/1`` text format, read, written and recorded.

A transcript is the byte-exact record of one SMTP or LMTP session: the chunks
each side sent, in the order they were read, and a few events.  The files in
``tests/transcripts/`` (recorded from postfix, exim, opensmtpd, dovecot and
aiosmtpd; see the README there) use it, and :class:`TranscriptRecorder` writes
it from a driver's ``trace`` callback.

The format
----------
UTF-8 text, one item per line, each line ended by ``\\n`` (the last one too)::

    # format: smtp-transcript/1          header: "# key: value", before any record
    # server: postfix
    S: b'220 mx.example ESMTP\\r\\n'      a chunk the server sent, as repr(bytes)
    C: b'EHLO client.example\\r\\n'      a chunk the client sent, as repr(bytes)
    E: server-close                      an event (see KNOWN_EVENTS)
    # any other text                     a comment

* A header line is ``# key: value`` where the key is letters, digits, ``.``,
  ``_`` and ``-``; header lines come first, and the first line that is not one
  (a record, or a comment of another shape) ends them.
* ``C:`` and ``S:`` carry a bytes literal that must be exactly what
  ``repr()`` writes for it.  It is read with :func:`ast.literal_eval`, which
  evaluates literals only, never code.  Insisting on the canonical spelling is
  what makes :meth:`Transcript.dumps` give back the very text that was parsed.
* ``E:`` carries an event name: ``server-close`` / ``client-close`` (that
  side sent EOF), ``server-reset``, ``starttls`` (the server accepted
  STARTTLS: what follows is TLS).
* Any other line starting with ``#`` is a comment and is kept, in place.

Extension: redacted AUTH payloads
---------------------------------
A transcript made by :class:`TranscriptRecorder` does not hold credentials.
The client's SASL payloads (RFC 4954) are replaced by a placeholder that no
base64 text can contain::

    # format: smtp-transcript/1
    # redacted: auth
    ...
    # redacted
    C: b'AUTH PLAIN <redacted AUTH payload: 24 bytes>\\r\\n'
    S: b'535 5.7.8 Error: authentication failed\\r\\n'
    C: b'AUTH LOGIN\\r\\n'
    S: b'334 VXNlcm5hbWU6\\r\\n'
    # redacted
    C: b'<redacted AUTH payload: 12 bytes>\\r\\n'

What is replaced: the initial response of an ``AUTH <mechanism> <response>``
command, and every line the client sends after a ``334`` reply until the
server's next reply that is not ``334`` (the final 2yz, 4yz or 5yz one).  The
count is the number of payload octets replaced (CRLF excluded).  The command
word, the mechanism and the line endings stay, so the session still reads as
it went.  A ``# redacted`` comment precedes each record that was changed, and
the header ``redacted: auth`` says the transcript holds such records.  Such a
transcript is an ordinary ``smtp-transcript/1`` file: it parses like any other,
and only the payload bytes differ from what was on the wire.  The client's
bytes are followed across calls, so a payload cut anywhere (even between CR
and LF) is still hidden; if the server breaks the reply grammar, replies can
no longer be told apart and every client line after an AUTH is hidden.

A recorder's transcript also carries the decrypted session after
``E: starttls`` (a driver traces the plain text on both sides of TLS), where
the proxy-made files in ``tests/transcripts`` stop.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, final

from ._errors import RemoteProtocolError
from ._replies import ReplyReader

__all__ = [
    "FORMAT",
    "KNOWN_EVENTS",
    "REDACTED_PAYLOAD",
    "Record",
    "Transcript",
    "TranscriptError",
    "TranscriptRecorder",
    "parse_transcript",
]

#: The value of the ``format`` header this module reads and writes.
FORMAT: Final = "smtp-transcript/1"
#: The event names the recordings use; others of the same shape are accepted.
KNOWN_EVENTS: Final = frozenset({"server-close", "client-close", "server-reset", "starttls"})
#: The placeholder that replaces a redacted AUTH payload; group 1 is the octet count.
REDACTED_PAYLOAD: Final = re.compile(rb"<redacted AUTH payload: ([0-9]+) bytes>")

Direction = Literal["C", "S", "E", "#"]

_HEADER = re.compile(r"# ([A-Za-z0-9][A-Za-z0-9._-]*): (.*)", re.DOTALL)
_EVENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# RFC 4954 §4: "AUTH" SP sasl-mech [SP initial-response]; RFC 4422 §3.1 keeps a
# mechanism name to 20 characters, so the head of an AUTH line before its
# payload is short and a few dozen octets are enough to recognise it.
_AUTH_HEAD = re.compile(rb"AUTH +[^ ]+ +", re.IGNORECASE)
_HEAD_KEPT = 64
_REDACTED_COMMENT = " redacted"


class TranscriptError(ValueError):
    """A transcript line that is not ``smtp-transcript/1``, or a record that cannot be one.

    Attributes:
        lineno: the 1-based line number in the parsed text, or ``None`` when a
            :class:`Transcript` or :class:`Record` was built with bad fields.
    """

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message if lineno is None else f"line {lineno}: {message}")
        self.lineno = lineno


@final
@dataclass(frozen=True, slots=True)
class Record:
    """One line of a transcript after the headers.

    Attributes:
        direction: ``"C"`` (client to server) or ``"S"`` (server to client)
            for a chunk, ``"E"`` for an event, ``"#"`` for a comment.
        data: the chunk's bytes for ``C``/``S``; the event name for ``E``; for
            ``#`` the text after the ``#`` (with its leading space, if any).

    Raises:
        TranscriptError: the data does not fit the direction, or could not be
            written on one line.
    """

    direction: Direction
    data: bytes | str

    def __post_init__(self) -> None:
        if self.direction in ("C", "S"):
            if not isinstance(self.data, bytes):
                raise TranscriptError(f"{self.direction} record needs bytes: {self.data!r}")
        elif self.direction == "E":
            if not isinstance(self.data, str) or _EVENT.fullmatch(self.data) is None:
                raise TranscriptError(f"event name is not a token: {self.data!r}")
        elif self.direction == "#":
            if not isinstance(self.data, str) or "\n" in self.data:
                raise TranscriptError(f"comment must be one line of text: {self.data!r}")
        else:
            raise TranscriptError(f"unknown record direction: {self.direction!r}")

    def line(self) -> str:
        """The record as one line of text, without the ``\\n``."""
        data = self.data
        if isinstance(data, bytes):
            return f"{self.direction}: {data!r}"
        return f"#{data}" if self.direction == "#" else f"{self.direction}: {data}"


def _header_line(key: str, value: str) -> str:
    line = f"# {key}: {value}"
    match = _HEADER.fullmatch(line)
    if "\n" in value or match is None or match[1] != key:
        raise TranscriptError(f"header cannot be written on one line: {key!r}: {value!r}")
    return line


@final
@dataclass(frozen=True, slots=True)
class Transcript:
    """A parsed session: headers in order, then the records in order.

    Attributes:
        headers: ``(key, value)`` pairs, in file order (see :meth:`header`).
        records: the chunks, events and comments, in file order.

    Raises:
        TranscriptError: a header or comment could not be written back so
            that it parses to the same transcript (a key of the wrong shape, a
            newline, a ``format`` other than ``smtp-transcript/1``, or a
            comment before the first chunk or event that would read as a
            header).
    """

    headers: tuple[tuple[str, str], ...] = ()
    records: tuple[Record, ...] = ()

    def __post_init__(self) -> None:
        for key, value in self.headers:
            _header_line(key, value)
            if key == "format" and value.partition(" ")[0] != FORMAT:
                raise TranscriptError(f"unsupported format {value!r} (expected {FORMAT!r})")
        leading = True  # still before the first chunk or event
        for record in self.records:
            if not isinstance(record, Record):
                raise TranscriptError(f"records must be Record objects, not {record!r}")
            leading = leading and record.direction == "#"
            if leading and _HEADER.fullmatch(record.line()):
                raise TranscriptError(
                    f"comment before the first record reads as a header: {record.data!r}"
                )

    @classmethod
    def build(
        cls,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        records: Iterable[Record] = (),
    ) -> Transcript:
        """Build a transcript from a mapping (or pairs) of headers and any iterable of records."""
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        return cls(tuple((k, v) for k, v in pairs), tuple(records))

    def header(self, key: str, default: str | None = None) -> str | None:
        """The value of the first header named ``key``, or ``default``."""
        for name, value in self.headers:
            if name == key:
                return value
        return default

    @property
    def header_dict(self) -> dict[str, str]:
        """The headers as a new dict (the first value of a repeated key wins)."""
        result: dict[str, str] = {}
        for key, value in self.headers:
            result.setdefault(key, value)
        return result

    def chunks(self, direction: Literal["C", "S"]) -> tuple[bytes, ...]:
        """The chunks one side sent, in order."""
        return tuple(
            r.data for r in self.records if r.direction == direction and isinstance(r.data, bytes)
        )

    @property
    def client_bytes(self) -> bytes:
        """Everything the client sent, as one byte string."""
        return b"".join(self.chunks("C"))

    @property
    def server_bytes(self) -> bytes:
        """Everything the server sent, as one byte string."""
        return b"".join(self.chunks("S"))

    @property
    def events(self) -> tuple[str, ...]:
        """The event names, in order."""
        return tuple(r.data for r in self.records if r.direction == "E" and isinstance(r.data, str))

    @property
    def redacted(self) -> bool:
        """True if AUTH payloads were replaced (the ``redacted: auth`` header)."""
        return self.header("redacted") == "auth"

    def dumps(self) -> str:
        """Write the transcript as ``smtp-transcript/1`` text.

        Returns:
            The text, one ``\\n``-ended line per header and record; for a
            parsed transcript, exactly the text it was parsed from.
        """
        lines = [_header_line(key, value) for key, value in self.headers]
        lines.extend(record.line() for record in self.records)
        return "".join(f"{line}\n" for line in lines)


def parse_transcript(text: str) -> Transcript:
    """Parse ``smtp-transcript/1`` text.

    Returns:
        The :class:`Transcript`; its :meth:`~Transcript.dumps` gives ``text``
        back unchanged.

    Raises:
        TranscriptError: (a ``ValueError``) on the first line that is not a
            header, chunk, event or comment; a chunk that is not a bytes
            literal in ``repr`` form; a ``format`` header whose first word
            is not ``smtp-transcript/1``; or text that does not end with ``\\n``.
    """
    if not isinstance(text, str):
        raise TypeError(f"transcript text must be str, not {type(text).__name__}")
    if text and not text.endswith("\n"):
        raise TranscriptError("the last line does not end with a newline", text.count("\n") + 1)
    headers: list[tuple[str, str]] = []
    records: list[Record] = []
    for lineno, line in enumerate(text.split("\n")[:-1], start=1):
        header = _HEADER.fullmatch(line) if not records else None
        if header is not None:
            key, value = header[1], header[2]
            if key == "format" and value.partition(" ")[0] != FORMAT:
                raise TranscriptError(f"unsupported format {value!r} (expected {FORMAT!r})", lineno)
            headers.append((key, value))
        elif line.startswith("#"):
            records.append(Record("#", line[1:]))
        elif line.startswith(("C: ", "S: ")):
            records.append(Record("C" if line[0] == "C" else "S", _chunk(line[3:], lineno)))
        elif line.startswith("E: ") and _EVENT.fullmatch(line[3:]):
            records.append(Record("E", line[3:]))
        else:
            raise TranscriptError(f"not a header, chunk, event or comment: {line[:80]!r}", lineno)
    return Transcript(tuple(headers), tuple(records))


def _chunk(literal: str, lineno: int) -> bytes:
    if not literal.startswith(("b'", 'b"')):
        raise TranscriptError(f"chunk is not a bytes literal: {literal[:80]!r}", lineno)
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise TranscriptError(
            f"chunk is not a bytes literal ({exc}): {literal[:80]!r}", lineno
        ) from None
    if not isinstance(value, bytes) or repr(value) != literal:
        raise TranscriptError(f"chunk is not written as repr() writes it: {literal[:80]!r}", lineno)
    return value


def _placeholder(size: int) -> bytes:
    return b"<redacted AUTH payload: %d bytes>" % size


class TranscriptRecorder:
    """Build a transcript from a driver's trace callback, redacting AUTH payloads.

    Pass the recorder itself as the ``trace`` of a driver (see
    ``transports.sync``): it is called with ``("send", data)`` before each
    write and ``("recv", data)`` after each read.  Each call becomes one
    ``C:`` or ``S:`` record; a read of ``b""`` becomes ``E: server-close``,
    and ``E: starttls`` follows the ``220`` reply to STARTTLS.

    Client bytes are followed line by line (across calls) so that AUTH
    payloads can be found; message content after ``354`` and BDAT chunks are
    recognised and never taken for commands.  The server's replies are parsed
    with the engine's reply reader only to see ``334``, ``354`` and the reply
    to STARTTLS; a server that breaks the grammar stops that, never the
    recording (a trace callback must not raise into the driver).

    Args:
        headers: headers to write first (a mapping or pairs);
            ``format: smtp-transcript/1`` is put in front if missing.
        redact_auth: replace AUTH payloads (see the module docstring).  Turn
            it off only for transcripts that never leave the machine.
    """

    def __init__(
        self,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        redact_auth: bool = True,
    ) -> None:
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        if not any(key == "format" for key, _ in pairs):
            pairs.insert(0, ("format", FORMAT))
        self._headers = pairs
        self._records: list[Record] = []
        self.redact_auth = redact_auth
        self._any_redacted = False
        self._replies: ReplyReader | None = ReplyReader()
        # Client stream state: what the next client octets are.
        self._mode: Literal["command", "content", "bdat"] = "command"
        self._head = b""  # the start of the current command line (at most _HEAD_KEPT octets)
        self._secret_line = False  # the rest of the current line is AUTH payload
        self._line_redacted = False  # a placeholder was already written for this line
        self._cr_held = False  # the last client octet was a CR that may start a CRLF
        self._content_tail = b"\r\n"  # the last octets of content, to find CRLF.CRLF across calls
        self._bdat_left = 0
        self._in_sasl = False  # a 334 came and no final reply yet: client lines are payload
        self._auth_open = False  # AUTH was sent and no final reply came yet
        self._starttls_sent = False

    # -- the trace callback ------------------------------------------------------------

    def __call__(self, direction: str, data: bytes) -> None:
        """Record one traced chunk: ``direction`` is ``"send"`` or ``"recv"``.

        Raises:
            ValueError: for any other direction.
            TypeError: if ``data`` is not bytes.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"traced data must be bytes, not {type(data).__name__}")
        data = bytes(data)
        if direction == "send":
            self._send(data)
        elif direction == "recv":
            self._recv(data)
        else:
            raise ValueError(f"trace direction must be 'send' or 'recv', not {direction!r}")

    def event(self, name: str) -> None:
        """Add an ``E:`` record, e.g. ``client-close`` when the driver closes."""
        self._record(Record("E", name))

    def comment(self, text: str) -> None:
        """Add a ``#`` comment record (``text`` is written after ``"# "``)."""
        self._record(Record("#", f" {text}"))

    def transcript(self) -> Transcript:
        """Return what was recorded so far, as an immutable :class:`Transcript`."""
        headers = list(self._headers)
        if self._any_redacted and not any(key == "redacted" for key, _ in headers):
            headers.append(("redacted", "auth"))
        return Transcript(tuple(headers), tuple(self._records))

    def _record(self, record: Record) -> None:
        """Keep one record (a subclass may pass it on instead, as a logger does)."""
        self._records.append(record)

    # -- the server side ---------------------------------------------------------------

    def _recv(self, data: bytes) -> None:
        if not data:
            self._record(Record("E", "server-close"))
            return
        self._record(Record("S", data))
        reader = self._replies
        if reader is None:
            return
        reader.feed(data)
        try:
            while (reply := reader.next_reply()) is not None:
                self._on_reply(reply[0])
        except RemoteProtocolError:
            # Past a grammar error no code can be trusted, so no AUTH exchange
            # can be seen to end: from here on every line after AUTH is payload.
            self._replies = None
            self._in_sasl = self._in_sasl or self._auth_open

    def _on_reply(self, code: int) -> None:
        # RFC 4954 §4: after a 334 the client answers with one line of payload;
        # any other reply ends the exchange.
        self._in_sasl = code == 334
        self._auth_open = self._auth_open and code == 334
        if code == 354:
            self._mode, self._content_tail = "content", b"\r\n"
        if code == 220 and self._starttls_sent:
            self._starttls_sent = False
            self._record(Record("E", "starttls"))

    # -- the client side ---------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if not data:
            return
        out: list[bytes] = []
        pos = 0
        while pos < len(data):
            if self._mode == "content":
                pos = self._take_content(data, pos, out)
            elif self._mode == "bdat":
                take = min(self._bdat_left, len(data) - pos)
                out.append(data[pos : pos + take])
                pos += take
                self._bdat_left -= take
                if not self._bdat_left:
                    self._mode = "command"
            else:
                pos = self._take_command(data, pos, out)
        chunk = b"".join(out)
        if chunk != data:
            self._any_redacted = True
            self._record(Record("#", _REDACTED_COMMENT))
        self._record(Record("C", chunk))

    def _take_content(self, data: bytes, pos: int, out: list[bytes]) -> int:
        tail = self._content_tail
        window = tail + data[pos:]
        end = window.find(b"\r\n.\r\n")
        if end < 0:
            out.append(data[pos:])
            self._content_tail = window[-4:]
            return len(data)
        stop = pos + end + 5 - len(tail)
        out.append(data[pos:stop])
        self._mode = "command"
        return stop

    def _take_command(self, data: bytes, pos: int, out: list[bytes]) -> int:
        if self._cr_held:
            # The last call ended in CR: an LF now completes that line.
            self._cr_held = False
            if data[pos : pos + 1] == b"\n":
                out.append(b"\n")
                self._end_of_line()
                return pos + 1
        eol = data.find(b"\r\n", pos)
        complete = eol >= 0
        stop = eol if complete else len(data)
        if not complete and data.endswith(b"\r"):
            stop -= 1  # perhaps the CR of a CRLF: it is no payload
            self._cr_held = True
        piece = data[pos:stop]
        before = len(self._head)
        if before < _HEAD_KEPT:
            self._head += piece[: _HEAD_KEPT - before]
        out.append(self._redact(piece, before, complete) if self.redact_auth else piece)
        if not complete:
            out.append(data[stop:])
            return len(data)
        out.append(b"\r\n")
        self._end_of_line()
        return eol + 2

    def _redact(self, piece: bytes, before: int, complete: bool) -> bytes:
        """Return ``piece`` of the current line, from octet ``before``, with payload hidden."""
        if self._secret_line:
            return self._hide(piece, complete)
        if before == 0 and self._in_sasl:
            self._secret_line = True  # a response to a 334 challenge: all of it is payload
            return self._hide(piece, complete)
        match = _AUTH_HEAD.match(self._head)
        if match is None:
            return piece
        # "AUTH <mechanism> " is complete: the initial response starts here.
        self._secret_line = True
        start = max(match.end() - before, 0)
        return piece[:start] + self._hide(piece[start:], complete)

    def _hide(self, payload: bytes, complete: bool) -> bytes:
        if payload or (complete and not self._line_redacted):
            self._line_redacted = True
            return _placeholder(len(payload))
        return payload

    def _end_of_line(self) -> None:
        line = self._head
        self._head = b""
        self._secret_line = self._line_redacted = False
        verb, _, rest = line.partition(b" ")
        verb = verb.upper()
        if verb == b"AUTH":
            self._auth_open = True
            self._in_sasl = self._in_sasl or self._replies is None
        elif verb == b"STARTTLS" and not rest:
            self._starttls_sent = True
        elif verb == b"BDAT":
            size = rest.split(b" ")[0]
            if size.isdigit() and int(size):
                self._mode, self._bdat_left = "bdat", int(size)
