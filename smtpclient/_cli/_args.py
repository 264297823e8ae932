"""The ``smtpclient`` command's options, checked: what argparse cannot check, typed.

Also where ``--server`` is parsed (:func:`parse_server`) and where ``-`` and
files are read for ``--data``, ``--raw`` and ``--body``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from smtp_core import PASSWORD_MECHANISMS, Ehlo, LocalProtocolError, Mail, Rcpt

from ._common import QUIT_STAGES, _Usage

__all__ = ["_Options", "_Target", "_options", "parse_server"]


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
    connections: int
    rate: tuple[int, float] | None
    max_per_connection: int | None
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


def _rate(text: str) -> tuple[int, float]:
    """``--rate N/SECONDS``: at most N transactions begun in any SECONDS."""
    count, slash, seconds = text.partition("/")
    try:
        limit, interval = int(count), float(seconds)
    except ValueError:
        limit, interval = 0, 0.0
    if not slash or limit < 1 or not 0 < interval < float("inf"):
        raise _Usage(
            f"--rate must be N/SECONDS with N 1 or more and SECONDS more than 0 "
            f"(e.g. 100/60), not {text!r}"
        )
    return limit, interval


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
    if args.connections is not None and args.connections < 1:
        raise _Usage("--connections must be 1 or more")
    if args.max_per_connection is not None and args.max_per_connection < 1:
        raise _Usage("--max-per-connection must be 1 or more")
    rate = None if args.rate is None else _rate(args.rate)
    pooling = args.connections is not None or rate is not None or args.max_per_connection
    if pooling and args.count == 1:
        raise _Usage("--connections, --rate and --max-per-connection go with --count N (N > 1)")
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
        connections=1 if args.connections is None else args.connections,
        rate=rate,
        max_per_connection=args.max_per_connection,
        raw=raw,
        raw_replies=args.raw_replies,
        raw_no_ehlo=args.raw_no_ehlo,
        quiet=args.quiet,
        verbose=args.verbose,
        suppress_data=args.suppress_data,
        record=None if args.record is None else Path(args.record),
    )
