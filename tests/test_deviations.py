"""Each safe deviation from smtplib, shown on both: unsafe there, safe here.

Every test runs the same scenario through the standard library's ``smtplib``
(asserting its unsafe behaviour, so the test proves there is a difference)
and through ``smtpclient``.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller

import smtpclient
from tests.servers import (
    ContentKeeper,
    ScriptedServer,
    Step,
    running_controller,
    server_tls_context,
)

EHLO = b"250-scripted.test\r\n250 8BITMIME\r\n"


def dialogue(*steps: Step) -> list[Step]:
    return [b"220 scripted.test ESMTP\r\n", ("expect", 1), EHLO, *steps]


# -- bare line endings in bytes messages -----------------------------------------------

SMUGGLE = b"Subject: x\r\n\r\nfirst\n.\r\nMAIL FROM:<forged@x>\r\nlast\rline\n"
TRANSACTION: list[Step] = [
    ("expect", 1),
    b"250 ok\r\n",  # MAIL
    ("expect", 1),
    b"250 ok\r\n",  # RCPT
    ("expect", 1),
    b"354 go\r\n",  # DATA
]


def _send_raw(module: Any) -> bytes:
    steps = dialogue(*TRANSACTION, ("expect", 1), b"250 queued\r\n", ("expect", 1), b"221 bye\r\n")
    with ScriptedServer(steps) as server:
        with module.SMTP(server.host, server.port, "client.test", timeout=10) as smtp:
            smtp.sendmail("a@client.test", ["b@example.test"], SMUGGLE)
    return server.received.split(b"data\r\n", 1)[1]


def test_bare_line_endings_are_never_sent() -> None:
    stdlib = _send_raw(smtplib)
    assert b"first\n..\r\n" in stdlib  # bare LF: "\n.\r\n" ends the data on some servers
    assert b"last\rline\n" in stdlib
    ours = _send_raw(smtpclient)
    assert ours.startswith(
        b"Subject: x\r\n\r\nfirst\r\n..\r\nMAIL FROM:<forged@x>\r\nlast\r\nline\r\n.\r\n"
    )
    assert b"\n" not in ours.replace(b"\r\n", b"") and b"\r" not in ours.replace(b"\r\n", b"")


# -- PIPELINING ------------------------------------------------------------------------


def _pipelining_server_session(module: Any) -> bool:
    """A server that answers only once MAIL, 2 RCPT and DATA have all arrived."""
    steps: list[Step] = [
        b"220 scripted.test ESMTP\r\n",
        ("expect", 1),
        b"250-scripted.test\r\n250 PIPELINING\r\n",
        ("expect", 4),
        b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
        ("expect", 2),
        b"250 queued\r\n",
        ("expect", 1),
        b"221 bye\r\n",
    ]
    with ScriptedServer(steps) as server:
        try:
            with module.SMTP(server.host, server.port, "client.test", timeout=1) as smtp:
                smtp.sendmail("a@client.test", ["b@x.test", "c@x.test"], b"Subject: p\r\n")
        except module.SMTPServerDisconnected:
            return False  # waited for a reply the server only sends to a pipelined group
    return True


def test_pipelining_is_used_when_offered() -> None:
    assert not _pipelining_server_session(smtplib)
    assert _pipelining_server_session(smtpclient)


# -- bounded replies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [b"250 " + b"x" * 3000 + b"\r\n", b"250-x\r\n" * 300 + b"250 end\r\n"],
    ids=["long-line", "endless-multiline"],
)
def test_oversized_replies_are_refused(reply: bytes) -> None:
    for module, refused in ((smtplib, False), (smtpclient, True)):
        with ScriptedServer(
            [b"220 x\r\n", ("expect", 1), reply, ("expect", 1), b"221 bye\r\n"]
        ) as s:
            smtp = module.SMTP(s.host, s.port, "client.test", timeout=10)
            try:
                if refused:
                    with pytest.raises(smtpclient.SMTPResponseException, match="reply"):
                        smtp.ehlo()
                else:
                    assert smtp.ehlo()[0] == 250  # smtplib holds it all
                    smtp.quit()
            finally:
                smtp.close()


# -- NUL in arguments ------------------------------------------------------------------


def test_nul_in_an_argument_is_refused() -> None:
    steps = dialogue(("expect", 1), b"250 ok\r\n", ("expect", 1), b"221 bye\r\n")
    with ScriptedServer(steps) as server:
        with smtplib.SMTP(server.host, server.port, "client.test", timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail("a\0b@client.test")
    assert b":<a\0b@client.test>" in server.received  # "mail from:" ("mail FROM:" before 3.13)
    with ScriptedServer(dialogue(("expect", 1), b"221 bye\r\n")) as server:
        with smtpclient.SMTP(server.host, server.port, "client.test", timeout=10) as smtp:
            smtp.ehlo()
            with pytest.raises(ValueError, match="NUL"):
                smtp.mail("a\0b@client.test")
    assert b"\0" not in server.received


# -- LMTP ------------------------------------------------------------------------------


def _lmtp_then_noop(module: Any) -> tuple[dict[str, tuple[int, bytes]], int]:
    steps: list[Step] = [
        b"220 lmtp.test LMTP\r\n",
        ("expect", 1),
        b"250-lmtp.test\r\n250 8BITMIME\r\n",
        ("expect", 1),
        b"250 ok\r\n",
        ("expect", 1),
        b"250 ok\r\n",
        ("expect", 1),
        b"250 ok\r\n",
        ("expect", 1),
        b"354 go\r\n",
        ("expect", 2),
        b"250 2.0.0 <a@x.test> delivered\r\n452 4.2.2 <b@x.test> over quota\r\n",
        ("expect", 1),
        b"250 2.0.0 noop ok\r\n",
        ("expect", 1),
        b"221 bye\r\n",
    ]
    with ScriptedServer(steps) as server:
        lmtp = module.LMTP(server.host, server.port, "client.test")
        try:
            refused = lmtp.sendmail("s@client.test", ["a@x.test", "b@x.test"], b"Subject: l\r\n")
            noop_code = lmtp.noop()[0]
        finally:
            lmtp.close()
    return refused, noop_code


def test_lmtp_reads_every_recipients_reply() -> None:
    refused, noop = _lmtp_then_noop(smtplib)
    assert refused == {}  # the over-quota recipient is lost...
    assert noop == 452  # ...and its reply is taken as the answer to NOOP
    refused, noop = _lmtp_then_noop(smtpclient)
    assert refused == {"b@x.test": (452, b"4.2.2 <b@x.test> over quota")}
    assert noop == 250


# -- certificates ----------------------------------------------------------------------


@pytest.fixture
def starttls_server(ca: trustme.CA) -> Iterator[Controller]:
    with running_controller(
        ContentKeeper(),
        tls_context=server_tls_context(ca),
        require_starttls=False,
        server_hostname="localhost",
    ) as controller:
        yield controller


def test_starttls_verifies_certificates_by_default(
    starttls_server: Controller, ca: trustme.CA
) -> None:
    port = starttls_server.port
    with smtplib.SMTP("localhost", port, timeout=10) as smtp:
        assert smtp.starttls()[0] == 220  # an untrusted certificate, accepted
        assert smtp.ehlo()[0] == 250
    with smtpclient.SMTP("localhost", port, timeout=10) as smtp:
        with pytest.raises(ssl.SSLCertVerificationError):
            smtp.starttls()
        assert smtp.sock is None
    # With a context that trusts the CA, the same server works.
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    with smtpclient.SMTP("localhost", port, timeout=10) as smtp:
        assert smtp.starttls(context=trusting)[0] == 220
        assert not smtp.has_extn("starttls")  # the EHLO state was forgotten
        assert smtp.ehlo()[0] == 250
        assert smtp.sendmail("a@client.test", ["b@example.test"], "Subject: tls\n\nhi\n") == {}


def test_implicit_tls_verifies_certificates_by_default(ca: trustme.CA) -> None:
    with running_controller(
        ContentKeeper(), ssl_context=server_tls_context(ca), server_hostname="localhost"
    ) as controller:
        with smtplib.SMTP_SSL("localhost", controller.port, timeout=10) as smtp:
            assert smtp.noop()[0] == 250
        with pytest.raises(ssl.SSLCertVerificationError):
            smtpclient.SMTP_SSL("localhost", controller.port, timeout=10)
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        with smtpclient.SMTP_SSL(
            "localhost", controller.port, timeout=10, context=trusting
        ) as smtp:
            assert smtp.noop()[0] == 250


# -- the timeout bounds each whole reply -------------------------------------------------


def _trickled_greeting(module: Any) -> tuple[bool, float]:
    """Connect to a server that sends its greeting one byte every 0.15 s (about 1.8 s)."""
    greeting = b"220 trickle.test\r\n"
    steps: list[Step] = [s for byte in greeting for s in (bytes([byte]), ("sleep", 150))]
    with ScriptedServer([*steps, ("expect", 1), b"221 bye\r\n"]) as server:
        started = time.monotonic()
        try:
            module.SMTP(server.host, server.port, "client.test", timeout=0.5).close()
        except module.SMTPServerDisconnected:
            return False, time.monotonic() - started
        return True, time.monotonic() - started


def test_timeout_bounds_the_whole_reply() -> None:
    connected, elapsed = _trickled_greeting(smtplib)
    assert connected and elapsed > 1.5  # each recv was quick, so smtplib waited it all out
    connected, elapsed = _trickled_greeting(smtpclient)
    assert not connected and elapsed < 1.2
