"""The streaming DATA encoder: CRLF line endings and dot-stuffing across chunks.

RFC 5321 §4.5.2: a line of content that starts with "." gets one more "."
before it, and §2.3.8: "CR and LF ... MUST NOT appear other than as a CRLF".
A bare CR or LF passed through raw is what let a message end the data early on
some servers and start a second, forged one ("SMTP smuggling", 2023), so every
line ending of any kind becomes CRLF here, and the terminating ".CRLF" can only
ever be written by :meth:`DataEncoder.end`.

Each chunk is processed with a few C-level ``bytes.replace`` passes; the only
state carried between chunks is whether the next byte starts a line and whether
the last chunk ended in a CR (whose LF may open the next chunk).
"""

from __future__ import annotations

from typing import final

from ._errors import LocalProtocolError

__all__ = ["MAX_TEXT_LINE", "DataEncoder"]

# RFC 5321 §4.5.3.1.6: "The maximum total length of a text line including the
# <CRLF> is 1000 octets (not counting the leading dot duplicated for
# transparency)."  So 998 octets between line endings.
MAX_TEXT_LINE = 998


@final
class DataEncoder:
    """Turns message content into the bytes to send after ``354``.

    Chunks may be cut anywhere, even between the CR and LF of a line ending or
    just before a leading dot; the output is the same as for one whole chunk.
    Memory held between calls: two flags.

    Args:
        dot_stuff: double leading dots (DATA).  BDAT (RFC 3030 §2) sends
            content by byte count, so it normalises line endings only.
        max_line_length: refuse a line longer than this many octets (without
            its CRLF); RFC 5321 §4.5.3.1.6 sets 998.  ``None`` turns the check
            off, for servers known to take longer lines.
    """

    __slots__ = ("_after_cr", "_at_line_start", "_dot_stuff", "_line_length", "_max_line")

    def __init__(
        self, *, dot_stuff: bool = True, max_line_length: int | None = MAX_TEXT_LINE
    ) -> None:
        self._at_line_start = True
        self._after_cr = False
        self._dot_stuff = dot_stuff
        self._max_line = max_line_length
        self._line_length = 0  # octets of the line still open at the end of the last chunk

    def encode(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Return ``chunk`` with CRLF line endings and leading dots doubled.

        Raises:
            TypeError: if ``chunk`` is not bytes, bytearray or memoryview.
            LocalProtocolError: a line is longer than ``max_line_length``.
                The encoder is left as it was before the call, so the caller
                may send different content instead (a refused chunk never
                half-happens).
        """
        # ``bytes(5)`` is five NUL octets and ``bytes([46])`` is a dot: without
        # this check an int or a list of ints would be sent as content.
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"content must be bytes, not {type(chunk).__name__}")
        data = bytes(chunk)
        if not data:
            return b""
        if self._after_cr and data[0] == 0x0A:
            # The LF of a CRLF whose CR ended the previous chunk: already sent.
            data = data[1:]
            if not data:
                self._after_cr = False
                return b""
        last = data[-1]
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._max_line is not None:
            # Checked before any state changes: a refused chunk leaves no trace.
            self._line_length = self._line_lengths_checked(data, self._max_line)
        self._after_cr = last == 0x0D
        if self._dot_stuff:
            data = data.replace(b"\n.", b"\n..")
            if self._at_line_start and data[0] == 0x2E:
                data = b"." + data
        data = data.replace(b"\n", b"\r\n")
        self._at_line_start = last in (0x0A, 0x0D)
        return data

    def clone(self) -> DataEncoder:
        """An independent copy of this encoder and its state between chunks."""
        twin = DataEncoder.__new__(DataEncoder)
        twin._at_line_start, twin._after_cr = self._at_line_start, self._after_cr
        twin._dot_stuff, twin._max_line = self._dot_stuff, self._max_line
        twin._line_length = self._line_length
        return twin

    def _line_lengths_checked(self, data: bytes, limit: int) -> int:
        """Refuse a line over ``limit`` octets; return the length left open at the end.

        ``data`` has LF line endings.  A per-line loop would cost a Python
        iteration per line.  Instead the interior is cut into tiles of
        ``step = (limit + 1) // 2`` octets: any run of ``limit + 1`` octets
        without LF contains a whole tile (a run of ``2 * step - 1`` does), so
        only tiles with no LF need a closer look, and a chunk costs about
        ``len(data) / step`` C-level searches.
        """
        find = data.find
        first = find(b"\n")
        if first < 0:
            open_length = self._line_length + len(data)
            if open_length > limit:
                raise self._too_long(open_length, limit)
            return open_length
        if self._line_length + first > limit:
            raise self._too_long(self._line_length + first, limit)
        last = data.rfind(b"\n")
        step = (limit + 1) // 2
        start = first + 1
        while start + step <= last:
            if find(b"\n", start, start + step) >= 0:
                start += step
                continue
            end = find(b"\n", start + step)
            begin = data.rfind(b"\n", 0, start) + 1
            if end - begin > limit:
                raise self._too_long(end - begin, limit)
            start = end + 1
        open_length = len(data) - last - 1
        if open_length > limit:
            raise self._too_long(open_length, limit)
        return open_length

    @staticmethod
    def _too_long(length: int, limit: int) -> LocalProtocolError:
        return LocalProtocolError(
            f"message line of {length} octets is over the limit of {limit} "
            "(RFC 5321 §4.5.3.1.6); encode the content (quoted-printable, base64) "
            "or turn the check off with max_line_length=None"
        )

    def end(self) -> bytes:
        """Return what ends the content.

        With dot-stuffing (DATA): the end-of-data marker ``.CRLF``, after a
        CRLF if a line is open.  Without (BDAT): a CRLF if a line is open, so
        the message ends with a line ending either way.
        """
        if not self._dot_stuff:
            return b"" if self._at_line_start else b"\r\n"
        return b".\r\n" if self._at_line_start else b"\r\n.\r\n"
