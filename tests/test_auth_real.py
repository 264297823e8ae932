"""AUTH against aiosmtpd: the facade's login() and the engine's authenticate()."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

import smtpclient
from smtp_core import Connection, LocalProtocolError, procedures
from tests.servers import (
    AUTH_PASSWORD,
    AUTH_USER,
    ContentKeeper,
    password_authenticator,
    running_controller,
)
from transports.sync import SyncDriver, connect

USER, PASSWORD = AUTH_USER, AUTH_PASSWORD


@pytest.fixture
def auth_server() -> Iterator[Controller]:
    with running_controller(
        ContentKeeper(),
        authenticator=password_authenticator,
        auth_require_tls=False,
        server_hostname="auth.test",
    ) as controller:
        yield controller


def test_facade_login_with_non_ascii_credentials(auth_server: Controller) -> None:
    # The standard library encodes credentials as ASCII (CPython gh-73936).
    with smtplib.SMTP("127.0.0.1", auth_server.port, timeout=10) as smtp:
        with pytest.raises(UnicodeEncodeError):
            smtp.login(USER, PASSWORD)
    with smtpclient.SMTP("127.0.0.1", auth_server.port, timeout=10) as smtp:
        assert smtp.login(USER, PASSWORD)[0] == 235
        assert smtp.sendmail("a@client.test", ["b@x.test"], "Subject: x\n\ny\n") == {}


def test_facade_login_refused(auth_server: Controller) -> None:
    with smtpclient.SMTP("127.0.0.1", auth_server.port, timeout=10) as smtp:
        with pytest.raises(smtpclient.SMTPAuthenticationError) as info:
            smtp.login(USER, "wrong")
        assert info.value.smtp_code == 535


def test_engine_authenticate_needs_tls_or_an_opt_in(auth_server: Controller) -> None:
    for opt_in in (False, True):
        conn = Connection(tls_policy="none", auth_in_clear=opt_in)
        driver = SyncDriver(connect("127.0.0.1", auth_server.port, timeout=10))
        try:
            driver.run(procedures.handshake(conn, "client.test"))
            if not opt_in:
                with pytest.raises(LocalProtocolError, match="TLS is off"):
                    driver.run(procedures.authenticate(conn, USER, PASSWORD))
            else:
                assert driver.run(procedures.authenticate(conn, USER, PASSWORD)).code == 235
            driver.run(procedures.quit(conn))
        finally:
            driver.close()
