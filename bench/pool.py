"""The connection pool against postfix's smtp-sink: 10,000 small messages over 10 connections.

    python bench/pool.py                        # the full run (3 repeats, about 3 minutes)
    python bench/pool.py --quick                # 1,000 messages, 1 repeat (about 10 s)
    python bench/pool.py --only "pool (asyncio)" --only "raw floor (asyncio)"
    python bench/pool.py --profile "pool (asyncio)"   # cProfile of one sample
    python bench/pool.py --callgrind            # instructions per message (about 10 min)

Every client sends the same small message to one recipient, ``--messages``
times in all (10,000; 1,000 with ``--quick``), over ``--connections``
connections (10) to one smtp-sink, in one process:

- ``pool (asyncio)``, ``pool (trio)``: ``smtpclient.pool.AsyncPool`` with
  ``Session(tls="none")`` and ``Policy(max_connections=10,
  max_messages=<all of them>)`` (no rate limit), fed by ``send_many``;
- ``pool (threads)``: ``smtpclient.pool.Pool``, the blocking runner (a
  thread per connection and one for the scheduler), fed by ``send_many``;
- ``drivers, no pool (asyncio|trio|threads)``: ours without the pool, for the
  pool's own overhead: 10 tasks (threads) each connecting with
  ``transports.<world>.connect`` (``transports.sync.connect_driver``) and
  running ``smtp_core.procedures.send_mail`` 1,000 times;
- ``smtplib, 10 threads``: each thread its own ``smtplib.SMTP``, 1,000
  ``sendmail`` calls (the natural way); ``smtplib, shared queue``: 10 threads,
  each with its own connection, taking messages from one ``queue.SimpleQueue``
  until it is empty;
- ``aiosmtplib, 10 tasks``: each its own ``aiosmtplib.SMTP``, 1,000 ``sendmail``;
- ``raw floor (asyncio|trio|threads)``: 10 raw connections (``bench/aio.py``'s
  asyncio and trio floors, ``bench/_clients.py``'s blocking one on 10
  threads): MAIL, RCPT and DATA in one write, then the content encoded before
  the timing, reply lines counted, nothing parsed.

Messages (the pool's ``Message`` objects too) are made before the timing.
Each sample times, inside its event loop or from the main thread, from
before the first connect to after the last QUIT.  Every sample checks that
every message was accepted.

``--callgrind`` counts instructions instead of time, which the machine's load
does not move: each client runs in a child under ``valgrind --tool=callgrind``
(``--cg-child``), two warm-up samples of 50 messages, then a sample of N
(300) and one of 2N messages over the same 10 connections, between the
markers ``os.getppid()`` (count from here) and ``os.getpgrp()`` (dump).
Per message = (Ir(2N) - Ir(N)) / N: the fixed costs (event loop, connects,
EHLO, QUIT, threads started) cancel.  The ``Message`` objects are made before
the counted part, as in the timed samples.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import pstats
import queue
import shlex
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _clients
import _common
import aio
from _common import fmt_int, ratio, table

Address = tuple[str, int]
TIMEOUT = 120.0

#: (client, world); the world names the floor a row is compared with.
CLIENTS: tuple[tuple[str, str], ...] = (
    ("pool (asyncio)", "asyncio"),
    ("pool (trio)", "trio"),
    ("pool (threads)", "threads"),
    ("drivers, no pool (asyncio)", "asyncio"),
    ("drivers, no pool (trio)", "trio"),
    ("drivers, no pool (threads)", "threads"),
    ("smtplib, 10 threads", "threads"),
    ("smtplib, shared queue", "threads"),
    ("aiosmtplib, 10 tasks", "asyncio"),
    ("raw floor (asyncio)", "asyncio"),
    ("raw floor (trio)", "trio"),
    ("raw floor (threads)", "threads"),
)
WORLD = dict(CLIENTS)
POOLS = ("pool (asyncio)", "pool (trio)", "pool (threads)")
PEERS = ("smtplib, 10 threads", "smtplib, shared queue", "aiosmtplib, 10 tasks")
FLOORS = {w: f"raw floor ({w})" for w in ("asyncio", "trio", "threads")}
NO_POOL = {w: f"drivers, no pool ({w})" for w in ("asyncio", "trio", "threads")}
#: The issue's target: ahead of both peers, within this factor of the floor.
FLOOR_ALLOWANCE = 1.5


@dataclass(frozen=True)
class Work:
    """What every client sends: ``total`` messages over ``conns`` connections."""

    address: Address
    total: int
    conns: int
    job: aio.Job

    @property
    def per_conn(self) -> int:
        return self.total // self.conns


class NotDelivered(RuntimeError):
    """A sample did not get every message accepted."""


# -- threads -----------------------------------------------------------------------------


def _in_threads(function: Callable[[], int], count: int) -> int:
    """Run ``function`` on ``count`` threads at once; the sum of what they return."""
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(function())
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(results)


# -- the pool ------------------------------------------------------------------------------


def _pool_setup(work: Work) -> tuple[Any, Any, list[Any]]:
    from smtpclient.pool import Message, Policy, Session  # noqa: PLC0415

    session = Session(
        host=work.address[0], port=work.address[1], tls="none", local_hostname=_common.LOCAL_NAME
    )
    policy = Policy(max_connections=work.conns, max_messages=work.total)
    job = work.job
    messages = [Message(job.sender, (job.recipient,), job.message) for _ in range(work.total)]
    return session, policy, messages


def _async_pool(work: Work) -> Callable[[], Coroutine[Any, Any, int]]:
    from smtpclient.pool import AsyncPool  # noqa: PLC0415

    session, policy, messages = _pool_setup(work)

    async def run() -> int:
        accepted = 0
        async with AsyncPool(session, policy) as pool:
            async for result in pool.send_many(messages):
                if result.status != "accepted":
                    raise NotDelivered(f"pool: {result!r}")
                accepted += 1
        return accepted

    return run


def _threads_pool(work: Work) -> Callable[[], int]:
    from smtpclient.pool import Pool  # noqa: PLC0415

    session, policy, messages = _pool_setup(work)

    def run() -> int:
        accepted = 0
        with Pool(session, policy) as pool:
            for result in pool.send_many(messages):
                if result.status != "accepted":
                    raise NotDelivered(f"pool: {result!r}")
                accepted += 1
        return accepted

    return run


# -- ours without the pool -------------------------------------------------------------------


def _gathered(
    session: Callable[[str, Address, int, aio.Job], Coroutine[Any, Any, int]],
    world: str,
    work: Work,
) -> Callable[[], Coroutine[Any, Any, int]]:
    """``conns`` concurrent sessions of ``per_conn`` messages, as one coroutine."""

    async def run() -> int:
        coros: list[Awaitable[int]] = [
            session(world, work.address, work.per_conn, work.job) for _ in range(work.conns)
        ]
        delivered: list[int] = await aio._gather(world, coros)
        return sum(delivered)

    return run


def _sync_drivers(work: Work) -> Callable[[], int]:
    from smtp_core import Connection, procedures  # noqa: PLC0415
    from transports.sync import connect_driver  # noqa: PLC0415

    job = work.job

    def one() -> int:
        driver = connect_driver(*work.address)
        try:
            conn = Connection(tls_policy="none")
            reply = driver.run(procedures.handshake(conn, _common.LOCAL_NAME))
            if reply.code != 250 or not conn.extensions.pipelining:
                raise NotDelivered(f"ours: EHLO answered {reply!r}")
            sender, recipients, message = job.sender, [job.recipient], job.message
            for _ in range(work.per_conn):
                result = driver.run(procedures.send_mail(conn, sender, recipients, message))
                if not result.delivered:
                    raise NotDelivered(f"ours: {result!r}")
            driver.run(procedures.quit(conn))
        finally:
            driver.close()
        return work.per_conn

    return lambda: _in_threads(one, work.conns)


# -- the peers ----------------------------------------------------------------------------------


def _smtplib_connect(work: Work) -> smtplib.SMTP:
    smtp = smtplib.SMTP(*work.address, local_hostname=_common.LOCAL_NAME, timeout=TIMEOUT)
    code, _ = smtp.ehlo()
    if code != 250:
        raise NotDelivered(f"smtplib: EHLO answered {code}")
    return smtp


def _smtplib_threads(work: Work) -> Callable[[], int]:
    job = work.job

    def one() -> int:
        smtp = _smtplib_connect(work)
        sender, recipients, message = job.sender, [job.recipient], job.message
        for _ in range(work.per_conn):
            refused = smtp.sendmail(sender, recipients, message)  # raises unless accepted
            if refused:
                raise NotDelivered(f"smtplib: refused {refused!r}")
        smtp.quit()
        return work.per_conn

    return lambda: _in_threads(one, work.conns)


def _smtplib_queue(work: Work) -> Callable[[], int]:
    job = work.job
    todo: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    for _ in range(work.total):  # filled before the timing
        todo.put(job.message)

    def one() -> int:
        smtp = _smtplib_connect(work)
        sender, recipients = job.sender, [job.recipient]
        sent = 0
        while True:
            try:
                message = todo.get_nowait()
            except queue.Empty:
                break
            refused = smtp.sendmail(sender, recipients, message)
            if refused:
                raise NotDelivered(f"smtplib: refused {refused!r}")
            sent += 1
        smtp.quit()
        return sent

    return lambda: _in_threads(one, work.conns)


def _raw_threads(work: Work) -> Callable[[], int]:
    job = work.job
    run = _clients._raw_prepare_send(  # raises on a 4yz/5yz reply line
        work.address, job.sender, [job.recipient], job.message, work.per_conn
    )

    def one() -> int:
        run()
        return work.per_conn

    return lambda: _in_threads(one, work.conns)


# -- one sample --------------------------------------------------------------------------------


def prepare(client: str, work: Work) -> Callable[[], int] | Callable[[], Coroutine[Any, Any, int]]:
    """What ``client`` runs for one sample (made before the timing)."""
    preparers: dict[str, Callable[[Work], Any]] = {
        "pool (asyncio)": _async_pool,
        "pool (trio)": _async_pool,
        "pool (threads)": _threads_pool,
        "drivers, no pool (asyncio)": lambda w: _gathered(aio.ours_session, "asyncio", w),
        "drivers, no pool (trio)": lambda w: _gathered(aio.ours_session, "trio", w),
        "drivers, no pool (threads)": _sync_drivers,
        "smtplib, 10 threads": _smtplib_threads,
        "smtplib, shared queue": _smtplib_queue,
        "aiosmtplib, 10 tasks": lambda w: _gathered(aio.aiosmtplib_session, "asyncio", w),
        "raw floor (asyncio)": lambda w: _gathered(aio.raw_asyncio_session, "asyncio", w),
        "raw floor (trio)": lambda w: _gathered(aio.raw_trio_session, "trio", w),
        "raw floor (threads)": _raw_threads,
    }
    return preparers[client](work)  # type: ignore[no-any-return]


def sample(client: str, work: Work) -> tuple[float, float]:
    """(wall s, client CPU s) of one sample; CPU is the whole process's, every thread."""
    run = prepare(client, work)
    world = WORLD[client]
    gc.collect()
    if world == "threads":
        wall0, cpu0 = time.perf_counter(), time.process_time()
        accepted = run()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    else:

        async def timed() -> tuple[float, float, int]:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            accepted = await run()  # type: ignore[misc]
            return time.perf_counter() - wall0, time.process_time() - cpu0, accepted

        wall, cpu, accepted = aio.run_world(world, timed)
    if accepted != work.total:
        raise NotDelivered(f"{client}: {accepted} of {work.total} messages accepted")
    return wall, cpu


@dataclass
class Timing:
    walls: list[float]
    cpus: list[float]

    @property
    def wall(self) -> float:
        return min(self.walls)

    @property
    def cpu(self) -> float:
        return min(self.cpus)


def bench(clients: list[str], work: Work, warm_up: Work, repeats: int) -> dict[str, Timing]:
    for client in clients:  # imports, caches; also checks that each client delivers
        sample(client, warm_up)
    timings = {c: Timing([], []) for c in clients}
    for _ in range(repeats):
        for client in clients:  # the clients take turns
            wall, cpu = sample(client, work)
            timings[client].walls.append(wall)
            timings[client].cpus.append(cpu)
    return timings


# -- the report ----------------------------------------------------------------------------------


def pool_sources() -> str:
    """The digest of the pool's sources (``_common.tree_state`` reads no subpackage)."""
    root = _common.ROOT
    paths = [root / "smtp_core" / "pool.py", *sorted((root / "smtpclient" / "pool").glob("*.py"))]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    try:
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", *map(str, paths)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        changed = [line[3:] for line in dirty if line.strip()]
    except (OSError, subprocess.CalledProcessError):
        changed = []
    state = f"uncommitted: {', '.join(changed)}" if changed else "clean"
    return f"sha256 {digest.hexdigest()[:12]} (smtp_core/pool.py, smtpclient/pool/*.py; {state})"


def _floor_of(client: str, timings: dict[str, Timing]) -> Timing | None:
    return timings.get(FLOORS[WORLD[client]])


def print_results(timings: dict[str, Timing], work: Work, repeats: int) -> None:
    print(
        f"Best of {repeats} samples (after one warm-up of each client), the clients taking "
        "turns; the median beside it.  Wall = first connect to last QUIT; CPU = "
        "`time.process_time` of the client process, all its threads (the sink's not "
        "counted).  Ratios divide this row's best by the other's best: < 1.00x, this row "
        "takes less.  `floor` = the raw floor of the row's own world; `fastest floor` = "
        "the quickest of the three.\n"
    )
    floors = [timings[f] for f in FLOORS.values() if f in timings]
    fastest = min(floors, key=lambda t: t.wall) if floors else None
    fastest_cpu = min(floors, key=lambda t: t.cpu) if floors else None
    peers = [p for p in PEERS if p in timings]
    rows = []
    for client, t in timings.items():
        floor = _floor_of(client, timings)
        rows.append(
            [
                client,
                f"{t.wall:.3f}",
                f"{statistics.median(t.walls):.3f}",
                fmt_int(work.total / t.wall),
                f"{t.cpu:.3f}",
                *(ratio(t.wall, timings[p].wall) for p in peers),
                ratio(t.wall, floor.wall) if floor else "n/a",
                ratio(t.wall, fastest.wall) if fastest else "n/a",
            ]
        )
    short = {
        "smtplib, 10 threads": "smtplib 10 thr",
        "smtplib, shared queue": "smtplib queue",
        "aiosmtplib, 10 tasks": "aiosmtplib",
    }
    table(
        [
            "client",
            "wall s (best)",
            "wall s (median)",
            "messages/s",
            "CPU s (best)",
            *(f"wall / {short[p]}" for p in peers),
            "wall / floor",
            "wall / fastest floor",
        ],
        rows,
    )
    print("Client CPU, the same ratios:\n")
    rows = []
    for client, t in timings.items():
        floor = _floor_of(client, timings)
        rows.append(
            [
                client,
                f"{t.cpu:.3f}",
                f"{statistics.median(t.cpus):.3f}",
                f"{t.cpu / work.total * 1e6:.0f}",
                *(ratio(t.cpu, timings[p].cpu) for p in peers),
                ratio(t.cpu, floor.cpu) if floor else "n/a",
                ratio(t.cpu, fastest_cpu.cpu) if fastest_cpu else "n/a",
            ]
        )
    table(
        [
            "client",
            "CPU s (best)",
            "CPU s (median)",
            "CPU µs per message",
            *(f"CPU / {short[p]}" for p in peers),
            "CPU / floor",
            "CPU / fastest floor",
        ],
        rows,
    )
    rows = []
    for world, no_pool in NO_POOL.items():
        pool = f"pool ({world})"
        if pool in timings and no_pool in timings:
            p, n = timings[pool], timings[no_pool]
            rows.append(
                [
                    world,
                    ratio(p.wall, n.wall),
                    f"{(p.wall - n.wall) / work.total * 1e6:.1f}",
                    ratio(p.cpu, n.cpu),
                    f"{(p.cpu - n.cpu) / work.total * 1e6:.1f}",
                ]
            )
    if rows:
        print("The pool's own overhead: the pool against our drivers without it, same world.\n")
        table(
            [
                "world",
                "pool / no pool, wall",
                "µs wall per message",
                "pool / no pool, CPU",
                "µs CPU per message",
            ],
            rows,
        )


def print_targets(timings: dict[str, Timing]) -> None:
    rows = []
    for pool in POOLS:
        if pool not in timings:
            continue
        t = timings[pool]
        for peer in ("smtplib, 10 threads", "aiosmtplib, 10 tasks"):
            if peer in timings:
                r = t.wall / timings[peer].wall
                rows.append(
                    [
                        f"{pool} ahead of {peer} (wall)",
                        f"{r:.2f}x (CPU {ratio(t.cpu, timings[peer].cpu)})",
                        "yes" if r < 1.0 else f"**no** ({r:.2f}x)",
                    ]
                )
        floor_name = FLOORS[WORLD[pool]]
        if floor_name in timings:
            floor = timings[floor_name]
            r = t.wall / floor.wall
            rows.append(
                [
                    f"{pool} within {FLOOR_ALLOWANCE}x of the {floor_name} (wall)",
                    f"{r:.2f}x (CPU {ratio(t.cpu, floor.cpu)})",
                    "yes"
                    if r <= FLOOR_ALLOWANCE
                    else f"**no** ({r / FLOOR_ALLOWANCE:.2f}x the allowance)",
                ]
            )
    if rows:
        print("Against the issue's target (best figures; this / peer):\n")
        table(["target", "measured", "met"], rows)


# -- profile --------------------------------------------------------------------------------------


def profile(client: str, work: Work, lines: int) -> None:
    sample(client, work)  # warm-up
    if WORLD[client] == "threads":
        print(
            "cProfile sees only the thread that enables it; for the threaded clients use "
            "py-spy, e.g. `py-spy record -o out.svg -- python bench/pool.py --only "
            f"{client!r} --repeats 3`.\n"
        )
    print(f"cProfile of one sample of {client}; top {lines} by own time\n")
    profiler = cProfile.Profile()
    profiler.enable()
    wall, _ = sample(client, work)
    profiler.disable()
    print(f"(profiled sample: {wall:.3f} s wall)\n")
    print("```")
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(lines)
    print("```")


# -- callgrind -------------------------------------------------------------------------------------

CG_WARMUPS, CG_N = 2, 300


def cg_child(client: str, host: str, port: int, n: int, conns: int) -> None:
    """Run under callgrind: warm-ups, then N and 2N messages between markers."""
    job = aio.make_job()
    address = (host, port)
    for _ in range(CG_WARMUPS):
        sample(client, Work(address, 5 * conns, conns, job))
    first, second = ((prepare(client, Work(address, k * n, conns, job)), k * n) for k in (1, 2))
    gc.collect()
    os.getppid()  # marker: callgrind starts counting
    for run, total in (first, second):
        world = WORLD[client]
        accepted = run() if world == "threads" else aio.run_world(world, run)  # type: ignore[arg-type]
        os.getpgrp()  # marker: one dump per sample
        if accepted != total:
            raise NotDelivered(f"{client}: {accepted} of {total} accepted")


def callgrind(clients: list[str], address: Address, n: int, conns: int) -> dict[str, float]:
    """Instructions per message of each client, and print the commands that counted them."""
    per_message: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="smtpclient-cg-pool-") as workdir:
        for client in clients:
            out = os.path.join(workdir, "cg.out")
            child = [sys.executable, __file__, "--cg-child", client, address[0], str(address[1])]
            subprocess.run([*child, str(conns), str(conns)], check=True)  # .pyc, not counted
            child += [str(n), str(conns)]
            argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            argv += ["--zero-before=getppid", "--dump-before=getpgrp", *child]
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            proc = subprocess.run(argv, env=env, capture_output=True, check=False)
            if proc.returncode:
                raise RuntimeError(f"{shlex.join(argv)}:\n{proc.stderr.decode(errors='replace')}")
            irs = [_callgrind_summary(f"{out}.{k}") for k in (1, 2)]
            per_message[client] = (irs[1] - irs[0]) / n
            print(f"    PYTHONHASHSEED=0 {shlex.join(argv)}")
    print()
    return per_message


def _callgrind_summary(path: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no summary line in {path}")


def print_callgrind(per_message: dict[str, float], n: int, conns: int) -> None:
    print(
        f"Instructions per message, (Ir({2 * n}) - Ir({n})) / {n}, over {conns} connections "
        "(all the client's threads; the kernel and the sink not counted).\n"
    )
    rows = []
    for client, ir in per_message.items():
        floor = per_message.get(FLOORS[WORLD[client]])
        no_pool = per_message.get(NO_POOL[WORLD[client]])
        rows.append(
            [
                client,
                fmt_int(ir),
                *(ratio(ir, per_message[p]) if p in per_message else "n/a" for p in PEERS),
                ratio(ir, no_pool) if no_pool and client in POOLS else "",
                ratio(ir, floor) if floor else "n/a",
            ]
        )
    table(
        ["client", "Ir per message", *(f"/ {p}" for p in PEERS), "/ no pool", "/ floor"],
        rows,
    )


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = [c for c, _ in CLIENTS]
    parser.add_argument("--quick", action="store_true", help="1,000 messages, 1 repeat")
    parser.add_argument("--messages", type=int, help="messages in all (default 10,000)")
    parser.add_argument("--connections", type=int, default=10, help="connections (default 10)")
    parser.add_argument("--repeats", type=int, help="timed samples per client (default 3)")
    parser.add_argument("--only", action="append", choices=names, help="run only this client")
    parser.add_argument("--profile", choices=names, help="cProfile one sample of this client")
    parser.add_argument("--profile-lines", type=int, default=25)
    parser.add_argument(
        "--callgrind", action="store_true", help="count instructions per message (valgrind)"
    )
    parser.add_argument("--cg-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cg_child:
        client, host, port, n, conns = args.cg_child
        cg_child(client, host, int(port), int(n), int(conns))
        return
    total = args.messages or (1_000 if args.quick else 10_000)
    repeats = args.repeats or (1 if args.quick else 3)
    if total % args.connections:
        parser.error("--messages must be a multiple of --connections")
    clients = args.only or names
    job = aio.make_job()
    with _common.smtp_sink() as sink:
        work = Work(sink.address, total, args.connections, job)
        warm_up = Work(sink.address, min(total, 1_000), args.connections, job)
        if args.callgrind:
            n = args.messages or (50 if args.quick else CG_N)
            _common.header("Pool: instructions per message (valgrind --tool=callgrind)")
            print(f"- pool sources: {pool_sources()}\n\nCommands:\n")
            per_message = callgrind(clients, sink.address, n, args.connections)
            print_callgrind(per_message, n, args.connections)
            _common.footer()
            return
        if args.profile:
            _common.header(f"Profile: {args.profile}, {total:,} messages")
            print(f"- pool sources: {pool_sources()}\n")
            profile(args.profile, work, args.profile_lines)
            return
        _common.header(
            f"Pool: {total:,} small messages over {args.connections} connections, "
            "loopback, postfix smtp-sink"
        )
        print(f"- pool sources: {pool_sources()}\n")
        print(
            f"smtp-sink: {_common.sink_binary()} on {sink.address[0]}:{sink.address[1]}; "
            f"small message: {len(job.message)} B, one recipient; {work.per_conn:,} messages "
            "per connection where the client splits them itself.  Default asyncio event loop "
            "(no uvloop).\n"
        )
        timings = bench(clients, work, warm_up, repeats)
    print_results(timings, work, repeats)
    print_targets(timings)
    _common.footer()


if __name__ == "__main__":
    main()
