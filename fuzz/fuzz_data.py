"""Harness ``data``: arbitrary message content through ``smtp_core.DataEncoder``.

INVARIANT: encoding the payload in chunks cut at the fuzzer's split points
(each chunk passed as ``bytes``, ``bytearray`` or ``memoryview``, as the input
chooses), and one byte at a time, gives output identical to encoding it in one
call, ``end()`` included.  The output has no bare CR and no bare LF; the only
``CRLF.CRLF`` in it is the final one (the start of the output counting as a
line start, so ``.CRLF`` alone is the terminator of empty content); and an
independent decoder written here -- split at CRLF, drop one leading dot,
strip the terminator -- gives back the payload with every line ending (CRLF,
bare CR, bare LF) written as CRLF and a final CRLF added when the content did
not end with a line ending.  Without dot-stuffing (``dot_stuff=False``, what
BDAT uses) the same holds for chunking and bare CR/LF, and the output is
exactly the normalised payload: no dot is added and nothing ends it but that
final CRLF.

Line limit (``max_line_length=L``, RFC 5321 §4.5.3.1.6): in every feeding
``encode`` raises ``LocalProtocolError`` exactly at the first chunk that
completes L + 1 octets of one line (line endings of any kind end a line;
the stuffed dot does not count), and nowhere else; what the chunks before it
returned is a prefix of the unlimited output; without such a line the
output is the unlimited output.  No other exception escapes ``encode`` or
``end``.

Input layout: byte 0, low 5 bits: number of split points N, bits 5-6: chunk
type (0 bytes, 1 bytearray, 2 memoryview, 3 rotate through all three), bit 7:
no dot-stuffing (BDAT); bytes 1-2: little-endian line limit plus one (0: no
limit, ``max_line_length=None``); then N little-endian 16-bit split offsets;
the rest is the content.
"""

from __future__ import annotations

import re
import struct

from fuzz._common import Header, bytewise, pack_splits, split_at
from smtp_core import DataEncoder, LocalProtocolError

__all__ = ["SKIP", "MAX_LEN", "check", "decode", "make_input", "normalise"]

MAX_LEN = 3072  # room for lines over the 998-octet limit; bytewise feeding makes size costly

_ANY_EOL = re.compile(rb"\r\n|\r|\n")
_TERMINATOR = b"\r\n.\r\n"

#: Named invariants a fuzzing run may skip (``fuzz/run.py --skip NAME``); none yet.
SKIP: set[str] = set()


def normalise(content: bytes) -> bytes:
    """What the server should store: CRLF line endings, ending in CRLF unless empty."""
    out = _ANY_EOL.sub(b"\r\n", content)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def decode(wire: bytes) -> bytes:
    """The receiver's side of RFC 5321 §4.5.2, written without the encoder's tricks."""
    assert wire.endswith(b".\r\n"), wire[-20:]
    body = wire[: -len(b".\r\n")]
    if not body:
        return b""
    assert body.endswith(b"\r\n"), body[-20:]
    lines = body[: -len(b"\r\n")].split(b"\r\n")
    for line in lines:
        assert b"\r" not in line, line
        assert b"\n" not in line, line
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


def _as_type(chunk: bytes, kind: int) -> bytes | bytearray | memoryview:
    if kind == 1:
        return bytearray(chunk)
    if kind == 2:
        return memoryview(chunk)
    return chunk


def _encode(
    chunks: list[bytes], kind: int, dot_stuff: bool, limit: int | None
) -> tuple[bytes, int | None]:
    """The output, and the index of the chunk that raised ``LocalProtocolError`` if one did."""
    encoder = DataEncoder(dot_stuff=dot_stuff, max_line_length=limit)
    parts = []
    for index, chunk in enumerate(chunks):
        try:
            parts.append(encoder.encode(_as_type(chunk, index % 3 if kind == 3 else kind)))
        except LocalProtocolError:
            assert limit is not None, "LocalProtocolError without a line limit"
            return b"".join(parts), index
    parts.append(encoder.end())
    return b"".join(parts), None


def _first_overlong(content: bytes, limit: int) -> int | None:
    """The offset of the octet that makes a line ``limit + 1`` octets long, if any."""
    length = 0
    after_cr = False
    for offset, octet in enumerate(content):
        if octet == 0x0D or (octet == 0x0A and not after_cr):
            length = 0
        elif octet != 0x0A:
            length += 1
            if length > limit:
                return offset
        after_cr = octet == 0x0D
    return None


def _check_wire(wire: bytes, dot_stuff: bool) -> None:
    for match in re.finditer(rb"\r(?!\n)|(?<!\r)\n", wire):
        raise AssertionError(f"bare CR or LF at {match.start()}: {wire[match.start() - 10 :]!r}")
    if not dot_stuff:
        return
    first = (b"\r\n" + wire).find(_TERMINATOR)
    assert first == len(wire) - 3, f"CRLF.CRLF at {first - 2} in {len(wire)} octets"


def check(data: bytes) -> None:
    """Run one fuzz input; raise ``AssertionError`` if the invariant breaks."""
    header = Header(data)
    control = header.byte()
    raw_limit = header.u16()
    limit = raw_limit - 1 if raw_limit else None
    raw_points = header.splits(control & 0x1F)
    kind = (control >> 5) & 0x03
    dot_stuff = not control & 0x80
    payload = header.rest()

    unlimited, _ = _encode([payload], 0, dot_stuff, None)
    _check_wire(unlimited, dot_stuff)
    decoded = decode(unlimited) if dot_stuff else unlimited
    assert decoded == normalise(payload), (decoded, normalise(payload))
    overlong = None if limit is None else _first_overlong(payload, limit)
    for name, chunks, chunk_kind in (
        ("one-shot", [payload] if payload else [], 0),
        ("split", split_at(payload, raw_points), kind),
        ("bytewise", bytewise(payload), kind),
    ):
        out, raised = _encode(chunks, chunk_kind, dot_stuff, limit)
        if overlong is None:
            assert raised is None, (name, "raised at chunk", raised)
            assert out == unlimited, (name, out, unlimited)
            continue
        ends = [sum(len(c) for c in chunks[: i + 1]) for i in range(len(chunks))]
        expected = next(i for i, end in enumerate(ends) if end > overlong)
        assert raised == expected, (name, "raised at chunk", raised, "expected", expected)
        assert unlimited.startswith(out), (name, out, unlimited)


def make_input(
    content: bytes,
    splits: list[int] | None = None,
    kind: int = 0,
    *,
    bdat: bool = False,
    limit: int | None = None,
) -> bytes:
    """A fuzz input (for seed files): ``content`` cut at ``splits``."""
    head = pack_splits(splits or [])
    control = bytes([head[0] | (kind & 0x03) << 5 | bdat << 7])
    return control + struct.pack("<H", 0 if limit is None else limit + 1) + head[1:] + content
