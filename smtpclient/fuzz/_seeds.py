"""Built-in seed sessions and the dictionary the mutators draw from.

The seeds are small sessions written by hand after the recorded exchanges in
the repository's ``tests/transcripts`` (postfix, exim, opensmtpd, aiosmtpd):
a plain message, a pipelined one, refusals, RSET and the "any time"
commands, out-of-order commands, BDAT.  They live here because the test
transcripts are not installed with the package.  ``{rcpt}`` in a seed stands
for a recipient the fuzzer picks (see :class:`~smtpclient.fuzz.Fuzzer`).
"""

from __future__ import annotations

from typing import Final

from ._steps import Step, content, group, line, raw

__all__ = [
    "ADDRESSES",
    "COMMANDS",
    "CONTENTS",
    "HOSTILE_CONTENTS",
    "LONG_LINE_LENGTHS",
    "PARAMS",
    "SEEDS",
    "TAILS",
    "fill",
    "seed_sessions",
]

#: Total lengths (CRLF included) of the long lines the mutators build: the
#: RFC 5321 §4.5.3.1.4 limit of 512, the 1000 of §4.5.3.1.6, one past each,
#: the engine's own 2048 and a 64 KiB line.
LONG_LINE_LENGTHS: Final = (510, 512, 513, 998, 1000, 1001, 1002, 2048, 2049, 4096, 65536)

#: Addresses for MAIL and RCPT, valid and odd (RFC 5321 §4.1.2 grammar edges).
ADDRESSES: Final = (
    "<>",
    "<sender@example.org>",
    "<postmaster>",
    "<{rcpt}>",
    "<@relay.example:{rcpt}>",
    '<"quoted local"@example.org>',
    "<a@[127.0.0.1]>",
    "<a@[IPv6:::1]>",
    "<a@b",
    "a@example.org",
    "<a@@example.org>",
    "<.a@example.org>",
    "<a..b@example.org>",
    "<\u00fc@example.org>",
    "<a@example.org>>",
    "<<a@example.org>",
    "<a@-example.org>",
    "<a@" + "x" * 64 + "." + "y" * 190 + ">",
)

#: ESMTP parameters for MAIL and RCPT (RFC 1870, 6152, 3461, 6531, 4954, 3030).
PARAMS: Final = (
    "SIZE=100",
    "SIZE=99999999999999999999",
    "SIZE=-1",
    "BODY=8BITMIME",
    "BODY=BINARYMIME",
    "BODY=7BIT",
    "SMTPUTF8",
    "RET=FULL",
    "ENVID=abc+2Bdef",
    "NOTIFY=SUCCESS,FAILURE",
    "NOTIFY=NEVER,SUCCESS",
    "ORCPT=rfc822;a@example.org",
    "AUTH=<>",
    "XYZZY=1",
    "SIZE",
    "=",
)

#: Command lines the mutators insert (``{rcpt}`` as above).
COMMANDS: Final = (
    "EHLO fuzz.example",
    "HELO fuzz.example",
    "EHLO",
    "EHLO [127.0.0.1]",
    "MAIL FROM:<sender@example.org>",
    "MAIL FROM:<>",
    "MAIL FROM:<sender@example.org> SIZE=100 BODY=8BITMIME",
    "RCPT TO:<{rcpt}>",
    "RCPT TO:<postmaster>",
    "RCPT TO:<nobody@example.invalid>",
    "DATA",
    "RSET",
    "NOOP",
    "NOOP some argument",
    "VRFY postmaster",
    "VRFY",
    "EXPN list",
    "HELP",
    "HELP MAIL",
    "ETRN example.org",
    "AUTH PLAIN AHVzZXIAcGFzcw==",
    "AUTH LOGIN",
    "AUTH CRAM-MD5",
    "*",
    "XYZZY",
    "MAIL",
    "RCPT",
    "MAIL FROM:",
    "RCPT TO:",
    "MAIL TO:<a@example.org>",
    "RCPT FROM:<a@example.org>",
    "",
    " ",
    "QUIT",
)

#: Message contents that end once, correctly (known reply count: one verdict).
CONTENTS: Final = (
    b"Subject: fuzz\r\n\r\nhello\r\n.\r\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"Subject: dots\r\n\r\n..leading dot\r\n...\r\n.\r\n",
    b"Subject: 8bit\r\n\r\ncaf\xc3\xa9 \xff\xfe\r\n.\r\n",
    b"Subject: long\r\n\r\n" + b"x" * 1200 + b"\r\n.\r\n",
)

#: Contents with bare CR and LF around dots: a correct server takes all of it
#: as message content and answers once; one that ends the message at a bare
#: LF dot answers the smuggled commands too (SMTP smuggling, CVE-2023-51764).
HOSTILE_CONTENTS: Final = (
    b"Subject: lf\n\nbare LF lines\nhere\r\n.\r\n",
    b"Subject: s1\r\n\r\nbody\n.\nMAIL FROM:<smuggled@example.org>\r\nRCPT TO:<{rcpt}>\r\n"
    b"DATA\r\nSubject: smuggled\r\n\r\n.\r\n",
    b"Subject: s2\r\n\r\nbody\r\n.\nNOOP\r\n.\r\n",
    b"Subject: s3\r\n\r\nbody\n.\r\nNOOP\r\n.\r\n",
    b"Subject: s4\r\n\r\nbody\r.\rNOOP\r\n.\r\n",
    b"Subject: s5\r\n\r\nbody\r.\r\nNOOP\r\n.\r\n",
    b"Subject: nul\r\n\r\na\x00b\r\n.\r\n",
)

#: Steps whose reply count is unknown: they end a session.
TAILS: Final = (
    raw(b"\n", None),
    raw(b"\r", None),
    raw(b"NOOP", None),
    raw(b"NOOP\n", None),
    raw(b"NOOP\r", None),
    raw(b"NOOP\rNOOP\r\n", None),
    raw(b"NOOP\nNOOP\r\n", None),
    raw(b"\x16\x03\x01\x00\x05hello", None),  # a TLS record in the clear
    raw(b"\xff" * 64 + b"\r\n", None),
    line("STARTTLS"),
    raw(b"BDAT 1000000 LAST\r\nshort", None),
    raw(b"A" * 65536 + b"\r\n", None),
)

_HELLO = "EHLO fuzz.example"
_MAIL = "MAIL FROM:<sender@example.org>"
_RCPT = "RCPT TO:<{rcpt}>"
_BDAT_BODY = b"Subject: bdat\r\n\r\nbdat message\r\n"
_BODY = b"Subject: seed\r\n\r\nseed message\r\n.\r\n"

#: The seed sessions, by name (``{rcpt}`` to be filled in).
SEEDS: Final[dict[str, tuple[Step, ...]]] = {
    "mail": (line(_HELLO), line(_MAIL), line(_RCPT), line("DATA"), content(_BODY)),
    "helo": (line("HELO fuzz.example"), line(_MAIL), line(_RCPT), line("DATA"), content(_BODY)),
    "pipelined": (
        line(_HELLO),
        group((_MAIL, _RCPT, "RCPT TO:<postmaster>", "DATA")),
        content(_BODY),
    ),
    "two-messages": (
        line(_HELLO),
        line(_MAIL),
        line(_RCPT),
        line("DATA"),
        content(_BODY),
        line("MAIL FROM:<>"),
        line(_RCPT),
        line("DATA"),
        content(b".\r\n"),
    ),
    "rset": (line(_HELLO), line(_MAIL), line(_RCPT), line("RSET"), line(_MAIL), line("NOOP")),
    "any-time": (
        line(_HELLO),
        line("NOOP"),
        line("VRFY postmaster"),
        line("EXPN list"),
        line("HELP"),
        line(_MAIL),
        line("NOOP"),
        line(_RCPT),
        line("VRFY postmaster"),
    ),
    "bad-sequence": (
        line("MAIL FROM:<a@example.org>"),
        line(_HELLO),
        line(_RCPT),
        line("DATA"),
        line(_MAIL),
        line(_MAIL),
        line("DATA"),
    ),
    "refused": (
        line(_HELLO),
        line(_MAIL),
        line("RCPT TO:<nobody@example.invalid>"),
        line("DATA"),
        line("RSET"),
    ),
    "params": (
        line(_HELLO),
        line("MAIL FROM:<sender@example.org> SIZE=100 BODY=8BITMIME"),
        line("RCPT TO:<{rcpt}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.org"),
        line("DATA"),
        content(_BODY),
    ),
    "bdat": (
        line(_HELLO),
        line(_MAIL),
        line(_RCPT),
        raw(b"BDAT %d LAST\r\n%s" % (len(_BDAT_BODY), _BDAT_BODY)),
    ),
    "auth": (line(_HELLO), line("AUTH LOGIN"), line("dXNlcg=="), line("cGFzcw==")),
}


def seed_sessions(rcpt: str) -> tuple[tuple[str, tuple[Step, ...]], ...]:
    """The seeds with ``{rcpt}`` replaced by ``rcpt``, as ``(name, steps)`` pairs."""
    return tuple((name, tuple(fill(step, rcpt) for step in steps)) for name, steps in SEEDS.items())


def fill(step: Step, rcpt: str) -> Step:
    """``step`` with every ``{rcpt}`` replaced by ``rcpt``."""
    if b"{rcpt}" not in step.data:
        return step
    return Step(step.kind, step.data.replace(b"{rcpt}", rcpt.encode()), step.replies)
