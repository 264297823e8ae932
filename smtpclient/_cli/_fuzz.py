"""The ``fuzz`` mode: fuzz a server you own with :mod:`smtpclient.fuzz`, or replay a finding.

It has options of its own (none of send's apply), so it parses them itself.
What it prints goes to stdout: the target and bounds first, each finding as it
is saved with the command that replays it, then a summary of what was sent
and reached.  Usage errors go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
from collections.abc import Callable, Sequence
from typing import IO

from smtp_core import TranscriptError

from ..fuzz import (
    Finding,
    Fuzzer,
    RemoteTargetError,
    SessionResult,
    Target,
    TargetUnreachable,
    replay,
)
from ._common import EXIT_CONNECTION, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_FOUND", "FUZZ_EPILOG", "build_fuzz_parser", "run_fuzz"]

#: Exit status when something was found (or a replay reproduced it).
EXIT_FOUND = 1

FUZZ_EPILOG = """\
exit status:
  0  nothing was found (a replay: the finding did not recur)
  1  at least one finding (a replay: it recurred)
  2  usage error (a remote target without --allow-remote, a bad file)
  3  the server could not be reached at the start
  130 interrupted (the summary so far is printed)

Only fuzz servers you own or may test: the sessions are malformed and hostile
on purpose.  The target must be on loopback unless --allow-remote is given.

examples:
  smtpclient fuzz -s 127.0.0.1:2525 --seconds 60
  smtpclient fuzz -s localhost:2525 --sessions 500 --seed 7 --out findings/
  smtpclient fuzz --replay findings/violation-12-0a1b2c3d4e.txt"""


def build_fuzz_parser() -> argparse.ArgumentParser:
    """The argument parser of ``smtpclient fuzz``."""
    parser = argparse.ArgumentParser(
        prog="smtpclient fuzz",
        usage="smtpclient fuzz -s HOST[:PORT] [--seconds N] [--sessions N] [options]\n"
        "       smtpclient fuzz --replay FILE [-s HOST[:PORT]]",
        description="Fuzz an SMTP server you own: valid, mutated and hostile sessions, "
        "steered by the server's reply codes; report crashes, hangs and protocol "
        "violations, each saved as a transcript that replays it.",
        epilog=FUZZ_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-s",
        "--server",
        metavar="HOST[:PORT]",
        help="the server to fuzz (port 25 if left out); with --replay, instead of the "
        "file's target",
    )
    parser.add_argument(
        "--seconds", type=float, metavar="N", help="stop after N seconds (default: 60)"
    )
    parser.add_argument("--sessions", type=int, metavar="N", help="stop after N sessions")
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="the random seed (default: 0)"
    )
    parser.add_argument(
        "--out",
        default="fuzz-findings",
        metavar="DIR",
        help="where findings are saved (default: %(default)s)",
    )
    parser.add_argument(
        "--stage-timeout",
        type=float,
        metavar="S",
        help="seconds a due reply may take before it counts as a hang (default: 5; with "
        "--replay, the file's)",
    )
    parser.add_argument(
        "--max-findings",
        type=int,
        default=20,
        metavar="N",
        help="stop after N findings (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a target that is not on loopback (a server you may test)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="a line per session: what it sent (verbs, steps by kind) and the reply codes",
    )
    parser.add_argument("--replay", metavar="FILE", help="run a saved finding again")
    return parser


def run_fuzz(argv: Sequence[str], out: IO[str], err: IO[str]) -> int:
    """Run ``smtpclient fuzz`` with ``argv`` (the words after ``fuzz``); return the exit status."""
    parser = build_fuzz_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE

    def usage(message: str) -> int:
        parser.print_usage(err)
        err.write(f"smtpclient fuzz: error: {message}\n")
        return EXIT_USAGE

    try:
        target = (
            None
            if args.server is None
            else Target.parse(args.server, allow_remote=args.allow_remote)
        )
    except RemoteTargetError as exc:
        return usage(str(exc))
    except (ValueError, OSError) as exc:
        return usage(f"bad --server {args.server!r}: {exc}")
    if args.replay is not None:
        if args.seconds is not None or args.sessions is not None:
            return usage("--replay runs the saved sessions: --seconds and --sessions do not apply")
        if args.stage_timeout is not None and args.stage_timeout <= 0:
            return usage("--stage-timeout must be positive")
        if not os.path.isfile(args.replay):
            return usage(f"no such file: {args.replay}")
        return _replay(args, target, out, err)
    if target is None:
        return usage("give the server to fuzz: -s HOST[:PORT]")
    if args.stage_timeout is None:
        args.stage_timeout = 5.0
    if args.stage_timeout <= 0 or args.max_findings < 1:
        return usage("--stage-timeout and --max-findings must be positive")
    if (args.seconds is not None and args.seconds <= 0) or (
        args.sessions is not None and args.sessions < 1
    ):
        return usage("--seconds and --sessions must be positive")
    seconds = 60.0 if args.seconds is None and args.sessions is None else args.seconds
    bounds = [
        f"{seconds:g} s" if seconds is not None else "",
        f"{args.sessions} sessions" if args.sessions is not None else "",
    ]
    out.write(
        f"fuzzing {target.address} (seed {args.seed}, stage timeout {args.stage_timeout:g} s, "
        f"at most {' or '.join(b for b in bounds if b)}); findings go to {args.out}/\n"
    )
    out.flush()

    def show(finding: Finding) -> None:
        out.write(f"FOUND {finding.kind} in session {finding.session}: {finding.summary}\n")
        out.write(f"  saved: {finding.path} ({finding.sessions_saved} session(s))\n")
        out.write(f"  replay: {replay_command(finding, target)}\n")
        out.flush()

    fuzzer = Fuzzer(
        target,
        seed=args.seed,
        max_sessions=args.sessions,
        max_seconds=seconds,
        stage_timeout=args.stage_timeout,
        out_dir=args.out,
        max_findings=args.max_findings,
        on_finding=show,
        on_session=_show_session(out) if args.verbose else None,
    )
    try:
        report = fuzzer.run()
    except KeyboardInterrupt:
        err.write("smtpclient fuzz: interrupted\n")
        for text in fuzzer.interrupted().describe():
            out.write(f"{text}\n")
        return 130
    except TargetUnreachable as exc:
        err.write(f"smtpclient fuzz: {exc}\n")
        return EXIT_CONNECTION
    except OSError as exc:
        err.write(f"smtpclient fuzz: cannot save a finding: {exc}\n")
        return EXIT_CONNECTION
    for text in report.describe():
        out.write(f"{text}\n")
    for finding in report.findings:
        out.write(
            f"  {finding.kind} (session {finding.session}): {replay_command(finding, target)}\n"
        )
    return EXIT_FOUND if report.findings else EXIT_OK


def _show_session(out: IO[str]) -> Callable[[int, str, SessionResult, int], None]:
    def show(number: int, origin: str, result: SessionResult, new: int) -> None:
        sent = " ".join(
            step.verb if step.kind == "line" else f"[{step.kind} {len(step.data)}]"
            for step in result.steps
        )
        codes = " ".join(map(str, result.codes))
        gain = f" (+{new} new)" if new else ""
        out.write(f"session {number} ({origin}): {sent[:160]} -> {codes[:120]}{gain}\n")

    return show


def replay_command(finding: Finding, target: Target) -> str:
    """The command line that replays ``finding``."""
    words = ["smtpclient", "fuzz", "--replay", str(finding.path)]
    if target.allow_remote:
        words.append("--allow-remote")
    return shlex.join(words)


def _replay(
    args: argparse.Namespace,
    target: Target | None,
    out: IO[str],
    err: IO[str],
) -> int:
    try:
        result = replay(
            args.replay,
            target=target,
            stage_timeout=args.stage_timeout,
            allow_remote=args.allow_remote,
        )
    except (TranscriptError, ValueError) as exc:
        err.write(f"smtpclient fuzz: error: {args.replay}: {exc}\n")
        return EXIT_USAGE
    except OSError as exc:
        err.write(f"smtpclient fuzz: {exc}\n")
        return EXIT_CONNECTION
    out.write(f"replayed {result.sessions} session(s) of {args.replay} against {result.target}\n")
    for kind, summary, number in result.findings:
        out.write(f"{kind} in session {number}: {summary}\n")
    expected = result.expected or "any finding"
    if result.reproduced:
        out.write(f"reproduced: {expected}\n")
        return EXIT_FOUND
    out.write(f"not reproduced: {expected}\n")
    return EXIT_OK
