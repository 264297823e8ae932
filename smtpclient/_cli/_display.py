"""Showing the session: the ``C:``/``S:`` transcript and the ``--count`` progress bar."""

from __future__ import annotations

import time
from typing import IO

from smtp_core import TranscriptRecorder

__all__ = ["_Display", "_Progress", "_printable"]


# -- showing the session ---------------------------------------------------------------------


def _printable(line: bytes) -> str:
    text = line.decode("utf-8", "replace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in text)


class _Display:
    """Shows the traced session as ``C:``/``S:`` lines, AUTH payloads masked.

    Each chunk first goes through a :class:`TranscriptRecorder`, which does
    the redaction; the display then cuts the redacted bytes into lines.  The
    recorder is renewed at the start of every procedure (a point where no
    reply and no AUTH exchange is pending), so it never grows with the session.
    """

    def __init__(self, out: IO[str], *, suppress_data: bool) -> None:
        self.out = out
        self.enabled = True
        self.suppress_data = suppress_data
        self._recorder = TranscriptRecorder()
        self._seen = 0
        self._lines = {"C": b"", "S": b""}
        self._mode = "command"  # the client's bytes: "command", "content" (DATA) or "bdat"
        self._tail = b"\r\n"  # the last content octets, to find CRLF.CRLF across chunks
        self._bdat_left = 0
        self._content_size = 0

    def reset(self) -> None:
        """Start afresh between procedures (nothing is pending then)."""
        self.flush()
        self._recorder = TranscriptRecorder()
        self._seen = 0

    def note(self, text: str) -> None:
        """A ``*`` line, shown with the transcript."""
        if self.enabled:
            self.write(f"* {text}\n")

    def write(self, text: str) -> None:
        """Write to the output; a closed pipe (``| head``) ends the display, not the session."""
        try:
            self.out.write(text)
        except (OSError, ValueError):
            self.enabled = False

    def __call__(self, direction: str, data: bytes) -> None:
        if not self.enabled:
            return
        self._recorder(direction, data)
        records = self._recorder.transcript().records[self._seen :]
        self._seen += len(records)
        for record in records:
            if record.direction == "E":
                if record.data == "server-close":
                    self.flush()
                    self.write("* the server closed the connection\n")
            elif record.direction == "S" and isinstance(record.data, bytes):
                self._server(record.data)
            elif record.direction == "C" and isinstance(record.data, bytes):
                self._client(record.data)

    def flush(self) -> None:
        """Show any line left without its line ending."""
        for prefix, rest in self._lines.items():
            if rest:
                self._line(prefix, rest + b" [no line ending]")
                self._lines[prefix] = b""

    def _line(self, prefix: str, line: bytes) -> None:
        self.write(f"{prefix}: {_printable(line)}\n")

    def _server(self, data: bytes) -> None:
        *lines, self._lines["S"] = (self._lines["S"] + data).split(b"\r\n")
        for line in lines:
            self._line("S", line)
            if line[:4] in (b"354", b"354 "):
                self._mode, self._tail, self._content_size = "content", b"\r\n", 0

    def _client(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self._mode == "content":
                window = self._tail + data[pos:]
                end = window.find(b"\r\n.\r\n")
                stop = len(data) if end < 0 else pos + end + 5 - len(self._tail)
                self._content(data[pos:stop])
                self._tail = window[-4:] if end < 0 else b"\r\n"
                if end >= 0:
                    self._end_content("message")
                pos = stop
            elif self._mode == "bdat":
                stop = pos + min(self._bdat_left, len(data) - pos)
                self._content(data[pos:stop])
                self._bdat_left -= stop - pos
                if not self._bdat_left:
                    self._end_content("chunk")
                pos = stop
            else:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    self._lines["C"] += data[pos:]
                    return
                line = self._lines["C"] + data[pos:eol]
                self._lines["C"] = b""
                self._line("C", line)
                pos = eol + 2
                verb, _, rest = line.partition(b" ")
                size = rest.split(b" ")[0]
                if verb.upper() == b"BDAT" and size.isdigit() and int(size):
                    self._mode, self._bdat_left, self._content_size = "bdat", int(size), 0

    def _content(self, data: bytes) -> None:
        self._content_size += len(data)
        if self.suppress_data:
            return
        *lines, self._lines["C"] = (self._lines["C"] + data).split(b"\r\n")
        for line in lines:
            self._line("C", line)

    def _end_content(self, what: str) -> None:
        if self.suppress_data:
            self.write(f"C: <{what} content: {self._content_size} bytes>\n")
        elif self._lines["C"]:
            self._line("C", self._lines["C"])
            self._lines["C"] = b""
        self._mode = "command"


class _Progress:
    """A progress bar on a terminal; a line every tenth of the way otherwise."""

    WIDTH = 30

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self._drawn = 0.0
        self._step = max(1, total // 10)

    def update(self, done: int, failed: int) -> None:
        """Show that ``done`` messages have their result, ``failed`` of them not accepted."""
        now = time.monotonic()
        rate = done / max(now - self.start, 1e-9)
        extra = f", {failed} not accepted" if failed else ""
        if self.tty:
            if done < self.total and now - self._drawn < 0.1:
                return
            self._drawn = now
            filled = self.WIDTH * done // self.total
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self.stream.write(
                f"\r[{bar}] {done}/{self.total} {100 * done // self.total:3d}%"
                f"  {rate:.1f} msg/s{extra}"
            )
        elif done % self._step == 0 or done == self.total:
            self.stream.write(f"smtpclient: {done}/{self.total} done ({rate:.1f} msg/s{extra})\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
