"""The argument parser of the ``smtpclient`` command: options, help, exit codes, examples."""

from __future__ import annotations

import argparse

from smtp_core import PASSWORD_MECHANISMS
from smtp_core.pool import Policy

from ._common import QUIT_STAGES, _version

__all__ = ["DESCRIPTION", "EXAMPLES_HELP", "EXIT_CODES_HELP", "TLS_MODES", "build_parser"]


TLS_MODES = ("none", "starttls", "required", "implicit")


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
  6  protocol error: the server broke SMTP (malformed or unexpected reply)
  With --count, the worst message decides: a refused or deferred recipient
  gives 1, a message refused (sender, DATA, content) 5, a message whose fate
  is unknown (the end was sent, no verdict came: it may have been delivered)
  3, as does a connection that failed until the tries ran out."""


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
  printf 'NOOP\\r\\nVRFY postmaster\\r\\n' | smtpclient -s localhost --raw - --raw-replies 2

  # fuzz a server you own for a minute, then replay what it found
  smtpclient fuzz -s 127.0.0.1:2525 --seconds 60
  smtpclient fuzz --replay fuzz-findings/violation-12-0a1b2c3d4e.txt"""


DESCRIPTION = """\
Test mail servers: send a message (or many) and watch the SMTP or LMTP
session, probe what a server offers, or send it raw bytes.

modes (the first word; "send" when left out):
  send    send a message and show the session (the default)
  probe   connect, show the greeting, the EHLO extensions (before and after
          STARTTLS), the TLS version, cipher and certificate, the AUTH
          mechanisms and the SIZE limit, then QUIT
  fuzz    fuzz a server you own (loopback unless --allow-remote): generated
          sessions, crashes, hangs and protocol violations saved as
          replayable transcripts; options of its own: smtpclient fuzz --help"""


# -- the command line ----------------------------------------------------------------------


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
        help="send the message N times: the first on this session, shown as without "
        "--count (so a server that cannot take mail fails the same way); then QUIT, and the "
        "other N-1 through a pool of --connections new connections, whose sessions run at "
        "once and are not shown; every result feeds a progress bar (-v: a line per message) "
        "and the summary line, which counts the messages by how they ended: accepted, "
        "refused, deferred (temporary failures until the tries ran out), unknown (the end "
        "was sent and no verdict came: it may have been delivered), error",
    )
    group.add_argument(
        "--connections",
        type=int,
        metavar="K",
        help="with --count: at most K connections at once for the pool (default: 1); "
        "each opens its session as this one did (TLS, AUTH, EHLO name), also over a Unix "
        "socket. The first message's session is closed before the pool starts",
    )
    group.add_argument(
        "--rate",
        metavar="N/SECONDS",
        help="with --count: begin at most N transactions in any SECONDS, over all "
        "connections and the first message, e.g. 100/60 (default: no limit)",
    )
    group.add_argument(
        "--max-per-connection",
        type=int,
        metavar="M",
        help="with --count: at most M messages on one pool connection, then a fresh one "
        f"(default: {Policy().max_messages})",
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
        help="show the transcript in probe mode too; with --count, a line per message as "
        "its result arrives, instead of the progress bar",
    )
    group.add_argument(
        "--suppress-data",
        action="store_true",
        help="show the message content as one summary line in the transcript",
    )
    group.add_argument(
        "--record",
        metavar="FILE",
        help="write the session to FILE as an smtp-transcript/1 file (AUTH payloads "
        "redacted); with --count, the first message's session",
    )
    return parser
