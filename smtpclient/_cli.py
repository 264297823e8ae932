"""The command line: send a message, or probe a server (``smtpclient --help``)."""

from __future__ import annotations

import argparse
import sys

from ._errors import SMTPException
from ._smtplib import SMTP

__all__ = ["build_parser", "run"]

# Exit codes: 0 sent, 1 refused by the server, 2 usage, 3 connection or protocol failure.
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_CONNECTION = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``smtpclient`` command."""
    parser = argparse.ArgumentParser(
        prog="smtpclient",
        description="Send a message through an SMTP server and show the session.",
    )
    parser.add_argument(
        "--server",
        "-s",
        default="localhost:25",
        metavar="HOST[:PORT]",
        help="the server to talk to (default: %(default)s)",
    )
    parser.add_argument(
        "--from", "-f", dest="sender", required=True, metavar="ADDRESS", help="the envelope sender"
    )
    parser.add_argument(
        "--to",
        "-t",
        dest="to",
        action="append",
        required=True,
        metavar="ADDRESS",
        help="an envelope recipient (repeatable)",
    )
    parser.add_argument("--body", default=None, help="the message text (default: stdin)")
    parser.add_argument("--ehlo", default=None, metavar="NAME", help="the EHLO name")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per reply")
    parser.add_argument("--quiet", "-q", action="store_true", help="do not print the transcript")
    return parser


def run(argv: list[str]) -> int:
    """Parse ``argv`` and act; returns the exit code."""
    args = build_parser().parse_args(argv)
    body = args.body if args.body is not None else sys.stdin.read()
    try:
        with SMTP(local_hostname=args.ehlo, timeout=args.timeout) as smtp:
            if not args.quiet:
                smtp.trace = _print_trace
            smtp.connect(args.server)
            refused = smtp.sendmail(args.sender, args.to, body.encode("utf-8"))
    except SMTPException as exc:
        print(f"smtpclient: {exc}", file=sys.stderr)
        return (
            EXIT_REFUSED
            if hasattr(exc, "smtp_code") or hasattr(exc, "recipients")
            else (EXIT_CONNECTION)
        )
    except OSError as exc:
        print(f"smtpclient: cannot talk to {args.server}: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
    for rcpt, (code, text) in refused.items():
        print(
            f"smtpclient: {rcpt} refused: {code} {text.decode('utf-8', 'replace')}", file=sys.stderr
        )
    return EXIT_REFUSED if refused else EXIT_OK


def _print_trace(direction: str, data: bytes) -> None:
    prefix = "C: " if direction == "send" else "S: "
    for line in data.splitlines():
        print(prefix + line.decode("utf-8", "replace"))
