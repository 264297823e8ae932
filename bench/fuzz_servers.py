"""Run the server-fuzzing kit (smtpclient.fuzz) against aiosmtpd and postfix on loopback.

    python bench/fuzz_servers.py --seconds 60                 # both servers, 60 s each
    python bench/fuzz_servers.py --server postfix --seconds 60 --seed 3

aiosmtpd runs in-process (``tests.servers.AiosmtpdServer``, the test suite's
handler); postfix is the test suite's private instance
(``tests._postfix.PostfixServer``, the unpacked Debian package, as root),
started with ``smtpd_error_sleep_time=0`` and its error limits raised so that
it does not slow the fuzzer down on purpose.  For each server the script
prints the command, the sessions tried, the bytes and writes sent, the engine
states and (state, code) pairs reached, the time taken and every finding with
the command that replays it.  Findings are saved under ``--out``.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from _common import _import_postfix_helpers, versions  # also puts the repository on sys.path

from smtpclient.fuzz import Finding, Fuzzer, Target

# Postfix slows down clients that make errors (smtpd_error_sleep_time, and the
# soft limit doubles it) and drops them past the hard limit: a fuzzer makes
# errors on purpose.
POSTFIX_FUZZ_CF = {
    "smtpd_error_sleep_time": "0s",
    "smtpd_soft_error_limit": "100000",
    "smtpd_hard_error_limit": "100000",
    "smtpd_junk_command_limit": "100000",
    "smtpd_client_connection_rate_limit": "0",
    "smtpd_client_message_rate_limit": "0",
    "smtpd_client_recipient_rate_limit": "0",
    "smtpd_recipient_limit": "1000",
}


@contextmanager
def aiosmtpd() -> Iterator[tuple[str, int]]:
    from tests.servers import AiosmtpdServer  # noqa: PLC0415 - imports aiosmtpd

    with AiosmtpdServer() as server:
        yield server.host, server.port


#: Extra main.cf settings for postfix (--postfix-cf NAME=VALUE).
EXTRA_CF: dict[str, str] = {}


@contextmanager
def postfix() -> Iterator[tuple[str, int]]:
    helpers = _import_postfix_helpers()
    helpers.check_installation()
    workdir = Path(tempfile.mkdtemp(prefix="smtpclient-fuzz-postfix-"))
    try:
        with helpers.PostfixServer(workdir, main_cf={**POSTFIX_FUZZ_CF, **EXTRA_CF}) as server:
            yield server.address
            log = server.read_log()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # A crashed smtpd does not stop postfix (master starts another): its log tells.
    lines = log.splitlines()
    for word in ("killed by signal", "panic:", "fatal:", "warning:"):
        hits = [line for line in lines if word in line]
        print(f"postfix log: {len(hits)} lines with {word!r}")
        for line in hits[:5]:
            print(f"  {line[:200]}")


SERVERS: dict[str, Callable[[], AbstractContextManager[tuple[str, int]]]] = {
    "aiosmtpd": aiosmtpd,
    "postfix": postfix,
}


def fuzz(name: str, args: argparse.Namespace) -> int:
    out = Path(args.out) / name
    with SERVERS[name]() as (host, port):
        target = Target(host, port)
        print(f"## {name} on {target.address}: {args.seconds:g} s, seed {args.seed}")

        def show(finding: Finding) -> None:
            print(f"FOUND {finding.kind} in session {finding.session}: {finding.summary}")
            print(f"  saved: {finding.path} ({finding.sessions_saved} session(s))")
            print(
                f"  replay (while this server runs): smtpclient fuzz --replay {finding.path} "
                f"-s {target.address}"
            )

        started = time.monotonic()
        report = Fuzzer(
            target,
            seed=args.seed,
            max_seconds=args.seconds,
            max_sessions=args.sessions,
            stage_timeout=args.stage_timeout,
            out_dir=out,
            on_finding=show,
        ).run()
        for line in report.describe():
            print(line)
        print(
            f"wall time {time.monotonic() - started:.1f} s; sessions/s "
            f"{report.sessions / max(report.seconds, 1e-9):.1f}"
        )
    print()
    return len(report.findings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--server", choices=(*SERVERS, "both"), default="both")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sessions", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage-timeout", type=float, default=5.0)
    parser.add_argument("--out", default="fuzz-findings")
    parser.add_argument(
        "--postfix-cf",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra main.cf setting, e.g. smtpd_forbid_bare_newline=yes (repeatable)",
    )
    args = parser.parse_args()
    for setting in args.postfix_cf:
        name, _, value = setting.partition("=")
        EXTRA_CF[name.strip()] = value.strip()
    print(f"$ python {shlex.join(sys.argv)}")
    print(versions())
    print()
    names = list(SERVERS) if args.server == "both" else [args.server]
    found = sum(fuzz(name, args) for name in names)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
