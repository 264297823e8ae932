"""The reader's set lookups accept exactly the lines the RFC 5321 grammar regex accepts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smtp_core import RemoteProtocolError
from smtp_core._abnf import REPLY_LINE
from smtp_core._replies import ReplyReader

PREFIXES = st.sampled_from([b"250", b"199", b"260", b"550", b"6", b"25", b"2500", b"354", b"421"])
SEPARATORS = st.sampled_from([b"", b" ", b"-", b"x", b"\t"])
TEXT = st.binary(max_size=8).filter(lambda t: b"\r" not in t and b"\n" not in t)


@given(PREFIXES, SEPARATORS, TEXT)
def test_fast_check_agrees_with_the_grammar(code: bytes, separator: bytes, text: bytes) -> None:
    line = code + separator + (text if separator else b"")
    grammar_ok = REPLY_LINE.fullmatch(line) is not None
    reader = ReplyReader()
    # Ended as a final line, so a "-" line is followed by one that closes it.
    reader.feed(line + b"\r\n" + (line[:3] + b" end\r\n" if separator == b"-" else b""))
    try:
        reader.next_reply()
        accepted = True
    except RemoteProtocolError as exc:
        accepted = "control character" in str(exc)  # the grammar has no say on text
    assert accepted == grammar_ok
