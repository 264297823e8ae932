"""TLS through the engine's procedures and the blocking driver, against aiosmtpd."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme
from aiosmtpd.controller import Controller

from smtp_core import Connection, procedures
from tests.servers import ContentKeeper, running_controller, server_tls_context
from transports.sync import SyncDriver, connect


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[tuple[Controller, ContentKeeper]]:
    handler = ContentKeeper()
    with running_controller(
        handler,
        tls_context=server_tls_context(ca),
        require_starttls=True,
        server_hostname="localhost",
    ) as controller:
        yield controller, handler


def test_opportunistic_handshake_sends_inside_tls(
    tls_server: tuple[Controller, ContentKeeper], ca: trustme.CA
) -> None:
    controller, handler = tls_server
    context = ssl.create_default_context()
    ca.configure_trust(context)
    conn = Connection(tls_policy="required")
    driver = SyncDriver(
        connect("localhost", controller.port, timeout=10),
        ssl_context=context,
        server_hostname="localhost",
    )
    try:
        driver.run(procedures.handshake(conn, "client.test"))
        assert conn.tls_active
        assert isinstance(driver.sock, ssl.SSLSocket)
        result = driver.run(procedures.send_mail(conn, "a@client.test", ["b@x.test"], b"hi\n"))
        assert result.delivered
        driver.run(procedures.quit(conn))
    finally:
        driver.close()
    assert handler.contents == [b"hi\r\n"]


def test_untrusted_certificate_fails_the_handshake(
    tls_server: tuple[Controller, ContentKeeper],
) -> None:
    controller, _ = tls_server
    conn = Connection()
    driver = SyncDriver(
        connect("localhost", controller.port, timeout=10), server_hostname="localhost"
    )
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            driver.run(procedures.handshake(conn, "client.test"))
    finally:
        driver.close()
