"""The pool's faces: ``Pool`` and ``AsyncPool`` as a user calls them, against real peers.

The scheduler's rules are proved in ``test_pool_scheduler.py`` and the
bulk, 421, 452 and timeout cases against postfix and aiosmtpd in
``test_pool_real.py``; here: the API's contracts (building messages, the
session's settings, misuse, the results feed, closing and cancelling), and
the fail-fast rules seen from a real socket.
"""

from __future__ import annotations

import asyncio
import email.message
import logging
import os
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from aiosmtpd.controller import UnixSocketController
from aiosmtpd.lmtp import LMTP as AioLMTP

from smtp_core import LocalProtocolError
from smtpclient.pool import (
    AsyncPool,
    Message,
    MessageResult,
    Policy,
    Pool,
    PoolClosed,
    Session,
    message_from,
)
from tests._postfix import free_port
from tests.servers import AiosmtpdServer, _Handler
from transports import Timeouts
from transports.sync import SyncDriver, connect_driver

Runner = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]


def run_asyncio(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


def run_trio(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    trio.run(main)


ASYNC_WORLDS = [pytest.param(run_asyncio, id="asyncio"), pytest.param(run_trio, id="trio")]


def plain(server: AiosmtpdServer, **fields: Any) -> Session:
    return Session(
        host=server.host, port=server.port, tls="none", local_hostname="client.test", **fields
    )


def note(n: int, *recipients: str) -> Message:
    to = recipients or (f"user{n}@example.test",)
    return Message("sender@example.test", to, f"Subject: {n}\r\n\r\nbody {n}\r\n".encode(), key=n)


def status(result: MessageResult) -> str:
    return result.status


# -- building messages ---------------------------------------------------------------


def test_message_from_an_email_message_reads_the_envelope_and_drops_bcc() -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "Ann <ann@example.test>"
    msg["To"] = "bob@example.test"
    msg["Bcc"] = "hidden@example.test"
    msg.set_content("hello")
    built = message_from(msg, key="k1")
    assert built.sender == "ann@example.test"
    assert built.recipients == ("bob@example.test", "hidden@example.test")
    assert b"hidden@example.test" not in built.content
    assert b"Bcc" not in built.content
    assert built.mail_params == ()
    assert built.key == "k1"


def test_message_from_asks_for_smtputf8_when_an_address_needs_it() -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "jürgen@example.test"
    msg["To"] = "bob@example.test"
    msg.set_content("hi")
    assert message_from(msg).mail_params == ("SMTPUTF8",)


def test_message_from_bytes_needs_an_envelope() -> None:
    with pytest.raises(ValueError, match="no sender"):
        message_from(b"Subject: x\r\n\r\n", recipients=["a@example.test"])
    with pytest.raises(ValueError, match="no recipients"):
        message_from(b"Subject: x\r\n\r\n", sender="a@example.test")
    built = message_from(b"x", sender="a@example.test", recipients=["b@example.test"])
    assert (built.sender, built.recipients, built.content) == (
        "a@example.test",
        ("b@example.test",),
        b"x",
    )


def test_message_checks_its_fields() -> None:
    with pytest.raises(TypeError, match="not one str"):
        Message("a@example.test", "b@example.test", b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one recipient"):
        Message("a@example.test", (), b"x")
    with pytest.raises(TypeError, match="bytes"):
        Message("a@example.test", ("b@example.test",), "text")  # type: ignore[arg-type]
    listed = Message("a@example.test", ["b@example.test"], b"x")  # type: ignore[arg-type]
    assert listed.recipients == ("b@example.test",)


# -- the session's settings -----------------------------------------------------------


def test_session_refuses_what_a_pool_cannot_keep() -> None:
    with pytest.raises(ValueError, match="tls must be"):
        Session(tls="starttls")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no total"):
        Session(timeouts=Timeouts(total=30))
    with pytest.raises(ValueError, match="needs a username"):
        Session(password="secret")


def test_session_ports_and_policies() -> None:
    assert Session().target_port == 25
    assert Session(tls="implicit").target_port == 465
    assert Session(port=2525, tls="implicit").target_port == 2525
    implicit = Session(tls="implicit").connection()
    assert implicit.tls_active
    assert implicit.tls_policy == "required"
    assert Session(tls="none").context is None
    shared = Session(tls="required")
    assert shared.context is shared.context  # one CA store load for the whole pool


# -- the blocking pool ----------------------------------------------------------------


def test_pool_sends_and_reports_every_message_once() -> None:
    seen: list[MessageResult] = []
    before = set(threading.enumerate())
    with AiosmtpdServer() as server:
        with Pool(plain(server), Policy(max_connections=3), on_result=seen.append) as pool:
            futures = [pool.submit(note(n)) for n in range(30)]
            single = pool.send(note(99))
        assert sorted(int(m.content.split(b" ")[-1]) for m in server.messages) == [*range(30), 99]
    assert single.status == "accepted"
    assert [f.result().message.key for f in futures] == list(range(30))
    assert sorted(r.message.key for r in seen) == [*range(30), 99]  # type: ignore[type-var]
    # A set, not a count: a thread an earlier test left winding down may end
    # meanwhile; a connection's thread ends just after reporting its Close.
    deadline = time.monotonic() + 2.0
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before, threading.enumerate()


def test_pool_reports_refused_recipients_with_the_reply() -> None:
    with AiosmtpdServer() as server, Pool(plain(server)) as pool:
        result = pool.send(note(1, "ok@example.test", "reject-me@example.test"))
    assert status(result) == "partial"
    assert result.accepted == ("ok@example.test",)
    refused = result.failed["reject-me@example.test"]
    assert refused.status == "refused"
    assert refused.reply is not None
    assert refused.reply.code == 550


def test_pool_on_result_errors_are_logged_and_the_pool_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(result: MessageResult) -> None:
        raise RuntimeError("callback bug")

    with AiosmtpdServer() as server, caplog.at_level(logging.ERROR, "smtpclient.pool"):
        with Pool(plain(server), on_result=broken) as pool:
            results = list(pool.send_many(note(n) for n in range(5)))
    assert [r.status for r in results] == ["accepted"] * 5
    assert caplog.text.count("on_result raised") == 5


def test_pool_refuses_misuse() -> None:
    with AiosmtpdServer() as server, Pool(plain(server)) as pool:
        message = note(1)
        pool.submit(message)
        with pytest.raises(ValueError, match="in the pool already"):
            pool.submit(message)
    with pytest.raises(PoolClosed):
        pool.submit(note(2))


def test_pool_left_by_an_exception_ends_waiting_messages_as_errors() -> None:
    with AiosmtpdServer() as server:
        pool = Pool(plain(server), Policy(max_connections=1, rate_limit=1, rate_interval=60))
        with pytest.raises(KeyboardInterrupt), pool:
            futures = [pool.submit(note(n)) for n in range(3)]
            futures[0].result(timeout=10)  # the rate limit lets one through, then waits 60 s
            raise KeyboardInterrupt
        assert len(server.messages) == 1
    results = [f.result(timeout=10) for f in futures]
    assert results[0].status == "accepted"
    assert [r.status for r in results[1:]] == ["error", "error"]
    assert isinstance(results[1].outcomes[0].error, PoolClosed)


def test_pool_uses_a_custom_connect() -> None:
    made: list[SyncDriver] = []

    def connect(session: Session) -> SyncDriver:
        driver = connect_driver(session.host, session.target_port, **session.connect_arguments())
        made.append(driver)
        return driver

    with AiosmtpdServer() as server, Pool(plain(server), connect=connect) as pool:
        assert pool.send(note(1)).status == "accepted"
    assert len(made) == 1


class CountingListener:
    """A loopback port that counts connections, and closes each at once."""

    def __init__(self) -> None:
        self.count = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)  # accept() in a thread does not wake when the socket closes
        self._stop = threading.Event()
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.count += 1
            conn.sendall(b"554 5.3.2 not today\r\n")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def test_pool_fails_fast_on_a_permanent_refusal_at_the_greeting() -> None:
    """A 554 greeting (RFC 5321 §3.1) with no other connection alive ends every
    waiting message at once, as an error: the first connections (at most
    max_connections, opened together), not one per message or per try."""
    listener = CountingListener()
    try:
        session = Session(host="127.0.0.1", port=listener.port, tls="none", local_hostname="c.test")
        with Pool(session, Policy(max_connections=4)) as pool:
            results = list(pool.send_many(note(n) for n in range(50)))
    finally:
        listener.close()
    assert {r.status for r in results} == {"error"}
    assert 1 <= listener.count <= 4


def test_pool_credentials_never_go_in_the_clear() -> None:
    """AUTH over a connection without TLS is refused locally (a permanent
    error): nothing is sent, and the pool does not try again and again."""
    with AiosmtpdServer() as server:
        session = plain(server, username="user", password="secret")
        with Pool(session) as pool:
            results = list(pool.send_many(note(n) for n in range(10)))
        assert server.messages == []
    assert {r.status for r in results} == {"error"}
    assert isinstance(results[0].outcomes[0].error, LocalProtocolError)


def test_pool_defers_after_its_tries_when_nothing_listens() -> None:
    session = Session(host="127.0.0.1", port=free_port(), tls="none", local_hostname="c.test")
    policy = Policy(max_attempts=3, backoff=0.01)
    with Pool(session, policy) as pool:
        results = list(pool.send_many(note(n) for n in range(20)))
    assert {r.status for r in results} == {"deferred"}
    assert all(isinstance(r.outcomes[0].error, ConnectionRefusedError) for r in results)


# -- the asynchronous pool ------------------------------------------------------------


@pytest.mark.parametrize("run", ASYNC_WORLDS)
def test_async_pool_feed_gives_each_submitted_result_once(run: Runner) -> None:
    seen: list[object] = []

    async def main() -> None:
        async with AsyncPool(plain(server), Policy(max_connections=3)) as pool:
            for n in range(20):
                pool.submit(note(n))
            pool.finish()
            async for result in pool.results():
                seen.append(result.message.key)
        assert sorted(seen) == list(range(20))  # type: ignore[type-var]

    with AiosmtpdServer() as server:
        run(main)
        assert len(server.messages) == 20


@pytest.mark.parametrize("run", ASYNC_WORLDS)
def test_async_pool_send_and_send_many(run: Runner) -> None:
    async def main() -> None:
        async with AsyncPool(plain(server), Policy(max_connections=2)) as pool:
            single = await pool.send(note(0))
            assert single.status == "accepted"
            keys = [r.message.key async for r in pool.send_many(note(n) for n in range(1, 11))]
            assert sorted(keys) == list(range(1, 11))  # type: ignore[type-var]

    with AiosmtpdServer() as server:
        run(main)
        assert len(server.messages) == 11


@pytest.mark.parametrize("run", ASYNC_WORLDS)
def test_async_pool_refuses_use_outside_async_with(run: Runner) -> None:
    pool = AsyncPool(Session())

    async def main() -> None:
        with pytest.raises(RuntimeError, match="async with"):
            await pool.send(note(1))
        with pytest.raises(RuntimeError, match="async with"):
            pool.submit(note(1))

    run(main)


def test_async_pool_refuses_an_unknown_transport() -> None:
    with pytest.raises(ValueError, match="transport must be"):
        AsyncPool(Session(), transport="twisted")  # type: ignore[arg-type]


@pytest.mark.parametrize("run", ASYNC_WORLDS)
def test_async_pool_fails_fast_on_a_permanent_refusal(run: Runner) -> None:
    listener = CountingListener()
    session = Session(host="127.0.0.1", port=listener.port, tls="none", local_hostname="c.test")

    async def main() -> None:
        async with AsyncPool(session, Policy(max_connections=4)) as pool:
            results = [r async for r in pool.send_many(note(n) for n in range(30))]
        assert {r.status for r in results} == {"error"}

    try:
        run(main)
    finally:
        listener.close()
    assert 1 <= listener.count <= 4


def test_docs_pool_example_runs() -> None:
    """The example in docs/pool.md, as written, against aiosmtpd."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "pool.md").read_text("utf-8")
    source = re.findall(r"```python\n(.*?)```", text, re.DOTALL)[0]
    namespace: dict[str, Any] = {}
    exec(compile(source, "docs/pool.md", "exec"), namespace)
    with AiosmtpdServer() as server:
        asyncio.run(namespace["main"](server.host, server.port))
        assert sorted(m.rcpt_tos[0] for m in server.messages) == sorted(
            f"reader{n}@example.net" for n in range(20)
        )


def test_pool_logs_sessions_and_results_that_were_not_all_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with AiosmtpdServer() as server, caplog.at_level(logging.DEBUG, "smtpclient.pool"):
        with Pool(plain(server)) as pool:
            pool.send(note(1, "ok@example.test", "reject-me@example.test"))
            pool.send(note(2))
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "smtpclient.pool"]
    assert ("INFO", "connection 0: session open") in records
    assert ("INFO", "message 1: partial {'reject-me@example.test': 'refused'}") in records
    assert ("DEBUG", "message 2: accepted ") in records
    assert ("DEBUG", "connection 0: closed after QUIT") in records


def test_pool_logs_a_session_that_would_not_open(caplog: pytest.LogCaptureFixture) -> None:
    listener = CountingListener()
    session = Session(host="127.0.0.1", port=listener.port, tls="none", local_hostname="c.test")
    try:
        with caplog.at_level(logging.INFO, "smtpclient.pool"), Pool(session) as pool:
            pool.send(note(1))
    finally:
        listener.close()
    expected = "connection 0: could not open the session: the greeting drew 554 '5.3.2 not today'"
    assert expected in caplog.text


class _UnixLMTP(UnixSocketController):
    def factory(self) -> AioLMTP:
        return AioLMTP(self.handler, **self.SMTP_kwargs)


@pytest.mark.parametrize("world", ["blocking", "asyncio", "trio"])
def test_pool_speaks_lmtp_over_a_unix_socket(tmp_path: Path, world: str) -> None:
    """LMTP's verdict per recipient (RFC 2033 §4.2) settles each recipient on its own."""
    handler = _Handler(lmtp=True)
    path = str(tmp_path / "lmtp.sock")
    session = Session(path=path, tls="none", lmtp=True, local_hostname="c.test")
    messages = [note(n, f"a{n}@x.test", f"reject{n}@x.test") for n in range(6)]
    controller = _UnixLMTP(handler, unix_socket=path, decode_data=False)
    controller.start()
    try:
        if world == "blocking":
            with Pool(session, Policy(max_connections=2)) as pool:
                results = list(pool.send_many(messages))
        else:

            async def main() -> list[MessageResult]:
                async with AsyncPool(session, Policy(max_connections=2)) as pool:
                    return [r async for r in pool.send_many(messages)]

            results = asyncio.run(main()) if world == "asyncio" else trio.run(main)
    finally:
        controller.stop()
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == [f"a{n}@x.test" for n in range(6)]
    for result in results:
        assert result.accepted == (f"a{result.message.key}@x.test",)
        assert [o.status for o in result.outcomes] == ["accepted", "refused"]


def test_session_on_a_unix_socket_takes_no_tls() -> None:
    with pytest.raises(ValueError, match="no TLS"):
        Session(path="/run/lmtp.sock")


def test_send_many_keeps_at_most_window_messages_in_the_pool() -> None:
    taken = 0

    def outbox() -> Iterator[Message]:
        nonlocal taken
        for n in range(40):
            taken += 1
            yield note(n)

    with AiosmtpdServer() as server, Pool(plain(server)) as pool:
        seen = 0
        for _ in pool.send_many(outbox(), window=5):
            seen += 1
            assert taken - seen <= 5  # never more than 5 taken and not yet answered
        with pytest.raises(ValueError, match="window"):
            next(pool.send_many([note(99)], window=0))
    assert seen == 40


@pytest.mark.parametrize("run", ASYNC_WORLDS)
def test_async_send_many_keeps_at_most_window_messages_in_the_pool(run: Runner) -> None:
    taken = 0

    def outbox() -> Iterator[Message]:
        nonlocal taken
        for n in range(40):
            taken += 1
            yield note(n)

    async def main() -> None:
        seen = 0
        async with AsyncPool(plain(server)) as pool:
            async for _ in pool.send_many(outbox(), window=5):
                seen += 1
                assert taken - seen <= 5
        assert seen == 40

    with AiosmtpdServer() as server:
        run(main)


def test_pool_futures_cannot_be_cancelled_one_by_one() -> None:
    """A future is running from the start: cancel() says False and the pool goes on."""
    with AiosmtpdServer() as server, Pool(plain(server)) as pool:
        future = pool.submit(note(1))
        assert not future.cancel()
        assert pool.send(note(2)).status == "accepted"
        assert future.result(timeout=10).status == "accepted"


def test_pool_made_before_a_fork_refuses_use_in_the_child() -> None:
    pool = Pool(Session())
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads (the
        # suite's servers); the child only calls submit() and leaves.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report what submit did, and leave at once
        try:
            pool.submit(note(1))
            os.write(write, b"sent")
        except RuntimeError as exc:
            os.write(write, str(exc).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as child:
        assert child.read() == b"this Pool was made in another process: make one after the fork"
    pool.close()
