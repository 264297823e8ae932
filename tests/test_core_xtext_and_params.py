"""xtext (RFC 3461) and the MAIL parameters that need an extension."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smtp_core as sc
from tests.test_core_connection import ready


@given(st.binary())
def test_xtext_round_trip(data: bytes) -> None:
    encoded = sc.xtext_encode(data)
    assert encoded.isascii() and " " not in encoded and "=" not in encoded
    assert sc.xtext_decode(encoded) == data


def test_xtext_examples() -> None:
    assert sc.xtext_encode("rfc822;a+b=c@x.test") == "rfc822;a+2Bb+3Dc@x.test"
    assert sc.xtext_encode("Jő") == "J+C5+91"
    assert sc.xtext_decode(b"a+2Bb") == b"a+b"
    # An xtext value is a valid ESMTP parameter value.
    sc.Rcpt("x@y.test", (f"ORCPT={sc.xtext_encode('rfc822;é x@y.test')}",))


@pytest.mark.parametrize("bad", ["a+2b", "a b", "a=b", "+4", "é"])
def test_xtext_refused(bad: str) -> None:
    with pytest.raises(sc.RemoteProtocolError, match="not xtext"):
        sc.xtext_decode(bad)


@pytest.mark.parametrize(
    ("param", "extension"),
    [
        ("AUTH=<>", "AUTH"),
        ("REQUIRETLS", "REQUIRETLS"),
        ("MT-PRIORITY=3", "MT-PRIORITY"),
        ("BY=120;R", "DELIVERBY"),
    ],
)
def test_mail_parameters_need_their_extension(param: str, extension: str) -> None:
    conn = ready(b"250-x\r\n250 8BITMIME\r\n")
    with pytest.raises(sc.LocalProtocolError, match=f"needs {extension}"):
        conn.send(sc.Mail("a@b.test", (param,)))
    offered = ready(f"250-x\r\n250 {extension}\r\n".encode())
    assert offered.send(sc.Mail("a@b.test", (param,))).endswith(f" {param}\r\n".encode())


def test_typed_views_of_the_newer_extensions() -> None:
    ext = sc.Extensions.from_ehlo_lines(
        (b"x", b"BINARYMIME", b"REQUIRETLS", b"DELIVERBY 240", b"MT-PRIORITY MIXER")
    )
    assert ext.binarymime and ext.requiretls
    assert ext.deliverby == 240
    assert ext.mt_priority == "MIXER"
    bare = sc.Extensions.from_ehlo_lines((b"x", b"DELIVERBY"))
    assert bare.deliverby == 0
    assert bare.mt_priority is None
    assert sc.Extensions().deliverby is None
    assert not sc.Extensions().binarymime and not sc.Extensions().requiretls
