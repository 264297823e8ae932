"""The asyncio face beyond aiosmtplib's examples: every world, concurrency, the troubles
aiosmtplib's users report, and what the face adds (PIPELINING, LMTP, timeouts, safety)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
import trustme
from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP as AioLMTP

import smtpclient.aio as aiosmtplib
from smtp_core import Timeouts
from smtpclient.aio._world import current_world
from tests._postfix import TEST_DOMAIN, PostfixServer, free_port
from tests.proxies import CoalescingProxy, ProxyKind
from tests.servers import (
    AUTH_PASSWORD,
    AUTH_USER,
    CLOSE,
    AiosmtpdServer,
    ContentKeeper,
    ScriptedServer,
    Step,
    _Handler,
    password_authenticator,
    running_controller,
    server_tls_context,
)

Main = Callable[[], Awaitable[None]]


def _on_asyncio(main: Main) -> None:
    async def run() -> None:
        await main()

    asyncio.run(run())


RUNNERS: dict[str, Callable[[Main], None]] = {
    "asyncio": _on_asyncio,
    "trio": trio.run,
    "anyio-asyncio": lambda main: anyio.run(main, backend="asyncio"),
    "anyio-trio": lambda main: anyio.run(main, backend="trio"),
}

MESSAGE = "Subject: face\n\nhello\n.dot\n"


@pytest.mark.parametrize("runner", RUNNERS, ids=str)
def test_the_same_api_in_every_world(runner: str, aiosmtpd_server: AiosmtpdServer) -> None:
    async def main() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=aiosmtpd_server.port) as smtp:
            errors, text = await smtp.sendmail("a@c.test", ["b@x.test", "reject@x.test"], MESSAGE)
            assert text == "2.0.0 OK queued"
            assert errors["reject@x.test"].code == 550
            assert (await smtp.noop()).code == 250

    RUNNERS[runner](main)
    [received] = aiosmtpd_server.messages
    assert received.content == b"Subject: face\r\n\r\nhello\r\n.dot\r\n"


class Echo:
    """VRFY answers with the address asked: a reply that says which command drew it."""

    async def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
        await asyncio.sleep(0.001 * (hash(address) % 5))
        return f"250 <{address}>"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return f"250 {envelope.rcpt_tos[0]}"


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_tasks_sharing_one_client_never_get_each_others_replies(runner: str) -> None:
    with running_controller(Echo()) as controller:
        answers: dict[str, str] = {}

        async def main() -> None:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=controller.port)
            await smtp.connect()

            async def ask(index: int) -> None:
                address = f"user{index}@x.test"
                answers[address] = (await smtp.vrfy(address)).message
                _, text = await smtp.sendmail("a@c.test", [address], "x\n")
                answers[f"data {address}"] = text

            if runner == "trio":
                async with trio.open_nursery() as nursery:
                    for index in range(20):
                        nursery.start_soon(ask, index)
            else:
                await asyncio.gather(*(ask(index) for index in range(20)))
            await smtp.quit()

        RUNNERS[runner](main)
    for index in range(20):
        assert answers[f"user{index}@x.test"] == f"<user{index}@x.test>"
        assert answers[f"data user{index}@x.test"] == f"user{index}@x.test"


def test_connect_after_the_servers_idle_timeout_reconnects(aiosmtpd_server: AiosmtpdServer) -> None:
    idle = Controller(ContentKeeper(), hostname="127.0.0.1", port=free_port(), timeout=0.2)
    idle.start()
    try:

        async def main() -> None:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=idle.port, timeout=5)
            await smtp.connect()
            await asyncio.sleep(0.6)  # the server says 421 and closes
            started = time.monotonic()
            with pytest.raises(aiosmtplib.SMTPServerDisconnected):
                await smtp.noop()
            assert not smtp.is_connected
            await smtp.connect()  # neither hangs nor says "already connected"
            assert (await smtp.noop()).code == 250
            await smtp.quit()
            assert time.monotonic() - started < 3

        _on_asyncio(main)
    finally:
        idle.stop()


def test_quit_does_not_hang_on_a_tls_close_without_close_notify(ca: trustme.CA) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    context = server_tls_context(ca)

    def serve() -> None:
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as tls:
            tls.sendall(b"220 ragged.test ESMTP\r\n")
            tls.recv(1024)  # EHLO
            tls.sendall(b"250 ragged.test\r\n")
            tls.recv(1024)  # QUIT
            tls.sendall(b"221 bye\r\n")
            # SSLSocket.shutdown drops TLS and shuts TCP down: no close_notify is sent.
            tls.shutdown(socket.SHUT_RDWR)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def main() -> None:
        smtp = aiosmtplib.SMTP(
            hostname="localhost", port=port, use_tls=True, tls_context=client_context, timeout=5
        )
        await smtp.connect()
        await smtp.ehlo()
        started = time.monotonic()
        assert (await smtp.quit()).code == 221
        assert time.monotonic() - started < 1

    try:
        _on_asyncio(main)
    finally:
        thread.join(5)
        listener.close()


def test_getfqdn_runs_off_the_event_loop(
    aiosmtpd_server: AiosmtpdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []

    def slow_fqdn(name: str = "") -> str:
        threads.append(threading.current_thread())
        time.sleep(0.3)
        return "slow.client.test"

    monkeypatch.setattr(socket, "getfqdn", slow_fqdn)
    ticks = 0

    async def main() -> None:
        nonlocal ticks

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.get_running_loop().create_task(ticker())
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=aiosmtpd_server.port) as smtp:
            assert smtp.local_hostname == "slow.client.test"
        task.cancel()

    _on_asyncio(main)
    assert threads and threads[0] is not threading.main_thread()
    assert ticks >= 10  # the loop kept running while the name was looked up


def test_pipelining_one_write_for_the_envelope(postfix_server: PostfixServer) -> None:
    rcpts = [f"pipe{index}-{time.time_ns()}@{TEST_DOMAIN}" for index in range(3)]
    writes: list[bytes] = []

    async def main() -> None:
        smtp = aiosmtplib.SMTP(hostname=postfix_server.host, port=postfix_server.port)
        await smtp.connect()
        assert smtp._driver is not None
        smtp._driver.trace = lambda direction, data: (
            writes.append(data) if direction == "send" else None
        )
        errors, _ = await smtp.sendmail("a@client.test", rcpts, MESSAGE)
        assert errors == {}
        assert smtp.last_transaction is not None
        assert [r.status for r in smtp.last_transaction.recipients] == ["accepted"] * 3
        await smtp.quit()

    _on_asyncio(main)
    envelope = [w for w in writes if w.startswith(b"MAIL FROM:")]
    assert len(envelope) == 1
    assert envelope[0].count(b"RCPT TO:") == 3 and envelope[0].endswith(b"DATA\r\n")


def test_credentials_are_not_sent_in_the_clear_by_default() -> None:
    keeper = ContentKeeper()
    with running_controller(
        keeper, authenticator=password_authenticator, auth_require_tls=False
    ) as controller:

        async def main() -> None:
            # start_tls=None: the server offers no STARTTLS (as if an attacker stripped it)
            with pytest.raises(aiosmtplib.SMTPException, match="in the clear"):
                await aiosmtplib.send(
                    "x",
                    sender="a@c.test",
                    recipients=["b@x.test"],
                    hostname="127.0.0.1",
                    port=controller.port,
                    username=AUTH_USER,
                    password=AUTH_PASSWORD,
                )
            errors, _ = await aiosmtplib.send(
                "x",
                sender="a@c.test",
                recipients=["b@x.test"],
                hostname="127.0.0.1",
                port=controller.port,
                username=AUTH_USER,
                password=AUTH_PASSWORD,
                auth_in_clear=True,
            )
            assert errors == {}

        _on_asyncio(main)
    assert len(keeper.contents) == 1


def test_silence_after_the_final_dot_is_outcome_unknown() -> None:
    script: list[Step] = [
        b"220 scripted.test ESMTP\r\n",
        ("expect", 1),
        b"250 scripted.test\r\n",
        ("expect", 1),
        b"250 ok\r\n",
        ("expect", 1),
        b"250 ok\r\n",
        ("expect", 1),
        b"354 go\r\n",
        ("expect", 2),
        ("sleep", 900),
    ]
    with ScriptedServer(script) as server:

        async def main() -> None:
            timeouts = Timeouts.every(5.0)
            smtp = aiosmtplib.SMTP(
                hostname=server.host,
                port=server.port,
                timeouts=dataclasses.replace(timeouts, data_end=0.3),
            )
            await smtp.connect()
            with pytest.raises(aiosmtplib.SMTPOutcomeUnknownError) as raised:
                await smtp.sendmail("a@c.test", ["b@x.test"], "hi\n")
            assert raised.value.unknown == ("b@x.test",)
            assert not smtp.is_connected

        _on_asyncio(main)


def test_a_timeout_names_its_stage_and_is_aiosmtplibs_class() -> None:
    script: list[Step] = [b"220 scripted.test ESMTP\r\n", ("expect", 1), ("sleep", 900), CLOSE]
    with ScriptedServer(script) as server:

        async def main() -> None:
            smtp = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=0.3)
            with pytest.raises(aiosmtplib.SMTPReadTimeoutError) as raised:
                await smtp.connect()  # EHLO is never answered
            assert isinstance(raised.value, aiosmtplib.SMTPStageTimeoutError)
            assert raised.value.stage == "command"

        _on_asyncio(main)


@pytest.mark.parametrize("kind", ["socks5", "socks4a", "http"])
def test_through_a_proxy_that_sends_the_greeting_with_its_reply(
    aiosmtpd_server: AiosmtpdServer, kind: ProxyKind
) -> None:
    with CoalescingProxy(kind) as proxy:

        async def main() -> None:
            smtp = aiosmtplib.SMTP(
                hostname=aiosmtpd_server.host, port=aiosmtpd_server.port, proxy=proxy.url
            )
            greeting = await smtp.connect()
            assert greeting.code == 220
            errors, _ = await smtp.sendmail("a@c.test", ["b@x.test"], MESSAGE)
            assert errors == {}
            await smtp.quit()

        _on_asyncio(main)
        assert any(b"220 " in sent for sent in proxy.sent)
    assert len(aiosmtpd_server.messages) == 1


def test_the_final_dot_waits_at_least_the_rfc_ten_minutes() -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", timeout=60)
    timeouts = smtp._stage_timeouts()
    assert (timeouts.mail, timeouts.data_end) == (60, 600)
    assert smtp._stage_timeouts(1200).data_end == 1200
    assert smtp._stage_timeouts(None).data_end is None


def test_contexts_it_builds_refuse_tls_below_1_2() -> None:
    async def main() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1")
        context = await smtp._tls_context(current_world())
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
        assert context.check_hostname
        assert context.verify_mode == ssl.CERT_REQUIRED

    _on_asyncio(main)


def test_nul_in_plain_credentials_is_refused_before_any_byte() -> None:
    with running_controller(
        ContentKeeper(), authenticator=password_authenticator, auth_require_tls=False
    ) as controller:

        async def main() -> None:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=controller.port, auth_in_clear=True)
            await smtp.connect()
            with pytest.raises(ValueError, match="NUL"):
                await smtp.auth_plain("user\0admin", "secret")
            assert (await smtp.noop()).code == 250  # nothing was sent: still in step
            await smtp.quit()

        _on_asyncio(main)


def test_a_line_break_inside_an_address_is_refused_before_any_byte() -> None:
    # aiosmtplib mails "crlf\r\nrset@x.test" to crlfrset@x.test (parseaddr joins the
    # pieces); a break at either end is stripped, as there.
    keeper = ContentKeeper()
    with running_controller(keeper) as controller:

        async def main() -> None:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=controller.port)
            await smtp.connect()
            with pytest.raises(ValueError, match="line break"):
                await smtp.mail("crlf\r\nrset@x.test")
            assert (await smtp.mail("a@x.test\n")).code == 250
            with pytest.raises(ValueError, match="line break"):
                await smtp.rcpt("b@x.test\rRCPT TO:<c@x.test>")
            with pytest.raises(ValueError, match="line break"):
                await smtp.sendmail("a@x.test", ["crlf\r\nrset@x.test"], "Subject: x\n\nx\n")
            assert (await smtp.rcpt("b@x.test")).code == 250  # nothing was sent: in step
            await smtp.quit()

        _on_asyncio(main)
    assert keeper.contents == []


def test_bytes_after_the_starttls_220_are_refused() -> None:
    script: list[Step] = [
        b"220 scripted.test ESMTP\r\n",
        ("expect", 1),
        b"250-scripted.test\r\n250 STARTTLS\r\n",
        ("expect", 1),
        b"220 go ahead\r\n250 injected\r\n",
        ("sleep", 300),
    ]
    with ScriptedServer(script) as server:

        async def main() -> None:
            smtp = aiosmtplib.SMTP(hostname=server.host, port=server.port, start_tls=False)
            await smtp.connect()
            with pytest.raises(aiosmtplib.SMTPResponseException) as raised:
                await smtp.starttls()
            assert raised.value.code == -1
            assert not smtp.is_connected

        _on_asyncio(main)


def test_chunking_and_per_recipient_results(postfix_server: PostfixServer) -> None:
    rcpts = [f"bdat{index}-{time.time_ns()}@{TEST_DOMAIN}" for index in range(2)]
    unknown = f"nobody@{time.time_ns()}.invalid"
    writes: list[bytes] = []

    async def main() -> None:
        smtp = aiosmtplib.SMTP(
            hostname=postfix_server.host, port=postfix_server.port, chunking=True
        )
        await smtp.connect()
        assert smtp._driver is not None

        def record(direction: str, data: bytes) -> None:
            if direction == "send":
                writes.append(data)

        smtp._driver.trace = record
        errors, _ = await smtp.sendmail("a@client.test", [*rcpts, unknown], MESSAGE)
        assert list(errors) == [unknown]
        assert smtp.last_transaction is not None
        statuses = [r.status for r in smtp.last_transaction.recipients]
        assert statuses[:2] == ["accepted", "accepted"]
        assert statuses[2] in ("temporary", "permanent")
        await smtp.quit()

    _on_asyncio(main)
    assert any(b"BDAT " in w and b" LAST\r\n" in w for w in writes)
    assert not any(w.startswith(b"DATA") or b"\r\nDATA\r\n" in w for w in writes)
    for rcpt in rcpts:
        postfix_server.wait_for_messages(1, recipient=rcpt)


def test_lmtp_over_a_unix_socket(tmp_path: Path) -> None:
    handler = _Handler(lmtp=True)

    class LMTPController(UnixSocketController):
        def factory(self) -> AioLMTP:
            return AioLMTP(self.handler, **self.SMTP_kwargs)

    path = tmp_path / "lmtp.sock"
    controller = LMTPController(handler, unix_socket=str(path), decode_data=False)
    controller.start()
    try:

        async def main() -> None:
            async with aiosmtplib.SMTP(socket_path=str(path), lmtp=True) as smtp:
                errors, _ = await smtp.sendmail(
                    "a@c.test", ["one@x.test", "reject@x.test", "two@x.test"], MESSAGE
                )
                assert list(errors) == ["reject@x.test"]
                assert smtp.last_transaction is not None
                replies = [r.reply.text for r in smtp.last_transaction.recipients]
                assert "<two@x.test> delivered" in replies[2]

        _on_asyncio(main)
    finally:
        controller.stop()
    assert [m.rcpt_tos for m in handler.messages] == [["one@x.test", "two@x.test"]]
