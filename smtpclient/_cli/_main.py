"""The ``smtpclient`` command's entry point: parse, check, run the mode, report."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import IO

from ._args import _options
from ._commands import _probe, _send
from ._common import EXIT_USAGE, _Fail, _Usage
from ._fuzz import run_fuzz
from ._message import _MessageSource
from ._parser import build_parser
from ._session import _Session

__all__ = ["MODES", "run"]

MODES = ("send", "probe", "fuzz")


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
    if mode == "fuzz":  # options of its own: smtpclient/_cli/_fuzz.py
        return run_fuzz(argv, out, err)
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
