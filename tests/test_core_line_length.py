"""RFC 5321 §4.5.3.1.6: message lines of at most 998 octets, enforced unless turned off."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smtp_core as sc
from smtp_core import DataEncoder, LocalProtocolError, State
from tests.test_core_bdat import CHUNKING, in_transaction
from tests.test_core_connection import feed, in_data, state


def longest_line(message: bytes) -> int:
    """An independent measure: split on every kind of line ending."""
    normalised = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return max(len(line) for line in normalised.split(b"\n"))


@given(
    st.lists(st.sampled_from([b"a" * 7, b"\n", b"\r", b"\r\n", b"xy"]), max_size=60),
    st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    st.integers(min_value=1, max_value=40),
)
def test_refused_exactly_when_a_line_is_too_long(
    pieces: list[bytes], cuts: list[int], limit: int
) -> None:
    message = b"".join(pieces)
    points = sorted({min(c, len(message)) for c in cuts})
    chunks = [message[a:b] for a, b in zip([0, *points], [*points, len(message)], strict=True)]
    encoder = DataEncoder(max_line_length=limit)
    try:
        for chunk in chunks:
            encoder.encode(chunk)
        refused = False
    except LocalProtocolError:
        refused = True
    assert refused == (longest_line(message) > limit)


def test_998_passes_999_does_not() -> None:
    DataEncoder().encode(b"x" * 998 + b"\r\n" + b"y" * 998)
    with pytest.raises(LocalProtocolError, match="999 octets is over the limit of 998"):
        DataEncoder().encode(b"ok\r\n" + b"x" * 999 + b"\r\nok")
    # The leading dot that transparency adds does not count (§4.5.3.1.6).
    assert DataEncoder().encode(b"." + b"x" * 997 + b"\r\n").startswith(b"..")


def test_a_long_line_across_chunks() -> None:
    encoder = DataEncoder()
    encoder.encode(b"start\r\n" + b"x" * 500)
    with pytest.raises(LocalProtocolError):
        encoder.encode(b"y" * 499)
    with pytest.raises(LocalProtocolError):
        encoder.encode(b"y" * 499 + b"\r\n")
    assert encoder.encode(b"y" * 498) == b"y" * 498  # nothing of the refused chunks stuck


def test_off_switch() -> None:
    assert DataEncoder(max_line_length=None).encode(b"x" * 5000) == b"x" * 5000


def test_a_refused_chunk_leaves_everything_as_it_was() -> None:
    conn = in_data()
    conn.send(sc.Content(b"fine\r\n" + b"a" * 900))
    with pytest.raises(LocalProtocolError, match="999 octets"):
        conn.send(sc.Content(b"z" * 99))
    assert state(conn) is State.DATA
    # The open line is still 900 octets long: a line ending may follow.
    assert conn.send(sc.Content(b"z" * 98 + b"\n.")) == b"z" * 98 + b"\r\n.."
    assert conn.send(sc.EndOfContent()) == b"\r\n.\r\n"


def test_connection_opt_out() -> None:
    conn = sc.Connection(max_line_length=None)
    for reply, command in (
        (b"220 x\r\n", sc.Ehlo("client.test")),
        (b"250 x\r\n", sc.Mail("a@b.test")),
        (b"250 ok\r\n", sc.Rcpt("x@y.test")),
        (b"250 ok\r\n", sc.Data()),
    ):
        feed(conn, reply)
        conn.send(command)
    feed(conn, b"354 go\r\n")
    assert conn.send(sc.Content(b"z" * 5000)) == b"z" * 5000


def test_bdat_text_lines_are_limited_too() -> None:
    conn = in_transaction(CHUNKING)
    with pytest.raises(LocalProtocolError, match="over the limit"):
        conn.send(sc.Bdat(b"q" * 1000, last=True))


def test_binarymime_has_no_lines() -> None:
    conn = in_transaction(CHUNKING, params=("BODY=BINARYMIME",))
    assert conn.send(sc.Bdat(b"q" * 5000, last=True)).startswith(b"BDAT 5000 LAST\r\n")


def test_clone_is_independent() -> None:
    encoder = DataEncoder(max_line_length=10)
    encoder.encode(b"12345")
    twin = encoder.clone()
    twin.encode(b"12345")
    with pytest.raises(LocalProtocolError):
        twin.encode(b"6")
    assert encoder.encode(b"12345") == b"12345"
