"""The recorded sessions in ``tests/transcripts``: read, written, parsed and replayed.

157 byte-exact sessions of postfix, exim, opensmtpd, dovecot (LMTP) and
aiosmtpd (README.md there says how they were made).  Three things are checked:

a. every file parses and :meth:`Transcript.dumps` writes it back byte for
   byte; so do transcripts that hypothesis makes up, and the recorder (with
   AUTH payloads redacted) rebuilds every session from its chunks;
b. every server byte stream parses into the same replies whether fed as
   recorded or byte by byte, with no ``RemoteProtocolError``;
c. every session whose client side the engine can produce is replayed through
   ``smtp_core.Connection``: the commands are rebuilt from the client's lines,
   sent with ``send``/``send_many`` in the recorded grouping, must give exactly
   the recorded bytes, and every reply must be paired with the command whose
   line it answers.  The sessions the engine deliberately cannot produce are
   listed in ``EXCLUDED`` with the reason and the client line where the replay
   stops; for those the engine must refuse that line with
   ``LocalProtocolError`` (or no command object can write it at all).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtp_core
from smtp_core._replies import ReplyReader
from smtp_core._transcript import (
    FORMAT,
    REDACTED_PAYLOAD,
    Record,
    Transcript,
    TranscriptError,
    TranscriptRecorder,
    parse_transcript,
)
from tests.helpers import Parsed, parsed

TRANSCRIPTS = Path(__file__).parent / "transcripts"
SERVERS = ("aiosmtpd", "dovecot", "exim", "opensmtpd", "postfix")
SESSIONS = sorted(
    path.relative_to(TRANSCRIPTS).as_posix()
    for server in SERVERS
    for path in (TRANSCRIPTS / server).glob("*.txt")
)


@cache
def text_of(name: str) -> str:
    return (TRANSCRIPTS / name).read_text(encoding="utf-8")


@cache
def load(name: str) -> Transcript:
    return parse_transcript(text_of(name))


@cache
def index() -> dict[str, dict[str, object]]:
    entries = json.loads((TRANSCRIPTS / "index.json").read_text(encoding="utf-8"))
    return {entry["file"]: entry for entry in entries}


# ---------------------------------------------------------------------------
# a. reading and writing
# ---------------------------------------------------------------------------


def test_corpus_is_complete() -> None:
    assert len(SESSIONS) == 157
    assert sorted(index()) == SESSIONS
    assert (TRANSCRIPTS / "README.md").is_file()  # provenance travels with the files


@pytest.mark.parametrize("name", SESSIONS)
def test_file_round_trips(name: str) -> None:
    text = text_of(name)
    transcript = load(name)
    assert transcript.dumps() == text
    assert parse_transcript(transcript.dumps()) == transcript
    entry = index()[name]
    assert transcript.header("format") == FORMAT
    assert transcript.header("server") == entry["server"] == name.split("/", maxsplit=1)[0]
    assert transcript.header("protocol") == entry["protocol"]
    assert transcript.header("scenario") == entry["scenario"] == Path(name).stem
    assert len(transcript.chunks("C")) + len(transcript.chunks("S")) == entry["chunks"]


_KEYS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)
_LINE_TEXT = st.text(st.characters(exclude_characters="\n"), max_size=30)
_EVENTS = st.sampled_from(["server-close", "client-close", "server-reset", "starttls", "x-new.1"])
_CHUNK_RECORDS = st.builds(Record, st.sampled_from(["C", "S"]), st.binary(max_size=40))
_RECORDS = st.one_of(
    _CHUNK_RECORDS,
    st.builds(Record, st.just("E"), _EVENTS),
    st.builds(Record, st.just("#"), _LINE_TEXT),
)


@st.composite
def transcripts(draw: st.DrawFn) -> Transcript:
    headers = draw(st.lists(st.tuples(_KEYS, _LINE_TEXT), max_size=5))
    if draw(st.booleans()):
        headers.insert(0, ("format", FORMAT))
    headers = [(k, v) for k, v in headers if k != "format" or v == FORMAT]
    first = draw(_CHUNK_RECORDS)  # a comment first could read as a header
    records = draw(st.lists(_RECORDS, max_size=12))
    return Transcript(tuple(headers), (first, *records))


@given(transcripts())
@settings(max_examples=200)
def test_synthesized_transcripts_round_trip(transcript: Transcript) -> None:
    text = transcript.dumps()
    assert parse_transcript(text) == transcript
    assert parse_transcript(text).dumps() == text


@given(st.sampled_from(SESSIONS), st.data())
@settings(max_examples=50)
def test_spliced_files_round_trip(name: str, data: st.DataObject) -> None:
    # Any run of whole lines of a real file, after its headers, is a transcript.
    lines = text_of(name).splitlines(keepends=True)
    start = data.draw(st.integers(7, len(lines) - 1))
    stop = data.draw(st.integers(start, len(lines)))
    text = "".join(lines[:7] + lines[start:stop])
    if lines[start:stop] and lines[start].startswith("# "):
        return  # a comment right after the headers would read as one
    assert parse_transcript(text).dumps() == text


@pytest.mark.parametrize(
    ("text", "lineno"),
    [
        ("S: b'220 ok\\r\\n'", 1),  # no final newline
        ("S: b'220 ok\\r\\n'\n\n", 2),  # empty line
        ("X: b'220'\n", 1),
        ("S:b'220'\n", 1),
        ("S: '220 ok'\n", 1),  # str, not bytes
        ("S: b'220' + b'x'\n", 1),  # an expression, not a literal
        ("S: b'\\x32\\x32\\x30'\n", 1),  # bytes, but not as repr() writes them
        ('S: b"220"\n', 1),
        ("S: b'220 ok\\r\\n' \n", 1),
        ("S: b'220\n", 1),
        ("S: __import__('os')\n", 1),
        ("E: \n", 1),
        ("E: server close\n", 1),
        ("# format: smtp-transcript/2\n", 1),
        ("# server: x\nS: b'2'\n C: b'x'\n", 3),
    ],
)
def test_malformed_lines_are_refused(text: str, lineno: int) -> None:
    with pytest.raises(TranscriptError) as caught:
        parse_transcript(text)
    assert caught.value.lineno == lineno
    assert isinstance(caught.value, ValueError)


def test_records_and_transcripts_refuse_what_cannot_be_written() -> None:
    with pytest.raises(TranscriptError):
        Record("C", "text")
    with pytest.raises(TranscriptError):
        Record("E", b"server-close")
    with pytest.raises(TranscriptError):
        Record("#", "two\nlines")
    with pytest.raises(TranscriptError):
        Record("X", b"")  # type: ignore[arg-type]
    with pytest.raises(TranscriptError):
        Transcript((("bad key", "v"),))
    with pytest.raises(TranscriptError):
        Transcript((("key", "two\nlines"),))
    with pytest.raises(TranscriptError):
        Transcript((), (Record("#", " looks: like a header"),))
    with pytest.raises(TranscriptError):
        Transcript((("format", "smtp-transcript/2"),))


def test_build_and_accessors() -> None:
    transcript = Transcript.build(
        {"format": FORMAT, "server": "x"},
        [Record("S", b"220 a\r\n"), Record("C", b"QUIT\r\n"), Record("E", "server-close")],
    )
    assert transcript.header_dict == {"format": FORMAT, "server": "x"}
    assert transcript.header("missing", "d") == "d"
    assert transcript.server_bytes == b"220 a\r\n"
    assert transcript.client_bytes == b"QUIT\r\n"
    assert transcript.events == ("server-close",)
    assert not transcript.redacted
    assert parse_transcript("") == Transcript()


# -- the recorder ------------------------------------------------------------


def feed_recorder(transcript: Transcript, recorder: TranscriptRecorder) -> None:
    """Play a recorded session into a recorder the way a driver's trace would."""
    for record in transcript.records:
        if isinstance(record.data, bytes):
            recorder("send" if record.direction == "C" else "recv", record.data)
        elif record.direction == "#":
            recorder.comment(record.data.removeprefix(" "))
        elif record.data == "server-close":
            recorder("recv", b"")
        elif record.data != "starttls":  # the recorder writes that one itself
            recorder.event(record.data)


def expected_redaction(transcript: Transcript) -> tuple[str, list[bytes]]:
    """The file as the recorder should write it, worked out line by line from the bytes.

    In these sessions every AUTH payload is a whole client chunk of one line:
    the initial response of ``AUTH <mech> <response>``, or the line that
    answers a 334.  Returns the text and the payloads that must not appear.
    """
    records: list[Record] = []
    secrets: list[bytes] = []
    last_reply = b""
    for record in transcript.records:
        data = record.data
        if record.direction == "S" and isinstance(data, bytes):
            last_reply = data
        elif record.direction == "C" and isinstance(data, bytes):
            line = data.removesuffix(b"\r\n")
            words = line.split(b" ")
            if last_reply.startswith(b"334 "):
                secrets.append(line)
                data = b"<redacted AUTH payload: %d bytes>\r\n" % len(line)
            elif words[0] == b"AUTH" and len(words) == 3:
                secrets.append(words[2])
                data = b"AUTH %s <redacted AUTH payload: %d bytes>\r\n" % (words[1], len(words[2]))
            if data != record.data:
                records.append(Record("#", " redacted"))
        records.append(Record(record.direction, data))
    headers = transcript.headers + ((("redacted", "auth"),) if secrets else ())
    return Transcript(headers, tuple(records)).dumps(), secrets


@pytest.mark.parametrize("name", SESSIONS)
def test_recorder_rebuilds_every_session(name: str) -> None:
    transcript = load(name)
    recorder = TranscriptRecorder(transcript.headers)
    feed_recorder(transcript, recorder)
    made = recorder.transcript()
    expected, secrets = expected_redaction(transcript)
    assert made.dumps() == expected
    assert parse_transcript(made.dumps()) == made
    assert made.redacted == bool(secrets)
    if (
        "auth_" in name
        and "without_tls" not in name
        and name.split("/", maxsplit=1)[0] != "aiosmtpd"
    ):
        assert secrets  # every server but aiosmtpd (no CRAM-MD5) took a payload
    for secret in secrets:
        assert secret not in made.client_bytes
    unredacted = TranscriptRecorder(transcript.headers, redact_auth=False)
    feed_recorder(transcript, unredacted)
    assert unredacted.transcript().dumps() == text_of(name)


AUTH_SESSIONS = [name for name in SESSIONS if expected_redaction(load(name))[1]]


@given(st.sampled_from(AUTH_SESSIONS), st.data())
@settings(max_examples=100)
def test_redaction_holds_however_the_client_writes(name: str, data: st.DataObject) -> None:
    # The same session, with every chunk cut at points hypothesis picks: no
    # payload octet may leak, and the placeholders add up to the payloads.
    transcript = load(name)
    _, secrets = expected_redaction(transcript)
    recorder = TranscriptRecorder()
    for record in transcript.records:
        if not isinstance(record.data, bytes):
            continue
        chunk = record.data
        cuts = sorted(data.draw(st.lists(st.integers(0, len(chunk)), max_size=4)))
        for a, b in pairwise([0, *cuts, len(chunk)]):
            if a < b:  # an empty read would mean end of file
                recorder("send" if record.direction == "C" else "recv", chunk[a:b])
    made = recorder.transcript()
    sent = made.client_bytes
    hidden = sum(int(m[1]) for m in REDACTED_PAYLOAD.finditer(sent))
    assert hidden == sum(len(s) for s in secrets)
    # Take the placeholders out and what is left is the session without its
    # payloads: nothing else was changed, and nothing of a payload leaked.
    whole = parse_transcript(expected_redaction(transcript)[0]).client_bytes
    assert REDACTED_PAYLOAD.sub(b"", sent) == REDACTED_PAYLOAD.sub(b"", whole)
    assert parse_transcript(made.dumps()) == made


def test_recorder_follows_content_bdat_and_starttls() -> None:
    recorder = TranscriptRecorder({"server": "test"})
    script: list[tuple[str, bytes]] = [
        ("recv", b"220 hi\r\n"),
        ("send", b"EHLO a.test\r\n"),
        ("recv", b"250-a\r\n250 AUTH PLAIN\r\n"),
        ("send", b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"),
        ("recv", b"250 ok\r\n250 ok\r\n354 go\r\n"),
        ("send", b"AUTH PLAIN not-a-command\r\n.."),  # content that looks like AUTH
        ("send", b"\r\n.\r"),
        ("send", b"\nBDAT 20\r\nAUTH PLAIN content\r\n"),
        ("recv", b"250 queued\r\n250 chunk\r\n"),
        ("send", b"AUTH PLAIN "),
        ("send", b"c2VjcmV0\r\n"),
        ("recv", b"235 ok\r\n"),
        ("send", b"STARTTLS\r\n"),
        ("recv", b"220 go\r\n"),
        ("send", b"EHLO a.test\r\n"),
        ("recv", b""),
    ]
    for direction, chunk in script:
        recorder(direction, chunk)
    recorder.event("client-close")
    made = recorder.transcript()
    assert made.header("format") == FORMAT
    assert made.redacted
    assert made.events == ("starttls", "server-close", "client-close")
    assert made.chunks("C")[2:5] == script[5][1:] + script[6][1:] + script[7][1:]
    assert made.chunks("C")[5:7] == (b"AUTH PLAIN ", b"<redacted AUTH payload: 8 bytes>\r\n")
    assert b"c2VjcmV0" not in made.dumps().encode()
    with pytest.raises(ValueError, match="direction"):
        recorder("sent", b"x")
    with pytest.raises(TypeError):
        recorder("send", "x")  # type: ignore[arg-type]


def test_recorder_survives_a_server_that_breaks_the_grammar() -> None:
    recorder = TranscriptRecorder()
    recorder("recv", b"hello\r\n")
    recorder("send", b"AUTH PLAIN c2VjcmV0\r\n")
    recorder("recv", b"334 \r\n")
    recorder("send", b"c2VjcmV0\r\n")  # no reply parsing any more: AUTH lines still hidden
    assert b"c2VjcmV0" not in recorder.transcript().client_bytes


def test_recorder_keeps_its_place_in_the_client_stream() -> None:
    # Whatever comes before an AUTH line (a BDAT chunk cut in two, a lone CR,
    # an empty write, a line longer than the part kept of it, BDAT 0), the
    # recorder finds the start of the next line and hides that AUTH payload.
    recorder = TranscriptRecorder(redact_auth=True)
    writes = [
        b"BDAT 18\r\nAUTH PLAIN",  # octets of message data: not a command
        b" x y z\r\n",
        b"",
        b"NOOP a\r",
        b"b\r\n",
        b"NOOP " + b"n" * 70,
        b"\r\nBDAT 0 LAST\r\nBDAT x\r\n",
        b"AUTH PLAIN c2VjcmV0\r\n",
    ]
    for data in writes:
        recorder("send", data)
    made = recorder.transcript()
    assert made.chunks("C")[:-1] == tuple(w for w in writes[:-1] if w)
    assert made.chunks("C")[-1] == b"AUTH PLAIN <redacted AUTH payload: 8 bytes>\r\n"
    with pytest.raises(TypeError):
        parse_transcript(b"S: b'220'\n")  # type: ignore[arg-type]
    with pytest.raises(TranscriptError):
        Transcript((), ("S: b'220'",))  # type: ignore[arg-type]


def test_recorder_as_the_sync_drivers_trace() -> None:
    from transports.sync import SyncDriver

    transcript = load("postfix/pipelining.txt")

    class ScriptedSocket:
        def __init__(self, replies: Sequence[bytes]) -> None:
            self.replies = deque(replies)
            self.sent: list[bytes] = []

        def sendall(self, data: bytes) -> None:
            self.sent.append(data)

        def recv(self, size: int) -> bytes:
            return self.replies.popleft() if self.replies else b""

    sock = ScriptedSocket(transcript.chunks("S"))
    recorder = TranscriptRecorder(transcript.headers)
    driver = SyncDriver(sock, trace=recorder)
    conn = smtp_core.Connection(tls_policy="none")  # the session had no STARTTLS
    body = transcript.chunks("C")[2].removesuffix(b".\r\n").replace(b"\r\n..", b"\r\n.")
    driver.run(smtp_core.procedures.handshake(conn, "client.example"))
    result = driver.run(
        smtp_core.procedures.send_mail(
            conn, "sender@example.org", ["rcpt1@example.org", "rcpt2@example.org"], body
        )
    )
    driver.run(smtp_core.procedures.quit(conn))
    assert result.delivered
    assert b"".join(sock.sent) == transcript.client_bytes
    made = recorder.transcript()
    assert made.chunks("C") == transcript.chunks("C")
    assert made.chunks("S") == transcript.chunks("S")
    assert made.records[-1] == Record("S", b"221 2.0.0 Bye\r\n")


# ---------------------------------------------------------------------------
# b. the server's bytes, parsed
# ---------------------------------------------------------------------------


def read_all(chunks: Sequence[bytes]) -> tuple[list[Parsed], ReplyReader]:
    reader = ReplyReader()
    replies: list[Parsed] = []
    for chunk in chunks:
        reader.feed(chunk)
        while (reply := reader.next_reply()) is not None:
            replies.append(parsed(reply))
    return replies, reader


_LAST_LINE = re.compile(rb"^[2-5][0-9]{2}(?: |$)", re.MULTILINE)


@pytest.mark.parametrize("name", SESSIONS)
def test_server_bytes_parse_as_recorded_and_byte_by_byte(name: str) -> None:
    transcript = load(name)
    chunks = transcript.chunks("S")
    replies, reader = read_all(chunks)
    assert not reader.has_unparsed()
    # Counted without the engine: one reply per line whose code is followed by
    # a space or nothing (RFC 5321 §4.2), and the lines are all there.
    stream = transcript.server_bytes
    assert len(replies) == len(_LAST_LINE.findall(stream.replace(b"\r\n", b"\n")))
    assert sum(len(r.lines) for r in replies) == stream.count(b"\r\n")
    bytewise, _ = read_all([stream[i : i + 1] for i in range(len(stream))])
    assert bytewise == replies
    whole, _ = read_all([stream])
    assert whole == replies


def test_exim_echoes_an_overlong_reply_line() -> None:
    # The one reply line of the corpus over RFC 5321's 512 octets (§4.5.3.1.5):
    # exim quotes the 626-octet MAIL line back in its 501 (719 octets).  The reader
    # takes it on purpose (MAX_REPLY_LINE_LENGTH is four times the RFC figure).
    replies, _ = read_all(load("exim/long_command.txt").chunks("S"))
    (overlong,) = [r for r in replies if len(r.lines[0]) + 6 > 512]
    assert overlong.code == 501
    assert len(overlong.lines[0]) + 6 == 719  # "501 " + text + CRLF
    assert smtp_core.MAX_REPLY_LINE_LENGTH >= 719


@given(st.sampled_from(SESSIONS), st.data())
@settings(max_examples=100)
def test_server_bytes_parse_the_same_however_cut(name: str, data: st.DataObject) -> None:
    stream = load(name).server_bytes
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    pieces = [stream[a:b] for a, b in pairwise([0, *cuts, len(stream)])]
    assert read_all(pieces)[0] == read_all([stream])[0]


# ---------------------------------------------------------------------------
# c. replay through the Connection
# ---------------------------------------------------------------------------


class Unproducible(Exception):
    """A client line that no ``smtp_core`` command object writes."""


_MAIL = re.compile(r"(?i:FROM):<([^<>]*)>((?: [^ ]+)*)")
_RCPT = re.compile(r"(?i:TO):<([^<>]*)>((?: [^ ]+)*)")
_NO_ARGUMENT: dict[str, Callable[[], smtp_core.BaseCommand]] = {
    "DATA": smtp_core.Data,
    "RSET": smtp_core.Rset,
    "QUIT": smtp_core.Quit,
    "STARTTLS": smtp_core.StartTLS,
}
_GREETINGS: dict[str, Callable[[str], smtp_core.BaseCommand]] = {
    "EHLO": smtp_core.Ehlo,
    "HELO": smtp_core.Helo,
    "LHLO": smtp_core.Lhlo,
}
_FREE_ARGUMENT: dict[str, Callable[[str], smtp_core.BaseCommand]] = {
    "NOOP": smtp_core.Noop,
    "HELP": smtp_core.Help,
    "VRFY": smtp_core.Vrfy,
    "EXPN": smtp_core.Expn,
}


def b64(text: str, line: bytes) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise Unproducible(f"not base64: {line!r}") from None


def command_of(line: bytes) -> smtp_core.BaseCommand:
    """The command object that writes ``line`` (without CRLF), strictly checked.

    ``BDAT`` is left to the caller, which owns the octets that follow the line.

    Raises:
        Unproducible: no command object writes these bytes.
        LocalProtocolError: the command object refuses its arguments.
    """
    try:
        text = line.decode()
    except UnicodeDecodeError:
        raise Unproducible(f"not UTF-8: {line!r}") from None
    verb, space, rest = text.partition(" ")
    upper = verb.upper()
    if upper in _GREETINGS:
        return _GREETINGS[upper](rest)
    if upper in ("MAIL", "RCPT"):
        match = (_MAIL if upper == "MAIL" else _RCPT).fullmatch(rest)
        if match is None:
            raise Unproducible(f"{upper} line no Mail/Rcpt object writes: {line!r}")
        params = tuple(match[2].split())
        if upper == "MAIL":
            return smtp_core.Mail(match[1], params)
        return smtp_core.Rcpt(match[1], params)
    if upper in _NO_ARGUMENT:
        if space:
            raise Unproducible(f"{upper} with an argument: {line!r}")
        return _NO_ARGUMENT[upper]()
    if upper in _FREE_ARGUMENT:
        return _FREE_ARGUMENT[upper](rest)
    if upper == "AUTH":
        mechanism, _, response = rest.partition(" ")
        if not response:
            return smtp_core.Auth(mechanism)
        return smtp_core.Auth(mechanism, b"" if response == "=" else b64(response, line))
    return smtp_core.Command(verb, rest)  # a private extension (RFC 5321 §4.1.5)


def auth_response_of(line: bytes) -> smtp_core.AuthResponse:
    """The answer to a 334 challenge (RFC 4954 §4): base64, or ``*`` to cancel."""
    if line == b"*":
        return smtp_core.AuthResponse(cancel=True)
    return smtp_core.AuthResponse(b64(line.decode("ascii", "replace"), line))


def smtplib_spelling(line: bytes) -> bytes:
    """What the engine's lowercase mode writes for a line smtplib 3.11 wrote.

    The recording client was smtplib on Python 3.11, which writes
    ``mail FROM:<...>`` and ``rcpt TO:<...>``; CPython 3.13 changed that to
    ``mail from:``/``rcpt to:`` (gh-65495), and ``lowercase_commands=True``
    writes the 3.13 form.  Only these two words are mapped; every other
    octet of these sessions is compared as recorded.
    """
    if line.startswith(b"mail FROM:"):
        return b"mail from:" + line[10:]
    if line.startswith(b"rcpt TO:"):
        return b"rcpt to:" + line[8:]
    return line


@dataclass
class Stop:
    """Where a replay stopped before the end of the session."""

    kind: Literal["refused", "unproducible"]
    line: bytes
    message: str


@dataclass
class Replay:
    """What replaying one session did."""

    name: str
    lowercase: bool
    sent: list[bytes] = field(default_factory=list)  # each client chunk, as the engine made it
    expected: list[bytes] = field(default_factory=list)  # what a correct client writes there
    replies: int = 0
    stop: Stop | None = None
    tls: bool = False
    closed: bool = False


BDAT = re.compile(rb"(?i:BDAT) ([0-9]+)( (?i:LAST))?")
_ADDRESS = re.compile(rb"<([^<>@\s]+@[^<>\s]+)>")


def state_of(conn: smtp_core.Connection) -> smtp_core.State:
    return conn.state  # a call, so that mypy does not keep a narrowed state


class Replayer:
    """Drives a Connection through one recorded session and checks every step."""

    def __init__(self, name: str) -> None:
        self.transcript = load(name)
        clients = self.transcript.chunks("C")
        lmtp = self.transcript.header("protocol") == "LMTP"
        lowercase = bool(clients) and clients[0][:4] in (b"ehlo", b"helo")
        # The auth_* sessions ran over implicit TLS (recorded decrypted at the
        # proxy); the engine must know, or it refuses AUTH in the clear.
        implicit_tls = "implicit TLS" in (self.transcript.header("transport") or "")
        self.conn = smtp_core.Connection(
            lmtp=lmtp, lowercase_commands=lowercase, tls_active=implicit_tls
        )
        self.result = Replay(name, lowercase)
        # The pairing oracle, kept apart from the engine: the commands in the
        # order their lines went out (RFC 2920 §3.1: replies come in that
        # order), one entry per reply due; None stands for the greeting.
        self.due: deque[tuple[smtp_core.BaseCommand | None, str | None]] = deque([(None, None)])
        self.accepted: list[str] = []
        self.content_tail = b"\r\n"
        self.content_line_start = True

    def run(self) -> Replay:
        for record in self.transcript.records:
            if record.direction == "S" and isinstance(record.data, bytes):
                self.conn.receive_data(record.data)
                self.take_events()
            elif record.direction == "C" and isinstance(record.data, bytes):
                if not self.client_chunk(record.data):
                    return self.result
            elif record.data in ("server-close", "server-reset"):
                self.conn.receive_data(b"")
                self.take_events()
                assert self.result.closed
            elif record.data == "starttls":
                assert state_of(self.conn) is smtp_core.State.TLS
                assert not self.due
                self.conn.start_tls_done()  # nothing more was recorded in the clear
                assert state_of(self.conn) is smtp_core.State.CONNECTED
                assert not self.conn.extensions
                self.result.tls = True
                return self.result
        assert not self.due, f"commands never answered: {self.due}"
        return self.result

    # -- the client's side -------------------------------------------------------------

    def client_chunk(self, chunk: bytes) -> bool:
        commands: list[smtp_core.BaseCommand] = []
        lines: list[bytes] = []  # the recorded bytes of each command
        spelled: list[bytes] = []  # the same, as lowercase_commands spells them
        pos = 0
        if self.conn.state is smtp_core.State.DATA:
            content, end, pos = self.split_content(chunk)
            if content:
                commands.append(smtp_core.Content(self.unstuff(content)))
                lines.append(content)
                spelled.append(content)
            if end:
                commands.append(smtp_core.EndOfContent())
                lines.append(b".\r\n")
                spelled.append(b".\r\n")
        answering = self.conn.state is smtp_core.State.AUTH  # a 334 came: a response is due
        while pos < len(chunk):
            eol = chunk.find(b"\r\n", pos)
            assert eol >= 0, f"client chunk ends inside a line: {chunk[pos:][-40:]!r}"
            line, pos = chunk[pos:eol], eol + 2
            lines.append(line + b"\r\n")
            spelled.append(smtplib_spelling(line) + b"\r\n")
            try:
                if answering and not commands:
                    commands.append(auth_response_of(line))
                elif (bdat := BDAT.fullmatch(line)) is not None:
                    # RFC 3030 §2: exactly that many octets follow the line.
                    size = int(bdat[1])
                    data, pos = chunk[pos : pos + size], pos + size
                    assert len(data) == size, "a BDAT chunk split across writes"
                    lines[-1] += data
                    spelled[-1] += data
                    commands.append(smtp_core.Bdat(data, last=bdat[2] is not None))
                else:
                    commands.append(command_of(line))
            except Unproducible as exc:
                self.result.stop = Stop("unproducible", lines[-1], str(exc))
                return False
            except smtp_core.LocalProtocolError as exc:
                self.result.stop = Stop("refused", lines[-1], str(exc))
                return False
        try:
            if len(commands) == 1:
                sent = self.conn.send(commands[0])
            else:
                sent = self.conn.send_many(commands)
        except smtp_core.LocalProtocolError as exc:
            self.result.stop = Stop("refused", self.refused_line(commands, lines), str(exc))
            return False
        expected = b"".join(spelled) if self.result.lowercase else chunk
        assert sent == expected
        self.result.sent.append(sent)
        self.result.expected.append(expected)
        for command in commands:
            self.expect(command)
        return True

    def refused_line(self, commands: list[smtp_core.BaseCommand], lines: list[bytes]) -> bytes:
        # send_many refused the group and left the connection as it was: send
        # the commands one at a time to see which one the engine refuses.
        for command, line in zip(commands, lines, strict=True):
            try:
                self.conn.send(command)
            except smtp_core.LocalProtocolError:
                return line
        raise AssertionError("send_many refused a group whose commands all pass one by one")

    def split_content(self, chunk: bytes) -> tuple[bytes, bool, int]:
        """Cut a chunk sent after 354: the content, whether it ends, where commands start."""
        window = self.content_tail + chunk
        end = window.find(b"\r\n.\r\n")
        if end < 0:
            self.content_tail = window[-4:]
            return chunk, False, len(chunk)
        dot = end + 2 - len(self.content_tail)
        self.content_tail = b"\r\n"
        return chunk[:dot], True, dot + 3

    def unstuff(self, content: bytes) -> bytes:
        # RFC 5321 §4.5.2, undone: the engine must stuff it back identically.
        if self.content_line_start and content.startswith(b"."):
            content = content[1:]
        self.content_line_start = content.endswith(b"\r\n")
        return content.replace(b"\r\n.", b"\r\n")

    def expect(self, command: smtp_core.BaseCommand) -> None:
        if isinstance(command, smtp_core.Content):
            return
        if isinstance(command, smtp_core.Mail):
            self.accepted = []
        if isinstance(command, smtp_core.EndOfContent):
            self.content_line_start = True
        verdict = isinstance(command, smtp_core.EndOfContent) or (
            isinstance(command, smtp_core.Bdat) and command.last
        )
        if verdict and self.conn.lmtp:
            # RFC 2033 §4.2: one reply per recipient RCPT accepted, in order.
            recipients: list[str | None] = [*self.accepted] or [None]
            for recipient in recipients:
                self.due.append((command, recipient))
            return
        # A reply to RCPT names its recipient too.
        rcpt = command.recipient if isinstance(command, smtp_core.Rcpt) else None
        self.due.append((command, rcpt))

    # -- the server's side -------------------------------------------------------------

    def take_events(self) -> None:
        while True:
            event = self.conn.next_event()
            if event is smtp_core.NEED_DATA:
                return
            if isinstance(event, smtp_core.ConnectionClosed):
                assert event.unanswered == tuple(c for c, _ in self.due if c is not None)
                self.due.clear()
                self.result.closed = True
                return
            assert self.due, f"a reply no command was waiting for: {event}"
            command, recipient = self.due.popleft()
            if command is None:
                assert isinstance(event, smtp_core.Greeting)
                continue
            assert isinstance(event, smtp_core.Reply)
            assert event.command is command
            assert event.recipient == recipient
            self.result.replies += 1
            self.check_text(event)

    def check_text(self, reply: smtp_core.Reply) -> None:
        # Where the server names an address in its reply, it must be the one
        # of the command (or, in LMTP, of the recipient) the reply is paired with.
        named = _ADDRESS.search(reply.lines[0])
        address = named[1].decode() if named else None
        command = reply.command
        if isinstance(command, smtp_core.Rcpt):
            if address is not None:
                assert address == command.recipient
            if reply.is_positive:
                self.accepted.append(command.recipient)
        elif self.conn.lmtp and reply.recipient is not None and address is not None:
            assert address == reply.recipient


def replay(name: str) -> Replay:
    return Replayer(name).run()


@dataclass(frozen=True)
class Excluded:
    """A session the engine deliberately cannot produce, and the line it stops at."""

    kind: Literal["refused", "unproducible"]
    line: bytes
    reason: str
    message: str  # a word of the LocalProtocolError that must name the reason


def _refused(line: bytes, reason: str, message: str) -> Excluded:
    return Excluded("refused", line, reason, message)


def _no_command(line: bytes, reason: str) -> Excluded:
    return Excluded("unproducible", line, reason, "")


_EARLY = "EHLO/LHLO sent before the greeting (early_talker)"
_NO_PIPELINING = "MAIL+RCPT+DATA pipelined to a server that does not offer PIPELINING"
_MAIL_SYNTAX = "MAIL FROM without angle brackets: no Mail object writes it (syntax_errors)"
_BAD_SEQUENCE = "RCPT before MAIL (bad_sequence)"
_LONG = "MAIL FROM with a 612-octet address, over RFC 5321's 256-octet path (long_command)"
_SIZE = "SIZE=1073741824, over the server's advertised SIZE 67108864"
_NO_SIZE = "SIZE parameter to a server that does not offer SIZE"
_NO_DSN = "DSN parameters (RET, ENVID) to a server that does not offer DSN"
_NO_UTF8 = "SMTPUTF8 to a server that does not offer SMTPUTF8"
_DATA_NO_RCPT = "DATA after every RCPT was refused, not pipelined (rcpt_all_refused)"
_CLEAR_AUTH = "AUTH PLAIN in the clear, to a server that does not offer AUTH there"
_CRAM = "AUTH CRAM-MD5 to a server that offers only LOGIN and PLAIN"
_EHLO = b"EHLO client.example\r\n"
_LHLO = b"LHLO client.example\r\n"
_RCPT1 = b"RCPT TO:<rcpt1@example.org>\r\n"
_LONG_MAIL = b"MAIL FROM:<" + b"s" * 600 + b"@example.org>\r\n"
_MAIL_SIZE = b"MAIL FROM:<sender@example.org> SIZE=1073741824\r\n"
_MAIL_DSN = b"MAIL FROM:<sender@example.org> RET=HDRS ENVID=QQ314159\r\n"
_MAIL_UTF8 = "MAIL FROM:<sénder@example.org> SMTPUTF8\r\n".encode()
_DATA = b"DATA\r\n"


_LONG_LINE = "a 5000-octet line in DATA, over RFC 5321 §4.5.3.1.6's 998 (long_line)"


def _long_line_content(name: str) -> bytes:
    """The message content (without its end marker) that holds the 5000-octet line."""
    chunk = next(
        record.data
        for record in load(name).records
        if record.direction == "C" and isinstance(record.data, bytes) and b"x" * 999 in record.data
    )
    return chunk.removesuffix(b".\r\n") if chunk.endswith(b"\r\n.\r\n") else chunk


def _per_server(scenario: str, servers: str, excluded: Excluded) -> dict[str, Excluded]:
    return {f"{server}/{scenario}.txt": excluded for server in servers.split()}


_SMTP = "aiosmtpd exim opensmtpd postfix"
EXCLUDED: dict[str, Excluded] = {
    # The engine refuses the step: a LocalProtocolError before any byte exists.
    **_per_server("early_talker", _SMTP, _refused(_EHLO, _EARLY, "greeting")),
    **_per_server("lmtp_early_talker", "aiosmtpd dovecot", _refused(_LHLO, _EARLY, "greeting")),
    **_per_server("wrong_hello", _SMTP, _refused(_LHLO, "LHLO to an SMTP server", "LMTP only")),
    **_per_server(
        "lmtp_wrong_hello", "aiosmtpd dovecot", _refused(_EHLO, "EHLO to an LMTP server", "LMTP")
    ),
    **_per_server("bad_sequence", _SMTP, _refused(_RCPT1, _BAD_SEQUENCE, "RCPT in state READY")),
    **_per_server(
        "lmtp_bad_sequence", "aiosmtpd dovecot", _refused(_RCPT1, _BAD_SEQUENCE, "RCPT in state")
    ),
    **{
        f"{server}/{scenario}.txt": _refused(_RCPT1, _NO_PIPELINING, "PIPELINING")
        for server in ("aiosmtpd", "opensmtpd")
        for scenario in ("pipelining", "pipelining_partial_refused")
    },
    **{
        f"aiosmtpd/{scenario}.txt": _refused(_RCPT1, _NO_PIPELINING, "PIPELINING")
        for scenario in ("lmtp_pipelining", "lmtp_pipelining_partial_refused")
    },
    **_per_server("long_command", _SMTP, _refused(_LONG_MAIL, _LONG, "longer than")),
    **{
        name: _refused(_long_line_content(name), _LONG_LINE, "over the limit of 998")
        for name in (
            *(f"{server}/long_line.txt" for server in _SMTP.split()),
            "aiosmtpd/lmtp_long_line.txt",
            "dovecot/lmtp_long_line.txt",
        )
    },
    **_per_server(
        "lmtp_long_command", "aiosmtpd dovecot", _refused(_LONG_MAIL, _LONG, "longer than")
    ),
    **_per_server("size_too_large", _SMTP, _refused(_MAIL_SIZE, _SIZE, "SIZE limit")),
    "aiosmtpd/lmtp_size_too_large.txt": _refused(_MAIL_SIZE, _SIZE, "SIZE limit"),
    "dovecot/lmtp_size_too_large.txt": _refused(_MAIL_SIZE, _NO_SIZE, "needs SIZE"),
    "aiosmtpd/dsn.txt": _refused(_MAIL_DSN, _NO_DSN, "needs DSN"),
    **_per_server("lmtp_dsn", "aiosmtpd dovecot", _refused(_MAIL_DSN, _NO_DSN, "needs DSN")),
    "opensmtpd/smtputf8.txt": _refused(_MAIL_UTF8, _NO_UTF8, "needs SMTPUTF8"),
    "dovecot/lmtp_smtputf8.txt": _refused(_MAIL_UTF8, _NO_UTF8, "needs SMTPUTF8"),
    **_per_server("rcpt_all_refused", _SMTP, _refused(_DATA, _DATA_NO_RCPT, "DATA in state MAIL")),
    "aiosmtpd/lmtp_rcpt_all_refused.txt": _refused(_DATA, _DATA_NO_RCPT, "DATA in state MAIL"),
    **_per_server(
        "auth_without_tls",
        _SMTP,
        _refused(b"AUTH PLAIN AHRlc3R1c2VyAHRlc3RwYXNz\r\n", _CLEAR_AUTH, "TLS is off"),
    ),
    **{
        f"aiosmtpd/auth_cram_md5_{end}.txt": _refused(
            b"AUTH CRAM-MD5\r\n", _CRAM, "CRAM-MD5 was not offered"
        )
        for end in ("ok", "fail")
    },
    "opensmtpd/starttls.txt": _refused(
        b"STARTTLS\r\n", "STARTTLS to a server that does not offer it", "not offered"
    ),
    # No command object writes the line at all.
    **_per_server(
        "syntax_errors",
        _SMTP,
        _no_command(b"MAIL FROM:sender@example.org\r\n", _MAIL_SYNTAX),
    ),
    **_per_server(
        "lmtp_syntax_errors",
        "aiosmtpd dovecot",
        _no_command(b"MAIL FROM:sender@example.org\r\n", _MAIL_SYNTAX),
    ),
}
REPLAYED = [name for name in SESSIONS if name not in EXCLUDED]


def test_exclusions_name_real_sessions() -> None:
    assert set(EXCLUDED) <= set(SESSIONS)
    assert len(REPLAYED) + len(EXCLUDED) == 157


@pytest.mark.parametrize("name", REPLAYED)
def test_session_replays(name: str) -> None:
    result = replay(name)
    assert result.stop is None, f"{name}: stopped at {result.stop}"
    transcript = load(name)
    sent = b"".join(result.sent)
    assert sent == b"".join(result.expected)
    if result.lowercase:
        as_311 = sent.replace(b"\r\nmail from:", b"\r\nmail FROM:")
        assert as_311.replace(b"\r\nrcpt to:", b"\r\nrcpt TO:") == transcript.client_bytes
    else:
        assert sent == transcript.client_bytes
    assert len(result.sent) == len(transcript.chunks("C"))  # the same grouping
    assert result.tls == ("starttls" in transcript.events)
    assert result.closed == (not result.tls)  # every other session ends with the server's EOF
    assert result.replies > 0


@pytest.mark.parametrize("name", sorted(EXCLUDED))
def test_excluded_session_stops_where_the_engine_must_refuse(name: str) -> None:
    expected = EXCLUDED[name]
    result = replay(name)
    assert result.stop is not None, f"{name} replayed whole; take it off EXCLUDED"
    assert (result.stop.kind, result.stop.line) == (expected.kind, expected.line), result.stop
    if expected.kind == "refused":
        assert expected.message in result.stop.message, result.stop.message
    # Everything before that line replayed byte for byte, replies paired.
    sent = b"".join(result.sent)
    assert load(name).client_bytes.startswith(sent)


def test_lowercase_sessions_are_smtplib_311_spelling() -> None:
    # The one mapping smtplib_spelling makes is needed by, and only by, the
    # sessions smtplib recorded; in those it maps every MAIL and RCPT line.
    for name in SESSIONS:
        client = load(name).client_bytes
        lowercase = client[:4] in (b"ehlo", b"helo")
        mapped = sum(line != smtplib_spelling(line) for line in client.split(b"\r\n"))
        if lowercase:
            assert mapped == client.count(b"\r\nmail ") + client.count(b"\r\nrcpt ")
            assert b"\r\nmail from:" not in client
        else:
            assert mapped == 0


def replay_report() -> Iterator[str]:
    """One line per session; ``python -m tests.test_transcripts`` prints it."""
    for name in SESSIONS:
        if name in EXCLUDED:
            yield f"excluded  {name}: {EXCLUDED[name].reason}"
        else:
            yield f"replayed  {name}"


if __name__ == "__main__":  # pragma: no cover
    print("\n".join(replay_report()))
    print(f"{len(REPLAYED)} replayed, {len(EXCLUDED)} excluded")
