"""The ``smtpclient`` command line: test mail servers the way swaks does, on the engine.

Everything on the wire goes through ``smtp_core``: the procedures (greet,
hello, starttls, authenticate, send_mail, quit) run on the blocking driver
of ``transports.sync``, so what the engine refuses to send (CR or LF in an
address, AUTH in the clear without ``--auth-in-clear``, BDAT to a server
without CHUNKING) is refused here too.  The smtplib facade is not used.

Output: the session transcript (``C:``/``S:`` lines, AUTH payloads masked by
:class:`smtp_core.TranscriptRecorder`) and ``*`` notes go to stdout; errors,
refused recipients and the ``--count`` progress bar go to stderr.  With
``--count N``, only the first message's session is shown; the other messages
go through a connection pool, and a summary line counts every message by how
it ended (accepted, refused, deferred, unknown, error).

The command is split into small modules: ``_common`` (exit statuses, errors),
``_parser`` (argparse), ``_args`` (the checked options, ``--server``),
``_message`` (the message sent), ``_display`` (transcript, progress bar),
``_certs`` (TLS and certificate details), ``_session`` (one connection, stage
by stage), ``_commands`` (send, raw, probe), ``_bulk`` (``--count``: the first
message on this session, the others through :class:`smtpclient.pool.Pool`)
and ``_main`` (:func:`run`).
"""

from __future__ import annotations

from ._args import parse_server
from ._common import (
    EXIT_AUTH,
    EXIT_CONNECTION,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_RECIPIENT_REFUSED,
    EXIT_TRANSACTION,
    EXIT_USAGE,
    QUIT_STAGES,
)
from ._main import run
from ._parser import build_parser

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
    "parse_server",
    "run",
]
