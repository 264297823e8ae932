"""The DATA encoder: line endings made CRLF, dot-stuffing, across any chunking.

The round trip runs against a decoder written here, the way a server reads
DATA (RFC 5321 §4.5.2): split on CRLF, stop at the lone ".", drop one leading
dot from the other lines.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_core import DataEncoder
from tests.helpers import bytewise, encode_content, split_at

END = b".\r\n"


def server_decode(wire: bytes) -> bytes:
    """Read DATA as a server does; fail if the end marker comes early or not at all."""
    lines = wire.split(b"\r\n")
    assert lines[-1] == b"", "the data does not end in CRLF"
    content: list[bytes] = []
    for index, line in enumerate(lines[:-1]):
        if line == b".":
            assert index == len(lines) - 2, "end of data before the end"
            return b"".join(content)
        content.append((line[1:] if line.startswith(b".") else line) + b"\r\n")
    raise AssertionError("no end-of-data line")


def normalised(content: bytes) -> bytes:
    """Every CRLF, bare CR or bare LF as CRLF, and a final CRLF if a line is open."""
    text = re.sub(rb"\r\n|\r|\n", b"\r\n", content)
    return text if text == b"" or text.endswith(b"\r\n") else text + b"\r\n"


def assert_clean(wire: bytes) -> None:
    """No bare CR or LF anywhere (the "SMTP smuggling" class), one end marker, last."""
    assert re.search(rb"(?<!\r)\n", wire) is None, wire
    assert re.search(rb"\r(?!\n)", wire) is None, wire
    assert wire.endswith(END)
    assert wire == END or wire.endswith(b"\r\n" + END)
    assert b"\r\n.\r\n" not in wire[:-3]
    assert not wire.startswith(END) or wire == END


EXACT: list[tuple[str, list[bytes], bytes]] = [
    ("empty", [], b".\r\n"),
    ("empty chunk", [b""], b".\r\n"),
    ("one line", [b"hello\r\n"], b"hello\r\n.\r\n"),
    ("no final line ending", [b"hello"], b"hello\r\n.\r\n"),
    ("bare LF", [b"a\nb\n"], b"a\r\nb\r\n.\r\n"),
    ("bare CR", [b"a\rb\r"], b"a\r\nb\r\n.\r\n"),
    ("CR CR LF is two line endings", [b"a\r\r\nb"], b"a\r\n\r\nb\r\n.\r\n"),
    ("LF CR is two line endings", [b"a\n\rb"], b"a\r\n\r\nb\r\n.\r\n"),
    ("leading dot", [b".hidden\r\n"], b"..hidden\r\n.\r\n"),
    ("lone dot line", [b"a\r\n.\r\nb\r\n"], b"a\r\n..\r\nb\r\n.\r\n"),
    ("only a dot", [b"."], b"..\r\n.\r\n"),
    ("dots inside a line", [b"a.b..c\r\n"], b"a.b..c\r\n.\r\n"),
    ("two dots", [b"..\r\n"], b"...\r\n.\r\n"),
    ("dot lines in a row", [b".\n.\n"], b"..\r\n..\r\n.\r\n"),
    ("blank lines", [b"\r\n\r\n"], b"\r\n\r\n.\r\n"),
    ("NUL and high octets pass", [b"\x00\xff\r\n"], b"\x00\xff\r\n.\r\n"),
    # Smuggling attempts: each would end the data early on some server.
    ("LF.LF", [b"x\n.\nMAIL FROM:<evil@x>\n"], b"x\r\n..\r\nMAIL FROM:<evil@x>\r\n.\r\n"),
    ("LF.CRLF", [b"x\n.\r\nRCPT"], b"x\r\n..\r\nRCPT\r\n.\r\n"),
    ("CRLF.LF", [b"x\r\n.\nRCPT"], b"x\r\n..\r\nRCPT\r\n.\r\n"),
    ("CR.CR", [b"x\r.\rRCPT"], b"x\r\n..\r\nRCPT\r\n.\r\n"),
    ("CRLF.CR", [b"x\r\n.\rRCPT"], b"x\r\n..\r\nRCPT\r\n.\r\n"),
    # Chunk boundaries where state must carry over.
    ("CR | LF", [b"a\r", b"\nb"], b"a\r\nb\r\n.\r\n"),
    ("CR | LF alone", [b"a\r", b"\n", b"b"], b"a\r\nb\r\n.\r\n"),
    ("CR | LF | LF", [b"a\r", b"\n", b"\n"], b"a\r\n\r\n.\r\n"),
    ("CR | empty | LF", [b"a\r", b"", b"\nb"], b"a\r\nb\r\n.\r\n"),
    ("CR | CR", [b"a\r", b"\rb"], b"a\r\n\r\nb\r\n.\r\n"),
    ("CR | dot", [b"a\r", b".b"], b"a\r\n..b\r\n.\r\n"),
    ("CR | LF dot", [b"a\r", b"\n.b"], b"a\r\n..b\r\n.\r\n"),
    ("LF | dot", [b"a\n", b".b"], b"a\r\n..b\r\n.\r\n"),
    ("CRLF | dot", [b"a\r\n", b"."], b"a\r\n..\r\n.\r\n"),
    ("text | dot", [b"a", b".b"], b"a.b\r\n.\r\n"),
    ("dot | dot", [b".", b"."], b"...\r\n.\r\n"),
    ("ends in CR", [b"a\r"], b"a\r\n.\r\n"),
    ("ends in LF", [b"a\n"], b"a\r\n.\r\n"),
]


@pytest.mark.parametrize(("chunks", "wire"), [pytest.param(c, w, id=i) for i, c, w in EXACT])
def test_exact_output(chunks: list[bytes], wire: bytes) -> None:
    assert encode_content(chunks) == wire
    assert encode_content([b"".join(chunks)]) == wire
    assert encode_content(bytewise(b"".join(chunks))) == wire
    assert_clean(wire)
    assert server_decode(wire) == normalised(b"".join(chunks))


def test_chunk_outputs_are_streamed() -> None:
    """Each call returns what it can; nothing is held back except two flags."""
    encoder = DataEncoder()
    assert encoder.encode(b"a\r") == b"a\r\n"
    assert encoder.encode(b"\n") == b""
    assert encoder.encode(b".x") == b"..x"
    assert encoder.encode(b"") == b""
    assert encoder.end() == b"\r\n.\r\n"


def test_end_depends_on_an_open_line() -> None:
    encoder = DataEncoder()
    assert encoder.end() == b".\r\n"
    encoder.encode(b"x")
    assert encoder.end() == b"\r\n.\r\n"
    encoder.encode(b"\n")
    assert encoder.end() == b".\r\n"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_like_input(kind: type[bytes | bytearray | memoryview]) -> None:
    encoder = DataEncoder()
    out = encoder.encode(kind(b".a\nb\r"))
    assert out == b"..a\r\nb\r\n"
    assert type(out) is bytes
    assert encoder.encode(kind(b"\n")) == b""


def test_memoryview_slice() -> None:
    view = memoryview(b"xx\n.yy")[2:]
    assert encode_content([view]) == b"\r\n..yy\r\n.\r\n"


@pytest.mark.parametrize("bad", ["text", 5, [46, 10], None])
def test_non_bytes_refused(bad: object) -> None:
    # bytes(5) would be five NUL octets, bytes([46, 10]) a dot line.
    with pytest.raises(TypeError, match="content must be bytes"):
        DataEncoder().encode(bad)  # type: ignore[arg-type]


# -- hypothesis ---------------------------------------------------------------------

# Content made mostly of what the encoder has to get right.
# Under ``python -bb`` hypothesis can crash in its own cache when a drawn b""
# meets a drawn 0 (hash(b"") == hash(0) == 0, so the dict compares them), so
# no strategy here draws empty bytes; the empty input has its own test.
_content = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.lists(
        st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b"\n.", b"\x00", b"\xff"]),
        max_size=60,
    ).map(b"".join),
)


@given(_content, st.lists(st.integers(0, 250), max_size=20))
def test_round_trip_any_chunking(content: bytes, points: list[int]) -> None:
    wire = encode_content([content])
    assert_clean(wire)
    assert server_decode(wire) == normalised(content)
    assert encode_content(split_at(content, points)) == wire
    assert encode_content(bytewise(content)) == wire


@given(_content)
def test_splits_at_every_hard_place(content: bytes) -> None:
    """Cut between every CR and LF and just before every dot, all at once."""
    points = [i for i in range(len(content) + 1) if content[i : i + 1] in (b"\n", b".")]
    assert encode_content(split_at(content, points)) == encode_content([content])


@given(st.lists(_content, max_size=6))
def test_message_after_message(contents: list[bytes]) -> None:
    """A fresh encoder per message: each one's wire form stands on its own."""
    for content in contents:
        assert server_decode(encode_content([content])) == normalised(content)
