"""One test body per behaviour, run in every I/O world: blocking, asyncio, trio, anyio on both.

Real servers where a user meets them (aiosmtpd in-process, postfix and its
smtp-sink started by the fixtures); a scripted server on a loopback socket
only for what no real server does on request (never answering, dropping
mid-DATA, 421 in the middle, silence after the final dot).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import socket
import ssl
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP as AioLMTP

from smtp_core import (
    Connection,
    LocalProtocolError,
    OutcomeUnknown,
    ServerDisconnected,
    Stage,
    StageTimeout,
    State,
    Timeouts,
    procedures,
)
from tests._postfix import TEST_DOMAIN, PostfixServer, SmtpSink, strip_trace_headers
from tests._postfix_tls import PostfixTlsAuthServer
from tests.drivers import WORLDS, World
from tests.proxies import CoalescingProxy, ProxyKind, running_proxy
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
from tests.stream_peers import two_address_resolver

pytestmark = pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.name)

MESSAGE = b"Subject: drivers\r\nFrom: <a@client.test>\r\n\r\n.leading dot\r\nbody\r\n"
SHORT = Timeouts.every(5.0)  # real servers answer at once; a hang fails fast


def _rcpt(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@{TEST_DOMAIN}"


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


# -- real servers -------------------------------------------------------------------------


def test_plain_send_to_aiosmtpd(world: World, aiosmtpd_server: AiosmtpdServer) -> None:
    async def body(world: World) -> None:
        conn = Connection(tls_policy="none")
        driver = await world.connect(aiosmtpd_server.host, aiosmtpd_server.port, timeouts=SHORT)
        try:
            await driver.run(procedures.handshake(conn, "client.test"))
            result = await driver.run(
                procedures.send_mail(conn, "a@client.test", ["b@x.test", "reject@x.test"], MESSAGE)
            )
            assert result.accepted == ("b@x.test",)
            assert result.refused["reject@x.test"].code == 550
            reply = await driver.run(procedures.quit(conn))
            assert reply is not None and reply.code == 221
        finally:
            await driver.aclose()

    world.run(body)
    [received] = aiosmtpd_server.messages
    assert received.rcpt_tos == ["b@x.test"]
    assert received.content == MESSAGE


def test_postfix_pipelining_chunking_smtputf8(world: World, postfix_server: PostfixServer) -> None:
    first, second, unknown = _rcpt("one"), _rcpt("two"), f"nobody@{uuid.uuid4().hex}.invalid"
    utf8 = _rcpt("utf8")
    message = "Subject: ünïcode\r\n\r\nhéllo\r\n".encode()
    postfix_server.clear_messages()

    async def body(world: World) -> None:
        conn = Connection(tls_policy="none")
        driver = await world.connect(postfix_server.host, postfix_server.port, timeouts=SHORT)
        try:
            await driver.run(procedures.handshake(conn, "client.test"))
            ext = conn.extensions
            assert ext.pipelining and ext.chunking and ext.smtputf8 and ext.eightbitmime
            result = await driver.run(
                procedures.send_mail(conn, "a@client.test", [first, unknown, second], MESSAGE)
            )
            assert result.accepted == (first, second)
            assert result.refused[unknown].code // 100 in (4, 5)
            result = await driver.run(
                procedures.send_mail(
                    conn,
                    "ä@client.test",
                    [utf8],
                    message,
                    mail_params=["SMTPUTF8", "BODY=8BITMIME"],
                    chunking=True,
                )
            )
            assert result.accepted == (utf8,)
            await driver.run(procedures.quit(conn))
        finally:
            await driver.aclose()

    world.run(body)
    got = postfix_server.wait_for_messages(3, timeout=30)
    bodies = sorted(strip_trace_headers(m) for m in got)
    assert bodies.count(MESSAGE) == 2
    assert message in bodies


def test_starttls_and_auth_with_trustme(world: World, ca: trustme.CA) -> None:
    keeper = ContentKeeper()
    with running_controller(
        keeper,
        tls_context=server_tls_context(ca),
        require_starttls=True,
        authenticator=password_authenticator,
        server_hostname="tls.test",
    ) as controller:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="required")
            driver = await world.connect(
                "127.0.0.1",
                controller.port,
                ssl_context=trusting(ca),
                server_hostname="localhost",
                timeouts=SHORT,
            )
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                assert conn.tls_active
                reply = await driver.run(procedures.authenticate(conn, AUTH_USER, AUTH_PASSWORD))
                assert reply.code == 235
                result = await driver.run(
                    procedures.send_mail(conn, "a@client.test", ["b@x.test"], MESSAGE)
                )
                assert result.delivered
                await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        world.run(body)
    assert keeper.contents == [MESSAGE]


def test_implicit_tls(world: World, ca: trustme.CA) -> None:
    keeper = ContentKeeper()
    with running_controller(keeper, ssl_context=server_tls_context(ca)) as controller:

        async def body(world: World) -> None:
            conn = Connection(tls_active=True)
            driver = await world.connect(
                "127.0.0.1",
                controller.port,
                implicit_tls=True,
                ssl_context=trusting(ca),
                server_hostname="localhost",
                timeouts=SHORT,
            )
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                result = await driver.run(
                    procedures.send_mail(conn, "a@client.test", ["b@x.test"], MESSAGE)
                )
                assert result.delivered
                await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        world.run(body)
    assert keeper.contents == [MESSAGE]


@pytest.mark.parametrize("problem", ["untrusted", "wrong-host"])
def test_bad_certificate_refused_by_default(world: World, ca: trustme.CA, problem: str) -> None:
    keeper = ContentKeeper()
    with running_controller(keeper, tls_context=server_tls_context(ca)) as controller:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="required")
            # The default context trusts the system's CAs only: not trustme's.
            context = None if problem == "untrusted" else trusting(ca)
            name = "localhost" if problem == "untrusted" else "wrong.test"
            driver = await world.connect(
                "127.0.0.1",
                controller.port,
                ssl_context=context,
                server_hostname=name,
                timeouts=SHORT,
            )
            try:
                with pytest.raises(ssl.SSLCertVerificationError):
                    await driver.run(procedures.handshake(conn, "client.test"))
                assert conn.state is State.CLOSED
            finally:
                await driver.aclose()

        world.run(body)
    assert keeper.contents == []


def test_tls_required_and_no_starttls_sends_neither_credentials_nor_mail(world: World) -> None:
    script: list[Step] = [
        b"220 plain.test ESMTP\r\n",
        ("expect", 1),
        b"250-plain.test\r\n250 AUTH PLAIN LOGIN\r\n",
        ("expect", 1),
        b"221 bye\r\n",
    ]
    with ScriptedServer(script) as server:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="required")
            driver = await world.connect(server.host, server.port, timeouts=SHORT)
            try:
                with pytest.raises(LocalProtocolError, match="STARTTLS"):
                    await driver.run(procedures.handshake(conn, "client.test"))
                with pytest.raises(LocalProtocolError):
                    await driver.run(procedures.authenticate(conn, "user", "secret"))
                with pytest.raises(LocalProtocolError):
                    await driver.run(procedures.send_mail(conn, "a@c.test", ["b@x.test"], b"x"))
                await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        world.run(body)
    assert server.received == b"EHLO client.test\r\nQUIT\r\n"


def test_lmtp_over_a_unix_socket(world: World, tmp_path: Path) -> None:
    handler = _Handler(lmtp=True)

    class LMTPController(UnixSocketController):
        def factory(self) -> AioLMTP:
            return AioLMTP(self.handler, **self.SMTP_kwargs)

    path = tmp_path / "lmtp.sock"
    controller = LMTPController(handler, unix_socket=str(path), decode_data=False)
    controller.start()
    try:

        async def body(world: World) -> None:
            conn = Connection(lmtp=True, tls_policy="none")
            driver = await world.connect_unix(str(path), timeouts=SHORT)
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                result = await driver.run(
                    procedures.send_mail(
                        conn, "a@c.test", ["one@x.test", "reject@x.test", "two@x.test"], MESSAGE
                    )
                )
                assert [r.status for r in result.recipients] == [
                    "accepted",
                    "permanent",
                    "accepted",
                ]
                assert b"<two@x.test> delivered" in result.recipients[2].reply.lines[0]
                await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        world.run(body)
    finally:
        controller.stop()
    assert [m.rcpt_tos for m in handler.messages] == [["one@x.test", "two@x.test"]]


def test_twenty_mib_with_bounded_memory(world: World) -> None:
    size, piece = 20 * 1024 * 1024, 64 * 1024
    line = b"x" * 76 + b"\r\n"
    block = line * (piece // len(line))

    def content() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    with SmtpSink() as sink:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="none")
            driver = await world.connect(sink.host, sink.port, timeouts=SHORT)
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                tracemalloc.start()
                try:
                    result = await driver.run(
                        procedures.send_mail(conn, "a@client.test", ["b@x.test"], content())
                    )
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                assert result.delivered
                # The message is 20 MiB; what the client holds stays a few chunks.
                assert peak < 3 * 1024 * 1024, peak
                await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        world.run(body)


# -- scripted servers: what no real server does on request -------------------------------

GREETED: list[Step] = [
    b"220 scripted.test ESMTP\r\n",
    ("expect", 1),
    b"250-scripted.test\r\n250 8BITMIME\r\n",
]
TIGHT = Timeouts.every(0.3)
SILENT: list[Step] = [("expect", 1), ("sleep", 900)]  # reads a command, then says nothing
SEND = ("a@c.test", ["b@x.test"], b"hi\r\n")


@pytest.mark.parametrize(
    ("script", "stage"),
    [
        ([("sleep", 900)], Stage.GREETING),
        ([*GREETED, ("expect", 1), ("sleep", 900)], Stage.MAIL),
        ([*GREETED, ("expect", 1), b"250 ok\r\n", ("expect", 1), ("sleep", 900)], Stage.RCPT),
        (
            [*GREETED, ("expect", 1), b"250 ok\r\n", ("expect", 1), b"250 ok\r\n", *SILENT],
            Stage.DATA,
        ),
    ],
    ids=["greeting", "mail", "rcpt", "data"],
)
def test_silent_server_times_out_naming_the_stage(
    world: World, script: list[Step], stage: Stage
) -> None:
    with ScriptedServer(script) as server:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="none")
            driver = await world.connect(server.host, server.port, timeouts=TIGHT)
            try:
                with pytest.raises(StageTimeout) as raised:
                    await driver.run(procedures.handshake(conn, "client.test"))
                    await driver.run(procedures.send_mail(conn, *SEND))
                assert raised.value.stage is stage
                assert conn.state is State.CLOSED
                with pytest.raises(LocalProtocolError):
                    await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        world.run(body)


def test_silence_after_the_final_dot_is_outcome_unknown(world: World) -> None:
    script: list[Step] = [
        *GREETED,
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

        async def body(world: World) -> None:
            conn = Connection(tls_policy="none")
            timeouts = dataclasses.replace(Timeouts.every(5.0), data_end=0.3)
            driver = await world.connect(server.host, server.port, timeouts=timeouts)
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                with pytest.raises(OutcomeUnknown) as raised:
                    await driver.run(procedures.send_mail(conn, *SEND))
                assert isinstance(raised.value.cause, StageTimeout)
                assert raised.value.cause.stage is Stage.DATA_END
                assert raised.value.unknown == ("b@x.test",)
                assert conn.state is State.CLOSED
            finally:
                await driver.aclose()

        world.run(body)


def test_server_dropping_mid_data_is_a_failure_not_a_success(world: World) -> None:
    script: list[Step] = [
        *GREETED,
        ("expect", 1),
        b"250 ok\r\n",
        ("expect", 1),
        b"250 ok\r\n",
        ("expect", 1),
        b"354 go\r\n",
        ("expect", 100),
        CLOSE,
    ]
    content = (b"y" * 998 + b"\r\n") * 20_000  # 20 MB: far more than the socket buffers

    with ScriptedServer(script) as server:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="none")
            driver = await world.connect(server.host, server.port, timeouts=SHORT)
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                with pytest.raises((OSError, ServerDisconnected)) as raised:
                    await driver.run(procedures.send_mail(conn, "a@c.test", ["b@x.test"], content))
                # The end of data was never written whole: a plain failure.
                assert not isinstance(raised.value, OutcomeUnknown)
                assert conn.state is State.CLOSED
            finally:
                await driver.aclose()

        world.run(body)


def test_421_mid_session(world: World) -> None:
    script: list[Step] = [*GREETED, ("expect", 1), b"421 4.3.2 shutting down\r\n", CLOSE]
    with ScriptedServer(script) as server:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="none")
            driver = await world.connect(server.host, server.port, timeouts=SHORT)
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                result = await driver.run(
                    procedures.send_mail(conn, "a@c.test", ["b@x.test", "c@x.test"], b"hi\r\n")
                )
                assert result.mail_reply.code == 421
                assert [r.status for r in result.recipients] == ["temporary", "temporary"]
                assert not result.delivered
                assert conn.state is State.CLOSED
            finally:
                await driver.aclose()

        world.run(body)


def test_logging_redacts_auth_and_reports_tls(
    world: World, ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = ContentKeeper()
    with running_controller(
        keeper,
        tls_context=server_tls_context(ca),
        authenticator=password_authenticator,
        server_hostname="tls.test",
    ) as controller:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="required")
            driver = await world.connect(
                "127.0.0.1",
                controller.port,
                ssl_context=trusting(ca),
                server_hostname="localhost",
                timeouts=SHORT,
            )
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                await driver.run(procedures.authenticate(conn, AUTH_USER, AUTH_PASSWORD))
                await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        caplog.set_level(logging.DEBUG, logger="smtpclient")
        world.run(body)
    transcript = [r.getMessage() for r in caplog.records if r.name == "smtpclient.transcript"]
    facts = [r.getMessage() for r in caplog.records if r.name == "smtpclient.transport"]
    text = "\n".join(transcript)
    assert f"127.0.0.1:{controller.port} C: b'EHLO client.test\\r\\n'" in text
    assert "<redacted AUTH payload" in text
    secrets = [AUTH_PASSWORD.encode(), *_base64_forms(AUTH_USER, AUTH_PASSWORD)]
    assert not any(secret.decode(errors="replace") in text for secret in secrets)
    assert any(f.startswith("connected to 127.0.0.1:") for f in facts)
    assert any(f.startswith("TLS with localhost: TLSv1.") for f in facts)


def _base64_forms(user: str, password: str) -> list[bytes]:
    plain = b"\0" + user.encode() + b"\0" + password.encode()
    return [base64.b64encode(plain), base64.b64encode(password.encode())]


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_auth_against_postfix_with_dovecot(
    world: World, postfix_tls_auth_server: PostfixTlsAuthServer, tls: str
) -> None:
    server = postfix_tls_auth_server
    rcpt = _rcpt("auth")

    async def body(world: World) -> None:
        implicit = tls == "implicit"
        conn = Connection(tls_policy="required", tls_active=implicit)
        driver = await world.connect(
            server.host,
            server.smtps_port if implicit else server.port,
            implicit_tls=implicit,
            ssl_context=server.client_context(),
            server_hostname="localhost",
            timeouts=SHORT,
        )
        try:
            await driver.run(procedures.handshake(conn, "client.test"))
            assert conn.tls_active
            reply = await driver.run(procedures.authenticate(conn, AUTH_USER, AUTH_PASSWORD))
            assert reply.code == 235
            result = await driver.run(procedures.send_mail(conn, "a@client.test", [rcpt], MESSAGE))
            assert result.delivered
            await driver.run(procedures.quit(conn))
        finally:
            await driver.aclose()

    world.run(body)
    [raw] = server.wait_for_messages(1, recipient=rcpt)
    assert strip_trace_headers(raw) == MESSAGE


def test_ipv6_loopback(world: World) -> None:
    keeper = ContentKeeper()
    with socket.socket(socket.AF_INET6) as probe:  # a free port on ::1
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    controller = Controller(keeper, hostname="::1", port=port)
    controller.start()
    try:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="none")
            driver = await world.connect("::1", controller.port, timeouts=SHORT)
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                result = await driver.run(
                    procedures.send_mail(conn, "a@c.test", ["b@x.test"], MESSAGE)
                )
                assert result.delivered
                await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        world.run(body)
    finally:
        controller.stop()
    assert keeper.contents == [MESSAGE]


def test_every_address_of_a_name_is_tried(
    world: World, aiosmtpd_server: AiosmtpdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "multi.test" is ::1 (nobody listens there) and then 127.0.0.1 (aiosmtpd).
    monkeypatch.setattr(socket, "getaddrinfo", two_address_resolver(socket.getaddrinfo))

    async def body(world: World) -> None:
        conn = Connection(tls_policy="none")
        driver = await world.connect("multi.test", aiosmtpd_server.port, timeouts=SHORT)
        try:
            await driver.run(procedures.handshake(conn, "client.test"))
            await driver.run(procedures.quit(conn))
        finally:
            await driver.aclose()

    world.run(body)


@pytest.mark.parametrize("kind", ["socks5", "socks4a", "http"])
def test_greeting_in_the_same_read_as_the_proxys_reply_is_kept(
    world: World, aiosmtpd_server: AiosmtpdServer, kind: ProxyKind
) -> None:
    with CoalescingProxy(kind) as proxy:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="none")
            driver = await world.connect(
                aiosmtpd_server.host, aiosmtpd_server.port, proxy=proxy.url, timeouts=SHORT
            )
            try:
                greeting = await driver.run(procedures.greet(conn))
                assert greeting.code == 220
                await driver.run(procedures.hello(conn, "client.test"))
                result = await driver.run(
                    procedures.send_mail(conn, "a@c.test", ["b@x.test"], MESSAGE)
                )
                assert result.delivered
                await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        world.run(body)
        # The proxy really sent its reply and the greeting in one write.
        assert any(b"220 " in sent for sent in proxy.sent)
    assert [m.content for m in aiosmtpd_server.messages] == [MESSAGE]


@pytest.mark.parametrize("kind", ["socks5", "socks4a", "http"])
def test_through_a_real_proxy_with_starttls(world: World, ca: trustme.CA, kind: ProxyKind) -> None:
    keeper = ContentKeeper()
    with (
        running_controller(
            keeper, tls_context=server_tls_context(ca), require_starttls=True
        ) as controller,
        running_proxy(kind) as proxy,
    ):

        async def body(world: World) -> None:
            conn = Connection(tls_policy="required")
            driver = await world.connect(
                "127.0.0.1",
                controller.port,
                ssl_context=trusting(ca),
                server_hostname="localhost",
                proxy=proxy.url,
                timeouts=SHORT,
            )
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                assert conn.tls_active
                result = await driver.run(
                    procedures.send_mail(conn, "a@c.test", ["b@x.test"], MESSAGE)
                )
                assert result.delivered
                await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        world.run(body)
    assert keeper.contents == [MESSAGE]


class PeerRecorder(ContentKeeper):
    """Keeps each message and the address it came from."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.peers.append(session.peer[0])
        return await super().handle_DATA(server, session, envelope)


def test_source_address(world: World) -> None:
    recorder = PeerRecorder()
    with running_controller(recorder) as controller:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="none")
            driver = await world.connect(
                "127.0.0.1", controller.port, source_address=("127.0.0.2", 0), timeouts=SHORT
            )
            try:
                await driver.run(procedures.handshake(conn, "client.test"))
                await driver.run(procedures.send_mail(conn, "a@c.test", ["b@x.test"], MESSAGE))
                await driver.run(procedures.quit(conn))
            finally:
                await driver.aclose()

        world.run(body)
    assert recorder.peers == ["127.0.0.2"]


def test_the_overall_deadline_bounds_stages_that_each_have_time(world: World) -> None:
    # Every reply comes in 0.2 s, well inside its stage's 5 s; the whole
    # session may take 0.5 s.
    script: list[Step] = [
        ("sleep", 200),
        b"220 scripted.test ESMTP\r\n",
        ("expect", 1),
        ("sleep", 200),
        b"250 scripted.test\r\n",
        ("expect", 1),
        ("sleep", 200),
        b"250 ok\r\n",
        ("expect", 1),
        ("sleep", 200),
        b"250 ok\r\n",
    ]
    with ScriptedServer(script) as server:

        async def body(world: World) -> None:
            conn = Connection(tls_policy="none")
            timeouts = dataclasses.replace(SHORT, total=0.5)
            driver = await world.connect(server.host, server.port, timeouts=timeouts)
            try:
                with pytest.raises(StageTimeout) as raised:
                    await driver.run(procedures.handshake(conn, "client.test"))
                    await driver.run(procedures.send_mail(conn, *SEND))
                assert raised.value.overall
                assert raised.value.stage in (Stage.MAIL, Stage.RCPT)
                assert conn.state is State.CLOSED
            finally:
                await driver.aclose()

        world.run(body)
