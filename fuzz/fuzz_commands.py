"""Harness ``commands``: fuzzer-chosen command class and arguments, built and sent.

INVARIANT: building the command either raises ``LocalProtocolError`` or
``TypeError``, or ``Connection.send`` -- on a connection brought to the state
the command needs (greeted; EHLO/LHLO answered with SMTPUTF8, PIPELINING,
SIZE, DSN, 8BITMIME, CHUNKING and BINARYMIME; for RCPT a MAIL accepted, for
DATA and BDAT a RCPT accepted) -- raises ``LocalProtocolError`` and leaves the
connection exactly as it was (or in ``ERROR``, if the message says so;
invariant ``refusal-unchanged``), or it returns bytes that are exactly one line:
ending in CRLF, with no other CR, LF or NUL, valid UTF-8, at most
``smtp_core.MAX_COMMAND_LINE`` octets, starting with the verb (lower case
where ``lowercase_commands`` says so) followed by CRLF or a space, and pure
ASCII where the session has not allowed UTF-8 (any EHLO/HELO/LHLO; MAIL
without the SMTPUTF8 parameter; RCPT after such a MAIL).  BDAT is that line
-- ``BDAT <size>[ LAST]`` -- followed by exactly ``size`` octets of chunk: the
payload as is under BODY=BINARYMIME, else with every line ending made CRLF
(and a final CRLF added to an open last line of a LAST chunk).  Nothing else
escapes.

Input layout: byte 0: command kind (modulo the number of kinds, see
``KINDS``); byte 1: flags -- bit 0 ``strict=False`` (for BDAT: the MAIL
carries BODY=BINARYMIME), bit 1 ``lowercase_commands``, bits 2-3 how the
arguments are decoded (0 UTF-8 with surrogateescape, 1 UTF-8 with replace, 2
Latin-1, 3 UTF-8 with surrogateescape), bit 4 the MAIL before a RCPT, DATA or
BDAT carries SMTPUTF8, bit 5 the connection speaks LMTP (LHLO always does),
bit 6 ``tls_policy`` is ``"required"`` with TLS active, bit 7 BDAT is LAST;
the rest is the argument fields separated by ``0x1f`` (ASCII unit
separator): the first is the name, address, argument or verb, the others are
ESMTP parameters (MAIL, RCPT) or the words of a generic ``Command``'s
argument text (joined with spaces).  BDAT takes the rest undecoded as its chunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fuzz._common import Header, check_refusal, freeze
from fuzz.fuzz_data import normalise
from smtp_core import (
    MAX_COMMAND_LINE,
    BaseCommand,
    Bdat,
    Command,
    Connection,
    Data,
    Ehlo,
    Expn,
    Greeting,
    Helo,
    Help,
    Lhlo,
    LocalProtocolError,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    StartTLS,
    Vrfy,
)

__all__ = ["SKIP", "KINDS", "MAX_LEN", "SEPARATOR", "check", "make_input"]

MAX_LEN = 4096
SEPARATOR = b"\x1f"
_ANY_EOL = re.compile(rb"\r\n|\r|\n")

EHLO_REPLY = (
    b"250-server.example\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
    b"250-DSN\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 BINARYMIME\r\n"
)

Builder = Callable[[list[str], bytes, int], BaseCommand]

#: Named invariants a fuzzing run may skip (``fuzz/run.py --skip NAME``).
SKIP: set[str] = set()


def _first(fields: list[str]) -> str:
    return fields[0] if fields else ""


def _strict(flags: int) -> bool:
    return not flags & 0x01


KINDS: tuple[tuple[str, Builder], ...] = (
    ("EHLO", lambda f, raw, flags: Ehlo(_first(f), strict=_strict(flags))),
    ("HELO", lambda f, raw, flags: Helo(_first(f), strict=_strict(flags))),
    ("LHLO", lambda f, raw, flags: Lhlo(_first(f), strict=_strict(flags))),
    ("MAIL", lambda f, raw, flags: Mail(_first(f), tuple(f[1:]), strict=_strict(flags))),
    ("RCPT", lambda f, raw, flags: Rcpt(_first(f), tuple(f[1:]), strict=_strict(flags))),
    ("DATA", lambda f, raw, flags: Data()),
    ("RSET", lambda f, raw, flags: Rset()),
    ("NOOP", lambda f, raw, flags: Noop(_first(f))),
    ("VRFY", lambda f, raw, flags: Vrfy(_first(f))),
    ("EXPN", lambda f, raw, flags: Expn(_first(f))),
    ("HELP", lambda f, raw, flags: Help(_first(f))),
    ("QUIT", lambda f, raw, flags: Quit()),
    ("STARTTLS", lambda f, raw, flags: StartTLS()),
    ("COMMAND", lambda f, raw, flags: Command(_first(f), " ".join(f[1:]))),
    ("BDAT", lambda f, raw, flags: Bdat(raw, last=bool(flags & 0x80))),
)
_KIND_INDEX = {name: index for index, (name, _) in enumerate(KINDS)}

_DECODINGS: tuple[tuple[str, str], ...] = (
    ("utf-8", "surrogateescape"),
    ("utf-8", "replace"),
    ("latin-1", "strict"),
    ("utf-8", "surrogateescape"),
)


def _reply(conn: Connection, data: bytes) -> Greeting | Reply:
    conn.receive_data(data)
    event = conn.next_event()
    assert isinstance(event, (Greeting, Reply)), event
    assert event.code < 400, event
    return event


def _connection(kind: str, flags: int) -> tuple[Connection, bool]:
    """A connection ready for ``kind``, and whether its transaction allows UTF-8."""
    lmtp = kind == "LHLO" or bool(flags & 0x20)
    required = bool(flags & 0x40)
    conn = Connection(
        lmtp=lmtp,
        lowercase_commands=bool(flags & 0x02),
        tls_policy="required" if required else "opportunistic",
        tls_active=required,
    )
    _reply(conn, b"220 server.example ESMTP\r\n")
    if kind in ("EHLO", "HELO", "LHLO"):
        return conn, False
    conn.send(Lhlo("client.example") if lmtp else Ehlo("client.example"))
    _reply(conn, EHLO_REPLY)
    utf8 = bool(flags & 0x10)
    if kind in ("RCPT", "DATA", "BDAT"):
        params: tuple[str, ...] = ("SMTPUTF8",) if utf8 else ()
        if kind == "BDAT" and flags & 0x01:
            params += ("BODY=BINARYMIME",)
        conn.send(Mail("sender@example.org", params))
        _reply(conn, b"250 2.1.0 Ok\r\n")
    if kind in ("DATA", "BDAT"):
        conn.send(Rcpt("rcpt@example.org"))
        _reply(conn, b"250 2.1.5 Ok\r\n")
    return conn, utf8


def _check_line(command: BaseCommand, wire: bytes, lowercase: bool, ascii_only: bool) -> None:
    assert wire.endswith(b"\r\n"), wire
    assert wire.count(b"\r") == 1, wire
    assert wire.count(b"\n") == 1, wire
    assert b"\x00" not in wire, wire
    assert len(wire) <= MAX_COMMAND_LINE, len(wire)
    text = wire.decode("utf-8")  # UnicodeDecodeError is a failure too
    verb = command.verb
    if lowercase and not isinstance(command, (StartTLS, Command)):
        verb = verb.lower()
    if isinstance(command, Command):
        verb = command.name
    assert text.startswith(verb), (text, verb)
    rest = text[len(verb) :]
    assert rest == "\r\n" or rest.startswith(" "), text
    if ascii_only:
        assert wire.isascii(), wire


def _check_bdat(command: Bdat, wire: bytes, lowercase: bool, binary: bool) -> None:
    end = wire.find(b"\r\n")
    assert end >= 0, wire
    line, chunk = wire[: end + 2], wire[end + 2 :]
    _check_line(command, line, lowercase, ascii_only=True)
    words = line[:-2].split(b" ")
    assert words[1:] == [str(len(chunk)).encode(), *([b"LAST"] if command.last else [])], line
    raw = bytes(command.data)
    if binary:
        assert chunk == raw, (chunk, raw)
    elif command.last:
        assert chunk == normalise(raw), (chunk, raw)
    else:
        assert chunk == _ANY_EOL.sub(b"\r\n", raw), (chunk, raw)


def check(data: bytes) -> None:
    """Run one fuzz input; raise ``AssertionError`` if the invariant breaks."""
    header = Header(data)
    kind, build = KINDS[header.byte() % len(KINDS)]
    flags = header.byte()
    encoding, errors = _DECODINGS[(flags >> 2) & 0x03]
    raw = header.rest()
    fields = [part.decode(encoding, errors) for part in raw.split(SEPARATOR)]
    try:
        command = build(fields, raw, flags)
    except (LocalProtocolError, TypeError):
        return
    conn, utf8 = _connection(kind, flags)
    before = freeze(conn)
    try:
        wire = conn.send(command)
    except LocalProtocolError as exc:
        if "refusal-unchanged" not in SKIP:
            check_refusal(before, conn, exc)
        return
    if isinstance(command, Bdat):
        _check_bdat(command, wire, conn.lowercase_commands, binary=bool(flags & 0x01))
        return
    if kind in ("EHLO", "HELO", "LHLO"):
        ascii_only = True
    elif kind == "MAIL":
        ascii_only = "SMTPUTF8" not in {p.partition("=")[0].upper() for p in fields[1:]}
    elif kind == "RCPT":
        ascii_only = not utf8
    else:
        ascii_only = False
    _check_line(command, wire, conn.lowercase_commands, ascii_only)


def make_input(kind: str, fields: list[bytes], flags: int = 0) -> bytes:
    """A fuzz input (for seed files): command ``kind`` (a ``KINDS`` name) with ``fields``."""
    return bytes([_KIND_INDEX[kind], flags]) + SEPARATOR.join(fields)
