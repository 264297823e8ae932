"""Over loopback against postfix's smtp-sink: smtpclient vs smtplib vs aiosmtplib vs raw.

    python bench/wire.py                  # the full run (several minutes)
    python bench/wire.py --quick          # a smoke run
    python bench/wire.py --profile small  # cProfile of smtpclient on one case

smtp-sink (postfix's C sink, started by ``tests._postfix.SmtpSink`` on
127.0.0.1 and a free port, never as a service) accepts and discards
everything and advertises PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES and DSN.
The sink and the client share the machine's cores.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
import tracemalloc
from collections.abc import Callable

import _clients
import _common
from _common import MiB, ratio, table


def _cases(args: argparse.Namespace) -> dict[str, tuple[str, Callable[[str], Callable[[], None]]]]:
    """key -> (description, client -> prepared run)."""
    address = args.address
    small = _common.small_message()
    big = _common.big_message(args.big_mib * MiB)
    rcpts = [f"rcpt{i}@example.com" for i in range(1000)]
    S, R = _common.SENDER, _common.RECIPIENT  # noqa: N806
    return {
        "small": (
            f"{args.small:,} small messages ({len(small)} B), 1 recipient, one session",
            lambda c: _clients.prepare_send(
                c, address, sender=S, recipients=[R], message=small, count=args.small
            ),
        ),
        "rcpt": (
            f"1 message to 1,000 recipients, sent {args.rcpt_times}x in one session",
            lambda c: _clients.prepare_send(
                c, address, sender=S, recipients=rcpts, message=small, count=args.rcpt_times
            ),
        ),
        "connect": (
            f"{args.cycles:,} x connect + EHLO + QUIT",
            lambda c: _clients.prepare_cycle(c, address, args.cycles),
        ),
        "big": (
            f"one {args.big_mib} MiB message, bare LFs and leading dots",
            lambda c: _clients.prepare_send(
                c, address, sender=S, recipients=[R], message=big, count=1
            ),
        ),
    }


def _measure(run: Callable[[], None]) -> tuple[float, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall0, time.process_time() - cpu0


def bench_times(args: argparse.Namespace) -> None:
    cases = _cases(args)
    rows = []
    for key in args.case:
        description, prepare = cases[key]
        repeats = args.big_repeats if key == "big" else args.repeats
        walls: dict[str, list[float]] = {c: [] for c in _clients.CLIENTS}
        cpus: dict[str, list[float]] = {c: [] for c in _clients.CLIENTS}
        prepared = {c: prepare(c) for c in _clients.CLIENTS}
        for c in _clients.CLIENTS:  # warm-up (imports, caches); also checks every client works
            prepared[c]()
        for _ in range(repeats):
            for c in _clients.CLIENTS:
                wall, cpu = _measure(prepared[c])
                walls[c].append(wall)
                cpus[c].append(cpu)
        best = {c: min(walls[c]) for c in walls}
        best_cpu = {c: min(cpus[c]) for c in cpus}
        for c in _clients.CLIENTS:
            rows.append(
                [
                    description,
                    c,
                    f"{best[c]:.3f}",
                    f"{statistics.median(walls[c]):.3f}",
                    ratio(best[c], best["smtplib"]),
                    f"{best_cpu[c]:.3f}",
                    ratio(best_cpu[c], best_cpu["smtplib"]),
                    ratio(best[c], best["raw floor"]),
                ]
            )
        del prepared
    print(
        f"Wall and client CPU (``time.process_time``, the client process only) in seconds, "
        f"best of {args.repeats} ({args.big_repeats} for the big message) with the clients "
        "taking turns; ratios use the best figures.\n"
    )
    table(
        [
            "case",
            "client",
            "wall s (best)",
            "wall s (median)",
            "wall vs smtplib",
            "CPU s",
            "CPU vs smtplib",
            "wall vs floor",
        ],
        rows,
    )


def bench_memory(args: argparse.Namespace) -> None:
    description, prepare = _cases(args)["big"]
    print(
        f"Peak Python memory (tracemalloc) while sending {description}; the message\n"
        "itself is made before tracing starts.  A separate, untimed run.\n"
    )
    rows = []
    for c in _clients.CLIENTS:
        run = prepare(c)
        tracemalloc.start()
        tracemalloc.reset_peak()
        run()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append([c, f"{peak / MiB:,.2f}", f"{peak / (args.big_mib * MiB):.2f}"])
    table(["client", "peak MiB", "peak / message size"], rows)


def profile(args: argparse.Namespace) -> None:
    description, prepare = _cases(args)[args.profile]
    run = prepare(args.profile_client)
    run()  # warm-up
    print(f"cProfile of {args.profile_client}: {description}\n")
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    print("```")
    stats = pstats.Stats(profiler)
    stats.strip_dirs().sort_stats("tottime").print_stats(args.profile_lines)
    print("```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--case", action="append", choices=["small", "rcpt", "connect", "big"])
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run")
    parser.add_argument("--profile", choices=["small", "rcpt", "connect", "big"])
    parser.add_argument("--profile-client", default="smtpclient", choices=_clients.CLIENTS)
    parser.add_argument("--profile-lines", type=int, default=30)
    args = parser.parse_args()
    if args.quick:
        args.small, args.rcpt_times, args.cycles, args.big_mib = 200, 1, 50, 5
        args.repeats, args.big_repeats = 1, 1
    else:
        args.small, args.rcpt_times, args.cycles, args.big_mib = 2000, 5, 500, 50
        args.repeats, args.big_repeats = 5, 3
    args.case = args.case or ["small", "rcpt", "connect", "big"]
    with _common.smtp_sink() as sink:
        args.address = sink.address
        if args.profile:
            _common.header(f"Profile: {args.profile}")
            profile(args)
            return
        _common.header("Wire benchmarks: loopback, postfix smtp-sink")
        print(f"smtp-sink: {_common.sink_binary()} on {sink.address[0]}:{sink.address[1]}\n")
        bench_times(args)
        if "big" in args.case and not args.no_memory:
            bench_memory(args)
        _common.footer()


if __name__ == "__main__":
    main()
