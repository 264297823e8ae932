"""The reply reader: a bounded, incremental parser of RFC 5321 §4.2 replies.

Bytes are appended with :meth:`ReplyReader.feed`; :meth:`ReplyReader.next_reply`
returns one whole (possibly multiline) reply or ``None`` when more bytes are
needed.  The search for CRLF resumes where the previous one stopped, so a reply
trickled in a byte at a time costs linear time, and two caps bound the memory a
server can make the client hold.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ._errors import RemoteProtocolError

__all__ = ["MAX_REPLY_LINES", "MAX_REPLY_LINE_LENGTH", "ParsedReply", "ReplyReader"]

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

# Control characters other than HT may not appear in reply text (textstring,
# RFC 5321 §4.2).  Octets above 127 are let through: QQ Mail sends GBK text in
# its 535 replies (aiosmtplib issue #41) and SMTPUTF8 servers may send UTF-8.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Reply-code = %x32-35 %x30-35 %x30-39 (RFC 5321 §4.2), then SP, "-" or the end.
_REPLY_CODES = frozenset(
    b"%d%d%d" % (first, second, third)
    for first in range(2, 6)
    for second in range(6)
    for third in range(10)
)
_SEPARATORS = frozenset({b" ", b"-", b""})
_STATUS_CLASSES = frozenset({b"2", b"4", b"5"})
# RFC 3463 §2: status-code = class "." subject "." detail, class 2/4/5,
# subject 1*3digit, detail 1*3digit; RFC 2034 puts it first, then SP.
_ENHANCED = re.compile(rb"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |\Z)")


class ParsedReply(NamedTuple):
    """One whole reply as read off the wire, not yet paired with a command.

    A named tuple rather than a frozen dataclass: one is built per reply, and a
    tuple is built in C.
    """

    code: int
    lines: tuple[bytes, ...]
    enhanced: tuple[int, int, int] | None


def _enhanced_status(code: int, text: bytes) -> tuple[int, int, int] | None:
    match = _ENHANCED.match(text)
    # RFC 3463 §2: the class must agree with the reply code's first digit; a
    # text that merely starts with digits ("2.0 is out") is not a status code.
    if match is None or int(match[1]) != code // 100:
        return None
    return int(match[1]), int(match[2]), int(match[3])


class ReplyReader:
    """Assembles replies from bytes; bounded by the two module caps.

    Raises ``RemoteProtocolError`` from :meth:`next_reply` when the bytes break
    the grammar or a cap; it keeps raising after that.
    """

    __slots__ = ("_buffer", "_code", "_error", "_lines", "_pos", "_scan")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pos = 0  # start of the first unconsumed line
        self._scan = 0  # where the next search for CRLF starts
        self._lines: list[bytes] = []
        self._code = b""
        # The first error, repeated by every later call.  Without it the reader
        # went on after a bad line (its position was already past it) and
        # returned the next reply, or glued the lines of a reply whose code
        # changed onto the next one; the docstring promises that it latches.
        self._error: str | None = None

    def feed(self, data: bytes) -> None:
        """Append ``data`` to the buffer (no parsing happens here)."""
        self._buffer += data

    def has_unparsed(self) -> bool:
        """True if any byte is held that is not part of a returned reply."""
        return len(self._buffer) > self._pos or bool(self._lines)

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
        if self._pos == len(self._buffer):
            # Nothing buffered, the usual case between replies: no search needed.
            if self._pos:
                self._buffer.clear()
                self._pos = self._scan = 0
            return None
        try:
            # One method, no helper calls per line: this runs once per reply
            # line of every session, so call overhead is most of its cost.
            buffer = self._buffer
            lines = self._lines
            while True:
                end = buffer.find(b"\r\n", self._scan)
                if end < 0:
                    self._wait_for_more()
                    return None
                line = bytes(buffer[self._pos : end])
                self._pos = self._scan = end + 2
                if len(line) + 2 > MAX_REPLY_LINE_LENGTH:
                    raise RemoteProtocolError(
                        f"reply line longer than {MAX_REPLY_LINE_LENGTH} octets: {line[:40]!r}..."
                    )
                # REPLY_LINE (in _abnf) is the grammar; these set lookups check
                # the same thing without a regex match per line.
                code = line[:3]
                separator = line[3:4]
                if code not in _REPLY_CODES or separator not in _SEPARATORS:
                    raise RemoteProtocolError(
                        f"reply line does not start with a 2yz-5yz code: {line!r}"
                    )
                text = line[4:]
                if text and _CONTROL.search(text):
                    raise RemoteProtocolError(f"control character in reply text: {line!r}")
                if lines and code != self._code:
                    raise RemoteProtocolError(
                        f"multiline reply changed its code from {self._code.decode()}: {line!r}"
                    )
                if separator == b"-":
                    self._code = code
                    lines.append(text)
                    if len(lines) >= MAX_REPLY_LINES:
                        raise RemoteProtocolError(f"reply has more than {MAX_REPLY_LINES} lines")
                    continue
                if lines:
                    lines.append(text)
                    texts = tuple(lines)
                    lines.clear()
                else:
                    texts = (text,)
                value = int(code)
                first = texts[0]
                status = first[:1] in _STATUS_CLASSES
                return ParsedReply(value, texts, _enhanced_status(value, first) if status else None)
        except RemoteProtocolError as exc:
            self._error = str(exc)
            raise

    def _wait_for_more(self) -> None:
        """No whole line is buffered: check the cap, compact, resume the search later."""
        buffer = self._buffer
        pending = len(buffer) - self._pos
        if pending >= MAX_REPLY_LINE_LENGTH:
            raise RemoteProtocolError(
                f"reply line longer than {MAX_REPLY_LINE_LENGTH} octets: "
                f"{bytes(buffer[self._pos : self._pos + 40])!r}..."
            )
        # Resume the search on the last byte: it may be the CR of a CRLF.
        self._scan = max(self._pos, len(buffer) - 1)
        if self._pos:
            del buffer[: self._pos]
            self._scan -= self._pos
            self._pos = 0
