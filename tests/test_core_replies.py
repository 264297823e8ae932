"""The reply reader: RFC 5321 §4.2 grammar, enhanced status codes, caps, memory.

Every input is fed three ways (whole, one byte at a time, and followed by the
start of another reply), then hypothesis picks the split points.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_core import MAX_REPLY_LINE_LENGTH, MAX_REPLY_LINES, RemoteProtocolError
from smtp_core._replies import ReplyReader
from tests.helpers import (
    PARTIAL_REPLY,
    Parsed,
    bytewise,
    feedings,
    held_bytes,
    read_replies,
    split_at,
    take,
)

FEEDINGS = ["whole", "bytewise", "trailing"]
CRLF = b"\r\n"

# What QQ Mail answers to a bad password: GBK, not UTF-8 (aiosmtplib issue #41).
QQ_MAIL_535 = (
    b"535 Error: \xc7\xeb\xca\xb9\xd3\xc3\xca\xda\xc8\xa8\xc2\xeb\xb5\xc7\xc2\xbc\xa1\xa3"
    b"\xcf\xea\xc7\xe9\xc7\xeb\xbf\xb4: http://service.mail.qq.com/cgi-bin/help?subtype=1"
    b"&&id=28&&no=1001256\r\n"
)


def reply(code: int, *lines: bytes, enhanced: tuple[int, int, int] | None = None) -> Parsed:
    return Parsed(code, lines, enhanced)


def line_of_length(total: int, code: bytes = b"250", sep: bytes = b" ") -> bytes:
    """A reply line of exactly ``total`` octets, CRLF included."""
    return code + sep + b"a" * (total - len(code) - len(sep) - 2) + CRLF


VALID: list[tuple[str, bytes, list[Parsed]]] = [
    ("single line", b"250 OK\r\n", [reply(250, b"OK")]),
    ("greeting", b"220 mx.example ESMTP ready\r\n", [reply(220, b"mx.example ESMTP ready")]),
    ("bare code", b"250\r\n", [reply(250, b"")]),
    ("code and space", b"250 \r\n", [reply(250, b"")]),
    ("empty continuation", b"250-\r\n250 done\r\n", [reply(250, b"", b"done")]),
    ("all lines empty", b"250-\r\n250-\r\n250\r\n", [reply(250, b"", b"", b"")]),
    (
        "multiline",
        b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
        [reply(250, b"mx.example", b"PIPELINING", b"SIZE 1000")],
    ),
    ("two replies", b"220 hi\r\n250 ok\r\n", [reply(220, b"hi"), reply(250, b"ok")]),
    ("tab in text", b"250 a\tb\r\n", [reply(250, b"a\tb")]),
    ("lowest code", b"200 x\r\n", [reply(200, b"x")]),
    # RFC 5321 §4.2.1: judged by the first digit; the others may be any digit.
    ("second digit 9", b"599 x\r\n", [reply(599, b"x")]),
    ("second digit 6", b"260-a\r\n260 b\r\n", [reply(260, b"a", b"b")]),
    ("499", b"499 x\r\n", [reply(499, b"x")]),
    ("highest code", b"559 x\r\n", [reply(559, b"x")]),
    ("third digit 9", b"259 x\r\n", [reply(259, b"x")]),
    (
        "utf-8 text",
        "250 h\u00e9llo w\u00f6rld\r\n".encode(),
        [reply(250, "h\u00e9llo w\u00f6rld".encode())],
    ),
    ("gbk text (QQ Mail)", QQ_MAIL_535, [reply(535, QQ_MAIL_535[4:-2])]),
    (
        "every high octet",
        b"250 " + bytes(range(128, 256)) + CRLF,
        [reply(250, bytes(range(128, 256)))],
    ),
    # RFC 3463 / RFC 2034 enhanced status codes.
    ("enhanced", b"250 2.1.5 Ok\r\n", [reply(250, b"2.1.5 Ok", enhanced=(2, 1, 5))]),
    ("enhanced alone", b"250 2.0.0\r\n", [reply(250, b"2.0.0", enhanced=(2, 0, 0))]),
    ("enhanced, space", b"550 5.7.1 \r\n", [reply(550, b"5.7.1 ", enhanced=(5, 7, 1))]),
    ("enhanced 4yz", b"451 4.3.0 later\r\n", [reply(451, b"4.3.0 later", enhanced=(4, 3, 0))]),
    (
        "enhanced 3 digits",
        b"552 5.123.456 x\r\n",
        [reply(552, b"5.123.456 x", enhanced=(5, 123, 456))],
    ),
    (
        "enhanced from the first line",
        b"250-2.1.0 a\r\n250 2.1.5 b\r\n",
        [reply(250, b"2.1.0 a", b"2.1.5 b", enhanced=(2, 1, 0))],
    ),
    (
        "enhanced only on a later line",
        b"250-hello\r\n250 2.0.0 ok\r\n",
        [reply(250, b"hello", b"2.0.0 ok")],
    ),
    ("not enhanced: two parts", b"250 2.0 is out\r\n", [reply(250, b"2.0 is out")]),
    ("not enhanced: class differs", b"250 5.1.1 odd\r\n", [reply(250, b"5.1.1 odd")]),
    ("not enhanced: class 3", b"354 3.0.0 go on\r\n", [reply(354, b"3.0.0 go on")]),
    ("not enhanced: 354 with 2.0.0", b"354 2.0.0 go on\r\n", [reply(354, b"2.0.0 go on")]),
    ("not enhanced: 4 digits", b"250 2.1.5000 x\r\n", [reply(250, b"2.1.5000 x")]),
    ("not enhanced: 4-digit subject", b"250 2.1000.5 x\r\n", [reply(250, b"2.1000.5 x")]),
    ("not enhanced: glued text", b"250 2.1.5x\r\n", [reply(250, b"2.1.5x")]),
    ("not enhanced: tab after", b"250 2.1.5\tx\r\n", [reply(250, b"2.1.5\tx")]),
    ("not enhanced: not first", b"250 ok 2.1.5\r\n", [reply(250, b"ok 2.1.5")]),
    ("not enhanced: empty part", b"250 2..5 x\r\n", [reply(250, b"2..5 x")]),
    # Lengths right at the caps are still valid.
    (
        "line of exactly the cap",
        line_of_length(MAX_REPLY_LINE_LENGTH),
        [reply(250, b"a" * (MAX_REPLY_LINE_LENGTH - 6))],
    ),
    (
        "exactly the most lines",
        b"250-x\r\n" * (MAX_REPLY_LINES - 1) + b"250 end\r\n",
        [reply(250, *([b"x"] * (MAX_REPLY_LINES - 1)), b"end")],
    ),
]


@pytest.mark.parametrize("how", FEEDINGS)
@pytest.mark.parametrize(("data", "expected"), [pytest.param(d, e, id=i) for i, d, e in VALID])
def test_valid_replies(data: bytes, expected: list[Parsed], how: str) -> None:
    run = read_replies(feedings(data)[how])
    assert run.error is None
    assert run.replies == expected
    if how == "trailing":
        # The partial reply behind the whole ones stays buffered, unreturned.
        assert run.reader.has_unparsed()
        assert run.reader.next_reply() is None
        # ... and comes out once its end arrives.
        run.reader.feed(b"e end\r\n")
        assert take(run.reader) == reply(250, b"more to come", b"and the end")
    else:
        assert not run.reader.has_unparsed()
    assert run.reader.next_reply() is None


def test_cr_at_the_end_of_a_chunk_waits_for_its_lf() -> None:
    run = read_replies([b"250 a\r"])
    assert run.replies == []
    assert run.reader.has_unparsed()
    run.reader.feed(b"\n")
    assert take(run.reader) == reply(250, b"a")


def test_bare_lf_does_not_end_a_line() -> None:
    run = read_replies([b"250 a\n"])
    assert run.replies == []
    assert run.error is None
    run.reader.feed(b"250 b\r\n")
    with pytest.raises(RemoteProtocolError, match="control character"):
        run.reader.next_reply()


INVALID: list[tuple[str, bytes, str]] = [
    # The code: Reply-code = %x32-35 %x30-35 %x30-39.
    ("1yz code", b"150 x\r\n", "2yz-5yz code"),
    ("100", b"100 x\r\n", "2yz-5yz code"),
    ("199", b"199 x\r\n", "2yz-5yz code"),
    ("6yz code", b"600 x\r\n", "2yz-5yz code"),
    ("0yz code", b"050 x\r\n", "2yz-5yz code"),
    ("two digits", b"25 x\r\n", "2yz-5yz code"),
    ("four digits", b"2500 x\r\n", "2yz-5yz code"),
    ("letters", b"abc def\r\n", "2yz-5yz code"),
    ("empty line", b"\r\n", "2yz-5yz code"),
    ("leading space", b" 250 x\r\n", "2yz-5yz code"),
    # The separator.
    ("separator X", b"250X\r\n", "2yz-5yz code"),
    ("separator tab", b"250\tx\r\n", "2yz-5yz code"),
    ("separator underscore", b"250_x\r\n", "2yz-5yz code"),
    # Control characters in the text (textstring = 1*(%d09 / %d32-126)).
    ("NUL", b"250 a\x00b\r\n", "control character"),
    ("ESC", b"250 \x1b[31mred\r\n", "control character"),
    ("DEL", b"250 a\x7fb\r\n", "control character"),
    ("bare CR inside", b"250 a\rb\r\n", "control character"),
    ("bare LF inside", b"250 a\nb\r\n", "control character"),
    ("CR before CRLF", b"250 a\r\r\n", "control character"),
    ("LF-ended line swallowed", b"250 ok\n250 ok\r\n", "control character"),
    ("control in continuation", b"250-a\r\n250-b\x01\r\n250 c\r\n", "control character"),
    ("NUL after dash", b"250-\x00\r\n250 x\r\n", "control character"),
    # The code of a multiline reply may not change.
    ("code change", b"250-a\r\n251 b\r\n", "changed its code from 250"),
    ("class change", b"250-a\r\n550 b\r\n", "changed its code from 250"),
    # The caps.
    ("line one over the cap", line_of_length(MAX_REPLY_LINE_LENGTH + 1), "longer than"),
    ("long line, CRLF", b"250 " + b"a" * 5000 + CRLF, "longer than"),
    ("long line, no CRLF", b"250 " + b"a" * 5000, "longer than"),
    ("long line, bad code", b"999" + b"a" * 3000 + CRLF, "longer than"),
    (
        "long continuation line",
        b"250-ok\r\n" + line_of_length(MAX_REPLY_LINE_LENGTH + 1, sep=b"-"),
        "longer than",
    ),
    ("one line too many", b"250-x\r\n" * MAX_REPLY_LINES + b"250 end\r\n", "more than 256 lines"),
    ("too many, no end", b"250-x\r\n" * MAX_REPLY_LINES, "more than 256 lines"),
    # The same, in a read that also holds a control character: every line of
    # it takes the line-by-line path, which counts too.
    (
        "too many, unclean read",
        b"250-x\r\n" * MAX_REPLY_LINES + b"250 \x01\r\n",
        "more than 256 lines",
    ),
]


@pytest.mark.parametrize("how", FEEDINGS)
@pytest.mark.parametrize(("data", "message"), [pytest.param(d, m, id=i) for i, d, m in INVALID])
def test_invalid_replies(data: bytes, message: str, how: str) -> None:
    run = read_replies(feedings(data)[how])
    assert run.error is not None
    assert message in str(run.error)
    assert run.replies == []
    # The error latches: the reader never resumes, whatever comes next.
    run.reader.feed(b"250 fine\r\n")
    with pytest.raises(RemoteProtocolError, match=message):
        run.reader.next_reply()


@pytest.mark.parametrize("how", FEEDINGS)
def test_replies_before_an_error_are_returned(how: str) -> None:
    run = read_replies(feedings(b"220 hi\r\n250 ok\r\n999 bad\r\n")[how])
    assert run.replies == [reply(220, b"hi"), reply(250, b"ok")]
    assert run.error is not None
    assert "b'999 bad'" in str(run.error)


def test_multiline_reply_before_a_bad_line_in_the_same_read() -> None:
    # The read fails the clean check, so its lines take the line-by-line
    # path: a whole multiline reply before the bad line is still returned.
    run = read_replies([b"250-a\r\n250 b\r\n250 c\x01\r\n"])
    assert run.replies == [reply(250, b"a", b"b")]
    assert run.error is not None
    assert "control character" in str(run.error)


def test_error_does_not_let_the_next_reply_through() -> None:
    # Before the latch, the reader skipped the bad line and returned "250 ok".
    reader = ReplyReader()
    reader.feed(b"999 bad\r\n250 ok\r\n")
    for _ in range(3):
        with pytest.raises(RemoteProtocolError, match="2yz-5yz"):
            reader.next_reply()


def test_code_change_does_not_glue_lines_onto_the_next_reply() -> None:
    reader = ReplyReader()
    reader.feed(b"250-a\r\n251 b\r\n250 c\r\n")
    with pytest.raises(RemoteProtocolError, match="changed its code"):
        reader.next_reply()
    with pytest.raises(RemoteProtocolError, match="changed its code"):
        reader.next_reply()


def test_error_message_shows_the_bytes() -> None:
    reader = ReplyReader()
    reader.feed(b"250 bad\x00text\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_reply()
    assert str(info.value) == "control character in reply text: b'250 bad\\x00text'"


def test_line_cap_boundary_byte_by_byte() -> None:
    """A line is refused as soon as it cannot fit, before its CRLF arrives."""
    fits = line_of_length(MAX_REPLY_LINE_LENGTH)
    reader = ReplyReader()
    for octet in bytewise(fits[:-1]):  # everything up to the CR of the CRLF
        reader.feed(octet)
        assert reader.next_reply() is None
    reader.feed(b"\n")
    assert take(reader) == reply(250, fits[4:-2])

    too_long = line_of_length(MAX_REPLY_LINE_LENGTH + 1)
    reader = ReplyReader()
    reader.feed(too_long[: MAX_REPLY_LINE_LENGTH - 1])
    assert reader.next_reply() is None
    reader.feed(too_long[MAX_REPLY_LINE_LENGTH - 1 : MAX_REPLY_LINE_LENGTH])
    with pytest.raises(RemoteProtocolError, match="longer than 2048 octets"):
        reader.next_reply()


def test_has_unparsed() -> None:
    reader = ReplyReader()
    assert not reader.has_unparsed()
    reader.feed(b"25")
    assert reader.next_reply() is None
    assert reader.has_unparsed()
    reader.feed(b"0-first\r\n")
    assert reader.next_reply() is None
    # The first line is parsed and kept; no byte is left in the buffer.
    assert reader.has_unparsed()
    reader.feed(b"250 last\r\n")
    assert take(reader) == reply(250, b"first", b"last")
    assert not reader.has_unparsed()
    assert reader.next_reply() is None
    assert not reader.has_unparsed()


def test_returned_lines_are_bytes() -> None:
    reader = ReplyReader()
    # Lines are cut from the buffered bytes; what comes out must be bytes (STYLE.md §2).
    reader.feed(b"250-a\r\n250 b\r\n")
    parsed = reader.next_reply()
    assert parsed is not None
    _, lines = parsed
    assert all(type(line) is bytes for line in lines)
    assert type(lines) is tuple


# -- memory stays bounded -----------------------------------------------------------

HOLD_LIMIT = MAX_REPLY_LINE_LENGTH * MAX_REPLY_LINES


def feed_until_refused(reader: ReplyReader, chunk: bytes, limit: int) -> tuple[int, str]:
    """Feed ``chunk`` again and again, as an endless server would.

    Returns how many chunks went in and the error they drew.  Fails if
    ``limit`` chunks go by without an error, or if the reader ever holds more
    than one chunk beyond the cap of what a reply may cost.
    """
    for count in range(1, limit + 1):
        reader.feed(chunk)
        assert held_bytes(reader) < HOLD_LIMIT + len(chunk)
        try:
            reader.next_reply()
        except RemoteProtocolError as exc:
            return count, str(exc)
        assert held_bytes(reader) < HOLD_LIMIT
    raise AssertionError(f"no error after {limit} chunks of {len(chunk)} octets")


@pytest.mark.parametrize("chunk_size", [1, 7, 1000, 4096])
def test_endless_line_is_cut_off(chunk_size: int) -> None:
    """A server that never sends CRLF is refused as soon as one line cannot fit."""
    reader = ReplyReader()
    count, error = feed_until_refused(reader, b"2" * chunk_size, limit=100_000)
    assert "longer than 2048 octets" in error
    # Refused by the first chunk that brings the pending line to the cap.
    assert count == -(-MAX_REPLY_LINE_LENGTH // chunk_size)
    assert held_bytes(reader) < MAX_REPLY_LINE_LENGTH + chunk_size


@pytest.mark.parametrize("line_length", [7, MAX_REPLY_LINE_LENGTH])
def test_endless_multiline_reply_is_cut_off(line_length: int) -> None:
    """A reply that never ends is refused at the line cap; its lines stay bounded."""
    reader = ReplyReader()
    line = line_of_length(line_length, sep=b"-")
    count, error = feed_until_refused(reader, line, limit=100_000)
    assert "more than 256 lines" in error
    assert count == MAX_REPLY_LINES


def test_consumed_bytes_are_released() -> None:
    reader = ReplyReader()
    for _ in range(1000):
        reader.feed(b"250 ok\r\n25")
        assert take(reader) == reply(250, b"ok")
        assert reader.next_reply() is None
        reader.feed(b"0 ok\r\n")
        assert take(reader) == reply(250, b"ok")
        assert reader.next_reply() is None
        assert held_bytes(reader) == 0


# -- hypothesis: valid replies, any split -------------------------------------------

_TEXT_OCTETS = [0x09, *range(0x20, 0x7F), *range(0x80, 0x100)]
_texts = st.lists(st.sampled_from(_TEXT_OCTETS), max_size=24).map(bytes)
_codes = st.builds(
    lambda a, b, c: a * 100 + b * 10 + c,
    st.integers(2, 5),
    st.integers(0, 5),
    st.integers(0, 9),
)


@st.composite
def _status_prefixed(draw: st.DrawFn, code: int) -> bytes:
    """Text that often starts with something like an RFC 3463 status code."""
    text = draw(_texts)
    if draw(st.booleans()):
        klass = draw(st.sampled_from([code // 100, 2, 3, 4, 5, 1]))
        parts = draw(st.lists(st.integers(0, 1200), min_size=1, max_size=4))
        head = ".".join(str(n) for n in [klass, *parts]).encode()
        text = head + draw(st.sampled_from([b"", b" ", b"\t", b"x"])) + text
    return text


@st.composite
def _replies(draw: st.DrawFn) -> tuple[int, tuple[bytes, ...], bool]:
    code = draw(_codes)
    first = draw(_status_prefixed(code))
    more = draw(st.lists(_texts, max_size=4))
    return code, (first, *more), draw(st.booleans())


def serialise(replies: list[tuple[int, tuple[bytes, ...], bool]]) -> bytes:
    """An encoder independent of the reader: code, "-" or " ", text, CRLF."""
    out = bytearray()
    for code, lines, bare in replies:
        digits = b"%d" % code
        for text in lines[:-1]:
            out += digits + b"-" + text + CRLF
        last = lines[-1]
        # A last line without text may be sent as the bare code (RFC 5321 §4.2).
        out += digits + (b"" if bare and not last else b" " + last) + CRLF
    return bytes(out)


def oracle_enhanced(code: int, text: bytes) -> tuple[int, int, int] | None:
    """RFC 3463 §2 / RFC 2034 §3, written with split instead of a regex."""
    head = text.split(b" ", 1)[0]
    parts = head.split(b".")
    if len(parts) != 3 or not all(p.isdigit() and 1 <= len(p) <= 3 for p in parts):
        return None
    if parts[0] not in (b"2", b"4", b"5") or int(parts[0]) != code // 100:
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


@given(
    st.lists(_replies(), min_size=1, max_size=5),
    st.lists(st.integers(0, 2000), max_size=12),
)
def test_valid_replies_any_split(
    model: list[tuple[int, tuple[bytes, ...], bool]], points: list[int]
) -> None:
    data = serialise(model)
    expected = [Parsed(c, lines, oracle_enhanced(c, lines[0])) for c, lines, _ in model]
    for chunks in (split_at(data, points), [data], bytewise(data)):
        run = read_replies(chunks)
        assert run.error is None
        assert run.replies == expected
        assert not run.reader.has_unparsed()


# -- hypothesis: arbitrary bytes ----------------------------------------------------

# Under ``python -bb`` hypothesis can crash in its own cache when a drawn b""
# meets a drawn 0 (hash(b"") == hash(0) == 0, so the dict compares them), so
# no strategy here draws empty bytes; the empty input has its own test.
_FRAGMENTS = [
    b"250 ok\r\n", b"250-", b"250 ", b"\r\n", b"\r", b"\n", b"\x00", b"550", b"5.7.1 ",
    b"2.0.0", b"\xff\xfe", b"354 go\r\n", b"\t", b" ",
]  # fmt: skip
_junk = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=40),
        st.sampled_from(_FRAGMENTS),
        st.integers(0, 2 * MAX_REPLY_LINE_LENGTH + 10).map(lambda n: b"a" * n),
        st.integers(0, MAX_REPLY_LINES + 2).map(lambda n: b"250-x\r\n" * n),
    ),
    max_size=8,
).map(b"".join)


def _outcome(chunks: list[bytes]) -> tuple[list[Parsed], bool]:
    run = read_replies(chunks)
    # At rest (after next_reply answered None) the reader holds less than one
    # line in its buffer and fewer than MAX_REPLY_LINES lines, each shorter
    # than a line: under MAX_REPLY_LINE_LENGTH * MAX_REPLY_LINES in all.
    assert run.peak_buffer < MAX_REPLY_LINE_LENGTH
    assert run.peak_lines < MAX_REPLY_LINES
    return run.replies, run.error is not None


@given(_junk, st.lists(st.integers(0, 10_000), max_size=16))
def test_arbitrary_bytes_only_remote_protocol_error(data: bytes, points: list[int]) -> None:
    """Only RemoteProtocolError escapes, and memory stays bounded.

    The chunking changes neither the replies nor whether the bytes are refused.
    """
    whole = _outcome([data])
    assert _outcome(split_at(data, points)) == whole
    assert _outcome(bytewise(data)) == whole


@given(st.binary(min_size=1, max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_random_bytes_only_remote_protocol_error(data: bytes, points: list[int]) -> None:
    assert _outcome(split_at(data, points)) == _outcome([data])


def test_partial_reply_constant_is_partial() -> None:
    # The "trailing" feeding relies on PARTIAL_REPLY never completing a reply.
    run = read_replies([PARTIAL_REPLY])
    assert run.replies == []
    assert run.error is None
    assert run.reader.has_unparsed()


# -- reads larger than the split window ---------------------------------------------


@pytest.mark.parametrize("shift", [0, 1, 7, 13])
def test_a_read_larger_than_the_split_window(shift: int) -> None:
    """One read of ~200 KiB holding thousands of replies, a multiline one among them
    wherever the 64 KiB window falls: the same replies as byte-sized reads give,
    and the reader never splits more than a window at once."""
    from smtp_core._replies import _WINDOW

    single = b"250 2.1.5 Ok\r\n"
    multi = b"250-first\r\n" + b"250-middle\r\n" * 40 + b"250 last\r\n"
    data = b"220 x\r\n" * shift + single * 5000 + multi + single * 9000 + multi
    assert len(data) > 3 * _WINDOW
    reader = ReplyReader()
    reader.feed(data)
    whole = []
    while (reply := take(reader)) is not None:
        whole.append(reply)
        assert len(reader._ready) <= _WINDOW // 2  # lines cut from one window at most
    assert len(whole) == shift + 14002
    assert whole[shift + 5000] == reply_of(multi)
    assert whole[-1] == reply_of(multi)
    assert not reader.has_unparsed()
    # Fed in reads of 997 octets (no divisor of any line length) it is the same.
    run = read_replies([data[i : i + 997] for i in range(0, len(data), 997)])
    assert run.error is None
    assert run.replies == whole


def reply_of(data: bytes) -> Parsed:
    """The one reply ``data`` holds, parsed without the reader."""
    lines = data.split(b"\r\n")[:-1]
    return Parsed(int(lines[0][:3]), tuple(line[4:] for line in lines))
