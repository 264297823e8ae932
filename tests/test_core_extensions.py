"""Extensions: real EHLO/LHLO replies parsed into the typed view.

The replies are the ones recorded from postfix, exim, opensmtpd, dovecot and
aiosmtpd (``tests/transcripts/ehlo/``, copied from the shared transcript set so
that a clean clone has them).  The expected values below were read off the
files by eye, not computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from smtp_core import Connection, Ehlo, Extensions, Greeting, Lhlo, Reply
from tests.helpers import (
    TRANSCRIPTS,
    TranscriptBlock,
    bytewise,
    collect_events,
    load_ehlo_transcript,
    read_replies,
)

EHLO_DIR = TRANSCRIPTS / "ehlo"


@dataclass(frozen=True)
class Expected:
    """One recorded reply, as read from the file."""

    client: bytes
    code: int
    enhanced: tuple[int, int, int] | None = None
    #: Everything advertised, keyword -> parameters; None for a refusal.
    advertised: dict[str, str] | None = None
    size: int | None = None
    pipelining: bool = False
    auth: frozenset[str] = frozenset()
    chunking: bool = False
    smtputf8: bool = False
    starttls: bool = False
    dsn: bool = False
    eightbitmime: bool = False
    enhanced_status_codes: bool = False


EHLO = b"EHLO client.example\r\n"
LHLO = b"LHLO client.example\r\n"
SIZE = "67108864"

EXPECTED: dict[str, list[Expected]] = {
    "aiosmtpd": [
        Expected(
            EHLO, 250,
            advertised={"SIZE": SIZE, "8BITMIME": "", "SMTPUTF8": "", "STARTTLS": "", "HELP": ""},
            size=67108864, smtputf8=True, starttls=True, eightbitmime=True,
        ),
        Expected(
            EHLO, 250,
            advertised={
                "SIZE": SIZE, "8BITMIME": "", "SMTPUTF8": "", "AUTH": "LOGIN PLAIN", "HELP": "",
            },
            size=67108864, auth=frozenset({"LOGIN", "PLAIN"}), smtputf8=True, eightbitmime=True,
        ),
        Expected(EHLO, 500),
        Expected(LHLO, 500),
    ],
    "dovecot": [
        Expected(
            LHLO, 250,
            advertised={
                "8BITMIME": "", "CHUNKING": "", "ENHANCEDSTATUSCODES": "", "PIPELINING": "",
                "STARTTLS": "",
            },
            pipelining=True, chunking=True, starttls=True, eightbitmime=True,
            enhanced_status_codes=True,
        ),
        Expected(EHLO, 500, enhanced=(5, 5, 1)),
    ],
    "exim": [
        Expected(
            EHLO, 250,
            advertised={
                "SIZE": SIZE, "8BITMIME": "", "DSN": "", "PIPELINING": "", "PIPECONNECT": "",
                "CHUNKING": "", "STARTTLS": "", "PRDR": "", "SMTPUTF8": "", "HELP": "",
            },
            size=67108864, pipelining=True, chunking=True, smtputf8=True, starttls=True,
            dsn=True, eightbitmime=True,
        ),
        Expected(
            EHLO, 250,
            advertised={
                "SIZE": SIZE, "8BITMIME": "", "DSN": "", "PIPELINING": "", "PIPECONNECT": "",
                "AUTH": "PLAIN LOGIN CRAM-MD5", "CHUNKING": "", "PRDR": "", "SMTPUTF8": "",
                "HELP": "",
            },
            size=67108864, pipelining=True, auth=frozenset({"PLAIN", "LOGIN", "CRAM-MD5"}),
            chunking=True, smtputf8=True, dsn=True, eightbitmime=True,
        ),
        Expected(LHLO, 500),
    ],
    "opensmtpd": [
        Expected(
            EHLO, 250,
            advertised={
                "8BITMIME": "", "ENHANCEDSTATUSCODES": "", "SIZE": SIZE, "DSN": "", "HELP": "",
            },
            size=67108864, dsn=True, eightbitmime=True, enhanced_status_codes=True,
        ),
        Expected(LHLO, 500, enhanced=(5, 5, 1)),
    ],
    "postfix": [
        Expected(
            EHLO, 250,
            advertised={
                "PIPELINING": "", "SIZE": SIZE, "VRFY": "", "ETRN": "", "STARTTLS": "",
                "ENHANCEDSTATUSCODES": "", "8BITMIME": "", "DSN": "", "SMTPUTF8": "",
                "CHUNKING": "",
            },
            size=67108864, pipelining=True, chunking=True, smtputf8=True, starttls=True,
            dsn=True, eightbitmime=True, enhanced_status_codes=True,
        ),
        Expected(
            EHLO, 250,
            advertised={
                "PIPELINING": "", "SIZE": SIZE, "VRFY": "", "ETRN": "",
                "AUTH": "PLAIN LOGIN CRAM-MD5", "ENHANCEDSTATUSCODES": "", "8BITMIME": "",
                "DSN": "", "SMTPUTF8": "", "CHUNKING": "",
            },
            size=67108864, pipelining=True, auth=frozenset({"PLAIN", "LOGIN", "CRAM-MD5"}),
            chunking=True, smtputf8=True, dsn=True, eightbitmime=True,
            enhanced_status_codes=True,
        ),
        Expected(LHLO, 500, enhanced=(5, 5, 2)),
    ],
}  # fmt: skip

CASES = [
    pytest.param(server, index, id=f"{server}-reply{index + 1}")
    for server, replies in EXPECTED.items()
    for index in range(len(replies))
]


def block(server: str, index: int) -> TranscriptBlock:
    header, blocks = load_ehlo_transcript(EHLO_DIR / f"{server}.txt")
    assert header["server"] == server
    return blocks[index]


def test_every_transcript_is_covered() -> None:
    assert sorted(p.stem for p in EHLO_DIR.glob("*.txt")) == sorted(EXPECTED)
    total = 0
    for server, expected in EXPECTED.items():
        header, blocks = load_ehlo_transcript(EHLO_DIR / f"{server}.txt")
        assert header["format"].startswith("smtp-transcript/1")
        assert int(header["distinct-replies"]) == len(blocks) == len(expected)
        total += len(blocks)
    assert total == 14  # as the transcripts README counts them


@pytest.mark.parametrize(("server", "index"), CASES)
def test_recorded_reply(server: str, index: int) -> None:
    expected = EXPECTED[server][index]
    recorded = block(server, index)
    assert recorded.client == expected.client
    data = b"".join(recorded.server_chunks)
    outcomes = [read_replies(list(recorded.server_chunks)), read_replies(bytewise(data))]
    for run in outcomes:
        assert run.error is None
        assert len(run.replies) == 1
        assert not run.reader.has_unparsed()
    parsed = outcomes[0].replies[0]
    assert outcomes[1].replies == [parsed]
    assert parsed.code == expected.code
    assert parsed.enhanced == expected.enhanced
    extensions = Extensions.from_ehlo_lines(parsed.lines)
    if expected.advertised is None:
        assert len(parsed.lines) == 1
        assert dict(extensions) == {}
        return
    assert dict(extensions) == expected.advertised
    assert list(extensions) == list(expected.advertised)  # in the order advertised
    assert extensions.size == expected.size
    assert extensions.pipelining is expected.pipelining
    assert extensions.auth == expected.auth
    assert extensions.chunking is expected.chunking
    assert extensions.smtputf8 is expected.smtputf8
    assert extensions.starttls is expected.starttls
    assert extensions.dsn is expected.dsn
    assert extensions.eightbitmime is expected.eightbitmime
    assert extensions.enhanced_status_codes is expected.enhanced_status_codes
    # The first line is the server's name and greeting text, never a keyword.
    assert parsed.lines[0].split(b" ")[0].decode().upper() not in extensions


@pytest.mark.parametrize(("server", "index"), CASES)
def test_recorded_reply_through_a_connection(server: str, index: int) -> None:
    """The connection sends what the recorded client sent and keeps what EHLO advertised."""
    expected = EXPECTED[server][index]
    recorded = block(server, index)
    # The connection's mode follows what the client said, not the server: the
    # 500 replies are to EHLO sent to an LMTP server and LHLO to an SMTP one.
    lmtp = expected.client == LHLO
    conn = Connection(lmtp=lmtp)
    [greeting] = collect_events(conn, [b"220 " + server.encode() + b" ready\r\n"])
    assert isinstance(greeting, Greeting)
    hello = Lhlo("client.example") if lmtp else Ehlo("client.example")
    assert conn.send(hello) == recorded.client
    [event] = collect_events(conn, recorded.server_chunks)
    assert isinstance(event, Reply)
    assert event.command == hello
    assert event.code == expected.code
    assert dict(conn.extensions) == (expected.advertised or {})


# -- the parser on its own ----------------------------------------------------------


def ext(*lines: bytes) -> Extensions:
    """Extensions from the text lines after the server's name line."""
    return Extensions.from_ehlo_lines((b"mx.example greets you", *lines))


def test_case_insensitive_lookup() -> None:
    extensions = ext(b"size 1000", b"Pipelining", b"auth login Plain", b"x-Foo Bar")
    assert list(extensions) == ["SIZE", "PIPELINING", "AUTH", "X-FOO"]
    for key in ["SIZE", "size", "Size"]:
        assert key in extensions
        assert extensions[key] == "1000"
        assert extensions.get(key) == "1000"
    assert extensions["x-foo"] == "Bar"  # parameters keep their case
    assert extensions.pipelining
    assert extensions.size == 1000
    assert extensions.auth == frozenset({"LOGIN", "PLAIN"})


def test_lookup_misses() -> None:
    extensions = ext(b"SIZE 1000")
    assert "CHUNKING" not in extensions
    assert 1 not in extensions  # type: ignore[comparison-overlap]
    assert None not in extensions
    assert extensions.get("CHUNKING") is None
    assert extensions.get(1) is None  # type: ignore[call-overload]
    with pytest.raises(KeyError):
        extensions["chunking"]
    with pytest.raises(KeyError):
        extensions[b"SIZE"]  # type: ignore[index]


def test_smtp_sink_empty_line_is_tolerated() -> None:
    # postfix's smtp-sink ends its EHLO reply with a bare "250 ".
    run = read_replies([b"250-sink.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 \r\n"])
    [parsed] = run.replies
    assert parsed.lines == (b"sink.example", b"PIPELINING", b"8BITMIME", b"")
    extensions = Extensions.from_ehlo_lines(parsed.lines)
    assert dict(extensions) == {"PIPELINING": "", "8BITMIME": ""}
    assert extensions.pipelining
    assert extensions.eightbitmime


def test_unknown_keywords_kept() -> None:
    extensions = ext(
        b"XCLIENT NAME ADDR PROTO HELO",
        b"X-EXPS GSSAPI NTLM",
        b"XFOO  spaced   out\tparams ",
        b"DELIVERBY 240",
        b"REQUIRETLS",
        b"BINARYMIME",
        b"X_UNDER score",
    )
    assert dict(extensions) == {
        "XCLIENT": "NAME ADDR PROTO HELO",
        "X-EXPS": "GSSAPI NTLM",
        "XFOO": "spaced out params",
        "DELIVERBY": "240",
        "REQUIRETLS": "",
        "BINARYMIME": "",
        "X_UNDER": "score",
    }


@pytest.mark.parametrize(
    "line", [b"", b"   ", b"-DASH", b"(comment)", b"=x", b"\xc3\xbcTF8", b"\xff\xfe", b"\t"]
)
def test_non_keyword_lines_skipped(line: bytes) -> None:
    extensions = ext(b"PIPELINING", line, b"DSN")
    assert dict(extensions) == {"PIPELINING": "", "DSN": ""}


def test_first_line_is_never_a_keyword() -> None:
    assert dict(Extensions.from_ehlo_lines((b"SIZE 1000",))) == {}
    assert dict(Extensions.from_ehlo_lines(())) == {}
    assert dict(Extensions.from_ehlo_lines((b"", b"SIZE 1000"))) == {"SIZE": "1000"}


def test_first_advertisement_wins_except_auth_which_adds_up() -> None:
    extensions = ext(b"SIZE 100", b"size 200", b"AUTH PLAIN", b"AUTH LOGIN")
    assert extensions.size == 100
    assert extensions.auth == frozenset({"PLAIN", "LOGIN"})


def test_surrounding_space_stripped() -> None:
    assert dict(ext(b"  SIZE 1000  ", b"\tDSN\t")) == {"SIZE": "1000", "DSN": ""}


@pytest.mark.parametrize(
    ("line", "size"),
    [
        (b"SIZE 10240000", 10240000),
        (b"SIZE 0", 0),
        (b"SIZE", 0),  # RFC 1870: no number means no fixed limit
        (b"SIZE ", 0),
        (b"SIZE unlimited", 0),
        (b"SIZE 1 2", 0),
        (b"SIZE -1", 0),
        (b"SIZE 1e6", 0),
        ("SIZE \u00b2".encode(), 0),  # isdigit() but not int(): must not raise
        ("SIZE \u0661\u0662".encode(), 0),  # RFC 1870: size-param is ASCII DIGITs
    ],
)
def test_size(line: bytes, size: int) -> None:
    assert ext(line).size == size


def test_absent_everything() -> None:
    extensions = ext()
    assert len(extensions) == 0
    assert extensions.size is None
    assert extensions.auth == frozenset()
    assert not extensions.pipelining
    assert not extensions.smtputf8
    assert not extensions.eightbitmime
    assert not extensions.starttls
    assert not extensions.chunking
    assert not extensions.enhanced_status_codes
    assert not extensions.dsn


def test_auth_without_mechanisms() -> None:
    extensions = ext(b"AUTH")
    assert "AUTH" in extensions
    assert extensions.auth == frozenset()


def test_constructor_and_mapping_behaviour() -> None:
    assert dict(Extensions()) == {}
    extensions = Extensions({"size": "10", "Pipelining": ""})
    assert list(extensions) == ["SIZE", "PIPELINING"]
    assert extensions.size == 10
    assert extensions.pipelining
    assert extensions == {"SIZE": "10", "PIPELINING": ""}
    assert extensions == Extensions({"SIZE": "10", "PIPELINING": ""})
    assert repr(extensions) == "Extensions({'SIZE': '10', 'PIPELINING': ''})"
    source = {"DSN": ""}
    copied = Extensions(source)
    source["SIZE"] = "1"
    assert dict(copied) == {"DSN": ""}  # a view of its own, not of the caller's dict


def test_old_style_auth_equals_line_is_merged() -> None:
    from smtp_core import Extensions

    ext = Extensions.from_ehlo_lines((b"srv", b"AUTH=LOGIN PLAIN", b"AUTH LOGIN CRAM-MD5"))
    assert ext["AUTH"] == "LOGIN PLAIN CRAM-MD5"
    assert ext.auth == frozenset({"LOGIN", "PLAIN", "CRAM-MD5"})
    only_old = Extensions.from_ehlo_lines((b"srv", b"AUTH=LOGIN"))
    assert only_old.auth == frozenset({"LOGIN"})


def test_several_auth_lines_add_up() -> None:
    from smtp_core import Extensions

    ext = Extensions.from_ehlo_lines((b"srv", b"AUTH PLAIN", b"AUTH LOGIN", b"auth cram-md5"))
    assert ext.auth == frozenset({"PLAIN", "LOGIN", "CRAM-MD5"})
    assert list(ext) == ["AUTH"]
    bare = Extensions.from_ehlo_lines((b"srv", b"AUTH"))
    assert "AUTH" in bare
    assert bare.auth == frozenset()


def test_lines_are_parsed_on_first_use_and_only_then() -> None:
    extensions = Extensions.from_ehlo_lines((b"mx.example", b"PIPELINING", b"SIZE 1000"))
    # Not parsed yet: the slot is empty (object.__getattribute__ skips __getattr__).
    with pytest.raises(AttributeError):
        object.__getattribute__(extensions, "_items")
    assert extensions.pipelining
    assert object.__getattribute__(extensions, "_items") == {"PIPELINING": "", "SIZE": "1000"}
    assert extensions.size == 1000
    assert dict(extensions) == {"PIPELINING": "", "SIZE": "1000"}
    # Unknown attributes are still an AttributeError, parsed or built directly.
    with pytest.raises(AttributeError):
        extensions.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError):
        Extensions().no_such_thing  # type: ignore[attr-defined]  # noqa: B018
