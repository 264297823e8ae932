"""Small helpers shared by the engine tests: feeding bytes, collecting events.

Every parser is fed three ways (h11 ``test_io.py``): whole, one byte at a
time, and with the start of a further reply behind it.  ``feedings`` makes the
three chunk lists; ``read_replies`` and ``collect_events`` run a reader or a
connection over a chunk list and gather what comes out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

from smtp_core import (
    NEED_DATA,
    BaseCommand,
    Connection,
    ConnectionClosed,
    DataEncoder,
    Event,
    RemoteProtocolError,
)
from smtp_core._replies import ParsedReply, ReplyReader, enhanced_status

#: The start of a reply whose end has not arrived: a reader fed it after whole
#: replies must return them all and keep these bytes (``has_unparsed()``).
PARTIAL_REPLY = b"250-more to come\r\n250 and th"

TRANSCRIPTS = Path(__file__).parent / "transcripts"


def split_at(data: bytes, points: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at each of ``points`` (clamped, sorted; repeats give empty chunks)."""
    cuts = sorted(min(max(p, 0), len(data)) for p in points)
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def bytewise(data: bytes) -> list[bytes]:
    """``data`` as one chunk per byte."""
    return [data[i : i + 1] for i in range(len(data))]


def feedings(data: bytes) -> dict[str, list[bytes]]:
    """The three ways to feed ``data``: whole, byte by byte, and with a partial reply after it."""
    return {
        "whole": [data],
        "bytewise": bytewise(data),
        "trailing": [data + PARTIAL_REPLY],
    }


@dataclass
class ReaderRun:
    """What a reader gave back for a list of chunks."""

    replies: list[Parsed]
    error: RemoteProtocolError | None
    reader: ReplyReader
    #: The largest buffer and the most pending lines seen at rest, i.e. each
    #: time ``next_reply`` answered ``None``.
    peak_buffer: int = 0
    peak_lines: int = 0


def held_bytes(reader: ReplyReader) -> int:
    """Bytes the reader keeps: its buffers and the lines of an unfinished reply.

    This and :func:`read_replies` look inside the reader on purpose: the memory
    bound is the property under test, and no public call can show it.
    """
    return reader._held_bytes()


class Parsed(NamedTuple):
    """A reply as the reader returns it, plus the enhanced status code that
    ``Reply.enhanced`` works out from it (so one comparison checks both)."""

    code: int
    lines: tuple[bytes, ...]
    enhanced: tuple[int, int, int] | None = None


def parsed(reply: ParsedReply) -> Parsed:
    code, lines = reply
    return Parsed(code, lines, enhanced_status(code, lines[0]))


def take(reader: ReplyReader) -> Parsed | None:
    """``reader.next_reply()`` as a :class:`Parsed`."""
    reply = reader.next_reply()
    return None if reply is None else parsed(reply)


def read_replies(chunks: Iterable[bytes], reader: ReplyReader | None = None) -> ReaderRun:
    """Feed each chunk and take every whole reply, stopping at the first error."""
    run = ReaderRun([], None, ReplyReader() if reader is None else reader)
    for chunk in chunks:
        run.reader.feed(chunk)
        try:
            while (reply := run.reader.next_reply()) is not None:
                run.replies.append(parsed(reply))
        except RemoteProtocolError as exc:
            run.error = exc
            return run
        lines = sum(map(len, run.reader._lines))
        run.peak_buffer = max(run.peak_buffer, held_bytes(run.reader) - lines)
        run.peak_lines = max(run.peak_lines, len(run.reader._lines))
    return run


def encode_content(chunks: Iterable[bytes | bytearray | memoryview]) -> bytes:
    """Run a fresh :class:`DataEncoder` over ``chunks`` and add its end marker."""
    encoder = DataEncoder()
    return b"".join(encoder.encode(chunk) for chunk in chunks) + encoder.end()


def collect_events(conn: Connection, chunks: Iterable[bytes] = ()) -> list[Event]:
    """Feed ``chunks`` to ``conn`` one by one and return every event they produce.

    Events are taken until ``NEED_DATA`` after each chunk, so a chunk boundary
    inside a reply is exercised too.  An empty chunk is end of file, as for
    ``recv``; collecting stops at the :class:`ConnectionClosed` it leads to.
    """
    events: list[Event] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, ConnectionClosed):
                return events
    return events


def sent_bytes(conn: Connection, commands: Sequence[BaseCommand]) -> bytes:
    """What ``conn.send`` returns for each command, joined."""
    return b"".join(conn.send(command) for command in commands)


@dataclass(frozen=True)
class TranscriptBlock:
    """One ``# --- reply N`` block of an ``ehlo/*.txt`` transcript."""

    title: str
    client: bytes
    server_chunks: tuple[bytes, ...]


def load_ehlo_transcript(path: Path) -> tuple[dict[str, str], list[TranscriptBlock]]:
    """Read an ``ehlo/<server>.txt`` file (format ``smtp-transcript/1``).

    Returns the header (``# key: value`` lines before the first block) and the
    blocks: the client's EHLO/LHLO chunk and the server's chunks, as recorded.
    """
    header: dict[str, str] = {}
    blocks: list[TranscriptBlock] = []
    title: str | None = None
    client = b""
    server: list[bytes] = []

    def close_block() -> None:
        if title is not None:
            blocks.append(TranscriptBlock(title, client, tuple(server)))

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# --- "):
            close_block()
            title, client, server = line[len("# --- ") :], b"", []
        elif line.startswith("#"):
            if title is None and ": " in line:
                key, _, value = line[2:].partition(": ")
                header[key] = value
        elif line.startswith(("C: ", "S: ")):
            chunk = ast.literal_eval(line[3:])
            assert isinstance(chunk, bytes), line
            if line.startswith("C: "):
                client += chunk
            else:
                server.append(chunk)
        else:
            raise ValueError(f"not a transcript line: {line!r}")
    close_block()
    return header, blocks
