"""The facade's ways to reach a server: Unix sockets (LMTP), IPv6, a source address."""

from __future__ import annotations

import base64
import logging
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP as AioLMTP

import smtpclient
from tests._postfix import free_port
from tests.servers import (
    AUTH_PASSWORD,
    AUTH_USER,
    ContentKeeper,
    password_authenticator,
    running_controller,
)


class _Keep:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        if isinstance(server, AioLMTP):
            return "\r\n".join(f"250 2.0.0 <{r}> ok" for r in envelope.rcpt_tos)
        return "250 2.0.0 ok"


class _UnixLMTP(UnixSocketController):
    def factory(self) -> AioLMTP:
        return AioLMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def unix_lmtp() -> Iterator[tuple[str, _Keep]]:
    handler = _Keep()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "lmtp.sock")
        controller = _UnixLMTP(handler, unix_socket=path)
        controller.start()
        try:
            yield path, handler
        finally:
            controller.stop()


def test_lmtp_over_a_unix_socket(unix_lmtp: tuple[str, _Keep]) -> None:
    path, handler = unix_lmtp
    with smtpclient.LMTP(path, timeout=10) as lmtp:
        refused = lmtp.sendmail("a@client.test", ["x@example.test", "y@example.test"], b"hi\n")
        assert refused == {}
        assert set(lmtp.lmtp_replies) == {"x@example.test", "y@example.test"}
    assert handler.envelopes == [("a@client.test", ["x@example.test", "y@example.test"], b"hi\r\n")]


def test_lmtp_unix_socket_missing() -> None:
    with pytest.raises(FileNotFoundError):
        smtpclient.LMTP("/nonexistent/lmtp.sock", timeout=5)


def test_ipv6_loopback() -> None:
    handler = _Keep()
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="::1", port=port)
    controller.start()
    try:
        with smtpclient.SMTP("::1", controller.port, timeout=10) as smtp:
            assert smtp.sock is not None
            assert smtp.sock.family == socket.AF_INET6
            assert smtp.sendmail("a@client.test", ["b@example.test"], b"v6\n") == {}
    finally:
        controller.stop()
    assert handler.envelopes[0][2] == b"v6\r\n"


def test_source_address_is_bound() -> None:
    handler = _Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    source_port = free_port()
    try:
        with smtpclient.SMTP(
            "127.0.0.1", controller.port, timeout=10, source_address=("127.0.0.1", source_port)
        ) as smtp:
            assert smtp.sock is not None
            assert smtp.sock.getsockname() == ("127.0.0.1", source_port)
            assert smtp.noop()[0] == 250
    finally:
        controller.stop()


def test_host_with_port_suffix_and_bad_port() -> None:
    handler = _Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        smtp = smtpclient.SMTP(timeout=10)
        assert smtp.connect(f"127.0.0.1:{controller.port}")[0] == 220
        smtp.quit()
        with pytest.raises(OSError, match="nonnumeric port"):
            smtpclient.SMTP("127.0.0.1:smtp", timeout=10)
    finally:
        controller.stop()


def test_facade_logs_the_transcript_with_auth_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpclient")
    with running_controller(
        ContentKeeper(), authenticator=password_authenticator, auth_require_tls=False
    ) as controller:
        with smtpclient.SMTP("127.0.0.1", controller.port, timeout=10) as smtp:
            assert smtp.login(AUTH_USER, AUTH_PASSWORD)[0] == 235
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "smtpclient.transcript")
    assert "C: b'ehlo " in text
    assert "<redacted AUTH payload" in text
    assert "auth PLAIN" in text or "AUTH PLAIN" in text
    assert base64.b64encode(AUTH_PASSWORD.encode()).decode() not in text
    plain = b"\0" + AUTH_USER.encode() + b"\0" + AUTH_PASSWORD.encode()
    assert base64.b64encode(plain).decode() not in text
