"""The ``smtpclient`` command line: test mail servers the way swaks does, on the engine.

Everything on the wire goes through ``smtp_core``: the procedures (greet,
hello, starttls, authenticate, send_mail, quit) run on the blocking driver
of ``transports.sync``, so what the engine refuses to send (CR or LF in an
address, AUTH in the clear without ``--auth-in-clear``, BDAT to a server
without CHUNKING) is refused here too.  The smtplib facade is not used.

Output: the session transcript (``C:``/``S:`` lines, AUTH payloads masked by
:class:`smtp_core.TranscriptRecorder`) and ``*`` notes go to stdout; errors,
refused recipients and the ``--count`` progress bar go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import email.message
import email.policy
import email.utils
import getpass
import hashlib
import ipaddress
import mimetypes
import os
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar, cast

from smtp_core import (
    PASSWORD_MECHANISMS,
    Connection,
    Data,
    Ehlo,
    Extensions,
    Greeting,
    LocalProtocolError,
    Mail,
    Procedure,
    ProtocolError,
    Rcpt,
    RemoteProtocolError,
    RemoteSASLError,
    Reply,
    ReplyError,
    ServerDisconnected,
    State,
    TLSPolicy,
    TransactionResult,
    TranscriptRecorder,
    Write,
    procedures,
)
from transports.sync import SyncDriver, connect

__all__ = [
    "EXIT_AUTH",
    "EXIT_CONNECTION",
    "EXIT_OK",
    "EXIT_PROTOCOL",
    "EXIT_RECIPIENT_REFUSED",
    "EXIT_TRANSACTION",
    "EXIT_USAGE",
    "QUIT_STAGES",
    "build_parser",
    "run",
]

T = TypeVar("T")

EXIT_OK = 0  # every recipient took the message (probe, --raw: the session completed)
EXIT_RECIPIENT_REFUSED = 1  # at least one recipient was refused
EXIT_USAGE = 2  # bad options (argparse uses 2 as well)
EXIT_CONNECTION = 3  # connection, TLS, timeout, greeting refused, server went away
EXIT_AUTH = 4  # authentication failed or was impossible
EXIT_TRANSACTION = 5  # EHLO, MAIL, DATA or the message refused
EXIT_PROTOCOL = 6  # the server broke the protocol

#: The points ``--quit-after`` stops at, in session order.
QUIT_STAGES = ("connect", "greeting", "ehlo", "tls", "auth", "mail", "rcpt", "data")
MODES = ("send", "probe")
TLS_MODES = ("none", "starttls", "required", "implicit")
_TLS_POLICY: dict[str, TLSPolicy] = {
    "none": "none",
    "starttls": "opportunistic",
    "required": "required",
    "implicit": "required",
}
DEFAULT_BODY = "This is a test message sent by smtpclient.\n"

EXIT_CODES_HELP = """\
exit status:
  0  every recipient accepted the message (probe, --raw: the session completed)
  1  at least one recipient was refused (the others may have taken it)
  2  usage error
  3  connection or TLS failure, timeout, greeting refused, or the server
     closed the connection
  4  authentication failed (refused, no mechanism in common, or AUTH not
     allowed without TLS: see --auth-in-clear)
  5  the server refused the transaction: EHLO, the sender, DATA or the
     message (or lacks what it needs: CHUNKING for --bdat, SIZE, SMTPUTF8)
  6  protocol error: the server broke SMTP (malformed or unexpected reply)"""

EXAMPLES_HELP = """\
examples:
  # a test message, with the session shown
  smtpclient -s mx.example.com -f me@example.com -t you@example.com

  # what does the server offer? (features, TLS version, certificate, AUTH, SIZE)
  smtpclient probe -s mx.example.com
  smtpclient probe -s mail.example.com:465 --tls implicit

  # submission: STARTTLS required, password prompted, a built message
  smtpclient -s smtp.example.com:587 --tls required --auth-user me@example.com \\
      -f me@example.com -t you@example.net --subject "report" \\
      --header "X-Test: 1" --body "see attached" --attach report.pdf

  # an exact message from a file (or - for stdin), over IPv6
  smtpclient -s [::1]:2525 -f a@example.com -t b@example.com --data message.eml

  # does the server take these recipients? (no DATA is sent)
  smtpclient -s mx.example.com -f a@example.com -t b@example.com --quit-after rcpt

  # LMTP over a Unix socket; BDAT (CHUNKING); a 1000-message load test
  smtpclient -s /run/dovecot/lmtp --lmtp -f a@example.com -t user@example.com
  smtpclient -s mx.example.com -f a@example.com -t b@example.com --bdat
  smtpclient -s localhost:2525 -f a@example.com -t b@example.com --count 1000 -q

  # raw bytes after EHLO, for testing servers only
  printf 'NOOP\\r\\nVRFY postmaster\\r\\n' | smtpclient -s localhost --raw - --raw-replies 2"""

DESCRIPTION = """\
Test mail servers: send a message (or many) and watch the SMTP or LMTP
session, probe what a server offers, or send it raw bytes.

modes (the first word; "send" when left out):
  send    send a message and show the session (the default)
  probe   connect, show the greeting, the EHLO extensions (before and after
          STARTTLS), the TLS version, cipher and certificate, the AUTH
          mechanisms and the SIZE limit, then QUIT"""


# -- errors ------------------------------------------------------------------------------


class _Fail(Exception):
    """Ends the session with an exit code and a message for stderr.

    ``polite``: the connection is still in step with the server, so QUIT may
    be sent before closing.
    """

    def __init__(self, code: int, message: str, *, polite: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.polite = polite


class _Usage(Exception):
    """A usage error found after parsing (exit status 2)."""


# -- the command line ----------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("smtpclient")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``smtpclient`` command (the mode word is taken first)."""
    parser = argparse.ArgumentParser(
        prog="smtpclient",
        usage="smtpclient [send|probe] [-s HOST[:PORT]] [-f ADDRESS] [-t ADDRESS ...] [options]",
        description=DESCRIPTION,
        epilog=f"{EXIT_CODES_HELP}\n\n{EXAMPLES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")

    group = parser.add_argument_group("connection")
    group.add_argument(
        "-s",
        "--server",
        default="localhost",
        metavar="HOST[:PORT]",
        help="the server: a name, 192.0.2.1:2525, [::1]:2525, or a Unix socket path "
        "(anything with a /); the port defaults to 25, 465 with --tls implicit, 24 with "
        "--lmtp (default: %(default)s)",
    )
    group.add_argument(
        "--ehlo",
        metavar="NAME",
        help="the name to say in EHLO/LHLO (default: this host's name if it is a "
        "domain, else the address literal of the connection)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="for the connection and for each reply (default: %(default)s)",
    )
    group.add_argument(
        "--lmtp",
        action="store_true",
        help="speak LMTP (RFC 2033): LHLO, and one result per recipient after the message",
    )

    group = parser.add_argument_group("TLS")
    group.add_argument(
        "--tls",
        choices=TLS_MODES,
        default="starttls",
        help="none: never; starttls: STARTTLS when the server offers it; required: "
        "STARTTLS or fail (the engine refuses MAIL in the clear); implicit: TLS from the "
        "first byte, as on port 465 (default: %(default)s)",
    )
    group.add_argument(
        "--tls-verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="verify the server's certificate and name (default: verify)",
    )
    group.add_argument("--cafile", metavar="FILE", help="trust the CA certificates in FILE (PEM)")
    group.add_argument(
        "--tls-name",
        metavar="NAME",
        help="the name the certificate must carry, also sent as SNI (default: the host)",
    )

    group = parser.add_argument_group("authentication")
    group.add_argument("-a", "--auth-user", metavar="USER", help="authenticate (AUTH) as USER")
    group.add_argument(
        "--auth-password",
        metavar="PASSWORD",
        help="the password (visible to other users of this machine: prefer "
        "--auth-password-env, or leave both out to be asked on a terminal)",
    )
    group.add_argument(
        "--auth-password-env", metavar="VAR", help="read the password from environment VAR"
    )
    group.add_argument(
        "--auth-mechanism",
        metavar="NAME[,NAME...]",
        help="the SASL mechanisms to use, best first (default: the best the server offers "
        f"of {', '.join(PASSWORD_MECHANISMS)})",
    )
    group.add_argument(
        "--auth-in-clear",
        action="store_true",
        help="allow AUTH without TLS (the engine refuses to send credentials in the "
        "clear otherwise)",
    )

    group = parser.add_argument_group("envelope")
    group.add_argument(
        "-f", "--from", dest="sender", metavar="ADDRESS", help='the sender ("" for <>)'
    )
    group.add_argument(
        "-t",
        "--to",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a recipient (repeatable; commas separate several)",
    )
    group.add_argument(
        "--mail-param",
        action="append",
        default=[],
        metavar="PARAM",
        help="an ESMTP parameter for MAIL, e.g. BODY=8BITMIME (repeatable; SIZE, and "
        "SMTPUTF8 for non-ASCII addresses, are added when the server offers them)",
    )
    group.add_argument(
        "--rcpt-param",
        action="append",
        default=[],
        metavar="PARAM",
        help="an ESMTP parameter for each RCPT, e.g. NOTIFY=NEVER (repeatable)",
    )

    group = parser.add_argument_group(
        "message",
        "Without --data, a message is built with Date, Message-ID, From, To and\n"
        "Subject headers (--header replaces any of them).",
    )
    group.add_argument(
        "-d",
        "--data",
        metavar="FILE",
        help="send FILE as the whole message, as it is (- for stdin)",
    )
    group.add_argument(
        "--body", metavar="TEXT", help="the body text of the built message (- for stdin)"
    )
    group.add_argument("--subject", metavar="TEXT", help="the Subject of the built message")
    group.add_argument(
        "--header",
        action="append",
        default=[],
        metavar='"NAME: VALUE"',
        help="a header of the built message (repeatable)",
    )
    group.add_argument(
        "--attach", action="append", default=[], metavar="FILE", help="attach FILE (repeatable)"
    )
    group.add_argument(
        "--bdat",
        action="store_true",
        help="send the message with BDAT (RFC 3030 CHUNKING) instead of DATA",
    )
    group.add_argument(
        "--pipelining",
        choices=("auto", "off"),
        default="auto",
        help="auto: pipeline MAIL, RCPT and DATA when the server offers PIPELINING; "
        "off: one round trip per command (default: %(default)s)",
    )

    group = parser.add_argument_group("session")
    group.add_argument(
        "--quit-after",
        choices=QUIT_STAGES,
        metavar="STAGE",
        help="stop at STAGE and QUIT: "
        "connect (right after the TCP/TLS connection; no QUIT can be sent before the "
        "greeting, so the connection is just closed), greeting, ehlo (the first one), "
        "tls (after STARTTLS and the EHLO inside TLS), auth, mail, rcpt (no DATA is "
        "sent), data (after the 354 reply; the connection is dropped, as nothing but "
        "the message may follow)",
    )
    group.add_argument(
        "-n",
        "--count",
        type=int,
        default=1,
        metavar="N",
        help="send the message N times in one session, with a progress bar and a "
        "summary line (only the first transaction is shown)",
    )

    group = parser.add_argument_group(
        "raw bytes (for testing servers only)",
        "UNSAFE: the bytes go to the server exactly as given, unchecked, through\n"
        "the engine's send_unchecked(); the engine's state does not follow them.\n"
        "Never point this at a production server you do not own.",
    )
    group.add_argument(
        "--raw",
        metavar="FILE",
        help="after the greeting and EHLO (and TLS and AUTH, if asked), send FILE's "
        "bytes (- for stdin), show the replies, then QUIT",
    )
    group.add_argument(
        "--raw-replies",
        type=int,
        default=1,
        metavar="N",
        help="replies to read after the raw bytes (default: %(default)s)",
    )
    group.add_argument(
        "--raw-no-ehlo", action="store_true", help="send the raw bytes right after the greeting"
    )

    group = parser.add_argument_group(
        "output",
        "The transcript (C: and S: lines, AUTH payloads masked) and * notes go to\n"
        "stdout; errors, refused recipients and the --count progress to stderr.",
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", help="no transcript: only results and errors"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the transcript in probe mode too, and every transaction of --count",
    )
    group.add_argument(
        "--suppress-data",
        action="store_true",
        help="show the message content as one summary line in the transcript",
    )
    group.add_argument(
        "--record",
        metavar="FILE",
        help="write the session to FILE as an smtp-transcript/1 file (AUTH payloads redacted)",
    )
    return parser


# -- options, checked --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """Where to connect: a TCP host and port, or a Unix socket path."""

    host: str = ""
    port: int = 0
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return self.path
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_server(text: str, default_port: int) -> _Target:
    """``HOST``, ``HOST:PORT``, ``[IPv6]``, ``[IPv6]:PORT``, a bare IPv6 address, or a path.

    Raises:
        _Usage: the text is none of these.
    """
    if "/" in text:
        return _Target(path=text)
    host, port_text = text, ""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise _Usage(f"--server: expected [ADDRESS] or [ADDRESS]:PORT, not {text!r}")
        port_text = rest[1:]
        if rest and not port_text:
            raise _Usage(f"--server: no port after the colon in {text!r}")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text:
            raise _Usage(f"--server: no port after the colon in {text!r}")
    if not host:
        raise _Usage(f"--server: no host in {text!r}")
    if not port_text:
        return _Target(host, default_port)
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise _Usage(f"--server: the port must be a number from 1 to 65535, not {port_text!r}")
    return _Target(host, int(port_text))


def _address(text: str) -> str:
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return text


@dataclass
class _Options:
    mode: str
    target: _Target
    ehlo: str | None
    timeout: float
    lmtp: bool
    tls: str
    tls_verify: bool
    cafile: str | None
    tls_name: str | None
    auth_user: str | None
    auth_password: str | None
    auth_mechanisms: list[str] | None
    auth_in_clear: bool
    sender: str | None
    recipients: list[str]
    mail_params: list[str]
    rcpt_params: list[str]
    data: bytes | None
    body: str | None
    subject: str | None
    headers: list[tuple[str, str]]
    attachments: list[Path]
    bdat: bool
    pipelining: bool
    quit_after: str | None
    count: int
    raw: bytes | None
    raw_replies: int
    raw_no_ehlo: bool
    quiet: bool
    verbose: bool
    suppress_data: bool
    record: Path | None

    @property
    def show_transcript(self) -> bool:
        """The transcript is on for sends unless --quiet; for probes only with --verbose."""
        if self.quiet:
            return False
        return self.verbose or self.mode != "probe"


def _read_input(name: str, what: str, stdin_used: list[str]) -> bytes:
    if name == "-":
        if stdin_used:
            raise _Usage(f"{what} and {stdin_used[0]} cannot both read stdin")
        stdin_used.append(what)
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise _Usage(f"{what}: cannot read {name!r}: {exc.strerror or exc}") from None


def _options(args: argparse.Namespace, mode: str) -> _Options:
    """Check what argparse cannot and turn the namespace into typed options."""
    stdin_used: list[str] = []
    recipients = [_address(r) for each in args.to for r in each.split(",") if r.strip()]
    sender = None if args.sender is None else _address(args.sender)
    building = bool(args.body is not None or args.subject is not None or args.header or args.attach)
    envelope = sender is not None or bool(recipients) or args.mail_param or args.rcpt_param
    if args.timeout <= 0:
        raise _Usage("--timeout must be more than 0")
    if args.count < 1:
        raise _Usage("--count must be 1 or more")
    if args.raw_replies < 0:
        raise _Usage("--raw-replies must be 0 or more")
    if args.data is not None and building:
        raise _Usage(
            "--data sends a file as it is: it cannot be combined with --body, "
            "--subject, --header or --attach"
        )
    if mode == "probe":
        if envelope or building or args.data is not None or args.bdat:
            raise _Usage("probe sends no message: drop the envelope and message options")
        if args.raw is not None or args.count != 1 or args.quit_after is not None:
            raise _Usage("probe takes no --raw, --count or --quit-after")
    elif args.raw is not None:
        if envelope or building or args.data is not None or args.bdat or args.count != 1:
            raise _Usage("--raw sends no message: drop the envelope, message and --count options")
        if args.quit_after is not None:
            raise _Usage("--raw and --quit-after cannot be combined")
        if args.raw_no_ehlo and args.tls == "required":
            raise _Usage("--raw-no-ehlo skips EHLO, so STARTTLS cannot be required")
        if args.raw_no_ehlo and args.auth_user is not None:
            raise _Usage("--raw-no-ehlo skips EHLO, so AUTH cannot be used")
    else:
        late = args.quit_after in QUIT_STAGES[:5]
        if sender is None and not late:
            raise _Usage("the sender is missing: give --from ADDRESS (--from '' for <>)")
        if not recipients and args.quit_after not in QUIT_STAGES[:6]:
            raise _Usage("no recipient: give --to ADDRESS")
        if args.quit_after is not None and args.count != 1:
            raise _Usage("--quit-after and --count cannot be combined")
        if args.quit_after == "data" and args.bdat:
            raise _Usage("--quit-after data needs DATA: it cannot be combined with --bdat")
    if args.raw_no_ehlo and args.raw is None:
        raise _Usage("--raw-no-ehlo goes with --raw")
    if args.tls == "none" and (args.cafile is not None or args.tls_name is not None):
        raise _Usage("--cafile and --tls-name need TLS: drop --tls none")
    if args.auth_user is None and (
        args.auth_password is not None
        or args.auth_password_env is not None
        or args.auth_mechanism is not None
    ):
        raise _Usage("the AUTH options need --auth-user")
    if args.auth_password is not None and args.auth_password_env is not None:
        raise _Usage("give --auth-password or --auth-password-env, not both")

    mechanisms = None
    if args.auth_mechanism is not None:
        mechanisms = [m.strip().upper() for m in args.auth_mechanism.split(",") if m.strip()]
        unknown = [m for m in mechanisms if m not in PASSWORD_MECHANISMS]
        if not mechanisms or unknown:
            raise _Usage(
                f"--auth-mechanism: unknown {', '.join(unknown) or 'nothing'} "
                f"(known: {', '.join(PASSWORD_MECHANISMS)})"
            )
    headers = []
    for text in args.header:
        name, colon, value = text.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            raise _Usage(f'--header must be "Name: value", not {text!r}')
        headers.append((name.strip(), value.strip()))
    attachments = [Path(p) for p in args.attach]
    for path in attachments:
        if not path.is_file():
            raise _Usage(f"--attach: no such file: {str(path)!r}")

    try:
        if args.ehlo is not None:
            Ehlo(args.ehlo)
        if sender is not None:
            Mail(sender, tuple(args.mail_param))
        for rcpt in recipients:
            Rcpt(rcpt, tuple(args.rcpt_param))
    except LocalProtocolError as exc:
        raise _Usage(str(exc)) from None

    default_port = 465 if args.tls == "implicit" else 24 if args.lmtp else 25
    target = parse_server(args.server, default_port)
    if target.path is not None and not hasattr(socket, "AF_UNIX"):
        raise _Usage("Unix sockets are not available on this system")

    data = None if args.data is None else _read_input(args.data, "--data", stdin_used)
    raw = None if args.raw is None else _read_input(args.raw, "--raw", stdin_used)
    body = args.body
    if body == "-":
        body = _read_input("-", "--body", stdin_used).decode("utf-8", "replace")

    password = args.auth_password
    if args.auth_user is not None and password is None:
        if args.auth_password_env is not None:
            password = os.environ.get(args.auth_password_env)
            if password is None:
                raise _Usage(f"--auth-password-env: ${args.auth_password_env} is not set")
        elif sys.stdin.isatty() and not stdin_used:
            password = getpass.getpass(f"Password for {args.auth_user}: ")
        else:
            raise _Usage(
                "no password: give --auth-password-env VAR or --auth-password, "
                "or run on a terminal to be asked"
            )

    return _Options(
        mode=mode,
        target=target,
        ehlo=args.ehlo,
        timeout=args.timeout,
        lmtp=args.lmtp,
        tls=args.tls,
        tls_verify=args.tls_verify,
        cafile=args.cafile,
        tls_name=args.tls_name,
        auth_user=args.auth_user,
        auth_password=password,
        auth_mechanisms=mechanisms,
        auth_in_clear=args.auth_in_clear,
        sender=sender,
        recipients=recipients,
        mail_params=list(args.mail_param),
        rcpt_params=list(args.rcpt_param),
        data=data,
        body=body,
        subject=args.subject,
        headers=headers,
        attachments=attachments,
        bdat=args.bdat,
        pipelining=args.pipelining == "auto",
        quit_after=args.quit_after,
        count=args.count,
        raw=raw,
        raw_replies=args.raw_replies,
        raw_no_ehlo=args.raw_no_ehlo,
        quiet=args.quiet,
        verbose=args.verbose,
        suppress_data=args.suppress_data,
        record=None if args.record is None else Path(args.record),
    )


# -- the message ---------------------------------------------------------------------------


class _MessageSource:
    """The message bytes for each transaction of the session.

    A built message gets a fresh Message-ID each time (unless ``--header``
    gave one); ``--data`` is sent as it is every time.
    """

    def __init__(self, opts: _Options) -> None:
        self._fixed: bytes | None = opts.data
        self._rest = b""
        self._own_id = False
        # The Message-ID's domain: the sender's, else the EHLO name, else a
        # reserved one (never a DNS lookup, as make_msgid's default does).
        self._domain = "smtpclient.invalid"
        for name in (opts.sender or "", f"@{opts.ehlo or ''}"):
            domain = name.rpartition("@")[2]
            if "." in domain and domain.isascii() and "[" not in domain:
                self._domain = domain
                break
        if opts.data is None:
            self._rest, self._own_id = _build_message(opts)

    def message(self) -> bytes:
        """The bytes of the next message."""
        if self._fixed is not None:
            return self._fixed
        if self._own_id:
            return self._rest
        msgid = email.utils.make_msgid("smtpclient", domain=self._domain)
        return f"Message-ID: {msgid}\r\n".encode("ascii") + self._rest


def _build_message(opts: _Options) -> tuple[bytes, bool]:
    """The built message without its Message-ID, and whether ``--header`` gave one."""
    date = email.utils.formatdate(localtime=True)
    defaults = [("Date", date)]
    if opts.sender:
        defaults.append(("From", opts.sender))
    if opts.recipients:
        defaults.append(("To", ", ".join(opts.recipients)))
    defaults.append(("Subject", opts.subject if opts.subject is not None else f"test {date}"))
    given = {name.lower() for name, _ in opts.headers}
    msg = email.message.EmailMessage()
    try:
        for name, value in [*(h for h in defaults if h[0].lower() not in given), *opts.headers]:
            msg[name] = value
        body = DEFAULT_BODY if opts.body is None else opts.body
        if not body.endswith("\n"):
            body += "\n"
        cte = None if body.isascii() else "quoted-printable"
        msg.set_content(body, cte=cte)
        for path in opts.attachments:
            kind, encoding = mimetypes.guess_type(path.name)
            if kind is None or encoding is not None:
                kind = "application/octet-stream"
            maintype, _, subtype = kind.partition("/")
            msg.add_attachment(
                path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
            )
        utf8 = not all(a.isascii() for a in [opts.sender or "", *opts.recipients])
        data = msg.as_bytes(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    except (ValueError, TypeError, OSError) as exc:
        raise _Usage(f"cannot build the message: {exc}") from None
    return data, "message-id" in given


# -- showing the session ---------------------------------------------------------------------


def _printable(line: bytes) -> str:
    text = line.decode("utf-8", "replace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in text)


class _Display:
    """Shows the traced session as ``C:``/``S:`` lines, AUTH payloads masked.

    Each chunk first goes through a :class:`TranscriptRecorder`, which does
    the redaction; the display then cuts the redacted bytes into lines.  The
    recorder is renewed at the start of every procedure (a point where no
    reply and no AUTH exchange is pending), so it never grows with the session.
    """

    def __init__(self, out: IO[str], *, suppress_data: bool) -> None:
        self.out = out
        self.enabled = True
        self.suppress_data = suppress_data
        self._recorder = TranscriptRecorder()
        self._seen = 0
        self._lines = {"C": b"", "S": b""}
        self._mode = "command"  # the client's bytes: "command", "content" (DATA) or "bdat"
        self._tail = b"\r\n"  # the last content octets, to find CRLF.CRLF across chunks
        self._bdat_left = 0
        self._content_size = 0

    def reset(self) -> None:
        """Start afresh between procedures (nothing is pending then)."""
        self.flush()
        self._recorder = TranscriptRecorder()
        self._seen = 0

    def note(self, text: str) -> None:
        """A ``*`` line, shown with the transcript."""
        if self.enabled:
            self.write(f"* {text}\n")

    def write(self, text: str) -> None:
        """Write to the output; a closed pipe (``| head``) ends the display, not the session."""
        try:
            self.out.write(text)
        except (OSError, ValueError):
            self.enabled = False

    def __call__(self, direction: str, data: bytes) -> None:
        if not self.enabled:
            return
        self._recorder(direction, data)
        records = self._recorder.transcript().records[self._seen :]
        self._seen += len(records)
        for record in records:
            if record.direction == "E":
                if record.data == "server-close":
                    self.flush()
                    self.write("* the server closed the connection\n")
            elif record.direction == "S" and isinstance(record.data, bytes):
                self._server(record.data)
            elif record.direction == "C" and isinstance(record.data, bytes):
                self._client(record.data)

    def flush(self) -> None:
        """Show any line left without its line ending."""
        for prefix, rest in self._lines.items():
            if rest:
                self._line(prefix, rest + b" [no line ending]")
                self._lines[prefix] = b""

    def _line(self, prefix: str, line: bytes) -> None:
        self.write(f"{prefix}: {_printable(line)}\n")

    def _server(self, data: bytes) -> None:
        *lines, self._lines["S"] = (self._lines["S"] + data).split(b"\r\n")
        for line in lines:
            self._line("S", line)
            if line[:4] in (b"354", b"354 "):
                self._mode, self._tail, self._content_size = "content", b"\r\n", 0

    def _client(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self._mode == "content":
                window = self._tail + data[pos:]
                end = window.find(b"\r\n.\r\n")
                stop = len(data) if end < 0 else pos + end + 5 - len(self._tail)
                self._content(data[pos:stop])
                self._tail = window[-4:] if end < 0 else b"\r\n"
                if end >= 0:
                    self._end_content("message")
                pos = stop
            elif self._mode == "bdat":
                stop = pos + min(self._bdat_left, len(data) - pos)
                self._content(data[pos:stop])
                self._bdat_left -= stop - pos
                if not self._bdat_left:
                    self._end_content("chunk")
                pos = stop
            else:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    self._lines["C"] += data[pos:]
                    return
                line = self._lines["C"] + data[pos:eol]
                self._lines["C"] = b""
                self._line("C", line)
                pos = eol + 2
                verb, _, rest = line.partition(b" ")
                size = rest.split(b" ")[0]
                if verb.upper() == b"BDAT" and size.isdigit() and int(size):
                    self._mode, self._bdat_left, self._content_size = "bdat", int(size), 0

    def _content(self, data: bytes) -> None:
        self._content_size += len(data)
        if self.suppress_data:
            return
        *lines, self._lines["C"] = (self._lines["C"] + data).split(b"\r\n")
        for line in lines:
            self._line("C", line)

    def _end_content(self, what: str) -> None:
        if self.suppress_data:
            self.write(f"C: <{what} content: {self._content_size} bytes>\n")
        elif self._lines["C"]:
            self._line("C", self._lines["C"])
            self._lines["C"] = b""
        self._mode = "command"


class _Progress:
    """A progress bar on a terminal; a line every tenth of the way otherwise."""

    WIDTH = 30

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self._drawn = 0.0
        self._step = max(1, total // 10)

    def update(self, done: int, refused: int) -> None:
        """Show that ``done`` messages were sent, ``refused`` of them refused."""
        now = time.monotonic()
        rate = done / max(now - self.start, 1e-9)
        if self.tty:
            if done < self.total and now - self._drawn < 0.1:
                return
            self._drawn = now
            filled = self.WIDTH * done // self.total
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            extra = f"  {refused} refused" if refused else ""
            self.stream.write(
                f"\r[{bar}] {done}/{self.total} {100 * done // self.total:3d}%"
                f"  {rate:.1f} msg/s{extra}"
            )
        elif done % self._step == 0 or done == self.total:
            self.stream.write(f"smtpclient: {done}/{self.total} sent ({rate:.1f} msg/s)\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# -- TLS details -----------------------------------------------------------------------------


_SHORT_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "domainComponent": "DC",
    "emailAddress": "emailAddress",
    "serialNumber": "serialNumber",
}
_OID_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_SAN_OID = "2.5.29.17"


@dataclass
class _CertInfo:
    subject: list[tuple[str, str]] = field(default_factory=list)
    issuer: list[tuple[str, str]] = field(default_factory=list)
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None
    sans: list[tuple[str, str]] = field(default_factory=list)


def _cert_from_dict(cert: dict[str, Any]) -> _CertInfo:
    """What ``getpeercert()`` says about a verified certificate."""

    def names(rdns: Any) -> list[tuple[str, str]]:
        return [(_SHORT_NAMES.get(k, k), str(v)) for rdn in rdns for k, v in rdn]

    def when(text: Any) -> datetime.datetime | None:
        if not isinstance(text, str):
            return None
        seconds = ssl.cert_time_to_seconds(text)
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)

    return _CertInfo(
        subject=names(cert.get("subject", ())),
        issuer=names(cert.get("issuer", ())),
        not_before=when(cert.get("notBefore")),
        not_after=when(cert.get("notAfter")),
        sans=[
            ("IP" if kind == "IP Address" else kind, str(value))
            for kind, value in cert.get("subjectAltName", ())
        ],
    )


def _der_item(data: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """The DER element at ``pos``: (tag, start of its content, end of its content)."""
    if pos + 2 > limit:
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        octets = length & 0x7F
        if not 0 < octets <= 4 or pos + octets > limit:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + octets], "big")
        pos += octets
    if pos + length > limit:
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        item = _der_item(data, start, end)
        items.append(item)
        start = item[2]
    return items


def _der_oid(raw: bytes) -> str:
    first = raw[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for octet in raw[1:]:
        value = value << 7 | octet & 0x7F
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _der_text(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", "replace")
    return raw.decode("utf-8", "replace")


def _der_name(data: bytes, start: int, end: int) -> list[tuple[str, str]]:
    out = []
    for _, set_start, set_end in _der_children(data, start, end):
        for _, atv_start, atv_end in _der_children(data, set_start, set_end):
            (_, oid_start, oid_end), (tag, value_start, value_end) = _der_children(
                data, atv_start, atv_end
            )[:2]
            oid = _der_oid(data[oid_start:oid_end])
            out.append((_OID_NAMES.get(oid, oid), _der_text(tag, data[value_start:value_end])))
    return out


def _der_time(tag: int, raw: bytes) -> datetime.datetime:
    text = raw.decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime: RFC 5280 §4.1.2.5.1, 50-99 are 19xx
        year = int(text[:2])
        text = str(1900 + year if year >= 50 else 2000 + year) + text[2:]
    parsed = datetime.datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    return parsed.replace(tzinfo=datetime.timezone.utc)


def _cert_from_der(der: bytes) -> _CertInfo | None:
    """Subject, issuer, validity and SANs read from a DER certificate; None if unreadable.

    Used when verification is off: ``getpeercert()`` then returns nothing but
    the binary form.
    """
    try:
        _, start, end = _der_item(der, 0, len(der))
        _, tbs_start, tbs_end = _der_children(der, start, end)[0]
        fields = _der_children(der, tbs_start, tbs_end)
        if fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        issuer, validity, subject = fields[2], fields[3], fields[4]
        info = _CertInfo(
            subject=_der_name(der, subject[1], subject[2]),
            issuer=_der_name(der, issuer[1], issuer[2]),
        )
        times = _der_children(der, validity[1], validity[2])
        info.not_before = _der_time(times[0][0], der[times[0][1] : times[0][2]])
        info.not_after = _der_time(times[1][0], der[times[1][1] : times[1][2]])
        for tag, ext_start, ext_end in fields[6:]:
            if tag != 0xA3:  # [3] extensions
                continue
            _, list_start, list_end = _der_item(der, ext_start, ext_end)
            for _, x_start, x_end in _der_children(der, list_start, list_end):
                parts = _der_children(der, x_start, x_end)
                if _der_oid(der[parts[0][1] : parts[0][2]]) != _SAN_OID:
                    continue
                _, octets_start, octets_end = parts[-1]
                _, names_start, names_end = _der_item(der, octets_start, octets_end)
                for name_tag, n_start, n_end in _der_children(der, names_start, names_end):
                    raw = der[n_start:n_end]
                    if name_tag == 0x82:
                        info.sans.append(("DNS", raw.decode("ascii", "replace")))
                    elif name_tag == 0x87 and len(raw) in (4, 16):
                        info.sans.append(("IP", str(ipaddress.ip_address(raw))))
                    elif name_tag == 0x81:
                        info.sans.append(("email", raw.decode("ascii", "replace")))
                    elif name_tag == 0x86:
                        info.sans.append(("URI", raw.decode("ascii", "replace")))
    except (IndexError, ValueError, UnicodeError):
        return None
    return info


def _tls_report(sock: ssl.SSLSocket, opts: _Options, server_name: str) -> list[tuple[str, str]]:
    """(label, text) lines on the TLS session of ``sock``."""
    lines = []
    cipher = sock.cipher()
    what = sock.version() or "TLS"
    if cipher is not None:
        what += f", {cipher[0]} ({cipher[2]} bits)"
    lines.append(("TLS", what))
    der = sock.getpeercert(binary_form=True)
    info: _CertInfo | None = None
    if opts.tls_verify:
        lines.append(("certificate", f"verified for {server_name}"))
        info = _cert_from_dict(cast("dict[str, Any]", sock.getpeercert() or {}))
    else:
        lines.append(("certificate", "NOT verified (--no-tls-verify)"))
        info = None if der is None else _cert_from_der(der)
        if info is None and der is not None:
            lines.append(("", "the certificate could not be decoded"))
    if info is not None:
        lines.append(("  subject", ", ".join(f"{k}={v}" for k, v in info.subject) or "(empty)"))
        lines.append(("  issuer", ", ".join(f"{k}={v}" for k, v in info.issuer) or "(empty)"))
        if info.not_after is not None:
            days = (info.not_after - datetime.datetime.now(datetime.timezone.utc)).days
            state = f"expires in {days} days" if days >= 0 else f"EXPIRED {-days} days ago"
            start = "" if info.not_before is None else f"{info.not_before:%Y-%m-%d %H:%M:%S} to "
            lines.append(("  valid", f"{start}{info.not_after:%Y-%m-%d %H:%M:%S} UTC ({state})"))
        lines.append(("  SANs", ", ".join(f"{k}:{v}" for k, v in info.sans) or "(none)"))
    if der is not None:
        digest = hashlib.sha256(der).hexdigest().upper()
        lines.append(("  SHA-256", ":".join(digest[i : i + 2] for i in range(0, 64, 2))))
    return lines


# -- the session -----------------------------------------------------------------------------


def _reply_text(reply: Reply | Greeting) -> str:
    return f"{reply.code} " + " / ".join(line.decode("utf-8", "replace") for line in reply.lines)


def _first_line(reply: Reply) -> str:
    return f"{reply.code} {_printable(reply.lines[0]) if reply.lines else ''}".rstrip()


def _local_name(sock: socket.socket) -> str:
    """This host's name if it is a domain, else the address literal of ``sock``."""
    name = socket.gethostname()
    if "." in name:
        with contextlib.suppress(LocalProtocolError):
            return Ehlo(name).name
    try:
        address = sock.getsockname()
    except OSError:
        return "localhost"
    if not isinstance(address, tuple):
        return "localhost"  # a Unix socket
    ip = ipaddress.ip_address(address[0].partition("%")[0])
    return f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"


_USABLE_FOR_QUIT = frozenset(
    {State.CONNECTED, State.REFUSED, State.READY, State.MAIL, State.RCPT, State.BDAT, State.ABORTED}
)


@dataclass
class _Stats:
    sent: int = 0
    refused: int = 0
    refused_recipients: int = 0
    code: int = EXIT_OK
    first_problem: str | None = None  # of a transaction not shown


class _Session:
    """One connection, driven stage by stage with the engine's procedures."""

    def __init__(self, opts: _Options, out: IO[str], err: IO[str]) -> None:
        self.opts = opts
        self.out = out
        self.err = err
        self.display = _Display(out, suppress_data=opts.suppress_data)
        self.display.enabled = opts.show_transcript
        self.recorder: TranscriptRecorder | None = None
        if opts.record is not None:
            self.recorder = TranscriptRecorder(
                {
                    "client": f"smtpclient {_version()}",
                    "server": str(opts.target),
                    "protocol": "LMTP" if opts.lmtp else "SMTP",
                    "date": email.utils.formatdate(localtime=True),
                }
            )
        self.driver: SyncDriver | None = None
        self.conn = Connection(
            lmtp=opts.lmtp,
            tls_policy=_TLS_POLICY[opts.tls],
            tls_active=opts.tls == "implicit",
            auth_in_clear=opts.auth_in_clear,
        )
        self.context: ssl.SSLContext | None = None
        self.server_name = opts.tls_name or opts.target.host or "localhost"
        self.ehlo_name = opts.ehlo or ""

    # -- plumbing -------------------------------------------------------------------

    def trace(self, direction: str, data: bytes) -> None:
        if self.recorder is not None:
            self.recorder(direction, data)
        self.display(direction, data)

    def err_line(self, text: str) -> None:
        self.out.flush()
        self.err.write(f"smtpclient: {text}\n")
        self.err.flush()

    def run(self, stage: str, procedure: Procedure[T]) -> T:
        """Run ``procedure``; turn what it raises into a :class:`_Fail` for ``stage``."""
        assert self.driver is not None
        self.display.reset()
        try:
            return self.driver.run(procedure)
        except ServerDisconnected as exc:
            raise _Fail(EXIT_CONNECTION, f"{stage}: {exc}") from None
        except RemoteSASLError as exc:
            raise _Fail(EXIT_AUTH, f"authentication failed: {exc}") from None
        except RemoteProtocolError as exc:
            raise _Fail(EXIT_PROTOCOL, f"protocol error from the server ({stage}): {exc}") from None
        except ReplyError as exc:
            raise self._refused(stage, exc) from None
        except LocalProtocolError as exc:
            code = {"auth": EXIT_AUTH, "starttls": EXIT_CONNECTION}.get(stage, EXIT_TRANSACTION)
            if stage == "raw":
                code = EXIT_PROTOCOL
            hint = ""
            if stage == "auth" and not self.conn.tls_active and not self.opts.auth_in_clear:
                hint = " [use TLS (--tls starttls, required or implicit), or --auth-in-clear]"
            raise _Fail(code, f"{stage}: {exc}{hint}", polite=True) from None
        except ssl.SSLError as exc:
            raise self._tls_failure(exc) from None
        except TimeoutError:
            timeout = self.opts.timeout
            raise _Fail(EXIT_CONNECTION, f"{stage}: no reply within {timeout:g} s") from None
        except OSError as exc:
            raise _Fail(EXIT_CONNECTION, f"{stage}: {_os_error(exc)}") from None
        finally:
            self.display.flush()

    def _refused(self, stage: str, exc: ReplyError) -> _Fail:
        text = _reply_text(exc.reply)
        if stage == "greeting":
            return _Fail(EXIT_CONNECTION, f"the server refused the session: {text}", polite=True)
        if stage == "starttls":
            return _Fail(EXIT_CONNECTION, f"STARTTLS refused: {text}", polite=True)
        if stage == "auth":
            return _Fail(EXIT_AUTH, f"authentication failed: {text}", polite=True)
        if stage == "ehlo":
            stage = "LHLO" if self.opts.lmtp else "EHLO and HELO"
        return _Fail(EXIT_TRANSACTION, f"{stage} refused: {text}", polite=True)

    def _tls_failure(self, exc: ssl.SSLError) -> _Fail:
        hint = ""
        if isinstance(exc, ssl.SSLCertVerificationError):
            hint = " (trust its CA with --cafile FILE, or look anyway with --no-tls-verify)"
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return _Fail(
            EXIT_CONNECTION, f"TLS handshake with {self.opts.target} failed: {reason}{hint}"
        )

    def tls_context(self) -> ssl.SSLContext:
        if self.context is None:
            try:
                context = ssl.create_default_context(cafile=self.opts.cafile)
            except (OSError, ssl.SSLError) as exc:
                raise _Fail(
                    EXIT_USAGE, f"--cafile: cannot load {self.opts.cafile!r}: {_os_error(exc)}"
                ) from None
            if not self.opts.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self.context = context
        return self.context

    # -- stages ---------------------------------------------------------------------

    def open(self) -> None:
        """Connect (and, for implicit TLS, run the handshake)."""
        opts = self.opts
        target = opts.target
        context = self.tls_context() if opts.tls != "none" else None
        try:
            if target.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(opts.timeout)
                    sock.connect(target.path)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = connect(target.host, target.port, timeout=opts.timeout)
        except OSError as exc:
            raise _Fail(EXIT_CONNECTION, f"cannot connect to {target}: {_os_error(exc)}") from None
        if not self.ehlo_name:
            self.ehlo_name = _local_name(sock)
        self.display.note(f"connected to {target}")
        if context is not None and opts.tls == "implicit":
            try:
                sock = context.wrap_socket(sock, server_hostname=self.server_name)
            except ssl.SSLError as exc:
                sock.close()
                raise self._tls_failure(exc) from None
            except OSError as exc:
                sock.close()
                raise _Fail(EXIT_CONNECTION, f"TLS handshake: {_os_error(exc)}") from None
        self.driver = SyncDriver(
            sock,
            ssl_context=context,
            server_hostname=self.server_name,
            trace=self.trace,
            reply_timeout=opts.timeout,
        )

    def tls_lines(self) -> list[tuple[str, str]]:
        assert self.driver is not None
        sock = self.driver.sock
        if not isinstance(sock, ssl.SSLSocket):
            return []
        return _tls_report(sock, self.opts, self.server_name)

    def show_tls(self) -> None:
        for label, text in self.tls_lines():
            self.display.note(f"{label.strip()}: {text}" if label else text)

    def greet(self) -> Greeting:
        return self.run("greeting", procedures.greet(self.conn))

    def hello(self) -> Reply:
        return self.run("ehlo", procedures.hello(self.conn, self.ehlo_name))

    def starttls(self) -> bool:
        """STARTTLS as ``--tls`` asks; True if TLS was started."""
        conn = self.conn
        if conn.tls_active or self.opts.tls == "none":
            return False
        if not conn.extensions.starttls:
            if self.opts.tls == "required":
                raise _Fail(
                    EXIT_CONNECTION,
                    "the server does not offer STARTTLS and --tls required was given",
                    polite=True,
                )
            return False
        self.run("starttls", procedures.starttls(conn))
        self.show_tls()
        return True

    def authenticate(self) -> Reply | None:
        opts = self.opts
        if opts.auth_user is None:
            return None
        reply = self.run(
            "auth",
            procedures.authenticate(
                self.conn, opts.auth_user, opts.auth_password, preference=opts.auth_mechanisms
            ),
        )
        self.display.note(f"authenticated as {opts.auth_user}")
        return reply

    def quit(self) -> None:
        """QUIT if the session allows it; errors at this point change nothing."""
        if self.driver is None or self.conn.state not in _USABLE_FOR_QUIT:
            return
        self.display.reset()
        with contextlib.suppress(OSError, ProtocolError, ValueError):
            self.driver.run(procedures.quit(self.conn))
        self.display.flush()

    def close(self) -> None:
        if self.driver is not None:
            self.driver.close()
            self.driver = None
        if self.recorder is not None:
            self.recorder.event("client-close")

    def save_record(self) -> None:
        if self.recorder is None or self.opts.record is None:
            return
        try:
            self.opts.record.write_text(
                self.recorder.transcript().dumps(), encoding="utf-8", newline=""
            )
        except OSError as exc:
            self.err_line(f"--record: cannot write {str(self.opts.record)!r}: {_os_error(exc)}")


def _os_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})" if exc.errno else exc.strerror
    return str(exc) or type(exc).__name__


# -- what each mode does -----------------------------------------------------------------------


def _mail_params(session: _Session, content: bytes | None) -> list[str]:
    opts = session.opts
    ext = session.conn.extensions
    params = list(opts.mail_params)
    given = {p.partition("=")[0].upper() for p in params}
    addresses = [opts.sender or "", *opts.recipients]
    if "SMTPUTF8" not in given and not all(a.isascii() for a in addresses):
        params.append("SMTPUTF8")
    if content is not None:
        if "SIZE" not in given and ext.size is not None:
            params.append(f"SIZE={len(content)}")
        if "BODY" not in given and ext.eightbitmime and not content.isascii():
            params.append("BODY=8BITMIME")
    return params


def _envelope(conn: Connection, group: Sequence[Mail | Rcpt | Data]) -> Procedure[list[Reply]]:
    """MAIL, the RCPTs (and DATA): pipelined if the server offers it, else one by one."""
    replies: list[Reply] = []
    if conn.extensions.pipelining:
        yield Write(conn.send_many(group))
        for _ in group:
            replies.append((yield from procedures.read_reply(conn)))
            if conn.state is State.CLOSED:
                break
        return replies
    for command in group:
        if replies and not replies[0].is_positive:
            break
        if isinstance(command, Data) and not conn.accepted_recipients:
            break
        replies.append((yield from procedures.command(conn, command)))
        if conn.state is State.CLOSED:
            break
    return replies


def _partial_transaction(session: _Session) -> int:
    """``--quit-after mail``, ``rcpt`` or ``data``: as far as that, then stop."""
    opts = session.opts
    stage = opts.quit_after
    mail = Mail(opts.sender or "", tuple(_mail_params(session, None)))
    rcpts = [Rcpt(r, tuple(opts.rcpt_params)) for r in opts.recipients]
    group: list[Mail | Rcpt | Data] = [mail]
    if stage in ("rcpt", "data"):
        group += rcpts
    if stage == "data":
        group.append(Data())
    replies = session.run(stage or "mail", _envelope(session.conn, group))
    if session.conn.state is State.CLOSED:
        raise _Fail(EXIT_CONNECTION, f"the server closed the session: {_reply_text(replies[-1])}")
    if not replies[0].is_positive:
        raise _Fail(EXIT_TRANSACTION, f"sender refused: {_reply_text(replies[0])}", polite=True)
    code = EXIT_OK
    for rcpt, reply in zip(opts.recipients, replies[1 : 1 + len(rcpts)], strict=False):
        if not reply.is_positive:
            session.err_line(f"recipient {rcpt} refused: {_reply_text(reply)}")
            code = EXIT_RECIPIENT_REFUSED
    if stage == "data":
        data_reply = replies[-1] if len(replies) == len(group) else None
        if data_reply is not None and data_reply.is_intermediate:
            session.display.note("stopping after DATA: closing the connection without QUIT")
            return code
        if code == EXIT_OK:
            what = "no reply" if data_reply is None else _reply_text(data_reply)
            raise _Fail(EXIT_TRANSACTION, f"DATA refused: {what}", polite=True)
    session.display.note(f"stopping after {stage}")
    return code


def _transaction(session: _Session, content: bytes, stats: _Stats, *, report: bool) -> None:
    """One message through ``send_mail``; adds its outcome to ``stats``."""
    opts = session.opts
    result: TransactionResult = session.run(
        "send",
        procedures.send_mail(
            session.conn,
            opts.sender or "",
            opts.recipients,
            content,
            mail_params=_mail_params(session, content),
            rcpt_params=opts.rcpt_params,
            chunking=opts.bdat,
            pipelining=opts.pipelining,
        ),
    )
    closed = session.conn.state is State.CLOSED
    code = EXIT_OK
    problems: list[str] = []
    if not result.mail_reply.is_positive:
        code = EXIT_TRANSACTION
        problems.append(f"sender refused: {_reply_text(result.mail_reply)}")
    else:
        rcpt_refused = False
        for r in result.recipients:
            if r.rcpt_reply is not None and not r.rcpt_reply.is_positive:
                rcpt_refused = True
                problems.append(f"recipient {r.recipient} refused: {_reply_text(r.rcpt_reply)}")
        if rcpt_refused:
            code = EXIT_RECIPIENT_REFUSED
        accepted_at_rcpt = any(
            r.rcpt_reply is not None and r.rcpt_reply.is_positive for r in result.recipients
        )
        data = result.data_reply
        final = result.final_reply
        if accepted_at_rcpt and data is not None and not data.is_intermediate:
            code = EXIT_TRANSACTION
            problems.append(f"DATA refused: {_reply_text(data)}")
        elif final is not None and opts.lmtp:
            for r in result.recipients:
                if r.rcpt_reply is not None and r.rcpt_reply.is_positive:
                    if r.reply.is_positive:
                        if report:
                            session.display.note(
                                f"delivered to {r.recipient}: {_reply_text(r.reply)}"
                            )
                    else:
                        code = max(code, EXIT_RECIPIENT_REFUSED)
                        problems.append(f"delivery to {r.recipient} failed: {_reply_text(r.reply)}")
        elif final is not None and not final.is_positive:
            code = EXIT_TRANSACTION
            problems.append(f"message refused: {_reply_text(final)}")
        elif final is not None and report:
            accepted = len(result.accepted)
            session.display.note(
                f"message accepted for {accepted} recipient{'s' if accepted != 1 else ''}: "
                f"{_reply_text(final)}"
            )
    if closed:
        raise _Fail(
            EXIT_CONNECTION, "the server closed the session: " + ("; ".join(problems) or "421")
        )
    if report:
        for problem in problems:
            session.err_line(problem)
    elif problems and stats.first_problem is None:
        stats.first_problem = f"message {stats.sent + stats.refused + 1}: {problems[0]}"
    stats.code = max(stats.code, code)
    if result.delivered:
        stats.sent += 1
    else:
        stats.refused += 1
    stats.refused_recipients += len(result.refused) if result.delivered else 0


def _send(session: _Session, source: _MessageSource | None) -> int:
    """The send mode: the stages up to ``--quit-after``, the message(s), QUIT."""
    opts = session.opts
    stop = opts.quit_after
    session.open()
    if stop == "connect":
        session.display.note("stopping after connect: closing without QUIT")
        return EXIT_OK
    session.greet()
    if stop == "greeting":
        return _stopped(session, stop)
    if opts.raw is not None and opts.raw_no_ehlo:
        return _raw(session)
    session.hello()
    if stop == "ehlo":
        return _stopped(session, stop)
    if session.starttls():
        session.hello()
    if stop == "tls":
        return _stopped(session, stop)
    session.authenticate()
    if stop == "auth":
        return _stopped(session, stop)
    if opts.raw is not None:
        return _raw(session)
    if stop is not None:
        code = _partial_transaction(session)
        if stop != "data":
            session.quit()
        return code

    assert source is not None
    stats = _Stats()
    start = time.monotonic()
    progress = None
    if opts.count > 1 and not (opts.verbose and session.display.enabled):
        progress = _Progress(opts.count, session.err)

    def finish() -> None:
        elapsed = time.monotonic() - start
        if progress is not None:
            progress.finish()
        session.display.enabled = opts.show_transcript
        if opts.count > 1:
            rate = (stats.sent + stats.refused) / max(elapsed, 1e-9)
            refusals = stats.refused_recipients
            extra = f", {refusals} recipients refused" if refusals else ""
            summary.append(
                f"sent {stats.sent}/{opts.count} messages, {stats.refused} refused{extra}, "
                f"in {elapsed:.2f} s ({rate:.1f} msg/s)\n"
            )

    summary: list[str] = []
    try:
        for index in range(opts.count):
            if index == 1 and not opts.verbose:
                session.display.enabled = False  # the first transaction was shown
            _transaction(session, source.message(), stats, report=index == 0 or opts.verbose)
            if progress is not None:
                progress.update(index + 1, stats.refused)
    except BaseException:
        finish()
        session.out.write("".join(summary))  # what was done before the failure
        raise
    finish()
    session.quit()
    session.out.write("".join(summary))  # the last line
    if stats.first_problem is not None:
        session.err_line(f"first failure not shown: {stats.first_problem}")
    return stats.code


def _stopped(session: _Session, stage: str) -> int:
    session.display.note(f"stopping after {stage}")
    session.quit()
    return EXIT_OK


def _raw(session: _Session) -> int:
    """Send the ``--raw`` bytes unchecked and read ``--raw-replies`` replies."""
    opts = session.opts
    assert opts.raw is not None
    session.display.note(
        f"sending {len(opts.raw)} raw bytes unchecked, then reading {opts.raw_replies} "
        f"repl{'y' if opts.raw_replies == 1 else 'ies'}"
    )
    replies = session.run("raw", _raw_exchange(session.conn, opts.raw, opts.raw_replies))
    if not session.opts.show_transcript:
        for reply in replies:
            for i, line in enumerate(reply.lines):
                sep = " " if i == len(reply.lines) - 1 else "-"
                session.out.write(f"{reply.code}{sep}{_printable(line)}\n")
    session.quit()
    return EXIT_OK


def _raw_exchange(conn: Connection, data: bytes, count: int) -> Procedure[list[Reply]]:
    yield Write(conn.send_unchecked(data, replies=count))
    replies = []
    for _ in range(count):
        replies.append((yield from procedures.read_reply(conn)))
    return replies


def _probe(session: _Session) -> int:
    """The probe mode: report what the server offers, then QUIT."""
    opts = session.opts
    width = 14

    def show(label: str, text: str) -> None:
        session.out.write(f"{label:<{width}}{text}\n".rstrip() + "\n")

    def show_extensions(ext: Extensions) -> None:
        if not len(ext):
            show("extensions", "(none)")
        for i, keyword in enumerate(ext):
            show("extensions" if i == 0 else "", f"{keyword} {ext[keyword]}".rstrip())

    show("server", str(opts.target))
    session.open()
    if opts.tls == "implicit":
        for label, text in session.tls_lines():
            show(label, text)
    greeting = session.greet()
    show("greeting", _reply_text(greeting))
    reply = session.hello()
    show("LHLO" if opts.lmtp else "EHLO", _first_line(reply))
    before = session.conn.extensions
    show_extensions(before)
    if opts.tls in ("none", "implicit"):
        show("STARTTLS", "offered" if before.starttls else "not offered")
    if session.starttls():
        show("STARTTLS", "offered; started")
        for label, text in session.tls_lines():
            show(label, text)
        reply = session.hello()
        show(("LHLO" if opts.lmtp else "EHLO") + " in TLS", _first_line(reply))
        show_extensions(session.conn.extensions)
    elif opts.tls == "starttls":
        show("STARTTLS", "not offered")
    ext = session.conn.extensions
    auth = " ".join(sorted(ext.auth)) or "not offered"
    if session.conn.tls_active and before is not ext and before.auth != ext.auth:
        auth += f" (before TLS: {' '.join(sorted(before.auth)) or 'not offered'})"
    show("AUTH", auth)
    size = ext.size
    if size is None:
        show("SIZE", "not advertised")
    elif size == 0:
        show("SIZE", "no fixed limit")
    else:
        show("SIZE", f"{size} octets ({size / 1048576:.1f} MiB)")
    for keyword in ("PIPELINING", "CHUNKING", "8BITMIME", "SMTPUTF8", "DSN"):
        show(keyword, "yes" if keyword in ext else "no")
    if opts.auth_user is not None:
        auth_reply = session.authenticate()
        if auth_reply is not None:
            show("AUTH result", _reply_text(auth_reply))
    session.quit()
    return EXIT_OK


# -- entry point -----------------------------------------------------------------------------


def run(
    argv: Sequence[str], *, stdout: IO[str] | None = None, stderr: IO[str] | None = None
) -> int:
    """Parse ``argv`` and act; returns the exit status (see ``smtpclient --help``)."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    argv = list(argv)
    mode = "send"
    if argv and argv[0] in MODES:
        mode = argv.pop(0)
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        opts = _options(args, mode)
        sends = mode == "send" and opts.raw is None and opts.quit_after is None
        source = _MessageSource(opts) if sends else None
    except _Usage as exc:
        parser.print_usage(err)
        err.write(f"smtpclient: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write("\nsmtpclient: interrupted\n")
        return 130
    session = _Session(opts, out, err)
    try:
        return _probe(session) if mode == "probe" else _send(session, source)
    except _Fail as fail:
        session.display.flush()
        session.err_line(fail.message)
        if fail.polite:
            session.quit()
        return fail.code
    except KeyboardInterrupt:
        session.err_line("interrupted")
        return 130
    finally:
        session.close()
        session.save_record()
        with contextlib.suppress(OSError, ValueError):
            out.flush()
