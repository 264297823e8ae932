"""Findings as ``smtp-transcript/1`` files: written by the fuzzer, read back for replay.

A finding's file is an ordinary transcript (see :mod:`smtp_core`'s
``smtp-transcript/1``) holding one or more sessions::

    # format: smtp-transcript/1
    # generator: smtpclient fuzz
    # target: 127.0.0.1:2525
    # finding: violation
    # summary: 250 reply to DATA: RFC 5321 §4.3.2 allows only 354 or an error
    # sessions: 1
    # replay: smtpclient fuzz --replay violation-1-....txt
    # session 1 of 1 (run session 17)
    S: b'220 broken.test ESMTP\\r\\n'
    # step line
    C: b'EHLO fuzz.example\\r\\n'
    ...

Each ``# session k of n`` comment starts a session.  Each ``# step KIND``
comment (``# step raw N`` or ``# step raw ?`` for raw bytes) says that the
next ``C:`` record is one step of the session, which is what replay sends
again; ``C:`` records without one (the closing QUIT, an implied end of data)
are written by the runner itself and replay writes them again on its own.
``# step content skipped b'...'`` keeps a content step that was not sent
because DATA drew no 354.  A transcript with no ``# step`` comments at all (a
recording made elsewhere) is replayed chunk by chunk, each ``C:`` chunk as raw
bytes expecting as many replies as the recording shows after it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, final

from smtp_core import Record, Transcript, TranscriptError, parse_transcript

from ._steps import Step

__all__ = ["GENERATOR", "SavedSession", "Saved", "dump_sessions", "load_sessions"]

#: The ``generator`` header of the fuzzer's transcripts.
GENERATOR: Final = "smtpclient fuzz"
_SESSION = " session "
_STEP = " step "
# The last line of a reply (RFC 5321 §4.2: the code and a space, or the code alone).
_LAST_LINE: Final = re.compile(rb"^[0-9]{3}(?: [^\r\n]*)?\r?$", re.MULTILINE)


@final
@dataclass(frozen=True, slots=True)
class SavedSession:
    """One session of a finding's transcript.

    Attributes:
        number: its number in the run that found it (1-based).
        steps: the steps replay sends.
        records: the records as they were seen.
    """

    number: int
    steps: tuple[Step, ...]
    records: tuple[Record, ...]


@final
@dataclass(frozen=True, slots=True)
class Saved:
    """A parsed finding file: its headers and its sessions, in order."""

    headers: dict[str, str]
    sessions: tuple[SavedSession, ...]


def dump_sessions(headers: Sequence[tuple[str, str]], sessions: Sequence[SavedSession]) -> str:
    """The transcript text of ``sessions`` under ``headers``.

    Raises:
        TranscriptError: a header cannot be written on one line.
    """
    records: list[Record] = []
    total = len(sessions)
    for k, session in enumerate(sessions, start=1):
        records.append(Record("#", f"{_SESSION}{k} of {total} (run session {session.number})"))
        records.extend(session.records)
    return Transcript.build([("format", "smtp-transcript/1"), *headers], records).dumps()


def load_sessions(text: str) -> Saved:
    """Parse a finding file (or any ``smtp-transcript/1`` text) into sessions to replay.

    Raises:
        TranscriptError: the text is not ``smtp-transcript/1``, a ``# step``
            comment is malformed, or it is not followed by a ``C:`` record.
    """
    transcript = parse_transcript(text)
    groups: list[tuple[int, list[Record]]] = []
    for record in transcript.records:
        data = record.data
        if record.direction == "#" and isinstance(data, str) and data.startswith(_SESSION):
            words = data[len(_SESSION) :].split()
            number = len(groups) + 1
            if len(words) >= 5 and words[-1].rstrip(")").isdigit():
                number = int(words[-1].rstrip(")"))
            groups.append((number, []))
            continue
        if not groups:
            groups.append((1, []))
        groups[-1][1].append(record)
    explicit = any(
        r.direction == "#" and isinstance(r.data, str) and r.data.startswith(_STEP)
        for _, records in groups
        for r in records
    )
    sessions = tuple(
        SavedSession(
            number,
            _steps(records) if explicit else _chunk_steps(records),
            tuple(records),
        )
        for number, records in groups
    )
    return Saved(transcript.header_dict, sessions)


def _steps(records: Iterable[Record]) -> tuple[Step, ...]:
    steps: list[Step] = []
    pending: tuple[str, int | None] | None = None
    for record in records:
        data = record.data
        if record.direction == "#" and isinstance(data, str) and data.startswith(_STEP):
            if pending is not None:
                raise TranscriptError(f"'# step' not followed by a C: record: {data!r}")
            words = data[len(_STEP) :].split(" ", 2)
            kind = words[0]
            if kind == "content" and len(words) == 3 and words[1] == "skipped":
                steps.append(Step("content", _literal(words[2])))
                continue
            if kind == "raw" and len(words) == 2:
                pending = ("raw", None if words[1] == "?" else _count(words[1]))
            elif kind in ("line", "group", "content") and len(words) == 1:
                pending = (kind, 1)
            else:
                raise TranscriptError(f"malformed step comment: {data!r}")
        elif record.direction == "C" and pending is not None and isinstance(data, bytes):
            kind, replies = pending
            pending = None
            if kind in ("line", "group"):
                if not data.endswith(b"\r\n"):
                    raise TranscriptError(f"a {kind} step must end with CRLF: {data[:80]!r}")
                steps.append(Step(kind, data[:-2]))  # type: ignore[arg-type]
            else:
                steps.append(Step(kind, data, replies))  # type: ignore[arg-type]
    if pending is not None:
        raise TranscriptError("the last '# step' comment has no C: record")
    return tuple(steps)


def _chunk_steps(records: Sequence[Record]) -> tuple[Step, ...]:
    """A foreign recording: each C: chunk as raw bytes, with the replies that followed it."""
    steps: list[Step] = []
    chunk: bytes | None = None
    answer = b""
    for record in [*records, Record("C", b"")]:
        if record.direction == "C" and isinstance(record.data, bytes):
            if chunk is not None:
                count = len(_LAST_LINE.findall(answer))
                steps.append(Step("raw", chunk, min(count, 64)))
            chunk, answer = record.data, b""
        elif record.direction == "S" and isinstance(record.data, bytes) and chunk is not None:
            answer += record.data
    return tuple(steps)


def _literal(text: str) -> bytes:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise TranscriptError(f"not a bytes literal: {text[:80]!r} ({exc})") from None
    if not isinstance(value, bytes):
        raise TranscriptError(f"not a bytes literal: {text[:80]!r}")
    return value


def _count(word: str) -> int:
    if not word.isdigit() or int(word) > 64:
        raise TranscriptError(f"a raw step's reply count is 0 to 64 or ?: {word!r}")
    return int(word)
