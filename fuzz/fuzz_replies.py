"""Harness ``replies``: arbitrary server bytes into ``smtp_core._replies.ReplyReader``.

INVARIANT: the payload is fed three ways -- whole, one byte at a time, and cut
at the fuzzer's split points -- and after each feed every whole reply is taken.
The three runs return equal ``ParsedReply`` sequences and end alike: no error,
or the same exception type after the same number of replies; and when no
error ended them they hold the same unparsed tail (``has_unparsed``).  Only
``smtp_core.RemoteProtocolError`` may escape ``next_reply``, and it latches
(the next call raises it again).  Whenever ``next_reply`` answers ``None`` the
reader holds at most ``MAX_REPLY_LINE_LENGTH * MAX_REPLY_LINES`` bytes (plus
one line of slack), however big the chunks were.  Every reply has a code from
200 to 599 and lines free of CR, LF and control characters other than HT.

Input layout: byte 0, low 5 bits: number of split points N; then N
little-endian 16-bit split offsets (each taken modulo the payload length + 1);
the rest is the server's byte stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fuzz._common import Header, bytewise, pack_splits, split_at
from smtp_core import MAX_REPLY_LINE_LENGTH, MAX_REPLY_LINES, RemoteProtocolError
from smtp_core._replies import ParsedReply, ReplyReader

__all__ = ["SKIP", "HELD_BOUND", "MAX_LEN", "check", "make_input"]

#: libFuzzer's ``-max_len`` for this harness: room for a reply of more than
#: MAX_REPLY_LINES short lines and for a line over MAX_REPLY_LINE_LENGTH.
MAX_LEN = 8192
#: The most the reader may hold at rest.
HELD_BOUND = MAX_REPLY_LINE_LENGTH * MAX_REPLY_LINES + MAX_REPLY_LINE_LENGTH

_BAD_TEXT = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

#: Named invariants a fuzzing run may skip (``fuzz/run.py --skip NAME``); none yet.
SKIP: set[str] = set()


@dataclass
class _Run:
    replies: list[ParsedReply] = field(default_factory=list)
    error: type[Exception] | None = None
    unparsed: bool = False


def _held(reader: ReplyReader) -> int:
    # The memory bound is the property under test; no public call shows it.
    return reader._held_bytes()


def _run(chunks: list[bytes]) -> _Run:
    run = _Run()
    reader = ReplyReader()
    for chunk in chunks:
        reader.feed(chunk)
        try:
            while (reply := reader.next_reply()) is not None:
                run.replies.append(reply)
        except RemoteProtocolError as exc:
            run.error = type(exc)
            try:
                reader.next_reply()
            except RemoteProtocolError:
                pass
            else:
                raise AssertionError("the reader's error did not latch") from exc
            return run
        held = _held(reader)
        assert held <= HELD_BOUND, f"reader holds {held} bytes at rest"
    run.unparsed = reader.has_unparsed()
    return run


def _check_reply(reply: ParsedReply) -> None:
    code, lines = reply
    assert 200 <= code <= 599, reply
    assert lines, reply
    for line in lines:
        assert _BAD_TEXT.search(line) is None, reply


def check(data: bytes) -> None:
    """Run one fuzz input; raise ``AssertionError`` if the invariant breaks."""
    header = Header(data)
    raw_points = header.splits(header.byte() & 0x1F)
    payload = header.rest()
    whole = _run([payload] if payload else [])
    for reply in whole.replies:
        _check_reply(reply)
    for name, chunks in (
        ("bytewise", bytewise(payload)),
        ("split", split_at(payload, raw_points)),
    ):
        other = _run(chunks)
        assert other.replies == whole.replies, (name, other.replies, whole.replies)
        assert other.error is whole.error, (name, other.error, whole.error)
        assert other.unparsed == whole.unparsed, (name, other.unparsed, whole.unparsed)


def make_input(payload: bytes, splits: list[int] | None = None) -> bytes:
    """A fuzz input (for seed files): ``payload`` cut at ``splits``."""
    return pack_splits(splits or []) + payload
