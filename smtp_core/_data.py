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

__all__ = ["DataEncoder"]


@final
class DataEncoder:
    """Turns message content into the bytes to send after ``354``.

    Chunks may be cut anywhere, even between the CR and LF of a line ending or
    just before a leading dot; the output is the same as for one whole chunk.
    Memory held between calls: two flags.

    Args:
        dot_stuff: double leading dots (DATA).  BDAT (RFC 3030 §2) sends
            content by byte count, so it normalises line endings only.
    """

    __slots__ = ("_after_cr", "_at_line_start", "_dot_stuff")

    def __init__(self, *, dot_stuff: bool = True) -> None:
        self._at_line_start = True
        self._after_cr = False
        self._dot_stuff = dot_stuff

    def encode(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Return ``chunk`` with CRLF line endings and leading dots doubled.

        Raises:
            TypeError: if ``chunk`` is not bytes, bytearray or memoryview.
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
        self._after_cr = last == 0x0D
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._dot_stuff:
            data = data.replace(b"\n.", b"\n..")
            if self._at_line_start and data[0] == 0x2E:
                data = b"." + data
        data = data.replace(b"\n", b"\r\n")
        self._at_line_start = last in (0x0A, 0x0D)
        return data

    def end(self) -> bytes:
        """Return what ends the content.

        With dot-stuffing (DATA): the end-of-data marker ``.CRLF``, after a
        CRLF if a line is open.  Without (BDAT): a CRLF if a line is open, so
        the message ends with a line ending either way.
        """
        if not self._dot_stuff:
            return b"" if self._at_line_start else b"\r\n"
        return b".\r\n" if self._at_line_start else b"\r\n.\r\n"
