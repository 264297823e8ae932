"""Asynchronous drivers against postfix's smtp-sink: ours vs aiosmtplib, smtpproto and a raw floor.

    python bench/aio.py                     # the full run (about 4 minutes)
    python bench/aio.py --quick             # a smoke run (small counts, no valgrind)
    python bench/aio.py --only asyncio      # one section: asyncio, trio, callgrind, memory
    python bench/aio.py --only callgrind --cg-trio --cg-engine   # + trio, + the engine alone
    python bench/aio.py --profile many --profile-client ours   # cProfile of one sample

"Ours" is ``transports.asyncio.connect`` (or ``transports.trio.connect``)
running ``smtp_core.procedures`` (``handshake``, ``send_mail``, ``quit``) on a
``Connection(tls_policy="none")``; ``send_mail`` pipelines MAIL, RCPT and DATA
because the sink offers PIPELINING.  The peers: aiosmtplib (asyncio only) and
smtpproto (on anyio: asyncio or trio); neither pipelines.  The floor is a raw
client of the same world writing bytes encoded before the timing starts
(MAIL/RCPT/DATA in one write, then the dot-stuffed content) and counting reply
lines, as ``_clients.py``'s raw floor does with blocking sockets.

Sections:

1. asyncio, 50 concurrent sessions x 20 small messages; 2. asyncio, 2,000
   small messages in one session (wall and client CPU, messages/s);
3. the same two cases on trio (ours, smtpproto, raw floor);
4. CPU instructions per message under callgrind, in a steady state: one
   session of N messages and one of 2N in the same event loop, after warm-ups;
   per message = (Ir(2N) - Ir(N)) / N (``_cg_aio_child.py``);
5. memory per idle connection (greeting and EHLO done): tracemalloc, and the
   RSS delta from ``/proc/self/statm``, for N connections, divided by N.  One
   fresh process per client.

Every session counts what the server accepted (our ``TransactionResult.delivered``,
aiosmtplib's refused-recipients dict, smtpproto's 250 reply, the raw floor's
reply lines) and a sample that delivered fewer messages than it sent stops the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import email
import email.policy
import functools
import gc
import importlib
import json
import os
import pstats
import re
import shlex
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import _common
from _common import fmt_int, ratio, table

# The clients' libraries are imported where used, so that a callgrind child
# imports only its own client's (smtp_core alone takes 1e9 instructions to
# import: valgrind's wall time, not the counts).

Address = tuple[str, int]
TIMEOUT = 120.0
HERE = Path(__file__).resolve().parent
CG_CHILD = HERE / "_cg_aio_child.py"
_SUMMARY = re.compile(rb"^summary:\s*(\d+)", re.MULTILINE)

#: Ours as a caller who passes one ``ssl_context`` for all connections: a
#: what-if showing the cost of the ``SSLContext`` that ``connect`` builds by default.
SHARED = "ours, shared ctx"
#: The clients of each world, in the order of the tables.
CLIENTS: dict[str, tuple[str, ...]] = {
    "asyncio": ("ours", SHARED, "aiosmtplib", "smtpproto", "raw floor"),
    "trio": ("ours", SHARED, "smtpproto", "raw floor"),
}
PEERS = ("aiosmtplib", "smtpproto")
#: Not a client: ours' procedures on scripted replies, no I/O (callgrind ``--cg-engine``).
ENGINE_ONLY = "engine only"


# -- what every client sends -----------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One small message to one recipient, in each client's own form (made before timing)."""

    sender: str
    recipient: str
    message: bytes  # ours, aiosmtplib
    email_message: EmailMessage  # smtpproto takes only an EmailMessage
    ehlo: bytes  # raw floor
    group: bytes  # raw floor: MAIL, RCPT and DATA in one write
    content: bytes  # raw floor: dot-stuffed content and the final "."


def make_job() -> Job:
    message = _common.small_message()
    # The small message is CRLF throughout and ends in CRLF, so this is what
    # DataEncoder makes of it (main() checks that once).
    assert message.endswith(b"\r\n")
    return Job(
        sender=_common.SENDER,
        recipient=_common.RECIPIENT,
        message=message,
        email_message=email.message_from_bytes(message, policy=email.policy.default),
        ehlo=f"EHLO {_common.LOCAL_NAME}\r\n".encode(),
        group=(
            f"MAIL FROM:<{_common.SENDER}>\r\nRCPT TO:<{_common.RECIPIENT}>\r\nDATA\r\n".encode()
        ),
        content=_common.reference_encode(message) + b".\r\n",
    )


@functools.cache
def shared_context() -> ssl.SSLContext:
    """The one context "ours, shared ctx" passes to every connect (made before timing)."""
    import transports  # noqa: PLC0415

    return transports.default_ssl_context()


class NotDelivered(RuntimeError):
    """A client's session did not report every message accepted."""


# -- ours (any world: the world's connect is the only difference) -----------------------


def _connector(world: str) -> Callable[..., Awaitable[Any]]:
    return importlib.import_module(f"transports.{world}").connect  # type: ignore[no-any-return]


async def _ours_open(
    world: str, address: Address, context: ssl.SSLContext | None = None
) -> tuple[Any, Any]:
    # Without ssl_context, connect() builds transports.default_ssl_context()
    # (certificates loaded) for a possible STARTTLS: the default path measured.
    if context is None:
        driver = await _connector(world)(address[0], address[1])
    else:
        driver = await _connector(world)(address[0], address[1], ssl_context=context)
    from smtp_core import Connection, procedures  # noqa: PLC0415

    conn = Connection(tls_policy="none")
    try:
        reply = await driver.run(procedures.handshake(conn, _common.LOCAL_NAME))
    except BaseException:
        await driver.aclose()
        raise
    if reply.code != 250 or not conn.extensions.pipelining:
        raise NotDelivered(f"ours: EHLO answered {reply!r}, PIPELINING not offered?")
    return driver, conn


async def _ours_close(driver: Any, conn: Any) -> None:
    from smtp_core import procedures  # noqa: PLC0415

    try:
        reply = await driver.run(procedures.quit(conn))
        if reply is None or reply.code != 221:
            raise NotDelivered(f"ours: QUIT answered {reply!r}")
    finally:
        await driver.aclose()


async def ours_session(
    world: str, address: Address, count: int, job: Job, *, shared: bool = False
) -> int:
    from smtp_core import procedures  # noqa: PLC0415

    driver, conn = await _ours_open(world, address, shared_context() if shared else None)
    delivered = 0
    try:
        sender, recipients, message = job.sender, [job.recipient], job.message
        for _ in range(count):
            result = await driver.run(procedures.send_mail(conn, sender, recipients, message))
            if not result.delivered:
                raise NotDelivered(f"ours: {result!r}")
            delivered += 1
    except BaseException:
        await driver.aclose()
        raise
    await _ours_close(driver, conn)
    return delivered


async def ours_shared_context_session(world: str, address: Address, count: int, job: Job) -> int:
    """Ours with ``ssl_context=`` one context made before timing (a what-if)."""
    return await ours_session(world, address, count, job, shared=True)


# -- aiosmtplib (asyncio only) -----------------------------------------------------------


async def _aiosmtplib_open(address: Address) -> Any:
    import aiosmtplib  # noqa: PLC0415

    smtp = aiosmtplib.SMTP(
        hostname=address[0],
        port=address[1],
        local_hostname=_common.LOCAL_NAME,
        timeout=TIMEOUT,
        start_tls=False,
    )
    await smtp.connect()
    response = await smtp.ehlo()
    if response.code != 250:
        raise NotDelivered(f"aiosmtplib: EHLO answered {response!r}")
    return smtp


async def aiosmtplib_session(world: str, address: Address, count: int, job: Job) -> int:
    smtp = await _aiosmtplib_open(address)
    delivered = 0
    sender, recipients, message = job.sender, [job.recipient], job.message
    for _ in range(count):
        # Raises SMTPResponseException unless the end of data drew a 250.
        refused, _ = await smtp.sendmail(sender, recipients, message)
        if refused:
            raise NotDelivered(f"aiosmtplib: refused {refused!r}")
        delivered += 1
    await smtp.quit()
    return delivered


# -- smtpproto (on anyio: asyncio or trio) -----------------------------------------------


def _smtpproto_client(address: Address) -> Any:
    from smtpproto.client import AsyncSMTPClient  # noqa: PLC0415

    return AsyncSMTPClient(
        address[0],
        address[1],
        domain=_common.LOCAL_NAME,
        timeout=TIMEOUT,
        max_concurrent_connections=100_000,  # no throttling by the client itself
    )


async def smtpproto_session(world: str, address: Address, count: int, job: Job) -> int:
    delivered = 0
    async with _smtpproto_client(address).connect() as session:
        message, sender, recipients = job.email_message, job.sender, [job.recipient]
        for _ in range(count):
            # Raises SMTPException for a negative reply; the end of data must give 250.
            response = await session.send_message(message, sender=sender, recipients=recipients)
            if response.code != 250:
                raise NotDelivered(f"smtpproto: {response!r}")
            delivered += 1
    return delivered


# -- the raw floors ------------------------------------------------------------------------

_NEGATIVE_INSIDE = re.compile(rb"\n[45]")


def _check(data: bytes, line_start: bool, who: str) -> bool:
    """Fail on a 4yz/5yz reply line; return whether the next chunk starts a line."""
    if not data or (line_start and data[:1] in b"45") or _NEGATIVE_INSIDE.search(data):
        raise NotDelivered(f"{who}: unexpected reply {data[:200]!r}")
    return data.endswith(b"\n")


def _reply_complete(buffer: bytes) -> bool:
    """Whether ``buffer`` ends with the last line of a reply (``ddd SP``)."""
    if not buffer.endswith(b"\r\n"):
        return False
    last = buffer.rfind(b"\n", 0, len(buffer) - 2) + 1
    return buffer[last + 3 : last + 4] == b" "


class _RawProtocol(asyncio.Protocol):
    """Counts reply lines (or waits for a whole reply) and wakes the session."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.lines = 0  # lines still due; -1: a whole (multiline) reply is due
        self.buffer = b""
        self.line_start = True
        self.error: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.line_start = _check(data, self.line_start, "raw floor (asyncio)")
        except NotDelivered as exc:
            self.error = exc
            self._wake()
            return
        if self.lines < 0:
            self.buffer += data
            if _reply_complete(self.buffer):
                self.buffer = b""
                self.lines = 0
                self._wake()
        else:
            self.lines -= data.count(b"\n")
            if self.lines <= 0:
                self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = self.error or exc or ConnectionResetError("raw floor: connection closed")
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def expect(self, lines: int) -> None:
        """Wait for ``lines`` more reply lines (-1: one whole reply)."""
        if self.error is None:
            self.lines = lines
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
            self.waiter = None
        if self.error is not None:
            raise self.error


async def _raw_asyncio_open(address: Address, job: Job) -> _RawProtocol:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_RawProtocol, address[0], address[1])
    assert protocol.transport is not None
    await protocol.expect(-1)  # greeting
    protocol.transport.write(job.ehlo)
    await protocol.expect(-1)
    return protocol


async def _raw_asyncio_close(protocol: _RawProtocol) -> None:
    assert protocol.transport is not None
    protocol.transport.write(b"QUIT\r\n")
    await protocol.expect(1)
    protocol.transport.close()


async def raw_asyncio_session(world: str, address: Address, count: int, job: Job) -> int:
    protocol = await _raw_asyncio_open(address, job)
    transport = protocol.transport
    assert transport is not None
    group, content = job.group, job.content
    delivered = 0
    try:
        for _ in range(count):
            transport.write(group)  # PIPELINING: MAIL, RCPT and DATA in one write
            await protocol.expect(3)
            transport.write(content)
            await protocol.expect(1)
            delivered += 1
        await _raw_asyncio_close(protocol)
    finally:
        transport.close()
    return delivered


class _RawTrio:
    """The raw floor on a trio socket stream."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.line_start = True

    async def reply(self) -> None:
        buffer = b""
        while not _reply_complete(buffer):
            data = await self.stream.receive_some(65536)
            self.line_start = _check(data, self.line_start, "raw floor (trio)")
            buffer += data

    async def lines(self, lines: int) -> None:
        while lines > 0:
            data = await self.stream.receive_some(65536)
            self.line_start = _check(data, self.line_start, "raw floor (trio)")
            lines -= data.count(b"\n")


async def _raw_trio_open(address: Address, job: Job) -> _RawTrio:
    import trio  # noqa: PLC0415

    raw = _RawTrio(await trio.open_tcp_stream(address[0], address[1]))
    await raw.reply()
    await raw.stream.send_all(job.ehlo)
    await raw.reply()
    return raw


async def _raw_trio_close(raw: _RawTrio) -> None:
    await raw.stream.send_all(b"QUIT\r\n")
    await raw.lines(1)
    await raw.stream.aclose()


async def raw_trio_session(world: str, address: Address, count: int, job: Job) -> int:
    raw = await _raw_trio_open(address, job)
    stream = raw.stream
    group, content = job.group, job.content
    delivered = 0
    try:
        for _ in range(count):
            await stream.send_all(group)
            await raw.lines(3)
            await stream.send_all(content)
            await raw.lines(1)
            delivered += 1
        await _raw_trio_close(raw)
    finally:
        await stream.aclose()
    return delivered


# -- the engine alone (callgrind --cg-engine): how much of ours is smtp_core ----------------

#: What smtp-sink says, byte for byte (its EHLO reply as the sink sends it).
_SCRIPT_GREETING = b"220 sink.test ESMTP\r\n"
_SCRIPT_EHLO = (
    b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
    b"250-DSN\r\n250 \r\n"
)
_SCRIPT_GROUP = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
_SCRIPT_FINAL = b"250 2.0.0 Ok\r\n"
_SCRIPT_QUIT = b"221 Bye\r\n"


def _drive(procedure: Any, replies: list[bytes]) -> Any:
    """Run a procedure, answering each Read with the next of ``replies`` (no I/O)."""
    from smtp_core import Read  # noqa: PLC0415

    answers = iter(replies)
    try:
        request = next(procedure)
        while True:
            request = procedure.send(next(answers) if isinstance(request, Read) else None)
    except StopIteration as stop:
        return stop.value


async def engine_only_session(world: str, address: Address, count: int, job: Job) -> int:
    """Ours without a socket, a driver or an event loop: the procedures on scripted replies."""
    from smtp_core import Connection, procedures  # noqa: PLC0415

    conn = Connection(tls_policy="none")
    _drive(procedures.handshake(conn, _common.LOCAL_NAME), [_SCRIPT_GREETING, _SCRIPT_EHLO])
    if not conn.extensions.pipelining:
        raise NotDelivered("engine only: PIPELINING not seen")
    delivered = 0
    sender, recipients, message = job.sender, [job.recipient], job.message
    replies = [_SCRIPT_GROUP, _SCRIPT_FINAL]
    for _ in range(count):
        result = _drive(procedures.send_mail(conn, sender, recipients, message), replies)
        if not result.delivered:
            raise NotDelivered(f"engine only: {result!r}")
        delivered += 1
    _drive(procedures.quit(conn), [_SCRIPT_QUIT])
    return delivered


Session = Callable[[str, Address, int, Job], Awaitable[int]]


def session_for(world: str, client: str) -> Session:
    """``session(world, address, count, job)``: connect, EHLO, ``count`` messages, QUIT."""
    if client == "ours":
        return ours_session
    if client == SHARED:
        return ours_shared_context_session
    if client == ENGINE_ONLY:
        return engine_only_session
    if client == "aiosmtplib" and world == "asyncio":
        return aiosmtplib_session
    if client == "smtpproto":
        return smtpproto_session
    if client == "raw floor":
        return raw_asyncio_session if world == "asyncio" else raw_trio_session
    raise ValueError(f"no client {client!r} on {world}")


# -- idle connections (memory) ---------------------------------------------------------------


async def open_idle(
    world: str, client: str, address: Address, job: Job, stack: contextlib.AsyncExitStack
) -> None:
    """Connect, read the greeting, say EHLO; ``stack`` closes it (QUIT) later."""
    if client in ("ours", SHARED):
        context = shared_context() if client == SHARED else None
        driver, conn = await _ours_open(world, address, context)
        stack.push_async_callback(_ours_close, driver, conn)
    elif client == "aiosmtplib" and world == "asyncio":
        smtp = await _aiosmtplib_open(address)
        stack.push_async_callback(smtp.quit)
    elif client == "smtpproto":
        await stack.enter_async_context(_smtpproto_client(address).connect())
    elif client == "raw floor" and world == "asyncio":
        protocol = await _raw_asyncio_open(address, job)
        stack.push_async_callback(_raw_asyncio_close, protocol)
    elif client == "raw floor":
        raw = await _raw_trio_open(address, job)
        stack.push_async_callback(_raw_trio_close, raw)
    else:
        raise ValueError(f"no client {client!r} on {world}")


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _memory_child(world: str, client: str, address: Address, n: int) -> dict[str, float]:
    job = make_job()
    async with contextlib.AsyncExitStack() as stack:  # warm-up: lazy imports, caches
        await open_idle(world, client, address, job, stack)
    # 1. RSS, without tracemalloc (its own tables would count).
    gc.collect()
    rss0 = _rss()
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(n):
            await open_idle(world, client, address, job, stack)
        gc.collect()
        rss1 = _rss()
    # 2. tracemalloc: Python allocations still held with the n connections open.
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(n):
            await open_idle(world, client, address, job, stack)
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {"traced": traced / n, "rss": (rss1 - rss0) / n}


def run_world(world: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main()`` in a fresh event loop of ``world``."""
    if world == "asyncio":
        return asyncio.run(main())
    import trio  # noqa: PLC0415

    return trio.run(main)


# -- timing ------------------------------------------------------------------------------------


async def _gather(world: str, coros: list[Awaitable[int]]) -> list[int]:
    if world == "asyncio":
        return list(await asyncio.gather(*coros))
    import trio  # noqa: PLC0415

    results: list[int] = []

    async def one(coro: Awaitable[int]) -> None:
        results.append(await coro)

    async with trio.open_nursery() as nursery:
        for coro in coros:
            nursery.start_soon(one, coro)
    return results


def sample(
    world: str, client: str, address: Address, job: Job, *, sessions: int, count: int
) -> tuple[float, float]:
    """(wall s, client CPU s) of ``sessions`` concurrent sessions of ``count`` messages.

    The clock runs inside the event loop, from before the first connect to
    after the last QUIT; the loop's creation and closing are not timed.
    """
    session = session_for(world, client)

    async def main() -> tuple[float, float, int]:
        coros = [session(world, address, count, job) for _ in range(sessions)]
        wall0, cpu0 = time.perf_counter(), time.process_time()
        delivered = await _gather(world, coros)
        return time.perf_counter() - wall0, time.process_time() - cpu0, sum(delivered)

    gc.collect()
    wall, cpu, delivered = run_world(world, main)
    if delivered != sessions * count:
        raise NotDelivered(
            f"{client} on {world}: {delivered} of {sessions * count} messages accepted"
        )
    return wall, cpu


@dataclass
class Timing:
    walls: list[float]
    cpus: list[float]

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


def _cases(args: argparse.Namespace) -> list[tuple[str, str, int, int]]:
    """(key, description, sessions, messages per session)."""
    return [
        (
            "many",
            f"{args.sessions} concurrent sessions x {args.per_session} messages",
            args.sessions,
            args.per_session,
        ),
        ("one", f"{args.one:,} messages, one session", 1, args.one),
    ]


def bench_world(world: str, args: argparse.Namespace, job: Job) -> dict[str, dict[str, Timing]]:
    clients = CLIENTS[world]
    found: dict[str, dict[str, Timing]] = {}
    rows = []
    for key, description, sessions, count in _cases(args):
        messages = sessions * count
        timings = {c: Timing([], []) for c in clients}
        for c in clients:  # warm-up (imports, caches); also checks that each client delivers
            sample(world, c, args.address, job, sessions=sessions, count=count)
        for _ in range(args.repeats):
            for c in clients:  # the clients take turns
                wall, cpu = sample(world, c, args.address, job, sessions=sessions, count=count)
                timings[c].walls.append(wall)
                timings[c].cpus.append(cpu)
        found[key] = timings
        ours, floor = timings["ours"], timings["raw floor"]
        for c in clients:
            t = timings[c]
            rows.append(
                [
                    description,
                    c,
                    f"{t.wall:.3f}",
                    f"{min(t.walls):.3f}",
                    f"{max(t.walls):.3f}",
                    f"{(max(t.walls) - min(t.walls)) / t.wall * 100:.0f} %",
                    fmt_int(messages / t.wall),
                    f"{t.cpu:.3f}",
                    ratio(ours.wall, t.wall),
                    ratio(ours.cpu, t.cpu),
                    ratio(timings[SHARED].wall, t.wall),
                    ratio(t.wall, floor.wall),
                ]
            )
    print(
        f"Median of {args.repeats} samples (after one warm-up each), the clients taking turns; "
        "best and worst sample and the spread ((worst - best) / median) beside it.  "
        "Wall = first connect to last QUIT, inside one event loop per sample; CPU = "
        "`time.process_time` of the client process (the sink's not counted).  "
        "`ours / this` < 1.00x: ours takes less.  Ratios use the medians.  "
        f"`{SHARED}`: ours with `ssl_context=` one context made before the timing, "
        "instead of the one `connect` builds (certificates loaded) for each connection.\n"
    )
    table(
        [
            "case",
            "client",
            "wall s (median)",
            "best",
            "worst",
            "spread",
            "messages/s",
            "CPU s (median)",
            "ours / this, wall",
            "ours / this, CPU",
            "shared ctx / this, wall",
            "this / floor, wall",
        ],
        rows,
    )
    return found


# -- callgrind ---------------------------------------------------------------------------------


def cg_command(out: str, world: str, client: str, address: Address, n: int) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--zero-before=getppid",
        "--dump-before=getpgrp",
        sys.executable,
        str(CG_CHILD),
        world,
        client,
        address[0],
        str(address[1]),
        str(n),
    ]


def _summary(path: str) -> int:
    match = _SUMMARY.search(Path(path).read_bytes())
    if match is None:
        raise RuntimeError(f"no summary line in {path}")
    return int(match[1])


def _cg_run(argv: list[str], out: str, env: dict[str, str]) -> tuple[int, int, int]:
    """Ir of the three counted sessions: no message, N, 2N."""
    proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed:\n{proc.stderr.decode(errors='replace')}")
    # Three marker dumps and the one at exit; a fifth would mean a stray getpgrp call.
    if os.path.exists(out + ".5"):
        raise RuntimeError(f"{out}: more dumps than markers; the counts are not per session")
    return _summary(out + ".1"), _summary(out + ".2"), _summary(out + ".3")


def bench_callgrind(
    args: argparse.Namespace, meanwhile: Callable[[], Any] = lambda: None
) -> tuple[dict[str, float], Any]:
    """Ir per message for each asyncio client (and on trio with --cg-trio).

    ``meanwhile()`` runs while valgrind does (something else that the load
    does not change: the memory figures); its result is returned second.
    """
    n = args.cg_n
    runs = [("asyncio", c) for c in CLIENTS["asyncio"]]
    if args.cg_trio:
        runs += [("trio", "ours"), ("trio", "smtpproto"), ("trio", "raw floor")]
    if args.cg_engine:
        runs.append(("asyncio", ENGINE_ONLY))
    env = {**os.environ, "PYTHONHASHSEED": "0", "BENCH_WARMUPS": str(args.cg_warmups)}
    for world, client in runs:  # compile the .pyc files outside valgrind; checks the child works
        subprocess.run(
            [sys.executable, str(CG_CHILD), world, client, *map(str, args.address), "2"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if args.quick:
        print(
            "`--quick`: callgrind skipped (valgrind's start-up alone takes about 30 s a "
            "client here); the child ran once without valgrind for each client.  "
            "`python bench/aio.py --only callgrind` for the figures.\n"
        )
        return {}, meanwhile()
    workdir = tempfile.mkdtemp(prefix="smtpclient-cg-aio-")
    jobs = {}
    commands = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for world, client in runs:
            out = os.path.join(workdir, f"callgrind.{world}.{client.replace(' ', '_')}.out")
            argv = cg_command(out, world, client, args.address, n)
            commands.append(f"BENCH_WARMUPS={args.cg_warmups} PYTHONHASHSEED=0 {shlex.join(argv)}")
            jobs[(world, client)] = pool.submit(_cg_run, argv, out, env)
        other = meanwhile()
        results = {key: future.result() for key, future in jobs.items()}
    for name in os.listdir(workdir):
        os.unlink(os.path.join(workdir, name))
    os.rmdir(workdir)
    print(
        f"One process per client: {args.cg_warmups} warm-up sessions of 10 messages, then, in "
        f"the same event loop, one session of N = {n} and one of 2N = {2 * n} small messages "
        "(connect, EHLO, messages, QUIT), after one with none (`session`: connect, EHLO, QUIT).  "
        "Ir per message = (Ir(2N) - Ir(N)) / N, so connecting, EHLO and QUIT cancel; the "
        "`check` column, (Ir(N) - Ir(0)) / N, should agree.  "
        "User-space instructions of the client process only.  The runs go in parallel (the "
        "counts do not depend on load).\n"
    )
    print("Commands:\n")
    for cmd in commands:
        print(f"    {cmd}")
    print()
    per: dict[str, float] = {}
    rows = []
    for (world, client), (ir_0, ir_n, ir_2n) in results.items():
        per[f"{client} ({world})"] = (ir_2n - ir_n) / n
        rows.append([world, client, ir_0, ir_n, ir_2n, (ir_2n - ir_n) / n, (ir_n - ir_0) / n])
    ours = per["ours (asyncio)"]
    ours_session = rows[0][2]

    def floor(world: str) -> float:
        """The raw floor of ``world`` if counted, else asyncio's."""
        return per.get(f"raw floor ({world})", per["raw floor (asyncio)"])

    table(
        [
            "world",
            "client",
            "Ir, session (0 messages)",
            f"Ir, {n} messages",
            f"Ir, {2 * n} messages",
            "Ir per message",
            "check: (Ir(N) - Ir(0)) / N",
            "ours (asyncio) / this, per message",
            "this / floor of its world, per message",
            "ours (asyncio) / this, session",
        ],
        [
            [
                w,
                c,
                fmt_int(a),
                fmt_int(b),
                fmt_int(d),
                fmt_int(p),
                fmt_int(q),
                ratio(ours, p),
                ratio(p, floor(w)),
                ratio(ours_session, a),
            ]
            for w, c, a, b, d, p, q in rows
        ],
    )
    return per, other


# -- memory ------------------------------------------------------------------------------------


def measure_memory(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """One child process per client (``--memory-child``); figures per connection."""
    runs = [("asyncio", c) for c in CLIENTS["asyncio"]] + [("trio", c) for c in CLIENTS["trio"]]
    found: dict[str, dict[str, float]] = {}
    for world, client in runs:
        proc = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--memory-child",
                world,
                client,
                *map(str, args.address),
                str(args.idle),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"memory child {world} {client} failed:\n{proc.stderr}")
        found[f"{client} ({world})"] = json.loads(proc.stdout)
    return found


def print_memory(args: argparse.Namespace, found: dict[str, dict[str, float]]) -> None:
    print(
        f"N = {args.idle} connections open at once, each greeted and past EHLO, in a fresh "
        "process per client (after one warm-up connection).  tracemalloc: Python allocations "
        "held with the N connections open, divided by N (event loop, transports, protocol "
        "and client objects; not the kernel's socket buffers).  RSS: growth of the resident "
        "set (`/proc/self/statm`) from before the first connection to all N open, divided by "
        "N, in a separate pass without tracemalloc (coarse: whole pages, allocator arenas)."
        + (
            "  These children ran while valgrind did (neither figure depends on the load)."
            if args.memory_beside_valgrind
            else ""
        )
        + "\n"
    )
    ours_a = found["ours (asyncio)"]
    ours_t = found["ours (trio)"]
    rows = []
    for name, figures in found.items():
        ours = ours_a if name.endswith("(asyncio)") else ours_t
        rows.append(
            [
                name,
                fmt_int(figures["traced"]),
                fmt_int(figures["rss"]),
                ratio(ours["traced"], figures["traced"]),
                ratio(ours["rss"], figures["rss"]),
            ]
        )
    table(
        [
            "client",
            "tracemalloc B per connection",
            "RSS B per connection",
            "ours / this, tracemalloc",
            "ours / this, RSS",
        ],
        rows,
    )


# -- targets -----------------------------------------------------------------------------------


def print_targets(
    timed: dict[str, dict[str, dict[str, Timing]]],
    per: dict[str, float],
    cases: list[tuple[str, str, int, int]],
) -> None:
    rows = []
    names = {key: description for key, description, _, _ in cases}
    for world, by_case in timed.items():
        for key, timings in by_case.items():
            for who in ("ours", SHARED):
                label = "ours" if who == "ours" else f"what-if, {who}"
                ours, ours_cpu = timings[who].wall, timings[who].cpu
                peers = [p for p in PEERS if p in timings]
                worst = max(ours / timings[p].wall for p in peers)
                figures = ", ".join(
                    f"{ratio(ours, timings[p].wall)} {p} (CPU {ratio(ours_cpu, timings[p].cpu)})"
                    for p in peers
                )
                rows.append(
                    [
                        f"{world}, {names[key]}: {label} ahead of every peer (wall)",
                        figures,
                        "yes" if worst < 1.0 else f"**no** (slowest ratio {worst:.2f}x)",
                    ]
                )
                floor = ours / timings["raw floor"].wall
                floor_cpu = ratio(ours_cpu, timings["raw floor"].cpu)
                rows.append(
                    [
                        f"{world}, {names[key]}: {label} within 2x of the raw floor (wall)",
                        f"{floor:.2f}x (CPU {floor_cpu})",
                        "yes" if floor <= 2.0 else f"**no** ({floor / 2:.2f}x the allowance)",
                    ]
                )
    if per:
        ours, theirs = per["ours (asyncio)"], per["aiosmtplib (asyncio)"]
        rows.append(
            [
                "callgrind: ours at most half of aiosmtplib's Ir per message",
                f"{fmt_int(ours)} vs {fmt_int(theirs)} ({ratio(ours, theirs)})",
                "yes"
                if ours <= theirs / 2
                else f"**no** ({ours / (theirs / 2):.2f}x the allowance)",
            ]
        )
    print("Against the targets (ratios of the medians above; ours / peer):\n")
    table(["target", "measured", "met"], rows)


# -- profile -----------------------------------------------------------------------------------


def profile(args: argparse.Namespace, job: Job) -> None:
    _, description, sessions, count = next(c for c in _cases(args) if c[0] == args.profile)
    world, client = args.profile_world, args.profile_client
    sample(world, client, args.address, job, sessions=sessions, count=count)  # warm-up
    print(f"cProfile of {client} on {world}: {description}; top {args.profile_lines} by own time\n")
    profiler = cProfile.Profile()
    profiler.enable()
    wall, _ = sample(world, client, args.address, job, sessions=sessions, count=count)
    profiler.disable()
    print(f"(profiled sample: {wall:.3f} s wall)\n")
    print("```")
    stats = pstats.Stats(profiler)
    stats.strip_dirs().sort_stats("tottime").print_stats(args.profile_lines)
    print("```")


# -- main --------------------------------------------------------------------------------------

SECTIONS = ("asyncio", "trio", "callgrind", "memory")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        world, client, host, port, n = sys.argv[2:7]
        address = (host, int(port))
        print(json.dumps(run_world(world, lambda: _memory_child(world, client, address, int(n)))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (small counts)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section")
    parser.add_argument("--repeats", type=int, help="timed samples per client (default 5)")
    parser.add_argument("--cg-n", type=int, help="callgrind: N (default 100; sessions of N and 2N)")
    parser.add_argument("--cg-warmups", type=int, default=2, help="callgrind: warm-up sessions")
    parser.add_argument(
        "--cg-trio",
        action="store_true",
        help="callgrind: also ours, smtpproto and the raw floor on trio",
    )
    parser.add_argument(
        "--cg-engine",
        action="store_true",
        help="callgrind: also ours' procedures alone, on scripted replies (no I/O, no loop)",
    )
    parser.add_argument("--profile", choices=["many", "one"], help="cProfile one sample of a case")
    parser.add_argument("--profile-client", default="ours")
    parser.add_argument("--profile-world", default="asyncio", choices=list(CLIENTS))
    parser.add_argument("--profile-lines", type=int, default=15)
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.per_session, args.one, args.idle = 10, 5, 100, 20
        args.repeats = args.repeats or 1
    else:
        args.sessions, args.per_session, args.one, args.idle = 50, 20, 2000, 200
        args.repeats = args.repeats or 5
    args.cg_n = args.cg_n or (5 if args.quick else 100)
    sections = args.only or list(SECTIONS)
    job = make_job()
    from smtp_core import DataEncoder  # noqa: PLC0415

    encoder = DataEncoder()
    assert job.content == encoder.encode(job.message) + encoder.end(), "raw floor's bytes"
    shared_context()  # made before any timing
    with _common.smtp_sink() as sink:
        args.address = sink.address
        if args.profile:
            _common.header(f"Profile: {args.profile} ({args.profile_client}, {args.profile_world})")
            profile(args, job)
            return
        _common.header(
            "Asynchronous drivers: loopback, postfix smtp-sink",
            note=(
                "Machine shared with other work (and the sink shares its cores): timings are "
                f"medians of {args.repeats} and still noisy; see each row's spread.  "
                "Instruction counts do not depend on the load."
            ),
        )
        print(
            f"smtp-sink: {_common.sink_binary()} on {sink.address[0]}:{sink.address[1]}; "
            f"small message: {len(job.message)} B, one recipient.  Ours: `transports.<world>."
            "connect` + `procedures.handshake/send_mail/quit` (PIPELINING); smtpproto on anyio; "
            "default asyncio event loop (no uvloop).\n"
        )
        timed: dict[str, dict[str, dict[str, Timing]]] = {}
        for number, world in (("1-2", "asyncio"), ("3", "trio")):
            if world in sections:
                print(f"### {number}. {world}: wall time and messages/s\n")
                timed[world] = bench_world(world, args, job)
        per: dict[str, float] = {}
        measure = (lambda: measure_memory(args)) if "memory" in sections else (lambda: None)
        args.memory_beside_valgrind = "callgrind" in sections and not args.quick
        if "callgrind" in sections:
            print("### 4. CPU instructions per message (valgrind --tool=callgrind)\n")
            per, memory = bench_callgrind(args, measure)
        else:
            memory = measure()
        if memory is not None:
            print("### 5. Memory per idle connection\n")
            print_memory(args, memory)
    if timed or per:
        print_targets(timed, per, _cases(args))
    _common.footer()


if __name__ == "__main__":
    main()
