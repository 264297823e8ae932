"""The pool against real servers, in every world: blocking ``Pool``, ``AsyncPool`` on
asyncio, on trio, and on anyio (``transport="anyio"``, on either backend).

postfix (started by the fixtures) for bulk delivery and its recipient limit;
aiosmtpd in-process (``tests/pool_servers.py``) for what a server does to a
bulk sender on purpose or by accident: 421 after N messages, a dropped
connection, a final dot never answered; and for timing the rate limit.
Every message is told apart by an ``X-Seq`` header (and its pool ``key``),
and every test checks, at the server, that each arrived exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal, TypeVar

import anyio
import pytest
import sniffio
import trio

import transports.anyio
import transports.asyncio
import transports.trio
from smtp_core import OutcomeUnknown, Procedure, Timeouts
from smtpclient.pool import (
    AsyncPool,
    Message,
    MessageResult,
    Policy,
    Pool,
    Session,
    message_from,
)
from tests._postfix import (
    TEST_DOMAIN,
    PostfixServer,
    serve_for_session,
    strip_trace_headers,
)
from tests.pool_servers import PoolServer
from transports import AsyncDriver
from transports.sync import SyncDriver, connect_driver

T = TypeVar("T")

SENDER = "pool-sender@client.test"
SHORT = Timeouts.every(10.0)  # real servers answer at once: a hang fails fast


# -- counting the pool's connections, on the client's side ----------------------------


class Gauge:
    """Connections made by the pool's ``connect``: open now, at most at once, in all.

    Counted from a successful connect to the driver's close, by wrapping the
    driver the pool gets (:class:`_CountedSync`, :class:`_CountedAsync`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0
        self.peak = 0
        self.opened = 0

    def enter(self) -> None:
        with self._lock:
            self.open += 1
            self.opened += 1
            self.peak = max(self.peak, self.open)

    def leave(self) -> None:
        with self._lock:
            self.open -= 1


class _CountedSync(SyncDriver):
    """A blocking driver that tells the gauge when it closes (only run and close are used)."""

    def __init__(self, inner: SyncDriver, gauge: Gauge) -> None:  # no super(): a wrapper
        self.inner = inner
        self.gauge: Gauge | None = gauge
        gauge.enter()

    def run(self, procedure: Procedure[T]) -> T:
        return self.inner.run(procedure)

    def close(self) -> None:
        gauge, self.gauge = self.gauge, None
        if gauge is not None:
            gauge.leave()
        self.inner.close()


class _CountedAsync(AsyncDriver):
    """An asynchronous driver that tells the gauge when it closes (only run and aclose)."""

    def __init__(self, inner: AsyncDriver, gauge: Gauge) -> None:  # no super(): a wrapper
        self.inner = inner
        self.gauge: Gauge | None = gauge
        gauge.enter()

    async def run(self, procedure: Procedure[T]) -> T:
        return await self.inner.run(procedure)

    async def aclose(self) -> None:
        gauge, self.gauge = self.gauge, None
        if gauge is not None:
            gauge.leave()
        await self.inner.aclose()


# -- the worlds -------------------------------------------------------------------------


Runner = Callable[[Callable[[], Awaitable[None]]], None]
Transport = Literal["asyncio", "trio", "anyio"]
_TRANSPORTS: dict[Transport, ModuleType] = {
    "asyncio": transports.asyncio,
    "trio": transports.trio,
    "anyio": transports.anyio,
}


def _on_asyncio(main: Callable[[], Awaitable[None]]) -> None:
    async def wrapper() -> None:
        await main()

    asyncio.run(wrapper())


def _on_anyio(backend: str) -> Runner:
    def runner(main: Callable[[], Awaitable[None]]) -> None:
        anyio.run(main, backend=backend)

    return runner


@dataclass(frozen=True)
class World:
    """A pool and its event loop: ``send`` runs a whole pool over ``messages``."""

    name: str
    transport: Transport | None  # None: the blocking Pool
    runner: Runner | None = None

    def send(
        self,
        session: Session,
        policy: Policy,
        messages: Sequence[Message],
        gauge: Gauge | None = None,
    ) -> list[MessageResult]:
        """Every message's result, once the pool is closed (every connection with it).

        With ``gauge``, the pool's ``connect`` is the world's own, counted;
        without, the pool's default.  The blocking pool must leave no thread
        behind, an asyncio pool no task.
        """
        if self.transport is None:
            return _send_blocking(session, policy, messages, gauge)
        results: list[MessageResult] = []
        transport = self.transport

        async def main() -> None:
            results.extend(await _send_async(transport, session, policy, messages, gauge))

        assert self.runner is not None
        self.runner(main)
        return results


def _send_blocking(
    session: Session, policy: Policy, messages: Sequence[Message], gauge: Gauge | None
) -> list[MessageResult]:
    # A set, not a count: a thread some earlier test left winding down may end
    # during this one (CI once saw the count drop from 2 to 1, a false leak).
    before = set(threading.enumerate())

    def counted(session: Session) -> SyncDriver:
        driver = connect_driver(session.host, session.target_port, **session.connect_arguments())
        assert gauge is not None
        return _CountedSync(driver, gauge)

    pool = Pool(session, policy) if gauge is None else Pool(session, policy, connect=counted)
    with pool:
        results = list(pool.send_many(messages))
    # close() joins the pool's own thread; each connection's thread ends just
    # after reporting its Close, so it may take a moment more to be gone.
    deadline = time.monotonic() + 2.0
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before, threading.enumerate()
    return results


async def _send_async(
    transport: Transport,
    session: Session,
    policy: Policy,
    messages: Sequence[Message],
    gauge: Gauge | None,
) -> list[MessageResult]:
    module = _TRANSPORTS[transport]

    async def counted(session: Session) -> AsyncDriver:
        driver: AsyncDriver = await module.connect(
            session.host, session.target_port, **session.connect_arguments()
        )
        assert gauge is not None
        return _CountedAsync(driver, gauge)

    pool = AsyncPool(
        session, policy, transport=transport, connect=None if gauge is None else counted
    )
    async with pool:
        results = [result async for result in pool.send_many(messages)]
    if sniffio.current_async_library() == "asyncio":
        assert asyncio.all_tasks() == {asyncio.current_task()}
    return results


WORLDS = [
    World("blocking", None),
    World("asyncio", "asyncio", _on_asyncio),
    World("trio", "trio", trio.run),
    World("anyio-asyncio", "anyio", _on_anyio("asyncio")),
    World("anyio-trio", "anyio", _on_anyio("trio")),
]
# The costly bulk test runs once per pool: anyio's transport on one backend.
BULK_WORLDS = WORLDS[:4]

every_world = pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.name)


# -- messages and what the servers got --------------------------------------------------


def _content(seq: int, tag: str, *, extra: str = "") -> bytes:
    return (
        f"From: <{SENDER}>\r\n"
        f"Subject: pool {tag} {seq}\r\n"
        f"Message-ID: <{seq}.{tag}@client.test>\r\n"
        f"X-Seq: {seq}\r\n"
        f"{extra}"
        "\r\n"
        f"message {seq} of {tag}\r\n"
        ".a line that starts with a dot\r\n"
    ).encode()


def _messages(count: int, tag: str, recipients: Callable[[int], Sequence[str]]) -> list[Message]:
    return [
        message_from(_content(seq, tag), sender=SENDER, recipients=recipients(seq), key=seq)
        for seq in range(count)
    ]


_SEQ = re.compile(rb"^X-Seq: (\d+)\r?$", re.MULTILINE)


def _seq(content: bytes) -> int:
    found = _SEQ.search(content)
    assert found is not None, content[:300]
    return int(found[1])


def _assert_all_accepted(results: list[MessageResult], messages: Sequence[Message]) -> None:
    assert len(results) == len(messages)
    assert Counter(r.message.key for r in results) == Counter(m.key for m in messages)
    refused = [(r.message.key, r.failed) for r in results if r.status != "accepted"]
    assert refused == []
    for result in results:
        assert result.accepted == result.message.recipients


def _retries(results: list[MessageResult]) -> int:
    """Transactions tried again, over all results (one recipient per message)."""
    return sum(r.outcomes[0].attempts - 1 for r in results)


def _unique(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


# -- 1. postfix: 10,000 messages over 10 connections ------------------------------------

# The figure, in every world.  The noxfile runs it so on the newest
# Python and with 1,000 on the oldest: four worlds x 10,000 messages through
# postfix's real delivery cost about 4 minutes a Python, and CI has 20 in all.
BULK = int(os.environ.get("SMTPCLIENT_POOL_BULK", "10000"))
_DELIVERED_TO = re.compile(rb"^Delivered-To: (\S+)$", re.MULTILINE)


def _postfix_queue_empty(server: PostfixServer) -> bool:
    for sub in ("incoming", "active", "deferred", "hold"):
        for _, _, files in os.walk(server.queue_dir / sub):
            if files:
                return False
    return True


class Maildir:
    """The files of one test in the shared maildir: those to ``<prefix>...@postfix.test``."""

    def __init__(self, server: PostfixServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix.encode()
        self.mine: dict[Path, tuple[str, bytes]] = {}
        self._others: set[Path] = set()

    def scan(self) -> dict[Path, tuple[str, bytes]]:
        """Read the files not seen yet; every one of this test's: path -> (Delivered-To, bytes)."""
        for sub in ("new", "cur"):
            with os.scandir(self.server.maildir / sub) as entries:
                for entry in entries:
                    path = Path(entry.path)
                    if path in self.mine or path in self._others:
                        continue
                    try:
                        raw = path.read_bytes()
                    except FileNotFoundError:  # another test's, removed meanwhile
                        continue
                    found = _DELIVERED_TO.search(raw)
                    if found is not None and found[1].startswith(self.prefix):
                        self.mine[path] = (found[1].decode(), raw)
                    else:
                        self._others.add(path)
        return self.mine

    def settled(self, count: int, timeout: float) -> dict[Path, tuple[str, bytes]]:
        """Wait for ``count`` files and for postfix's queue to be empty; then every file.

        With the queue empty, nothing more is on its way: a duplicate would be
        here by now.
        """
        deadline = time.monotonic() + timeout
        while True:
            empty = _postfix_queue_empty(self.server)
            found = self.scan()
            if len(found) >= count and empty:
                return dict(self.scan())
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} of {count} delivered after {timeout} s; queue empty: {empty}\n"
                    + self.server.read_log(max_lines=40)
                )
            time.sleep(0.1)

    def remove(self) -> None:
        """Delete this test's files: the next tests read the whole maildir."""
        self.scan()
        for path in self.mine:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


@contextlib.contextmanager
def own_mail(server: PostfixServer, prefix: str) -> Iterator[Maildir]:
    maildir = Maildir(server, prefix)
    try:
        yield maildir
    finally:
        with contextlib.suppress(OSError, AssertionError):
            # Whatever is still on its way, then remove it all.
            maildir.settled(0, timeout=30.0)
        maildir.remove()


def _postfix_session(server: PostfixServer) -> Session:
    return Session(
        host=server.host,
        port=server.port,
        tls="none",
        local_hostname="client.test",
        timeouts=Timeouts.every(60.0),
    )


@pytest.mark.parametrize("world", BULK_WORLDS, ids=lambda w: w.name)
def test_ten_thousand_messages_over_ten_connections(
    world: World, postfix_server: PostfixServer
) -> None:
    tag = _unique(f"bulk-{world.name}")
    messages = _messages(BULK, tag, lambda seq: [f"{tag}-{seq}@{TEST_DOMAIN}"])
    gauge = Gauge()
    with own_mail(postfix_server, f"{tag}-") as maildir:
        started = time.monotonic()
        results = world.send(
            _postfix_session(postfix_server), Policy(max_connections=10), messages, gauge
        )
        sent = time.monotonic() - started
        _assert_all_accepted(results, messages)
        # At most 10 at once, and all 10 used; each reused for max_messages
        # (100 by default) transactions, and every one closed.
        assert gauge.peak == 10
        assert gauge.open == 0
        assert BULK // 100 <= gauge.opened <= BULK // 100 + 10

        delivered = maildir.settled(BULK, timeout=300.0)
        total = time.monotonic() - started
        seqs = Counter(_seq(raw) for _, raw in delivered.values())
        assert len(delivered) == BULK
        assert seqs == Counter(range(BULK))  # each exactly once
        for rcpt, raw in delivered.values():
            seq = _seq(raw)
            assert rcpt == f"{tag}-{seq}@{TEST_DOMAIN}"
            assert strip_trace_headers(raw) == messages[seq].content
    print(f"\n{world.name}: {BULK} sent in {sent:.1f} s, all delivered after {total:.1f} s")


# -- 3. postfix with limits: 100 recipients per transaction, 2 connections at once ------

LIMITS = {
    # 452 4.5.3 to the 101st RCPT of a transaction.
    "smtpd_recipient_limit": "100",
    # 421 4.7.0 to a third connection from one client at once (anvil), and
    # loopback is not exempt as it is by default.
    "smtpd_client_connection_count_limit": "2",
    "smtpd_client_event_limit_exceptions": "",
}


@pytest.fixture(scope="module")
def postfix_limited() -> Iterator[PostfixServer]:
    """A postfix of its own with :data:`LIMITS`."""
    yield from serve_for_session(
        lambda workdir: PostfixServer(workdir, main_cf=LIMITS), prefix="smtpclient-postfix-limits-"
    )


_QUEUED = re.compile(r"postfix/cleanup\[\d+\]: (\w+): message-id=<(\S+)>")


def _queue_ids(server: PostfixServer, message_id: str) -> list[str]:
    return [m[1] for m in _QUEUED.finditer(server.read_log()) if m[2] == message_id]


@every_world
def test_a_message_to_250_recipients_past_a_limit_of_100(
    world: World, postfix_limited: PostfixServer
) -> None:
    server = postfix_limited
    tag = _unique(f"rcpt-{world.name}")
    recipients = [f"{tag}-{n}@{TEST_DOMAIN}" for n in range(250)]
    message = _messages(1, tag, lambda seq: recipients)[0]
    with own_mail(server, f"{tag}-") as maildir:
        (result,) = world.send(_postfix_session(server), Policy(), [message])
        assert result.status == "accepted"
        assert result.accepted == tuple(recipients)
        # The recipients past 100 went on in further transactions at once:
        # no backoff, no try counted.
        assert {o.attempts for o in result.outcomes} == {1}
        delivered = maildir.settled(250, timeout=60.0)
        assert sorted(rcpt for rcpt, _ in delivered.values()) == sorted(recipients)
        assert {strip_trace_headers(raw) for _, raw in delivered.values()} == {message.content}
    # Three transactions: postfix queued the message three times, to 100, 100 and 50.
    message_id = f"0.{tag}@client.test"
    deadline = time.monotonic() + 10.0
    while len(_queue_ids(server, message_id)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # postlogd writes the log a moment later
    queue_ids = _queue_ids(server, message_id)
    assert len(queue_ids) == 3, server.read_log(max_lines=60)
    log = server.read_log()
    queued = [
        re.search(rf"qmgr\[\d+\]: {q}: from=<\S*>, size=\d+, nrcpt=(\d+)", log) for q in queue_ids
    ]
    assert [int(q[1]) if q else None for q in queued] == [100, 100, 50]


@every_world
def test_a_server_that_takes_2_connections_gets_everything_over_2(
    world: World, postfix_limited: PostfixServer
) -> None:
    # The pool may open 5; postfix greets the 3rd one at once with 421 and
    # closes it.  The pool keeps sending on the 2 it has (and probes again
    # now and then, with a backoff): every message goes through, once.
    count = 300
    tag = _unique(f"conns-{world.name}")
    messages = _messages(count, tag, lambda seq: [f"{tag}-{seq}@{TEST_DOMAIN}"])
    refused_before = server_log_count(postfix_limited, "Connection concurrency limit exceeded")
    with own_mail(postfix_limited, f"{tag}-") as maildir:
        results = world.send(
            _postfix_session(postfix_limited), Policy(max_connections=5, backoff=0.05), messages
        )
        _assert_all_accepted(results, messages)
        assert _retries(results) == 0  # a connection refused at its greeting took no message
        delivered = maildir.settled(count, timeout=60.0)
        assert Counter(_seq(raw) for _, raw in delivered.values()) == Counter(range(count))
    # The limit was met (postlogd writes a moment later).
    deadline = time.monotonic() + 5.0
    while (
        server_log_count(postfix_limited, "Connection concurrency limit exceeded") == refused_before
    ):
        assert time.monotonic() < deadline, postfix_limited.read_log(max_lines=40)
        time.sleep(0.05)


def server_log_count(server: PostfixServer, text: str) -> int:
    return server.read_log().count(text)


# -- 2, 4, 5. aiosmtpd that misbehaves: 421, silence after the dot, drops, timing ----------


def _aiosmtpd_session(server: PoolServer, timeouts: Timeouts = SHORT) -> Session:
    return Session(
        host=server.host,
        port=server.port,
        tls="none",
        local_hostname="client.test",
        timeouts=timeouts,
    )


def _one_recipient(tag: str) -> Callable[[int], Sequence[str]]:
    return lambda seq: [f"{tag}-{seq}@example.test"]


def _arrived_once(server: PoolServer, messages: Sequence[Message]) -> None:
    """Every message is at the server exactly once, as sent, with its envelope."""
    arrivals = server.arrivals
    assert Counter(_seq(a.content) for a in arrivals) == Counter(m.key for m in messages)
    for arrival in arrivals:
        message = messages[_seq(arrival.content)]
        assert arrival.content == message.content
        assert arrival.rcpt_tos == message.recipients
        assert arrival.mail_from == SENDER


# Retries never give up in these tests: a message tried again may land once
# more on a connection at its limit (about 1 in 50, or 1 in 7); ten tries make
# that harmless.  The backoff is short so the tests are.
PATIENT = Policy(max_connections=4, backoff=0.01, max_attempts=10)


@every_world
@pytest.mark.parametrize("where", ["mail", "dot"])
def test_421_after_every_50_messages_still_gets_all_through(world: World, where: str) -> None:
    # "mail": the 51st MAIL of a connection gets 421 and the connection closes
    # (nothing of that message was sent: tried again elsewhere).
    # "dot": the final dot of every 50th message gets 421 and the connection
    # closes; the server did not keep it.  421 there is a verdict, "not
    # delivered", not silence: tried again too, never "unknown".
    count = 500
    tag = _unique("421")
    messages = _messages(count, tag, _one_recipient(tag))
    server = (
        PoolServer(refuse_mail_after=50) if where == "mail" else PoolServer(refuse_dot_every=50)
    )
    with server:
        results = world.send(_aiosmtpd_session(server), PATIENT, messages)
        _arrived_once(server, messages)
        mails = len(server.mail_times)
        refusals = server.hang_ups
        connections = server.connections
        peak = server.peak_connections
    _assert_all_accepted(results, messages)
    # Each 421 cost exactly one retry, and nothing else did.
    assert _retries(results) == refusals
    assert mails == count + refusals
    # A connection takes 50 messages at most: the 4 last ones may take fewer.
    assert refusals >= count // 50 - PATIENT.max_connections
    assert connections >= count // 50
    assert peak <= PATIENT.max_connections


@every_world
@pytest.mark.parametrize("when", ["at-mail", "when-idle"])
def test_a_dropped_connection_is_reopened(world: World, when: str) -> None:
    # "at-mail": the server closes the connection, saying nothing, when the
    # 8th MAIL comes: that message was not delivered (its end was never
    # sent), so it is tried again on a fresh connection.
    # "when-idle": the server closes it right after the 250 to the 7th final
    # dot; the pool finds out when it next writes (then as above), or not at
    # all if it had no more to send on it.
    count = 100
    tag = _unique("drop")
    messages = _messages(count, tag, _one_recipient(tag))
    server = PoolServer(drop_after=7) if when == "at-mail" else PoolServer(drop_idle_after=7)
    with server:
        results = world.send(_aiosmtpd_session(server), PATIENT, messages)
        _arrived_once(server, messages)
        mails = len(server.mail_times)
        drops = server.hang_ups
        connections = server.connections
    _assert_all_accepted(results, messages)
    retries = _retries(results)
    if when == "at-mail":
        # Each drop cost exactly one retry, and the server saw its MAIL.
        assert retries == drops
        assert mails == count + drops
    else:
        # The MAIL written to a closed connection never reached the server.
        assert retries <= drops
        assert mails == count
    assert drops >= count // 7 - PATIENT.max_connections
    assert connections >= -(-count // 7)


@every_world
def test_a_server_that_takes_2_sessions_at_once_gets_everything_over_2(world: World) -> None:
    # The pool opens 5 connections at once; the server greets the 3 beyond
    # its 2 with 421 at once, and the 2 it takes a moment later.  Those 2
    # work: the 3 refusals are one busy moment, not 3 failed tries.  Every
    # message must go through, over the 2 (postfix's own concurrency limit
    # does the same: test_a_server_that_takes_2_connections_...).
    count = 50
    tag = _unique("sessions")
    messages = _messages(count, tag, _one_recipient(tag))
    with PoolServer(max_sessions=2, greeting_delay=0.2) as server:
        results = world.send(
            _aiosmtpd_session(server), Policy(max_connections=5, backoff=0.05), messages
        )
        _arrived_once(server, messages)
        refused = server.refused_connections
    assert refused >= 3
    _assert_all_accepted(results, messages)


SILENT = b"X-Silent: yes"


@every_world
def test_a_final_dot_never_answered_is_unknown_and_sent_once(world: World) -> None:
    count = 30
    silent_seq = 7
    tag = _unique("silent")
    messages = [
        message_from(
            _content(seq, tag, extra="X-Silent: yes\r\n" if seq == silent_seq else ""),
            sender=SENDER,
            recipients=[f"{tag}-{seq}a@example.test", f"{tag}-{seq}b@example.test"],
            key=seq,
        )
        for seq in range(count)
    ]
    data_end = 0.5
    timeouts = dataclasses.replace(SHORT, data_end=data_end)
    with PoolServer(silent_marker=SILENT) as server:
        started = time.monotonic()
        results = world.send(
            _aiosmtpd_session(server, timeouts), Policy(max_connections=3, backoff=0.01), messages
        )
        elapsed = time.monotonic() - started
        # Wait longer than a retry would need: still one copy.
        time.sleep(data_end + 1.0)
        _arrived_once(server, messages)
        mails = len(server.mail_times)
    assert len(results) == count
    by_seq = {r.message.key: r for r in results}
    silent = by_seq.pop(silent_seq)
    assert silent.status == "unknown"
    assert silent.unknown == silent.message.recipients
    for outcome in silent.outcomes:
        assert outcome.attempts == 1
        assert isinstance(outcome.error, OutcomeUnknown)
    assert all(r.status == "accepted" for r in by_seq.values())
    assert mails == count  # nothing was tried twice
    assert elapsed >= data_end


@every_world
def test_the_rate_limit_holds_at_the_server(world: World) -> None:
    count, limit, interval = 60, 20, 0.5
    tag = _unique("rate")
    messages = _messages(count, tag, _one_recipient(tag))
    policy = Policy(max_connections=5, rate_limit=limit, rate_interval=interval)
    with PoolServer() as server:
        started = time.monotonic()
        results = world.send(_aiosmtpd_session(server), policy, messages)
        elapsed = time.monotonic() - started
        _arrived_once(server, messages)
        times = sorted(server.mail_times)
    _assert_all_accepted(results, messages)
    # The pool counts a transaction when it begins it; the server stamps its
    # MAIL when it reads it, a little later, by a delay that varies from one
    # transaction to the next (threads taking turns, the server's loop).
    # TOLERANCE bounds how much two such delays differ.
    tolerance = 0.1
    windows = [times[i + limit] - times[i] for i in range(len(times) - limit)]
    assert min(windows) >= interval - tolerance, windows
    # 60 transactions at 20 per 0.5 s: the 41st begins 1 s after the 1st at the earliest.
    minimum = (count // limit - 1) * interval
    assert elapsed >= minimum
    assert times[-1] - times[0] >= minimum - tolerance
