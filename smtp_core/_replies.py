"""The reply reader: a bounded, incremental parser of RFC 5321 §4.2 replies.

Bytes are appended with :meth:`ReplyReader.feed`; :meth:`ReplyReader.next_reply`
returns one whole (possibly multiline) reply or ``None`` when more bytes are
needed.  The search for CRLF resumes where the previous one stopped, so a reply
trickled in a byte at a time costs linear time, and two caps bound the memory a
server can make the client hold.

Speed matters here: the reader runs for every reply of every session.  Instead
of one search and one copy per line, it cuts the buffered bytes at their last
CRLF and splits that part into lines in one C call (``bytes.split``), then
checks each line with a dictionary lookup of its first four octets.  The part
split at once is at most :data:`_WINDOW` octets, so a huge read cannot turn
into an equally huge list of small objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._abnf import enhanced_status
from ._errors import RemoteProtocolError

__all__ = [
    "MAX_REPLY_LINES",
    "MAX_REPLY_LINE_LENGTH",
    "ParsedReply",
    "ReplyReader",
    "enhanced_status",  # defined in _abnf, which _events can import without a cycle
]

# RFC 5321 §4.5.3.1.5: "The maximum total length of a reply line including the
# reply code and the <CRLF> is 512 octets."  Servers exceed it in HELP and
# banner texts, so the cap is four times that figure; it is still well below
# smtplib's 8192 (``_MAXLINE``), and it bounds what one line can cost.
MAX_REPLY_LINE_LENGTH = 2048
# RFC 5321 sets no limit on the lines of a multiline reply.  The largest reply
# in the recorded sessions of postfix, exim, opensmtpd, dovecot and aiosmtpd is
# an EHLO reply of 16 lines; 256 leaves room for long HELP texts while a server
# that never ends its reply is cut off after 256 x 2048 bytes (512 KiB).
MAX_REPLY_LINES = 256

# The most octets split into lines at once.  A window bigger than a line's cap
# always holds a CRLF unless its first line is over the cap.
_WINDOW = 64 * 1024
_LONGEST_TEXT_LINE = MAX_REPLY_LINE_LENGTH - 2  # the cap without the CRLF

# Control characters other than HT may not appear in reply text (textstring,
# RFC 5321 §4.2).  Octets above 127 are let through: QQ Mail sends GBK text in
# its 535 replies (aiosmtplib issue #41) and SMTPUTF8 servers may send UTF-8.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_OCTETS = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])

# Reply-line = *( Reply-code "-" [ textstring ] CRLF )
#              Reply-code [ SP textstring ] CRLF            (RFC 5321 §4.2)
# Reply-code = %x32-35 %x30-35 %x30-39
# The second and third digits are taken as any digit: RFC 5321 §4.2.1 has a
# client judge a reply by its first digit ("a client ... that receives an
# unrecognized code ... should treat it as the first digit says"), servers do
# send codes such as 599 and 499, and smtplib reports them.  Only the first
# digit is checked (2-5).
# A line's first four octets decide everything but the text, so two tables
# keyed by them replace the grammar's regex (REPLY_LINE in _abnf is the same
# rule): the last line of a reply starts with the code and SP, or is the bare
# code; every other line starts with the code and "-".
_CODES = [
    first * 100 + second * 10 + third
    for first in range(2, 6)
    for second in range(10)
    for third in range(10)
]
_LAST_LINE_HEADS: dict[bytes, int] = {
    **{b"%d " % code: code for code in _CODES},
    **{b"%d" % code: code for code in _CODES},
}
_CONTINUATION_HEADS: dict[bytes, bytes] = {b"%d-" % code: b"%d" % code for code in _CODES}

#: One whole reply as read off the wire, not yet paired with a command: the
#: code and each line's text (without code, separator and CRLF).  A plain
#: tuple: one is built per reply, and a tuple is built in C.
ParsedReply = tuple[int, tuple[bytes, ...]]


class ReplyReader:
    """Assembles replies from bytes; bounded by the two module caps.

    Raises ``RemoteProtocolError`` from :meth:`next_reply` when the bytes break
    the grammar or a cap; it keeps raising after that.
    """

    __slots__ = (
        "_clean",
        "_code",
        "_data",
        "_error",
        "_incoming",
        "_lines",
        "_pos",
        "_ready",
        "_scan",
    )

    def __init__(self) -> None:
        self._incoming: list[bytes] = []  # fed and not looked at yet
        self._data = b""  # looked at, not yet split into lines: from _pos on
        self._pos = 0
        self._scan = 0  # in _data: no CRLF starts before this (but _scan - 1 may be a CR)
        self._ready: list[bytes] = []  # whole lines, last first (pop() takes the next)
        self._clean = True  # _ready holds no over-long line and no control character
        self._lines: list[bytes] = []  # texts of the unfinished multiline reply
        self._code = b""  # and its code
        # The first error, repeated by every later call.  Without it the reader
        # went on after a bad line and returned the next reply, or glued the
        # lines of a reply whose code changed onto the next one.
        self._error: str | None = None

    def feed(self, data: bytes) -> None:
        """Append ``data`` to the buffer (no parsing happens here)."""
        self._incoming.append(data)

    @property
    def feeder(self) -> Callable[[bytes], None]:
        """:meth:`feed` without the method call: for a caller that feeds every read."""
        return self._incoming.append

    def has_unparsed(self) -> bool:
        """True if any byte is held that is not part of a returned reply."""
        return bool(
            self._ready
            or self._lines
            or len(self._data) > self._pos
            or any(self._incoming)  # b"" may have been fed
        )

    def _held_bytes(self) -> int:
        """Octets held (for the tests of the memory bound)."""
        return (
            len(self._data)
            - self._pos
            + sum(map(len, self._incoming))
            + sum(map(len, self._ready))
            + sum(map(len, self._lines))
        )

    def next_reply(self) -> ParsedReply | None:
        """Return the next whole reply, or ``None`` if its last line has not arrived.

        Raises:
            RemoteProtocolError: a line is too long, has a bad code or separator,
                carries control characters, disagrees with the code of the lines
                before it, or the reply has too many lines; and again on
                every call after that.
        """
        if self._error is not None:
            raise RemoteProtocolError(self._error)
        ready = self._ready
        if not ready:
            incoming = self._incoming
            if not incoming:
                if not self._data:
                    return None  # nothing buffered: the usual case between replies
            elif len(incoming) == 1 and not self._data and not self._lines:
                # One read holding one whole single-line reply, nothing left
                # over: the usual case for a command answered on its own.
                # Its one CRLF is at the end, and deleting the control
                # octets takes away that CRLF and nothing else.
                data = incoming[0]
                end = len(data) - 2
                if (
                    data.find(b"\r\n") == end  # fails fast for several lines
                    and 0 <= end <= _LONGEST_TEXT_LINE
                    and len(data.translate(None, _CONTROL_OCTETS)) == end
                ):
                    code = _LAST_LINE_HEADS.get(data[:4])
                    if code is not None:
                        incoming.clear()
                        return code, (data[4:end],)
        try:
            # One method, no helper calls per line: this runs once per reply
            # line of every session, so call overhead is most of its cost.
            clean = self._clean
            while True:
                if not ready:
                    if not self._split():
                        return None
                    ready, clean = self._ready, self._clean
                line = ready.pop()
                head = line[:4]
                code = _LAST_LINE_HEADS.get(head)
                if clean:
                    # Lengths and texts were checked with the rest of the
                    # buffer in _split: only the heads are left to check.
                    lines = self._lines
                    if code is not None:
                        if not lines:
                            return code, (line[4:],)  # a single-line reply: most of them
                        if head[:3] == self._code:  # the last line of a multiline reply
                            lines.append(line[4:])
                            texts = tuple(lines)
                            lines.clear()
                            return code, texts
                    elif (digits := _CONTINUATION_HEADS.get(head)) is not None and (
                        not lines or digits == self._code
                    ):
                        # A continuation line: take the ones after it with
                        # the same head in one tight loop.
                        self._code = digits
                        lines.append(line[4:])
                        while ready and ready[-1][:4] == head:
                            lines.append(ready.pop()[4:])
                        if len(lines) >= MAX_REPLY_LINES:
                            raise RemoteProtocolError(
                                f"reply has more than {MAX_REPLY_LINES} lines"
                            )
                        continue
                if len(line) > _LONGEST_TEXT_LINE:
                    raise RemoteProtocolError(
                        f"reply line longer than {MAX_REPLY_LINE_LENGTH} octets: {line[:40]!r}..."
                    )
                digits = _CONTINUATION_HEADS.get(head) if code is None else head[:3]
                if digits is None:
                    raise RemoteProtocolError(
                        f"reply line does not start with a 2yz-5yz code: {line!r}"
                    )
                text = line[4:]
                if not clean and text and _CONTROL.search(text):
                    raise RemoteProtocolError(f"control character in reply text: {line!r}")
                lines = self._lines
                if lines and digits != self._code:
                    raise RemoteProtocolError(
                        f"multiline reply changed its code from {self._code.decode()}: {line!r}"
                    )
                lines.append(text)
                if code is not None:
                    texts = tuple(lines)
                    lines.clear()
                    return code, texts
                self._code = digits
                if len(lines) >= MAX_REPLY_LINES:
                    raise RemoteProtocolError(f"reply has more than {MAX_REPLY_LINES} lines")
        except RemoteProtocolError as exc:
            self._error = str(exc)
            raise

    def _split(self) -> bool:
        """Move the whole lines of the buffer to ``_ready``; False if there are none."""
        incoming = self._incoming
        if len(incoming) == 1 and not self._data:
            data = incoming[0]
            if data[-2:] == b"\r\n" and len(data) <= _WINDOW:
                # The usual read: whole lines, nothing left over.
                incoming.clear()
                return self._take_lines(data)
        data, pos, scan = self._data, self._pos, self._scan
        if incoming:
            if pos < len(data):
                incoming.insert(0, data[pos:])
                scan -= pos
            else:
                scan = 0
            data = incoming[0] if len(incoming) == 1 else b"".join(incoming)
            pos = 0
            incoming.clear()
        # Resume the search one octet early: it may be the CR of a CRLF.
        cut = data.rfind(b"\r\n", max(scan - 1, pos), pos + _WINDOW)
        if cut < 0:
            if len(data) - pos >= MAX_REPLY_LINE_LENGTH:
                self._data, self._pos, self._scan = data, pos, len(data)
                raise RemoteProtocolError(
                    f"reply line longer than {MAX_REPLY_LINE_LENGTH} octets: "
                    f"{data[pos : pos + 40]!r}..."
                )
            # Keep only the unfinished line (under the cap): _data is empty
            # exactly when nothing is buffered, which next_reply relies on.
            data = data[pos:]
            self._data, self._pos, self._scan = data, 0, len(data)
            return False
        chunk = data if pos == 0 and cut + 2 == len(data) else data[pos : cut + 2]
        if cut + 2 == len(data):
            self._data, self._pos, self._scan = b"", 0, 0  # all taken: _data empty
        else:
            self._data, self._pos, self._scan = data, cut + 2, cut + 2
        return self._take_lines(chunk)

    def _take_lines(self, chunk: bytes) -> bool:
        """Make the lines of ``chunk`` (whole lines, each with its CRLF) the ready ones."""
        lines = chunk.split(b"\r\n")
        lines.pop()  # the empty string after the last CRLF
        # Each line is free of control characters when deleting them all takes
        # away exactly the CRLFs that end the lines: one C pass over the chunk
        # instead of a regex search per line.  No line is longer than the cap
        # when the chunk is shorter than the cap, or when its longest line is.
        self._clean = len(chunk) - len(chunk.translate(None, _CONTROL_OCTETS)) == 2 * len(
            lines
        ) and (len(chunk) <= MAX_REPLY_LINE_LENGTH or max(map(len, lines)) <= _LONGEST_TEXT_LINE)
        lines.reverse()
        self._ready = lines
        return True
