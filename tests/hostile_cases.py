"""The hostile servers, one :class:`Case` each: a script, a plan, the outcome per face, a source.

Each case names where its hostility comes from (an RFC section, a CVE, an
advisory) and what every face must report.  ``expect`` holds for every face
unless ``faces`` says otherwise, by face name or by group (``engine``,
``smtplib``, ``client_SMTP``, ``aio``, ``cli``); each such difference is
explained in ``why``: a face that imitates a reference library (smtplib,
aiosmtplib) reports what that library's exceptions can say.

What every case checks besides the outcome (``tests/test_hostile.py``): the
connection is closed, nothing is left behind, no credentials or mail go out
in the clear where TLS was asked for, no command comes out of step, and no
success is reported that did not happen (a delivered message is compared with
what the server recorded).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from tests.hostile_faces import DEFAULT_MESSAGE, Face, Kind, Plan
from tests.hostile_kit import (
    Step,
    answer_until,
    close,
    endless,
    expect,
    read_bdat,
    read_data,
    reset,
    send,
    sleep,
    stall,
    starttls,
    trickle,
)

__all__ = ["CASES", "Case", "Expect"]


@dataclass(frozen=True)
class Expect:
    """The outcome a face must report.

    Attributes:
        kind: the :data:`~tests.hostile_faces.Kind`, or the kinds allowed when
            the network decides between them (the case says why).
        code: the server's code the face must report (if the face reports one).
        command: the command refused (if the face names it).
        accepted: for ``delivered``, the recipients the message went to.
        refused: for ``delivered``, ``(recipient, code)`` for the others.
    """

    kind: Kind | tuple[Kind, ...]
    code: int | None = None
    command: str | None = None
    accepted: tuple[str, ...] | None = None
    refused: tuple[tuple[str, int], ...] | None = None

    @property
    def kinds(self) -> tuple[Kind, ...]:
        """The kinds allowed."""
        return self.kind if isinstance(self.kind, tuple) else (self.kind,)


Cert = Literal["trusted", "untrusted", "wrong-host"]


@dataclass(frozen=True)
class Case:
    """One hostile server and what each face must make of it.

    Attributes:
        name: the test id.
        source: where the hostility is described (RFC, CVE, advisory).
        script: the server's steps (``tests/hostile_kit.py``).
        plan: what the client is asked to do.
        expect: the outcome for every face not named in ``faces``.
        faces: outcomes by face name or group, where a face differs.
        why: the reason for each entry of ``faces`` (same keys).
        implicit_cert: the certificate of an implicit-TLS server, or
            ``no-handshake`` for one that never starts it.
        tail: what the client may send after the script ended (line prefixes);
            after a 421 nothing at all.
        tails: ``tail`` by face name or group, where a documented difference
            (``why``) lets a face send more.
        clear_auth: groups that send credentials in the clear on purpose
            (they imitate a library that does).
        forbidden: byte strings that must never go on the wire.
        forbidden_in_clear: byte strings (case-insensitive) that must not go on
            the wire before TLS.  Besides these, the test forbids in the clear
            the credentials (unless ``clear_auth``) and, when TLS is
            ``required`` or ``implicit``, MAIL.
        text: what every face reporting a refusal must show of the server's
            text (a substring).
    """

    name: str
    source: str
    script: tuple[Step, ...]
    expect: Expect
    plan: Plan = field(default_factory=Plan)
    faces: Mapping[str, Expect] = field(default_factory=dict)
    why: Mapping[str, str] = field(default_factory=dict)
    implicit_cert: Cert | Literal["no-handshake"] = "trusted"
    tail: tuple[bytes, ...] = (b"QUIT", b"RSET")
    tails: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)
    clear_auth: frozenset[str] = frozenset()
    forbidden: tuple[bytes, ...] = ()
    forbidden_in_clear: tuple[bytes, ...] = ()
    text: str | None = None

    def __post_init__(self) -> None:
        assert set(self.faces) == set(self.why), f"{self.name}: every difference needs a why"

    def allowed_tail(self, face: Face) -> tuple[bytes, ...]:
        """The line prefixes ``face`` may send after the script."""
        return self.tails.get(face.name) or self.tails.get(face.group) or self.tail

    def expected(self, face: Face) -> Expect:
        """The outcome ``face`` must report."""
        return self.faces.get(face.name) or self.faces.get(face.group) or self.expect


# -- building blocks -------------------------------------------------------------------------

GREETING = b"220 hostile.example ESMTP ready\r\n"
EXTENSIONS = (b"PIPELINING", b"8BITMIME", b"ENHANCEDSTATUSCODES")
USER, PASSWORD = "user@example.org", "s3cret-Pa55"
#: The password as PLAIN and LOGIN carry it: none of these may cross in the clear.
SECRETS = (
    PASSWORD.encode(),
    base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()),
    base64.b64encode(PASSWORD.encode()),
)
R1, R2 = "rcpt@example.org", "second@example.org"


def ehlo_reply(extensions: Sequence[bytes] = EXTENSIONS) -> bytes:
    """A 250 reply to EHLO/LHLO offering ``extensions``."""
    lines = [b"hostile.example greets client.example", *extensions]
    return b"".join(
        b"250" + (b" " if i == len(lines) - 1 else b"-") + line + b"\r\n"
        for i, line in enumerate(lines)
    )


def hello(extensions: Sequence[bytes] = EXTENSIONS, verb: bytes = b"EHLO") -> list[Step]:
    """The greeting, then EHLO (or LHLO) answered with ``extensions``."""
    return [send(GREETING), expect(verb), send(ehlo_reply(extensions))]


def tls_hello(extensions: Sequence[bytes] = EXTENSIONS, cert: Cert = "trusted") -> list[Step]:
    """Greeting, EHLO offering STARTTLS, STARTTLS, the handshake, EHLO inside TLS."""
    return [
        *hello((*extensions, b"STARTTLS")),
        expect(b"STARTTLS"),
        send(b"220 2.0.0 go ahead\r\n"),
        starttls(cert),
        expect(b"EHLO"),
        send(ehlo_reply(extensions)),
    ]


def envelope(recipients: int = 1) -> list[Step]:
    """MAIL and each RCPT accepted, DATA answered 354."""
    steps = [expect(b"MAIL FROM:"), send(b"250 2.1.0 sender ok\r\n")]
    for _ in range(recipients):
        steps += [expect(b"RCPT TO:"), send(b"250 2.1.5 recipient ok\r\n")]
    return [*steps, expect(b"DATA"), send(b"354 go ahead\r\n")]


def deliver(reply: bytes = b"250 2.0.0 queued as 1\r\n") -> list[Step]:
    """The content read up to the dot, then ``reply``."""
    return [read_data(), send(reply)]


def script(*parts: Step | Sequence[Step]) -> tuple[Step, ...]:
    """Flatten steps and lists of steps into a script."""
    steps: list[Step] = []
    for part in parts:
        if isinstance(part, Step):
            steps.append(part)
        else:
            steps.extend(part)
    return tuple(steps)


DELIVERED = Expect("delivered", accepted=(R1,), refused=())
TLS_PLAN = Plan(tls="starttls")
AUTH_TLS_PLAN = Plan(tls="implicit", username=USER, password=PASSWORD)
STALL = Plan(timeout=0.2)  # stalls must time out quickly: the suite's budget is 60 s

# The groups' reasons, written once.
WHY_SMTPLIB_DISCONNECTED = (
    "smtplib has no 'outcome unknown': what fails after the end of data is "
    "SMTPServerDisconnected (R6); never a success"
)
WHY_SMTPLIB_DATA = "smtplib raises SMTPDataError for DATA and for the end of data alike"
WHY_AIO_DATA = "aiosmtplib raises SMTPDataError for DATA and for the end of data alike"
WHY_SMTPLIB_CLEAR = (
    "smtplib sends credentials wherever it is asked to; the face keeps that on "
    "purpose (README: 'Kept as smtplib has them'): the caller decides about TLS"
)
WHY_SMTPLIB_421_EHLO = (
    "smtplib's ehlo_or_helo_if_needed() answers any non-2yz EHLO reply with HELO and "
    "finds the close (SMTPServerDisconnected); the face closed at the 421 and writes no HELO"
)
WHY_CLI_BDAT = "the CLI reports a refused chunk as the message refused ('message refused: 554')"
WHY_SMTPLIB_LENIENT_BASE64 = (
    "smtplib decodes challenges with base64.decodebytes, which drops bytes outside the "
    "alphabet: an 8-bit challenge decodes to b'' and LOGIN answers it; the server's 501 "
    "is what it reports (R5 cancels only what decodebytes refuses)"
)
WHY_SMTPLIB_LOOP = (
    "smtplib raises SMTPException('Server AUTH mechanism infinite loop') after 5 "
    "challenges, as smtplib"
)
#: smtplib's and aiosmtplib's starttls() raise a bare SMTPResponseException,
#: which names no command: those faces report the code and text only.
WHY_BARE_STARTTLS = (
    "starttls() raises a bare SMTPResponseException (as smtplib and aiosmtplib): "
    "the code and text, no command"
)


def _bare_starttls(code: int) -> tuple[dict[str, Expect], dict[str, str]]:
    """``faces`` and ``why`` for a refused STARTTLS in the smtplib and aio faces."""
    faces = {group: Expect("refused", code, None) for group in ("smtplib", "aio")}
    return faces, dict.fromkeys(faces, WHY_BARE_STARTTLS)


WHY_SMTPLIB_NOT_354 = "smtplib's data() raises SMTPDataError for any reply to DATA but 354"
WHY_PERMISSIVE_FINAL = (
    "the face's engine is permissive (it follows the server, as the imitated library): a "
    "354 to the end of data is a reply, not a broken protocol, and a reply that is not 2yz "
    "is SMTPDataError; never a success"
)
WHY_AIO_NO_SCRAM = (
    "aiosmtplib knows CRAM-MD5, PLAIN and LOGIN only: with SCRAM alone offered, "
    "'No suitable authentication method found' (SMTPException), nothing is sent"
)


def _stall_case(name: str, before: Sequence[Step]) -> Case:
    return Case(
        name=f"stall-{name}",
        source="RFC 5321 §4.5.3.2 (a timeout per stage); slowloris-style peers",
        script=script(before, stall()),
        plan=STALL,
        expect=Expect("timeout"),
        tail=(),  # out of step after a timeout: not even QUIT
    )


def _drop_case(name: str, before: Sequence[Step], how: Step, kind: Expect) -> Case:
    return Case(
        name=f"{'reset' if how.kind == 'reset' else 'drop'}-{name}",
        source="RFC 5321 §3.8 (the connection may end at any time)",
        script=script(before, how),
        expect=kind,
    )


def _421_case(
    name: str,
    before: Sequence[Step],
    command: str,
    *,
    plan: Plan | None = None,
    faces: Mapping[str, Expect] | None = None,
    why: Mapping[str, str] | None = None,
) -> Case:
    return Case(
        name=f"421-{name}",
        source="RFC 5321 §3.8: 421 means the server is closing the transmission channel",
        script=script(before, send(b"421 4.3.2 shutting down\r\n"), stall()),
        plan=plan or Plan(),
        expect=Expect("refused", 421, command),
        faces=faces or {},
        why=why or {},
        text="shutting down",
        tail=(),  # the channel is closing: not even QUIT
    )


# -- the cases -----------------------------------------------------------------------------

_SMUGGLED = (
    b"From: sender@example.org\r\nSubject: smuggling\r\n\r\n"
    b"first line\n.\nMAIL FROM:<evil@example.org>\n"
    b"second\r.\rRCPT TO:<evil@example.org>\r"
    b"third\n.\r\nDATA\r\n"
    b".\r\n"
    b"last line without an ending"
)

CASES: tuple[Case, ...] = (
    # -- a server that accepts everything: every success must be real ------------------
    Case(
        name="accepts-everything",
        source="RFC 5321 §3.3 (a mail transaction); §4.5.2 (transparency)",
        script=script(hello(), envelope(), deliver()),
        expect=DELIVERED,
    ),
    Case(
        name="accepts-everything-no-pipelining",
        source="RFC 5321 §3.3; RFC 2920 (only if offered)",
        script=script(hello((b"8BITMIME",)), envelope(), deliver()),
        expect=DELIVERED,
    ),
    Case(
        name="accepts-everything-two-recipients",
        source="RFC 5321 §3.3",
        script=script(hello(), envelope(2), deliver()),
        plan=Plan(recipients=(R1, R2)),
        expect=Expect("delivered", accepted=(R1, R2), refused=()),
    ),
    Case(
        name="accepts-everything-starttls",
        source="RFC 3207 §4",
        script=script(tls_hello(), envelope(), deliver()),
        plan=TLS_PLAN,
        expect=DELIVERED,
        forbidden_in_clear=(b"MAIL FROM",),
    ),
    Case(
        name="accepts-everything-implicit-tls",
        source="RFC 8314 §3.3",
        script=script(hello(), envelope(), deliver()),
        plan=Plan(tls="implicit"),
        expect=DELIVERED,
    ),
    Case(
        name="accepts-auth-plain-in-tls",
        source="RFC 4954 §4; RFC 4616 (PLAIN)",
        script=script(
            tls_hello((*EXTENSIONS, b"AUTH PLAIN LOGIN")),
            expect(b"AUTH PLAIN"),
            send(b"235 2.7.0 welcome\r\n"),
            envelope(),
            deliver(),
        ),
        plan=Plan(tls="starttls", username=USER, password=PASSWORD),
        expect=DELIVERED,
    ),
    Case(
        name="ehlo-refused-helo-fallback",
        source="RFC 5321 §3.2 (a server without EHLO answers 502; the client says HELO)",
        script=script(
            send(GREETING),
            expect(b"EHLO"),
            send(b"502 5.5.1 what is EHLO\r\n"),
            expect(b"HELO"),
            send(b"250 hostile.example\r\n"),
            envelope(),
            deliver(),
        ),
        expect=DELIVERED,
    ),
    Case(
        name="final-dot-252",
        source="RFC 5321 §4.2.1 (2yz is success); README 'Differences from smtplib'",
        script=script(hello(), envelope(), deliver(b"252 2.0.0 taken, cannot verify\r\n")),
        expect=DELIVERED,
    ),
    Case(
        name="trickled-session",
        source="RFC 5321 §4.5.3.2 (a reply may come in pieces); TCP has no message boundaries",
        script=script(
            trickle(GREETING, 0.0005),
            expect(b"EHLO"),
            trickle(ehlo_reply(), 0.0005),
            expect(b"MAIL FROM:"),
            trickle(b"250 2.1.0 ok\r\n", 0.0005),
            expect(b"RCPT TO:"),
            trickle(b"250 2.1.5 ok\r\n", 0.0005),
            expect(b"DATA"),
            trickle(b"354 go\r\n", 0.0005),
            read_data(),
            trickle(b"250 2.0.0 queued\r\n", 0.0005),
        ),
        expect=DELIVERED,
    ),
    # -- SMTP smuggling: nothing from the content may end the data early --------------
    Case(
        name="smuggling-bare-line-endings",
        source=(
            "SMTP smuggling (T. Longin, SEC Consult, 2023-12-18); CVE-2023-51764 (Postfix), "
            "CVE-2023-51765 (sendmail), CVE-2023-51766 (Exim)"
        ),
        script=script(hello(), envelope(), deliver()),
        plan=Plan(message=_SMUGGLED),
        expect=DELIVERED,
        # (<LF>.<CR><LF> is the tail of the real end marker: data_wire_problems covers it.)
        forbidden=(b"\n.\n", b"\r.\r", b"\r\n.\r\nMAIL", b"\r\n.\r\nDATA"),
    ),
    Case(
        name="smuggling-bdat",
        source="SMTP smuggling (SEC Consult, 2023); RFC 3030 §2 (BDAT counts octets)",
        script=script(
            hello((*EXTENSIONS, b"CHUNKING")),
            expect(b"MAIL FROM:"),
            send(b"250 2.1.0 ok\r\n"),
            expect(b"RCPT TO:"),
            send(b"250 2.1.5 ok\r\n"),
            read_bdat(),
            send(b"250 2.0.0 queued\r\n"),
        ),
        plan=Plan(message=_SMUGGLED, bdat=True),
        expect=DELIVERED,
    ),
    # -- STARTTLS: injection, stripping, refusal, certificates ------------------------
    Case(
        name="starttls-response-injection",
        source=(
            "CVE-2011-0411 (Postfix STARTTLS command injection, the same buffering bug "
            "on the client side: 'response injection'); aiosmtplib GHSA-vxj7-4xrp-5vr4 / "
            "CVE-2026-55558 (plaintext bytes buffered across STARTTLS, fixed in 5.1.2)"
        ),
        script=script(
            hello((*EXTENSIONS, b"STARTTLS")),
            expect(b"STARTTLS"),
            send(b"220 2.0.0 go ahead\r\n250-injected.example\r\n250 AUTH PLAIN\r\n"),
            starttls(),
        ),
        plan=TLS_PLAN,
        expect=Expect("protocol"),
        tail=(),
    ),
    Case(
        name="starttls-injection-partial-line",
        source=(
            "CVE-2011-0411 class; nodemailer PR #1835 (a CRLF-free fragment after 220 "
            "prepended to the first reply inside TLS); RFC 3207 §6"
        ),
        script=script(
            hello((*EXTENSIONS, b"STARTTLS")),
            expect(b"STARTTLS"),
            send(b"220 2.0.0 go ahead\r\n250-AUTH PLAIN LOG"),
            starttls(),
        ),
        plan=TLS_PLAN,
        expect=Expect("protocol"),
        tail=(),
    ),
    Case(
        name="starttls-not-offered-tls-required",
        source="RFC 3207 §4.1; RFC 8314 §5; CVE-2016-0772 (smtplib STARTTLS stripping)",
        script=script(hello()),
        plan=Plan(tls="required"),
        expect=Expect("local"),
        forbidden_in_clear=(b"MAIL FROM",),
    ),
    Case(
        name="starttls-refused-454-tls-required",
        source="RFC 3207 §4 (454 TLS not available due to temporary reason)",
        script=script(
            hello((*EXTENSIONS, b"STARTTLS")),
            expect(b"STARTTLS"),
            send(b"454 4.7.0 TLS not available\r\n"),
        ),
        plan=Plan(tls="required"),
        text="TLS not available",
        expect=Expect("refused", 454, "STARTTLS"),
        faces=_bare_starttls(454)[0],
        why=_bare_starttls(454)[1],
        forbidden_in_clear=(b"MAIL FROM",),
    ),
    Case(
        name="starttls-refused-454-opportunistic",
        source="RFC 3207 §4 (454); RFC 3207 §4.1 (the client decides whether to go on)",
        script=script(
            hello((*EXTENSIONS, b"STARTTLS")),
            expect(b"STARTTLS"),
            send(b"454 4.7.0 TLS not available\r\n"),
        ),
        plan=TLS_PLAN,
        text="TLS not available",
        expect=Expect("refused", 454, "STARTTLS"),
        faces=_bare_starttls(454)[0],
        why=_bare_starttls(454)[1],
        forbidden_in_clear=(b"MAIL FROM",),
    ),
    Case(
        name="starttls-stripped-with-credentials",
        source="RFC 3207 §4.1, RFC 4954 §4 (credentials only over TLS); CVE-2016-0772 class",
        script=script(
            hello((*EXTENSIONS, b"AUTH PLAIN LOGIN")),
            expect(b"AUTH PLAIN"),
            send(b"235 2.7.0 welcome\r\n"),
            envelope(),
            deliver(),
        ),
        plan=Plan(tls="starttls", username=USER, password=PASSWORD),
        expect=Expect("local"),
        faces={"smtplib": DELIVERED},
        why={"smtplib": WHY_SMTPLIB_CLEAR},
        clear_auth=frozenset({"smtplib"}),
    ),
    Case(
        name="starttls-stripped-tls-required-credentials",
        source="RFC 3207 §4.1; RFC 8314 §5 (no fallback to cleartext)",
        script=script(hello((*EXTENSIONS, b"AUTH PLAIN LOGIN"))),
        plan=Plan(tls="required", username=USER, password=PASSWORD),
        expect=Expect("local"),
        forbidden_in_clear=(b"MAIL FROM",),
    ),
    Case(
        name="no-tls-credentials",
        source="RFC 4954 §4 (the client should not send a password in the clear)",
        script=script(
            hello((*EXTENSIONS, b"AUTH PLAIN LOGIN")),
            expect(b"AUTH PLAIN"),
            send(b"235 2.7.0 welcome\r\n"),
            envelope(),
            deliver(),
        ),
        plan=Plan(username=USER, password=PASSWORD),
        expect=Expect("local"),
        faces={"smtplib": DELIVERED},
        why={"smtplib": WHY_SMTPLIB_CLEAR},
        clear_auth=frozenset({"smtplib"}),
    ),
    Case(
        name="starttls-untrusted-certificate",
        source="RFC 3207 §4.1; RFC 7817 §3 (verify the server's certificate)",
        script=script(
            hello((*EXTENSIONS, b"STARTTLS")),
            expect(b"STARTTLS"),
            send(b"220 2.0.0 go ahead\r\n"),
            starttls("untrusted"),
        ),
        plan=Plan(tls="starttls", username=USER, password=PASSWORD),
        expect=Expect("tls"),
        tail=(),
    ),
    Case(
        name="starttls-wrong-host-certificate",
        source="RFC 7817 §3 (the name checked is the one the client asked for); RFC 6125",
        script=script(
            hello((*EXTENSIONS, b"STARTTLS")),
            expect(b"STARTTLS"),
            send(b"220 2.0.0 go ahead\r\n"),
            starttls("wrong-host"),
        ),
        plan=Plan(tls="required", username=USER, password=PASSWORD),
        expect=Expect("tls"),
        tail=(),
    ),
    Case(
        name="implicit-tls-untrusted-certificate",
        source="RFC 8314 §3.3 (submission over TLS); RFC 7817 §3",
        script=script(hello(), envelope(), deliver()),
        plan=AUTH_TLS_PLAN,
        implicit_cert="untrusted",
        expect=Expect("tls"),
        tail=(),
    ),
    Case(
        name="implicit-tls-wrong-host-certificate",
        source="RFC 8314 §3.3; RFC 6125",
        script=script(hello(), envelope(), deliver()),
        plan=Plan(tls="implicit"),
        implicit_cert="wrong-host",
        expect=Expect("tls"),
        tail=(),
    ),
    Case(
        name="starttls-injection-delayed",
        source=(
            "CVE-2011-0411 class: the injected replies come in a later packet, after the "
            "client read the 220 and began the handshake; they must fail it, never be read "
            "as replies"
        ),
        script=script(
            hello((*EXTENSIONS, b"STARTTLS", b"AUTH PLAIN")),
            expect(b"STARTTLS"),
            send(b"220 2.0.0 go ahead\r\n"),
            sleep(0.05),
            send(b"250-injected.example\r\n250 AUTH PLAIN\r\n235 2.7.0 welcome\r\n"),
            starttls(),
        ),
        plan=Plan(tls="starttls", username=USER, password=PASSWORD),
        # Which error depends on where the injected bytes meet the client: in
        # its TLS handshake (a TLS error), or, on asyncio, still unread in the
        # clear when TLS starts (refused: the connection is closed).
        expect=Expect(("tls", "closed")),
        tail=(),
    ),
    Case(
        name="starttls-drop-after-220",
        source="RFC 3207 §4.2 (the handshake follows the 220); RFC 5321 §3.8",
        script=script(
            hello((*EXTENSIONS, b"STARTTLS")),
            expect(b"STARTTLS"),
            send(b"220 2.0.0 go ahead\r\n"),
            close(),
        ),
        plan=Plan(tls="starttls", username=USER, password=PASSWORD),
        # An EOF in the handshake: ssl's SSLEOFError (a TLS error), or a reset
        # when the kernel answers the ClientHello with RST (seen for every face,
        # rarely; always on asyncio, whose start_tls reports EOF as a reset).
        expect=Expect(("tls", "closed")),
        tail=(),
    ),
    Case(
        name="stall-tls-handshake",
        source="RFC 3207 §4.2; a TLS handshake needs its own limit (Timeouts.tls)",
        script=script(
            hello((*EXTENSIONS, b"STARTTLS")),
            expect(b"STARTTLS"),
            send(b"220 2.0.0 go ahead\r\n"),
            stall(),
        ),
        plan=replace(STALL, tls="required"),
        expect=Expect("timeout"),
        tail=(b"<TLS handshake>",),  # the ClientHello, and nothing else
    ),
    Case(
        name="stall-implicit-tls-handshake",
        source="RFC 8314 §3.3; a TLS handshake needs its own limit",
        script=script(stall()),
        plan=replace(STALL, tls="implicit"),
        implicit_cert="no-handshake",
        expect=Expect("timeout"),
        tail=(b"<TLS handshake>",),
    ),
    Case(
        name="implicit-tls-against-a-plaintext-server",
        source="RFC 8314 §3.3 (port 465 speaks TLS first); a misdirected or downgraded port",
        # The server greets in the clear and reads nothing: the ClientHello is
        # no command line (it may hold CRLF by chance).
        script=script(send(GREETING), stall()),
        plan=Plan(tls="implicit", username=USER, password=PASSWORD),
        implicit_cert="no-handshake",
        expect=Expect("tls"),
        tail=(b"<TLS handshake>",),
    ),
    # -- replies that are endless, enormous, malformed, 8-bit, NUL-laden ---------------
    Case(
        name="greeting-endless-line",
        source="RFC 5321 §4.5.3.1.5 (reply lines of at most 512 octets); CWE-400",
        script=script(send(b"220 "), endless(b"A" * 1024)),
        expect=Expect("protocol"),
        tail=(),
    ),
    Case(
        name="ehlo-endless-multiline",
        source="RFC 5321 §4.2.1 (multiline replies); CWE-400 (unbounded lines)",
        script=script(send(GREETING), expect(b"EHLO"), endless(b"250-MORE-AND-MORE\r\n")),
        expect=Expect("protocol"),
        tail=(),
    ),
    Case(
        name="ehlo-enormous-line",
        source="RFC 5321 §4.5.3.1.5 (512 octets a reply line)",
        script=script(send(GREETING), expect(b"EHLO"), send(b"250 " + b"X" * 100_000 + b"\r\n")),
        expect=Expect("protocol"),
        tail=(b"QUIT",),
    ),
    Case(
        name="mail-endless-line",
        source="RFC 5321 §4.5.3.1.5; CWE-400",
        script=script(hello(), expect(b"MAIL FROM:"), endless(b"250 " + b"B" * 1020)),
        expect=Expect("protocol"),
        tail=(),
    ),
    Case(
        name="greeting-malformed-code",
        source="RFC 5321 §4.2 (Reply-code = %x32-35 %x30-35 %x30-39)",
        script=script(send(b"2x0 hostile.example\r\n")),
        expect=Expect("protocol"),
        tail=(b"QUIT",),
    ),
    Case(
        name="ehlo-malformed-separator",
        source="RFC 5321 §4.2 (a code is followed by SP or '-')",
        script=script(send(GREETING), expect(b"EHLO"), send(b"250*hostile.example\r\n")),
        expect=Expect("protocol"),
        tail=(b"QUIT",),
    ),
    Case(
        name="reply-code-out-of-range",
        source="RFC 5321 §4.2 (the first digit is 2 to 5)",
        script=script(hello((b"8BITMIME",)), expect(b"MAIL FROM:"), send(b"600 2.1.0 ok?\r\n")),
        expect=Expect("protocol"),
        tail=(b"QUIT",),
    ),
    Case(
        name="multiline-mixed-codes",
        source="RFC 5321 §4.2.1 (every line of a multiline reply carries the same code)",
        script=script(hello((b"8BITMIME",)), expect(b"MAIL FROM:"), send(b"550-no\r\n250 yes\r\n")),
        expect=Expect("protocol"),
        tail=(b"QUIT",),
    ),
    Case(
        name="replies-8bit",
        source="RFC 5321 §4.2 (textstring is 7-bit; servers send 8-bit anyway); RFC 6531 §3.7.4",
        script=script(
            send(b"220 h\xc3\xb4stile.example \xff\xfe ready\r\n"),
            expect(b"EHLO"),
            send(ehlo_reply((b"PIPELINING", b"X-\xe9t\xe9"))),
            expect(b"MAIL FROM:"),
            send(b"250 2.1.0 d\xe9j\xe0 vu\r\n"),
            expect(b"RCPT TO:"),
            send(b"250 2.1.5 \xf0\x9f\x93\xac\r\n"),
            expect(b"DATA"),
            send(b"354 \x80\x81\r\n"),
            deliver(b"250 2.0.0 \xc3\xa9crit\r\n"),
        ),
        expect=DELIVERED,
    ),
    Case(
        name="reply-with-nul",
        source="RFC 5321 §4.2 (textstring excludes NUL); CWE-158",
        script=script(hello(), expect(b"MAIL FROM:"), send(b"250 2.1.0 ok\x00RCPT evil\r\n")),
        expect=Expect("protocol"),
        tail=(b"QUIT",),
    ),
    Case(
        name="surplus-greeting",
        source="RFC 5321 §4.3.1 (one reply per command); response injection",
        script=script(send(GREETING + b"220 second greeting\r\n")),
        expect=Expect("protocol"),
        tail=(b"QUIT", b"EHLO", b"HELO", b"LHLO"),
    ),
    Case(
        name="surplus-reply-to-mail",
        source="RFC 5321 §4.3.1; out-of-step replies (desynchronisation)",
        script=script(
            hello((b"8BITMIME",)),
            expect(b"MAIL FROM:"),
            send(b"250 2.1.0 ok\r\n250 2.1.5 surplus\r\n"),
        ),
        expect=Expect("protocol"),
        tail=(b"QUIT", b"RCPT", b"RSET"),
    ),
    Case(
        name="pipelining-replies-ahead",
        source="RFC 2920 §3.1 (replies in the order of the commands, after them)",
        script=script(
            send(GREETING),
            expect(b"EHLO"),
            send(ehlo_reply() + b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"),
        ),
        expect=Expect("protocol"),
        tail=(b"QUIT", b"MAIL", b"RCPT", b"DATA", b"RSET"),
    ),
    Case(
        name="pipelining-extra-reply",
        source="RFC 2920 §3.1 (one reply per command)",
        script=script(
            hello(),
            expect(b"MAIL FROM:"),
            expect(b"RCPT TO:"),
            expect(b"DATA"),
            send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n250 2.0.0 extra\r\n"),
        ),
        expect=Expect("protocol"),
        tail=(b"QUIT", b"RSET"),
    ),
    Case(
        name="reply-to-nothing-after-delivery",
        source="RFC 5321 §4.3.1; RFC 2920 §3.1",
        # The message is delivered and reported so; QUIT then reads the
        # surplus (each face refuses it or closes: a separate call).
        script=script(hello(), envelope(), deliver(b"250 2.0.0 queued\r\n250 2.0.0 surplus\r\n")),
        expect=Expect("delivered", accepted=(R1,), refused=()),
    ),
    Case(
        name="trickle-forever",
        source="RFC 5321 §4.5.3.2 (a timeout bounds a whole reply); slowloris",
        script=script(trickle(b"220-" + b"s" * 500, 0.05)),
        plan=STALL,
        expect=Expect("timeout"),
        tail=(),
    ),
    # -- a server that stalls at each stage -------------------------------------------
    _stall_case("greeting", []),
    _stall_case("ehlo", [send(GREETING), expect(b"EHLO")]),
    _stall_case("mail", [*hello(), expect(b"MAIL FROM:")]),
    _stall_case("rcpt", [*hello(), expect(b"MAIL FROM:"), send(b"250 ok\r\n"), expect(b"RCPT")]),
    _stall_case("data", [*hello(), *envelope()[:-1]]),
    Case(
        name="stall-after-dot",
        source="RFC 5321 §4.5.3.2.6 and §6.1 (the message may be delivered): outcome unknown",
        script=script(hello(), envelope(), read_data(), stall()),
        plan=STALL,
        expect=Expect("unknown"),
        faces={"smtplib": Expect("timeout"), "client_SMTP": Expect("timeout")},
        why={"smtplib": WHY_SMTPLIB_DISCONNECTED, "client_SMTP": WHY_SMTPLIB_DISCONNECTED},
        tail=(),
    ),
    # -- a server that drops the connection at each stage -----------------------------
    _drop_case("before-greeting", [], close(), Expect("closed")),
    _drop_case("before-greeting", [], reset(), Expect("closed")),
    _drop_case("after-ehlo", hello(), close(), Expect("closed")),
    _drop_case("after-mail", [*hello(), expect(b"MAIL FROM:")], close(), Expect("closed")),
    Case(
        name="reset-inside-data",
        source="RFC 5321 §3.8; RFC 5321 §6.1 (the end of data decides delivery)",
        # A message far larger than the socket buffers: the client is still
        # writing it when the RST comes, so the end was never sent.
        script=script(hello(), envelope(), expect(b"From:"), reset()),
        plan=Plan(message=DEFAULT_MESSAGE + (b"y" * 78 + b"\r\n") * 100_000),
        expect=Expect("closed"),
        tail=(),
    ),
    Case(
        name="drop-after-dot",
        source="RFC 5321 §6.1 (after the end of data the message may be delivered)",
        script=script(hello(), envelope(), read_data(), close()),
        expect=Expect("unknown"),
        faces={"smtplib": Expect("closed"), "client_SMTP": Expect("closed")},
        why={"smtplib": WHY_SMTPLIB_DISCONNECTED, "client_SMTP": WHY_SMTPLIB_DISCONNECTED},
        tail=(),
    ),
    Case(
        name="reset-after-dot",
        source="RFC 5321 §6.1",
        script=script(hello(), envelope(), read_data(), reset()),
        expect=Expect("unknown"),
        faces={"smtplib": Expect("closed"), "client_SMTP": Expect("closed")},
        why={"smtplib": WHY_SMTPLIB_DISCONNECTED, "client_SMTP": WHY_SMTPLIB_DISCONNECTED},
        tail=(),
    ),
    _drop_case("after-delivery", [*hello(), *envelope(), *deliver()], close(), DELIVERED),
    _drop_case("after-delivery", [*hello(), *envelope(), *deliver()], reset(), DELIVERED),
    Case(
        name="stall-after-delivery",
        source="RFC 5321 §4.5.3.2 (QUIT's reply may never come; the message is delivered)",
        script=script(hello(), envelope(), deliver(), stall()),
        plan=STALL,
        expect=DELIVERED,
        tail=(b"QUIT",),
    ),
    # -- 421 at every stage -------------------------------------------------------------
    Case(
        name="421-greeting",
        source="RFC 5321 §3.1 and §3.8 (421 instead of the greeting)",
        script=script(send(b"421 4.3.2 too busy\r\n"), stall()),
        text="too busy",
        expect=Expect("refused", 421, "greeting"),
        tail=(),
    ),
    _421_case(
        "ehlo",
        [send(GREETING), expect(b"EHLO")],
        "EHLO",
        faces={"smtplib": Expect("closed"), "client_SMTP": Expect("closed")},
        why={"smtplib": WHY_SMTPLIB_421_EHLO, "client_SMTP": WHY_SMTPLIB_421_EHLO},
    ),
    _421_case(
        "starttls",
        [*hello((*EXTENSIONS, b"STARTTLS")), expect(b"STARTTLS")],
        "STARTTLS",
        plan=TLS_PLAN,
        faces=_bare_starttls(421)[0],
        why=_bare_starttls(421)[1],
    ),
    _421_case(
        "auth",
        [*tls_hello((*EXTENSIONS, b"AUTH PLAIN")), expect(b"AUTH")],
        "AUTH",
        plan=Plan(tls="starttls", username=USER, password=PASSWORD),
    ),
    _421_case("mail", [*hello(), expect(b"MAIL FROM:")], "MAIL"),
    _421_case(
        "rcpt",
        [*hello((b"8BITMIME",)), expect(b"MAIL FROM:"), send(b"250 ok\r\n"), expect(b"RCPT")],
        "RCPT",
    ),
    _421_case("data", [*hello((b"8BITMIME",)), *envelope()[:-1]], "DATA"),
    _421_case(
        "after-dot",
        [*hello(), *envelope(), read_data()],
        ".",
        faces={
            "smtplib": Expect("refused", 421, "DATA"),
            "client_SMTP": Expect("refused", 421, "DATA"),
            "aio": Expect("refused", 421, "DATA"),
        },
        why={"smtplib": WHY_SMTPLIB_DATA, "client_SMTP": WHY_SMTPLIB_DATA, "aio": WHY_AIO_DATA},
    ),
    _421_case(
        "lhlo",
        [send(GREETING), expect(b"LHLO")],
        "LHLO",
        plan=Plan(lmtp=True),
        faces={"smtplib": Expect("closed"), "aio": Expect("refused", 421, "EHLO")},
        why={
            "smtplib": WHY_SMTPLIB_421_EHLO,
            "aio": "aiosmtplib raises SMTPHeloError for LHLO as for EHLO",
        },
    ),
    _421_case(
        "auth-several-mechanisms",
        [*tls_hello((*EXTENSIONS, b"AUTH CRAM-MD5 PLAIN LOGIN")), expect(b"AUTH")],
        "AUTH",
        plan=Plan(tls="starttls", username=USER, password=PASSWORD),
        faces={"smtplib": Expect("closed"), "aio": Expect("closed")},
        why={
            "smtplib": "smtplib's login() goes on to the next mechanism after a refusal and "
            "finds the close (SMTPServerDisconnected); the face closed at the 421 and "
            "writes nothing more",
            "aio": "aiosmtplib's login() goes on to the next method after a refusal; the face "
            "closed at the 421, so that finds 'Server not connected' (SMTPServerDisconnected) "
            "and writes nothing more",
        },
    ),
    Case(
        name="drop-mid-reply",
        source="RFC 5321 §4.2.1 (a multiline reply ends with its last line)",
        script=script(send(b"220-hostile.example first line\r\n220-and a second"), close()),
        expect=Expect("closed"),
        tail=(),
    ),
    Case(
        name="size-over-the-limit",
        source="RFC 1870 §6 (the client should not send a message larger than SIZE)",
        script=script(
            hello((b"8BITMIME", b"SIZE 100")),
            expect(b"MAIL FROM:"),
            send(b"552 5.3.4 message size exceeds fixed limit\r\n"),
        ),
        # smtplib and aiosmtplib declare SIZE and leave the verdict to the
        # server; the engine driven directly declares nothing (send_mail's
        # caller passes SIZE= in mail_params if it wants), so the server judges.
        text="message size exceeds",
        expect=Expect("refused", 552, "MAIL"),
        faces={"cli": Expect("local")},
        why={
            "cli": "the CLI declares SIZE=<length> (RFC 1870 §4), which the engine refuses "
            "before MAIL when it is over the advertised limit (exit 5, nothing sent)",
        },
    ),
    Case(
        name="lmtp-421-for-one-recipient",
        source="RFC 2033 §4.2; RFC 5321 §3.8",
        script=script(
            hello(verb=b"LHLO"),
            envelope(2),
            read_data(),
            send(b"250 2.0.0 first ok\r\n421 4.3.2 shutting down\r\n"),
            stall(),
        ),
        plan=Plan(lmtp=True, recipients=(R1, R2)),
        expect=Expect("delivered", accepted=(R1,), refused=((R2, 421),)),
        tail=(),
    ),
    Case(
        name="bdat-pipelined-chunk-refused",
        source="RFC 3030 §4.2 (pipelined BDAT: each chunk answered); RFC 2920",
        script=script(
            hello((*EXTENSIONS, b"CHUNKING")),
            expect(b"MAIL FROM:"),
            expect(b"RCPT TO:"),
            send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n"),
            read_bdat(),
            read_bdat(),
            send(b"554 5.6.0 no\r\n503 5.5.1 no transaction\r\n"),
        ),
        plan=Plan(bdat=True, message=DEFAULT_MESSAGE + (b"z" * 70 + b"\r\n") * 6000),
        expect=Expect("refused", 554, "BDAT"),
        faces={"aio": Expect("refused", 554, "DATA"), "cli": Expect("refused", 554, ".")},
        why={"aio": WHY_AIO_DATA, "cli": WHY_CLI_BDAT},
    ),
    Case(
        name="replies-bare-lf",
        source="RFC 5321 §2.3.8 (lines end with CRLF); RFC 5321 §4.1.1.4 (bare LF)",
        script=script(
            send(b"220 hostile.example\n"),
            expect(b"EHLO"),
            send(b"250-hostile.example\n250 PIPELINING\n"),
        ),
        # A reply line ends only at CRLF: the greeting never ends, and the
        # stage's limit ends the wait (no face takes a bare LF for a line end).
        plan=STALL,
        expect=Expect("timeout"),
        tail=(),
    ),
    # -- AUTH exchanges a server breaks ------------------------------------------------
    Case(
        name="auth-challenge-not-base64",
        source="RFC 4954 §4 (a challenge is base64; the client cancels with '*')",
        script=script(
            hello((*EXTENSIONS, b"AUTH LOGIN")),
            expect(b"AUTH LOGIN"),
            send(b"334 this is !! not base64\r\n"),
            expect(b""),
            send(b"501 5.7.0 cancelled\r\n"),
        ),
        plan=AUTH_TLS_PLAN,
        expect=Expect("protocol"),
        faces={"smtplib": Expect("refused", 334, "AUTH"), "aio": Expect("refused", 501, "AUTH")},
        why={
            "smtplib": "R5: smtplib's code for a refused exchange, SMTPAuthenticationError(334)",
            "aio": "aiosmtplib's LOGIN sends the password without reading the challenge; "
            "the server's 501 is what it reports",
        },
    ),
    Case(
        name="auth-challenge-8bit",
        source="RFC 4954 §4 (base64 only); RFC 5321 §4.2 (7-bit text)",
        script=script(
            hello((*EXTENSIONS, b"AUTH LOGIN")),
            expect(b"AUTH LOGIN"),
            send(b"334 \xff\xfe\xc3\xa9\r\n"),
            expect(b""),
            send(b"501 5.7.0 cancelled\r\n"),
        ),
        plan=AUTH_TLS_PLAN,
        expect=Expect("protocol"),
        faces={"smtplib": Expect("refused", 501, "AUTH"), "aio": Expect("refused", 501, "AUTH")},
        why={
            "smtplib": WHY_SMTPLIB_LENIENT_BASE64,
            "aio": "aiosmtplib's LOGIN sends the password without reading the challenge; "
            "the server's 501 is what it reports",
        },
    ),
    Case(
        name="auth-challenge-endless-line",
        source="RFC 4954 §4; CWE-400",
        script=script(
            hello((*EXTENSIONS, b"AUTH LOGIN")),
            expect(b"AUTH LOGIN"),
            send(b"334 "),
            endless(b"QUFB" * 256),
        ),
        plan=AUTH_TLS_PLAN,
        expect=Expect("protocol"),
        tail=(),
    ),
    Case(
        name="auth-challenges-forever",
        source="RFC 4954 §4 (the server ends the exchange); CWE-835",
        script=script(
            hello((*EXTENSIONS, b"AUTH LOGIN")),
            expect(b"AUTH LOGIN"),
            send(b"334 VXNlcm5hbWU6\r\n"),
            answer_until(b"334 VXNlcm5hbWU6\r\n", b"*"),
            send(b"501 5.7.0 cancelled\r\n"),
        ),
        plan=AUTH_TLS_PLAN,
        expect=Expect("protocol"),
        faces={"smtplib": Expect("local"), "aio": Expect("refused", 334, "AUTH")},
        why={
            "smtplib": WHY_SMTPLIB_LOOP,
            "aio": "aiosmtplib's LOGIN expects 235 after the password: "
            "SMTPAuthenticationError(334)",
        },
        tail=(b"QUIT", b"*"),
    ),
    Case(
        name="auth-scram-235-before-proof",
        source=(
            "RFC 5802 §5 and §9 (the client must verify the server's signature: a server "
            "that answers 235 without it has not proved it knows the password)"
        ),
        script=script(
            hello((*EXTENSIONS, b"AUTH SCRAM-SHA-256")),
            expect(b"AUTH SCRAM-SHA-256"),
            send(b"235 2.7.0 welcome, no proof needed\r\n"),
        ),
        plan=AUTH_TLS_PLAN,
        expect=Expect("protocol"),
        faces={"aio": Expect("local")},
        why={"aio": WHY_AIO_NO_SCRAM},
        tail=(b"QUIT",),
    ),
    # -- LMTP: one verdict per recipient ------------------------------------------------
    Case(
        name="lmtp-fewer-replies",
        source="RFC 2033 §4.2 (one reply per accepted recipient after the dot)",
        script=script(
            hello(verb=b"LHLO"), envelope(2), read_data(), send(b"250 2.0.0 first ok\r\n"), close()
        ),
        plan=Plan(lmtp=True, recipients=(R1, R2)),
        expect=Expect("unknown"),
        faces={"smtplib": Expect("closed")},
        why={"smtplib": WHY_SMTPLIB_DISCONNECTED},
        tail=(),
    ),
    Case(
        name="lmtp-more-replies",
        source="RFC 2033 §4.2; RFC 5321 §4.3.1 (a reply nobody asked for)",
        script=script(
            hello(verb=b"LHLO"),
            envelope(2),
            read_data(),
            send(b"250 2.0.0 first ok\r\n250 2.0.0 second ok\r\n250 2.0.0 third?\r\n"),
        ),
        plan=Plan(lmtp=True, recipients=(R1, R2)),
        expect=Expect("delivered", accepted=(R1, R2), refused=()),
    ),
    Case(
        name="lmtp-one-recipient-fails",
        source="RFC 2033 §4.2",
        script=script(
            hello(verb=b"LHLO"),
            envelope(2),
            read_data(),
            send(b"250 2.0.0 first ok\r\n552 5.2.2 second is over quota\r\n"),
        ),
        plan=Plan(lmtp=True, recipients=(R1, R2)),
        expect=Expect("delivered", accepted=(R1,), refused=((R2, 552),)),
    ),
    # -- BDAT ---------------------------------------------------------------------------
    Case(
        name="bdat-chunk-refused-midway",
        source="RFC 3030 §2 and §4.2 (a refused chunk ends the transaction; RSET)",
        script=script(
            hello((b"8BITMIME", b"CHUNKING")),
            expect(b"MAIL FROM:"),
            send(b"250 2.1.0 ok\r\n"),
            expect(b"RCPT TO:"),
            send(b"250 2.1.5 ok\r\n"),
            read_bdat(),
            send(b"554 5.6.0 the first chunk was enough\r\n"),
        ),
        plan=Plan(
            bdat=True, pipelining=False, message=DEFAULT_MESSAGE + (b"z" * 70 + b"\r\n") * 6000
        ),
        text="the first chunk was enough",
        expect=Expect("refused", 554, "BDAT"),
        faces={"aio": Expect("refused", 554, "DATA"), "cli": Expect("refused", 554, ".")},
        why={"aio": WHY_AIO_DATA, "cli": WHY_CLI_BDAT},
        tail=(b"QUIT", b"RSET"),
    ),
    # -- replies of the wrong class: never a success that did not happen -----------------
    Case(
        name="pipelining-354-after-every-recipient-refused",
        source=(
            "RFC 2920 §3.1 (a 354 after every RCPT was refused: the client sends the end "
            "marker alone, never the message)"
        ),
        script=script(
            hello(),
            expect(b"MAIL FROM:"),
            expect(b"RCPT TO:"),
            expect(b"DATA"),
            send(b"250 2.1.0 ok\r\n550 5.1.1 no such user\r\n354 go ahead anyway\r\n"),
            read_data(),
            send(b"554 5.5.1 no valid recipients\r\n"),
        ),
        text="no such user",
        expect=Expect("refused", 550, "RCPT"),
        forbidden=(b"Subject: hostile kit",),
    ),
    Case(
        name="data-answered-250",
        source="RFC 5321 §4.3.2 (DATA: 354, then the content; a 250 to DATA is out of step)",
        script=script(
            hello((b"8BITMIME",)),
            *envelope()[:-1],
            send(b"250 2.0.0 ok, but where is the message?\r\n"),
        ),
        expect=Expect("protocol"),
        faces={
            "smtplib": Expect("refused", 250, "DATA"),
            "client_SMTP": Expect("refused", 250, "DATA"),
            "aio": Expect("refused", 250, "DATA"),
        },
        why={
            "smtplib": WHY_SMTPLIB_NOT_354,
            "client_SMTP": WHY_SMTPLIB_NOT_354,
            "aio": "aiosmtplib raises SMTPDataError for any reply to DATA but 354",
        },
        forbidden=(b"Subject: hostile kit",),
    ),
    Case(
        name="final-dot-354",
        source="RFC 5321 §4.3.2 (the end of data draws 2yz, 4yz or 5yz)",
        script=script(hello(), envelope(), deliver(b"354 more, please\r\n")),
        expect=Expect("unknown"),
        faces={
            "smtplib": Expect("refused", 354, "DATA"),
            "client_SMTP": Expect("refused", 354, "DATA"),
            "aio": Expect("refused", 354, "DATA"),
        },
        why={
            "smtplib": WHY_PERMISSIVE_FINAL,
            "client_SMTP": WHY_PERMISSIVE_FINAL,
            "aio": WHY_PERMISSIVE_FINAL,
        },
    ),
    Case(
        name="unsolicited-421-after-ehlo",
        source=(
            "RFC 5321 §3.8 (a server may send 421 unasked when it must shut down, then "
            "close); Postfix '421 4.4.2 Error: timeout exceeded'"
        ),
        script=script(
            send(GREETING),
            expect(b"EHLO"),
            send(ehlo_reply()),
            sleep(0.05),
            send(b"421 4.4.2 idle timeout exceeded\r\n"),
            close(),
        ),
        # Every face takes the 421 for the answer to the next command, as
        # RFC 5321 §3.8 has it, and sends nothing more.
        text="idle timeout exceeded",
        expect=Expect("refused", 421, "MAIL"),
        tail=(),
    ),
    Case(
        name="early-verdict-during-data",
        source="RFC 5321 §4.1.1.4 (the reply to the end of data comes after it); RFC 2920 §3.1",
        # One packet: the verdict rides with the 354, before any content.
        script=script(
            hello(),
            *envelope()[:-1],
            send(b"354 go ahead\r\n250 2.0.0 queued before the end\r\n"),
            read_data(),
        ),
        expect=Expect("protocol"),
        tail=(),
    ),
    Case(
        name="flood-after-354",
        source="RFC 2920 §3.1 (one reply per command; neither side may block the other); CWE-400",
        # The flood starts in the 354's own packet: the client sees replies
        # nobody asked for before it writes a byte of content.  (Started later,
        # after the client wrote the whole message, the first 250 of a flood is
        # indistinguishable from a verdict: see the report on issue 11.)
        script=script(
            hello(),
            *envelope()[:-1],
            send(b"354 go ahead\r\n" + b"250 2.0.0 ok\r\n" * 100),
            endless(b"250 2.0.0 ok\r\n"),
        ),
        plan=Plan(message=DEFAULT_MESSAGE + (b"y" * 78 + b"\r\n") * 50_000),
        expect=Expect("protocol"),
        forbidden=(b"yyyyyyyy",),
        tail=(),
    ),
    # -- ordinary refusals, for the record -----------------------------------------------
    Case(
        name="greeting-554",
        source="RFC 5321 §3.1 (554 instead of 220: no service)",
        script=script(send(b"554 5.3.2 no service here\r\n")),
        text="no service here",
        expect=Expect("refused", 554, "greeting"),
        tail=(b"QUIT",),
    ),
    Case(
        name="mail-refused",
        source="RFC 5321 §4.2.5",
        script=script(
            hello((b"8BITMIME",)), expect(b"MAIL FROM:"), send(b"550 5.7.1 sender blocked\r\n")
        ),
        text="sender blocked",
        expect=Expect("refused", 550, "MAIL"),
    ),
    Case(
        name="every-recipient-refused",
        source="RFC 5321 §3.3 (no DATA without a recipient); RFC 2920 §3.1",
        script=script(
            hello((b"8BITMIME",)),
            expect(b"MAIL FROM:"),
            send(b"250 2.1.0 ok\r\n"),
            expect(b"RCPT TO:"),
            send(b"550 5.1.1 no such user\r\n"),
        ),
        text="no such user",
        expect=Expect("refused", 550, "RCPT"),
    ),
    Case(
        name="one-recipient-refused",
        source="RFC 5321 Appendix D.1 (one refused recipient does not stop the others)",
        script=script(
            hello(),
            expect(b"MAIL FROM:"),
            send(b"250 2.1.0 ok\r\n"),
            expect(b"RCPT TO:"),
            send(b"250 2.1.5 ok\r\n"),
            expect(b"RCPT TO:"),
            send(b"550 5.1.1 no such user\r\n"),
            expect(b"DATA"),
            send(b"354 go\r\n"),
            deliver(),
        ),
        plan=Plan(recipients=(R1, R2)),
        expect=Expect("delivered", accepted=(R1,), refused=((R2, 550),)),
    ),
    Case(
        name="data-refused",
        source="RFC 5321 §4.2.5",
        script=script(hello((b"8BITMIME",)), *envelope()[:-1], send(b"554 5.5.1 no data\r\n")),
        text="no data",
        expect=Expect("refused", 554, "DATA"),
    ),
    Case(
        name="final-dot-refused",
        source="RFC 5321 §4.2.5",
        script=script(hello(), envelope(), deliver(b"554 5.7.1 spam\r\n")),
        text="spam",
        expect=Expect("refused", 554, "."),
        faces={
            "smtplib": Expect("refused", 554, "DATA"),
            "client_SMTP": Expect("refused", 554, "DATA"),
            "aio": Expect("refused", 554, "DATA"),
        },
        why={"smtplib": WHY_SMTPLIB_DATA, "client_SMTP": WHY_SMTPLIB_DATA, "aio": WHY_AIO_DATA},
    ),
    Case(
        name="crlf-in-sender",
        source="CPython gh-87290 (smtplib CRLF injection); RFC 5321 §4.1.1",
        script=script(hello()),
        plan=Plan(sender="sender@example.org\r\nRCPT TO:<evil@example.org>"),
        expect=Expect("local"),
        forbidden=(b"evil@example.org",),
    ),
    Case(
        name="bare-lf-in-recipient",
        source="aiosmtplib GHSA-v3q9-hj7j-63hq / CVE-2026-53533 (a bare LF is a line end "
        "for many servers); RFC 5321 §2.3.8",
        script=script(hello()),
        plan=Plan(recipients=("rcpt@example.org\nDATA",)),
        expect=Expect("local"),
        forbidden=(b"org\nDATA",),
    ),
    Case(
        name="nul-in-recipient",
        source="RFC 5321 §4.1.2 (no NUL in a path); CWE-158",
        script=script(hello()),
        plan=Plan(recipients=("rcpt@example.org\x00evil",)),
        expect=Expect("local"),
        forbidden=(b"\x00",),
    ),
    Case(
        name="crlf-in-recipient",
        source=(
            "aiosmtplib GHSA-v3q9-hj7j-63hq / CVE-2026-53533 (CR/LF in a caller's address "
            "injected SMTP commands, fixed in 5.1.2); CPython gh-87290 (smtplib CRLF injection)"
        ),
        script=script(hello()),
        plan=Plan(recipients=(f"{R1}>\r\nRCPT TO:<evil@example.org",)),
        expect=Expect("local"),
        forbidden=(b"evil@example.org",),
    ),
)
