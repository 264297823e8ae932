"""AUTH against aiosmtpd: the facade's login() and the engine's authenticate()."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

import smtpclient
from smtp_core import Connection, LocalProtocolError, procedures
from tests._postfix import free_port
from transports.sync import SyncDriver, connect

USER, PASSWORD = "jürgen@example.test", "pässwörd ✓"


class _Handler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 ok"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode("utf-8"),
        auth_data.password.decode("utf-8"),
    ) == (USER, PASSWORD)
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def auth_server() -> Iterator[Controller]:
    controller = Controller(
        _Handler(),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=_authenticator,
        auth_require_tls=False,
        server_hostname="auth.test",
    )
    controller.start()
    yield controller
    controller.stop()


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
