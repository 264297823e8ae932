"""Write the seed corpora in ``fuzz/seeds/`` from the recorded sessions, plus hand-made edge cases.

Run from the repository root, with the transcripts beside the repository::

    python fuzz/make_seeds.py [--transcripts ../shared/transcripts]

The seeds are committed (CI has no transcripts); this script only needs to
run again when the harnesses' input layouts change.  It removes the seeds it
made before (files starting with ``t-`` or ``edge-``) and never touches
``crash-*`` files, which record what the fuzzer found.

* ``replies``: each distinct server byte stream, cut where the recording's
  chunks were (EHLO replies from ``ehlo/*.txt`` too).
* ``session``: the same streams, with the client's commands of the recording
  as the plan, its protocol, pipelining and lower-case verbs as the flags.
* ``data``: the message contents the clients sent (DATA, dot-stuffing undone;
  BDAT chunks).
* ``commands``: every command line the clients sent, parsed into a command
  kind and its argument fields.
* ``facade``: hand-made sessions only (``edge-*``): the smtplib facade's calls
  against a server that answers each in turn.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz import fuzz_commands, fuzz_data, fuzz_facade, fuzz_replies, fuzz_session  # noqa: E402

SEEDS = ROOT / "fuzz" / "seeds"
#: The two too_many_recipients sessions are 1006 chunks; keep their start.
MAX_CHUNKS = 40


@dataclass
class Transcript:
    name: str
    protocol: str
    records: list[tuple[str, bytes]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def stream(self, side: str) -> tuple[bytes, list[int]]:
        """The side's bytes (at most MAX_CHUNKS chunks) and its chunk boundaries."""
        data = b""
        bounds: list[int] = []
        for kind, chunk in self.records:
            if kind != side:
                continue
            if len(bounds) >= MAX_CHUNKS:
                break
            data += chunk
            bounds.append(len(data))
        return data, bounds[:-1]


def load(path: Path, name: str) -> Transcript:
    transcript = Transcript(name, "SMTP")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# protocol: "):
            transcript.protocol = line.split(": ", 1)[1]
        elif line.startswith(("C: ", "S: ")):
            chunk = ast.literal_eval(line[3:])
            assert isinstance(chunk, bytes)
            transcript.records.append((line[0], chunk))
        elif line.startswith("E: "):
            transcript.events.append(line[3:])
    return transcript


@dataclass
class ClientCommand:
    verb: str
    rest: bytes
    line: bytes


def client_commands(records: list[tuple[str, bytes]]) -> tuple[list[ClientCommand], list[bytes]]:
    """The command lines the client sent, and the message contents (DATA and BDAT)."""
    commands: list[ClientCommand] = []
    contents: list[bytes] = []
    buffer = b""
    replies = b""  # what the server sent since the last DATA
    state = "commands"  # or "await" (DATA sent, 354 due), "content", or a BDAT size
    for kind, chunk in records:
        if kind == "S":
            replies += chunk
            continue
        if state == "await":
            state = "content" if re.search(rb"(?:^|\n)354[ -]", replies) else "commands"
        buffer += chunk
        while True:
            if state == "content":
                stop = (b"\r\n" + buffer).find(b"\r\n.\r\n")
                if stop < 0:
                    break
                contents.append(fuzz_data.decode(buffer[:stop] + b".\r\n"))
                buffer = buffer[stop + 3 :]
                state = "commands"
            elif state.isdigit():
                size = int(state)
                if len(buffer) < size:
                    break
                contents.append(buffer[:size])
                buffer = buffer[size:]
                state = "commands"
            elif state == "commands":
                end = buffer.find(b"\r\n")
                if end < 0:
                    break
                line, buffer = buffer[:end], buffer[end + 2 :]
                verb, _, rest = line.partition(b" ")
                word = verb.decode("latin-1").upper()
                commands.append(ClientCommand(word, rest, line))
                if word == "DATA" and not rest:
                    state, replies = "await", b""
                elif word == "BDAT":
                    state = rest.split()[0].decode()
            else:
                break
    return commands, contents


_MAIL = re.compile(rb"(?i)(?:FROM|TO):<([^>]*)>(.*)")


def command_seed(cmd: ClientCommand, lmtp: bool, utf8: bool) -> bytes:
    flags = (0x02 if cmd.line[:1].islower() else 0) | (0x20 if lmtp else 0) | (0x10 if utf8 else 0)
    kind = cmd.verb
    if kind in ("EHLO", "HELO", "LHLO", "NOOP", "VRFY", "EXPN", "HELP"):
        return fuzz_commands.make_input(kind, [cmd.rest], flags)
    if kind in ("DATA", "RSET", "QUIT", "STARTTLS") and not cmd.rest:
        return fuzz_commands.make_input(kind, [], flags)
    if kind in ("MAIL", "RCPT"):
        match = _MAIL.fullmatch(cmd.rest)
        if match:
            params = match[2].split()
            return fuzz_commands.make_input(kind, [match[1], *params], flags)
    verb, *words = cmd.line.split(b" ")
    return fuzz_commands.make_input("COMMAND", [verb, *words], flags)


def session_plan(commands: list[ClientCommand], lmtp: bool) -> tuple[str, ...]:
    plan: list[str] = []
    for cmd in commands:
        rest = cmd.rest.upper()
        if cmd.verb in ("EHLO", "LHLO"):
            plan.append("HELLO")
        elif cmd.verb in ("HELO", "STARTTLS", "RSET", "NOOP", "VRFY", "EXPN", "HELP", "QUIT"):
            plan.append(cmd.verb)
        elif cmd.verb == "MAIL":
            if b"SMTPUTF8" in rest:
                plan.append("MAIL_UTF8")
            elif b"RET=" in rest or b"ENVID=" in rest:
                plan.append("MAIL_DSN")
            elif b"SIZE=" in rest or b"BODY=" in rest:
                plan.append("MAIL_PARAMS")
            else:
                plan.append("MAIL")
        elif cmd.verb == "RCPT":
            if b"NOTIFY=" in rest:
                plan.append("RCPT_DSN")
            elif not cmd.rest.isascii():
                plan.append("RCPT_UTF8")
            else:
                plan.append("RCPT")
        elif cmd.verb == "DATA":
            plan.extend(("DATA", "CONTENT", "END"))
        elif cmd.verb == "BDAT":
            plan.append("BDAT_LAST" if b"LAST" in rest else "BDAT")
        else:
            plan.append("XYZZY")
    return tuple(plan)


# A post-TLS server part for the STARTTLS sessions (the recordings stop at the 220).
AFTER_TLS = (
    b"250-server.example\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
    b"221 2.0.0 Bye\r\n"
)


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


class Writer:
    """Writes each distinct seed once per harness."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {}
        self.count: dict[str, int] = {}

    def clean(self) -> None:
        for harness in ("replies", "session", "data", "commands", "facade"):
            folder = SEEDS / harness
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.iterdir():
                if old.name.startswith(("t-", "edge-")):
                    old.unlink()
            self.seen[harness] = set()
            self.count[harness] = 0

    def write(self, harness: str, name: str, data: bytes) -> None:
        digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        if digest in self.seen[harness]:
            return
        self.seen[harness].add(digest)
        self.count[harness] += 1
        path = SEEDS / harness / f"{_name(name)}-{digest[:8]}"
        path.write_bytes(data)


def from_transcripts(writer: Writer, folder: Path) -> None:
    shapes: set[bytes] = set()
    for path in sorted(folder.glob("*/*.txt")):
        server = path.parent.name
        name = f"t-{server}-{path.stem}"
        transcript = load(path, name)
        if server == "ehlo":
            for index, (kind, chunk) in enumerate(transcript.records):
                if kind == "S":
                    writer.write("replies", f"{name}-{index}", fuzz_replies.make_input(chunk))
            continue
        lmtp = transcript.protocol == "LMTP"
        served, bounds = transcript.stream("S")
        writer.write("replies", name, fuzz_replies.make_input(served, bounds))
        full_client = b"".join(chunk for kind, chunk in transcript.records if kind == "C")
        commands, contents = client_commands(transcript.records)
        pipelined = "pipelining" in path.stem or any(
            kind == "C"
            and chunk.count(b"\r\n") > 1
            and not chunk.startswith((b"From", b"BDAT", b"Subject"))
            for kind, chunk in transcript.records
        )
        plan = session_plan(commands, lmtp)[:63]
        tls_at = 0
        if "starttls" in transcript.events and served:
            tls_at = len(served)
            served += AFTER_TLS
            bounds.append(tls_at)
            plan = (*plan, "HELLO", "QUIT")
        writer.write(
            "session",
            name,
            fuzz_session.make_input(
                served,
                plan=plan,
                lmtp=lmtp,
                pipelining=pipelined,
                lowercase=full_client[:1].islower(),
                eof=any(e.startswith("server-") for e in transcript.events),
                tls_at=tls_at,
                splits=bounds,
            ),
        )
        utf8 = False
        for cmd in commands:
            shape = re.sub(rb"[0-9]", b"0", cmd.line)  # r0001@, r0002@, ...: one seed
            if shape in shapes:
                continue
            shapes.add(shape)
            if cmd.verb == "MAIL":
                utf8 = b"SMTPUTF8" in cmd.rest.upper()
            writer.write("commands", f"{name}-{cmd.verb}", command_seed(cmd, lmtp, utf8))
        for index, content in enumerate(contents):
            for bdat in (False, True):
                for limit in (None, 998):
                    writer.write(
                        "data",
                        f"{name}-{index}{'-bdat' if bdat else ''}{'-998' if limit else ''}",
                        fuzz_data.make_input(content, bdat=bdat, limit=limit),
                    )


def edge_replies(writer: Writer) -> None:
    line = fuzz_replies.make_input
    cases = {
        "bare-code": b"250\r\n",
        "empty-continuation": b"250-\r\n250 \r\n",
        "tab-in-text": b"250 text\twith tab\r\n",
        "nul-in-text": b"250 bad\x00text\r\n",
        "four-digit-code": b"2500 x\r\n",
        "no-separator": b"250x\r\n",
        "empty-line": b"\r\n",
        "code-600": b"600 x\r\n",
        "enhanced": b"250 2.0.0 ok\r\n550 5.1.1 no\r\n",
        "enhanced-class-mismatch": b"250 5.0.0 mismatch\r\n",
        "bare-cr-lf": b"250 ok\r250 ok\n250 ok\r\n",
        "code-change": b"250-first\r\n251 second\r\n",
        "gbk": b"535 Error: \xc7\xeb\xca\xb9\xd3\xc3\xca\xda\xc8\xa8\xc2\xeb\r\n",
        "utf8": b"250 caf\xc3\xa9\r\n",
        "cr-at-end": b"250 ok\r",
        "line-2048": b"250 " + b"a" * 2042 + b"\r\n",
        "line-2049": b"250 " + b"a" * 2043 + b"\r\n",
        "no-crlf-2048": b"250 " + b"a" * 2044,
        "lines-256": b"250-x\r\n" * 255 + b"250 end\r\n",
        "lines-257": b"250-x\r\n" * 256 + b"250 end\r\n",
    }
    for name, payload in cases.items():
        writer.write("replies", f"edge-{name}", line(payload, [1, len(payload) // 2]))


def edge_sessions(writer: Writer) -> None:
    ehlo = (
        b"250-server.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
        b"250-SMTPUTF8\r\n250-DSN\r\n250 STARTTLS\r\n"
    )
    ok = b"250 2.0.0 ok\r\n"
    full = fuzz_session.make_input
    cases = {
        "default-plan": full(b"220 hi\r\n" + ehlo + ok * 2 + b"354 go\r\n" + ok + b"221 bye\r\n"),
        "pipelined-lmtp": full(
            b"220 hi\r\n" + ehlo + ok * 3 + b"550 no\r\n354 go\r\n" + ok + b"452 full\r\n" + ok,
            plan=("HELLO", "MAIL", "RCPT", "RCPT", "RCPT", "DATA", "CONTENT", "END", "QUIT"),
            lmtp=True,
            pipelining=True,
        ),
        "starttls-injection": full(
            b"220 hi\r\n" + ehlo + b"220 go ahead\r\n250 injected\r\n",
            plan=("HELLO", "STARTTLS", "HELLO", "QUIT"),
        ),
        "starttls-clean": full(
            b"220 hi\r\n" + ehlo + b"220 go ahead\r\n" + ehlo + b"221 bye\r\n",
            plan=("HELLO", "STARTTLS", "HELLO", "QUIT"),
            tls_at=len(b"220 hi\r\n" + ehlo + b"220 go ahead\r\n"),
        ),
        "greeting-554": full(b"554 go away\r\n221 bye\r\n"),
        "greeting-421": full(b"421 busy\r\n"),
        "reply-421-midway": full(b"220 hi\r\n" + ehlo + b"421 shutting down\r\n"),
        "unsolicited": full(b"220 hi\r\n250 what\r\n"),
        "eof-mid-reply": full(b"220 hi\r\n250-server", eof=True),
        "silent": full(b"220 hi\r\n", eof=False),
        "required-tls": full(b"220 hi\r\n" + ehlo + ok * 3, policy=2),
        "content-long-line": full(
            b"220 hi\r\n250-server.example\r\n250 PIPELINING\r\n250 ok\r\n250 ok\r\n354 go\r\n",
            plan=("HELLO", "MAIL", "RCPT", "DATA", "CONTENT_LONG", "END", "QUIT"),
            eof=False,
        ),
        "utf8": full(
            b"220 hi\r\n" + ehlo + ok * 3,
            plan=("HELLO", "MAIL_UTF8", "RCPT_UTF8", "RCPT_DSN", "QUIT"),
            pipelining=True,
        ),
    }
    for name, data in cases.items():
        writer.write("session", f"edge-{name}", data)


def edge_data(writer: Writer) -> None:
    make = fuzz_data.make_input
    cases = {
        "empty": make(b""),
        "dot": make(b"."),
        "cr": make(b"\r"),
        "lf": make(b"\n"),
        "dot-line": make(b".\r\n"),
        "terminator-inside": make(b"a\r\n.\r\nb", [1, 3, 4]),
        "terminator-only": make(b"\r\n.\r\n", [1, 2, 3, 4], kind=3),
        "cr-at-end": make(b"line\r"),
        "mixed-endings": make(b"a\rb\nc\r\nd\n\re", [1, 2, 3, 4, 5, 6, 7], kind=1),
        "dots-lf": make(b".\n.\n.", [1, 2, 3], kind=2),
        "split-crlf": make(b"a\r\n.b", [2, 3]),
        "double-dot": make(b"..\r\n..", [1]),
        "limit-3-ok": make(b"abc\r\n.bc\rabc\nabc", [2, 4, 5], limit=3),
        "limit-3-over-split": make(b"abc\r\nab", [4, 7], limit=3),
        "limit-3-over-open": make(b"ab\rabcd", [3, 5, 6], limit=3),
        "limit-0": make(b"\r\n\n\rx", [1, 2, 3], limit=0),
        "limit-998-exact": make(b"x" * 998 + b"\r\n" + b"y" * 998, [500, 1000], limit=998),
        "limit-998-over": make(b"x" * 998 + b"\r\n" + b"y" * 999, [500, 1000, 1999], limit=998),
        "limit-tiles": make((b"a" * 6 + b"\n") * 9 + b"b" * 12 + b"\n", [20, 40], limit=7),
    }
    for name, data in cases.items():
        writer.write("data", f"edge-{name}", data)
        # The same content without dot-stuffing (BDAT): flip bit 7 of the control byte.
        writer.write("data", f"edge-bdat-{name}", bytes([data[0] | 0x80]) + data[1:])


def edge_commands(writer: Writer) -> None:
    make = fuzz_commands.make_input
    cases = {
        "crlf-injection": make("MAIL", [b"a@example.org>\r\nRSET"]),
        "lf-in-param": make("RCPT", [b"a@example.org", b"NOTIFY=NEVER\nRSET"]),
        "nul": make("NOOP", [b"a\x00b"]),
        "surrogate": make("VRFY", [b"\xff\xfe"], 0x01),
        "replace": make("EXPN", [b"\xff\xfe"], 0x04),
        "latin1-nel": make("HELP", [b"a\x85b"], 0x08),
        "long-local-part": make("MAIL", [b"a" * 65 + b"@example.org"]),
        "long-noop": make("NOOP", [b"n" * 2100]),
        "long-params": make(
            "RCPT", [b"a@example.org", *[b"X" + bytes([65 + i]) * 200 for i in range(11)]]
        ),
        "generic-verb": make("COMMAND", [b"X-FOO", b"bar", b"baz"]),
        "generic-bad-verb": make("COMMAND", [b"1FOO"]),
        "utf8-ehlo": make("EHLO", ["b\u00fccher.example".encode()]),
        "ipv6-literal": make("EHLO", [b"[IPv6:::1]"]),
        "ipv4-literal": make("HELO", [b"[127.0.0.1]"]),
        "quoted-local": make("MAIL", [b'"a b"@example.org', b"SMTPUTF8"]),
        "postmaster": make("RCPT", [b"Postmaster"]),
        "not-strict-angle": make("MAIL", [b"a<b"], 0x01),
        "utf8-rcpt": make("RCPT", ["\u7528\u6237@example.org".encode()], 0x10),
        "size-over": make("MAIL", [b"a@example.org", b"SIZE=99999999999"]),
        "lhlo-smtp": make("LHLO", [b"client.example"]),
        "required": make("MAIL", [b"a@example.org"], 0x40),
        "u2028": make("NOOP", ["a\u2028b".encode()]),
    }
    for name, data in cases.items():
        writer.write("commands", f"edge-{name}", data)


def edge_facade(writer: Writer) -> None:
    ehlo = (
        b"250-server.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n"
        b"250-SMTPUTF8\r\n250-DSN\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n250 STARTTLS\r\n"
    )
    plain_ehlo = b"250-server.example\r\n250-SIZE 1000000\r\n250 AUTH LOGIN\r\n"
    ok, go, bye = b"250 2.0.0 ok\r\n", b"354 go ahead\r\n", b"221 2.0.0 bye\r\n"
    make = fuzz_facade.make_input
    cases = {
        "default-plan": make(b"220 hi\r\n" + ehlo + ok * 2 + go + ok + bye),
        "sendmail-no-pipelining": make(
            b"220 hi\r\n"
            + plain_ehlo
            + ok * 2
            + b"550 5.1.1 no such user\r\n"
            + ok
            + go
            + ok
            + bye,
            plan=[("EHLO", 1), ("SENDMAIL", 2 | 1 << 2), ("QUIT", 0)],
        ),
        "lmtp-pipelined": make(
            b"220 hi\r\n" + ehlo + ok * 3 + go + ok + b"452 4.2.2 mailbox full\r\n" + bye,
            plan=[("EHLO", 1), ("SENDMAIL", 1 | 1 << 6), ("QUIT", 0)],
            lmtp=True,
        ),
        "lmtp-unix-with": make(
            b"220 hi\r\n" + ehlo + bye,
            plan=[("EHLO", 0), ("WITH", 0)],
            lmtp=True,
            unix=True,
            constructor=True,
        ),
        "send-message-bcc": make(
            b"220 hi\r\n" + ehlo + ok * 4 + go + ok + bye,
            plan=[("SEND_MESSAGE", 1), ("QUIT", 0)],
        ),
        "send-message-smtputf8": make(
            b"220 hi\r\n" + ehlo + ok * 2 + go + ok + bye,
            plan=[("EHLO", 1), ("SEND_MESSAGE", 3), ("QUIT", 0)],
        ),
        "starttls-pretended": make(
            b"220 hi\r\n" + ehlo + b"220 2.0.0 ready\r\n" + ehlo + ok * 2 + go + ok + bye,
            plan=[("STARTTLS", 1), ("SENDMAIL", 0), ("QUIT", 0)],
        ),
        "starttls-failing": make(
            b"220 hi\r\n" + ehlo + b"220 2.0.0 ready\r\n",
            plan=[("EHLO", 1), ("STARTTLS", 0), ("NOOP", 0)],
        ),
        "login-plain": make(
            b"220 hi\r\n" + ehlo + b"235 2.7.0 ok\r\n" + bye,
            plan=[("EHLO", 1), ("LOGIN", 0), ("QUIT", 0)],
        ),
        "login-login": make(
            b"220 hi\r\n" + plain_ehlo + b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
            b"235 2.7.0 ok\r\n" + bye,
            plan=[("EHLO", 1), ("LOGIN", 1 | 0x80), ("QUIT", 0)],
        ),
        "auth-cram-md5": make(
            b"220 hi\r\n"
            + ehlo
            + b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n"
            b"535 5.7.8 no\r\n" + bye,
            plan=[("EHLO", 1), ("AUTH", 2 | 0x20), ("QUIT", 0)],
        ),
        "login-scram": make(
            b"220 hi\r\n250-server.example\r\n250 AUTH SCRAM-SHA-256 PLAIN\r\n"
            b"334 cj1meWtvK2QybGJiRmdPTlJ2OXF6ZHBhbWF0aXNjbmRsYW51dmI1YWR0OGJsdW0=\r\n"
            b"535 5.7.8 no\r\n235 2.7.0 ok\r\n" + bye,
            plan=[("EHLO", 1), ("LOGIN", 0), ("QUIT", 0)],
        ),
        "commands": make(
            b"220 hi\r\n"
            + ehlo
            + ok * 3
            + b"252 2.1.5 maybe\r\n502 no\r\n214 help\r\n"
            + ok * 3
            + b"250 raw\r\n",
            plan=[
                ("EHLO", 1),
                ("DOCMD", 0),
                ("DOCMD", 20),
                ("PUTCMD", 17),
                ("VERIFY", 0),
                ("EXPN", 1),
                ("HELP", 1),
                ("NOOP", 0),
                ("RSET", 0),
                ("DOCMD", 2),
                ("FEATURES", 0),
                ("SEND", 0),
                ("GETREPLY", 0),
            ],
        ),
        "refused-arguments": make(
            b"220 hi\r\n" + ehlo + b"252 2.1.5 maybe\r\n" + bye,
            plan=[
                ("EHLO", 1),
                ("DOCMD", 21),
                ("DOCMD", 23),
                ("VERIFY", 3),
                ("MAIL", 4),
                ("SEND", 9),
                ("EHLO", 2),
                ("QUIT", 0),
            ],
        ),
        "mail-rcpt-data": make(
            b"220 hi\r\n" + plain_ehlo + ok * 2 + go + ok + bye,
            plan=[("EHLO_OR_HELO", 0), ("MAIL", 0), ("RCPT", 2), ("DATA", 1), ("QUIT", 0)],
            timeout=True,
        ),
        "greeting-554": make(b"554 5.3.2 go away\r\n", constructor=True),
        "reply-421": make(
            b"220 hi\r\n" + ehlo + b"421 4.3.2 shutting down\r\n",
            plan=[("EHLO", 1), ("NOOP", 0), ("NOOP", 0)],
        ),
        "stall": make(
            b"220 hi\r\n" + ehlo, plan=[("EHLO", 1), ("NOOP", 0)], eof=False, timeout=True
        ),
        "eof-mid-reply": make(b"220 hi\r\n250-server.example\r\n250-PIPE", splits=[8]),
        "debug-helo-reconnect": make(
            b"220 hi\r\n500 what\r\n250 hello\r\n" + bye + b"220 again\r\n" + ehlo + bye,
            plan=[("EHLO_OR_HELO", 0), ("QUIT", 0), ("CONNECT", 1), ("EHLO", 1), ("WITH", 1)],
            observer=3,
        ),
    }
    for name, data in cases.items():
        writer.write("facade", f"edge-{name}", data)


def main() -> int:
    """Write every seed; print how many per harness."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcripts", type=Path, default=ROOT.parent / "shared" / "transcripts")
    args = parser.parse_args()
    writer = Writer()
    writer.clean()
    from_transcripts(writer, args.transcripts)
    edge_replies(writer)
    edge_sessions(writer)
    edge_data(writer)
    edge_commands(writer)
    edge_facade(writer)
    for harness, count in writer.count.items():
        print(f"{harness}: {count} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
