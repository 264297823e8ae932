"""CPU instructions per small message, counted by valgrind's callgrind.

    python bench/callgrind.py            # N = 200 messages per session
    python bench/callgrind.py --quick    # N = 20
    python bench/callgrind.py --what-if-memo-addresses   # address parsing made free
    python bench/callgrind.py --warm-ups 10   # after 10 warm-up sessions: the steady state

For each client, ``bench/_cg_child.py`` runs, against postfix's smtp-sink,
one warm-up session, then a session with no message (connect, EHLO, QUIT) and
one with N small messages to one recipient, under::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=OUT \\
        --zero-before=getppid --dump-before=getpgrp \\
        python bench/_cg_child.py CLIENT 127.0.0.1 PORT N

The child calls ``os.getppid()`` before the first counted session and
``os.getpgrp()`` after each, so callgrind writes ``OUT.1`` (the empty session)
and ``OUT.2`` (the session with N messages); the interpreter's start, the
imports and the warm-up are not counted.  The per-message figure is
``(Ir(OUT.2) - Ir(OUT.1)) / N``: instructions the client process executes in
user space (the kernel's share of the socket calls, and the sink, are not
counted).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import _cg_child
import _clients
import _common
from _common import fmt_int, ratio, table

CHILD = Path(__file__).with_name("_cg_child.py")
_SUMMARY = re.compile(rb"^summary:\s*(\d+)", re.MULTILINE)


def command(out: str, client: str, host: str, port: int, n: int) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--zero-before=getppid",
        "--dump-before=getpgrp",
        sys.executable,
        str(CHILD),
        client,
        host,
        str(port),
        str(n),
    ]


def _summary(path: str) -> int:
    match = _SUMMARY.search(Path(path).read_bytes())
    if match is None:
        raise RuntimeError(f"no summary line in {path}")
    return int(match[1])


def instructions(
    client: str, host: str, port: int, n: int, workdir: str, *, memo: bool = False, warmups: int = 1
) -> tuple[int, int, str]:
    """(Ir of the empty session, Ir of the session with n messages, the command)."""
    out = os.path.join(workdir, f"callgrind.{client.replace(' ', '_')}.out")
    argv = command(out, client, host, port, n)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if memo:
        env[_cg_child.MEMO_ENV] = "1"
    env[_cg_child.WARMUPS_ENV] = str(warmups)
    proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed:\n{proc.stderr.decode(errors='replace')}")
    return _summary(out + ".1"), _summary(out + ".2"), shlex.join(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 20 instead of 200")
    parser.add_argument("-n", type=int, help="messages per session (default 200)")
    parser.add_argument("--keep", help="keep the callgrind output files in this directory")
    parser.add_argument(
        "--what-if-memo-addresses",
        action="store_true",
        help="memoise quoteaddr in smtplib and smtpclient (address parsing free): a what-if",
    )
    parser.add_argument(
        "--warm-ups",
        type=int,
        default=1,
        metavar="K",
        help="warm-up sessions before the counted ones (default 1; 10 gives the steady state)",
    )
    args = parser.parse_args()
    n = args.n or (20 if args.quick else 200)
    _common.header(
        "Instructions per small message (valgrind --tool=callgrind)",
        note="Instruction counts do not depend on the machine's load.",
    )
    workdir = args.keep or tempfile.mkdtemp(prefix="smtpclient-callgrind-")
    os.makedirs(workdir, exist_ok=True)
    with _common.smtp_sink() as sink:
        host, port = sink.address
        for client in _clients.CLIENTS:  # compile the .pyc files outside valgrind
            subprocess.run([sys.executable, str(CHILD), client, host, str(port), "1"], check=True)
        results = {}
        commands = []
        for client in _clients.CLIENTS:
            empty, full, cmd = instructions(
                client,
                host,
                port,
                n,
                workdir,
                memo=args.what_if_memo_addresses,
                warmups=args.warm_ups,
            )
            results[client] = (empty, full, (full - empty) / n)
            commands.append(cmd)
    print(
        f"N = {n} small messages ({len(_common.small_message())} B, one recipient) per "
        f"session; smtp-sink on {host}:{port}.  Ir = instructions executed; `session` = "
        "connect + EHLO + QUIT with no message.\n"
    )
    prefix = f"{_cg_child.MEMO_ENV}=1 " if args.what_if_memo_addresses else ""
    prefix += f"{_cg_child.WARMUPS_ENV}={args.warm_ups} "
    if prefix:
        print("WHAT-IF: `quoteaddr` memoised in smtplib and smtpclient (address parsing free).\n")
    print("Commands:\n")
    for cmd in commands:
        print(f"    {prefix}PYTHONHASHSEED=0 {cmd}")
    print()
    rows = []
    for client, (empty, full, per) in results.items():
        rows.append(
            [
                client,
                fmt_int(empty),
                fmt_int(full),
                fmt_int(per),
                ratio(per, results["smtplib"][2]),
                ratio(per, results["raw floor"][2]),
            ]
        )
    table(
        [
            "client",
            "Ir, session",
            f"Ir, session + {n} messages",
            "Ir per message",
            "per message vs smtplib",
            "vs raw floor",
        ],
        rows,
    )
    _common.footer()
    if not args.keep:
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)


if __name__ == "__main__":
    main()
