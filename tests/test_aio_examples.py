"""aiosmtplib's documented examples, run unchanged but for the import, through both libraries.

Each example (smtpclient/aio/API.md §3 lists where it comes from) is run as
aiosmtplib's users run it, once with ``aiosmtplib`` and once with
``import smtpclient.aio as aiosmtplib``, against aiosmtpd on loopback; the
server must receive the same envelopes and the same bytes from both.  Only
the address is changed (the examples name port 25, 1025 or smtp.gmail.com).
The TLS examples trust the test CA through ``SSL_CERT_FILE``, as a user's
system would trust a real server's CA: the examples pass no context.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import socket
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests._postfix import free_port
from tests.servers import server_tls_context

LIBRARIES = ["aiosmtplib", "smtpclient.aio"]


@dataclass
class Envelope:
    sender: str
    recipients: list[str]
    content: bytes


class Recorder:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(
            Envelope(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 OK"


def accept_any(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    return AuthResult(success=True)


@dataclass
class Server:
    port: int
    recorder: Recorder


@pytest.fixture
def plain() -> Iterator[Server]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield Server(controller.port, recorder)
    finally:
        controller.stop()


@pytest.fixture
def trusted_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    """The test CA in the place OpenSSL looks for the system's trust (SSL_CERT_FILE)."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return ca


@pytest.fixture
def tls_servers(trusted_ca: trustme.CA) -> Iterator[tuple[Server, Server]]:
    """(implicit TLS, STARTTLS with AUTH) servers with a certificate for localhost."""
    implicit_recorder, starttls_recorder = Recorder(), Recorder()
    implicit = Controller(
        implicit_recorder,
        hostname="127.0.0.1",
        port=free_port(),
        ssl_context=server_tls_context(trusted_ca),
    )
    starttls = Controller(
        starttls_recorder,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_tls_context(trusted_ca),
        authenticator=accept_any,
    )
    implicit.start()
    starttls.start()
    try:
        yield Server(implicit.port, implicit_recorder), Server(starttls.port, starttls_recorder)
    finally:
        implicit.stop()
        starttls.stop()


def run_example(source: str, library: str, **names: object) -> dict[str, Any]:
    """Run ``source`` as a module would, with ``library`` as aiosmtplib."""
    if library != "aiosmtplib":
        source = source.replace("import aiosmtplib", "import smtpclient.aio as aiosmtplib")
        source = source.replace("from aiosmtplib import", "from smtpclient.aio import")
    namespace: dict[str, Any] = {"__name__": "example", **names}
    exec(compile(textwrap.dedent(source), "<example>", "exec"), namespace)
    return namespace


def in_coroutine(fragment: str, preamble: str = "") -> str:
    """A fragment with top-level ``await``, as the docs show it, inside ``asyncio.run``."""
    body = textwrap.indent(textwrap.dedent(fragment), "    ")
    head = f"import asyncio\n{textwrap.dedent(preamble)}\n"
    return f"{head}async def main():\n{body}\nasyncio.run(main())\n"


HELLO = """
from email.message import EmailMessage

message = EmailMessage()
message["From"] = "root@localhost"
message["To"] = "somebody@example.com"
message["Subject"] = "Hello World!"
message.set_content("Sent via aiosmtplib")
"""

E1 = """
import asyncio
from email.message import EmailMessage

import aiosmtplib

message = EmailMessage()
message["From"] = "root@localhost"
message["To"] = "somebody@example.com"
message["Subject"] = "Hello World!"
message.set_content("Sent via aiosmtplib")

asyncio.run(aiosmtplib.send(message, hostname="127.0.0.1", port=PORT))
"""

E2 = """
import asyncio
from email.message import EmailMessage

import aiosmtplib


async def send_hello_world():
    message = EmailMessage()
    message["From"] = "root@localhost"
    message["To"] = "somebody@example.com"
    message["Subject"] = "Hello World!"
    message.set_content("Sent via aiosmtplib")

    await aiosmtplib.send(message, hostname="127.0.0.1", port=PORT)


asyncio.run(send_hello_world())
"""

E3 = """
import asyncio
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import aiosmtplib

message = MIMEMultipart("alternative")
message["From"] = "root@localhost"
message["To"] = "somebody@example.com"
message["Subject"] = "Hello World!"

plain_text_message = MIMEText("Sent via aiosmtplib", "plain", "utf-8")
html_message = MIMEText("<html><body><h1>Sent via aiosmtplib</h1></body></html>", "html", "utf-8")
message.attach(plain_text_message)
message.attach(html_message)
message.set_boundary("fixed-boundary")  # the test's: both libraries must send the same bytes

asyncio.run(aiosmtplib.send(message, hostname="127.0.0.1", port=PORT))
"""

E4 = '''
import asyncio

import aiosmtplib


async def send_hello_world():
    message = """To: somebody@example.com
    From: root@localhost
    Subject: Hello World!

    Sent via aiosmtplib
    """

    await aiosmtplib.send(
        message,
        sender="root@localhost",
        recipients=["somebody@example.com"],
        hostname="127.0.0.1",
        port=PORT,
    )


asyncio.run(send_hello_world())
'''

E8 = """
import asyncio

from aiosmtplib import SMTP

client = SMTP()
asyncio.run(client.connect(hostname="127.0.0.1", port=PORT))
"""

E11 = """
import asyncio
from email.message import EmailMessage

from aiosmtplib import SMTP


async def say_hello():
    message = EmailMessage()
    message["From"] = "root@localhost"
    message["To"] = "somebody@example.com"
    message["Subject"] = "Hello World!"
    message.set_content("Sent via aiosmtplib")

    smtp_client = SMTP(hostname="127.0.0.1", port=PORT)
    async with smtp_client:
        await smtp_client.send_message(message)


asyncio.run(say_hello())
"""

E12 = """
import asyncio
from email.mime.text import MIMEText

from aiosmtplib import SMTP

mime_message = MIMEText("Sent via aiosmtplib")
mime_message["From"] = "root@localhost"
mime_message["To"] = "somebody@example.com"
mime_message["Subject"] = "Hello World!"


async def send_with_send_message(message):
    smtp_client = SMTP(hostname="127.0.0.1", port=PORT)
    await smtp_client.connect()
    await smtp_client.send_message(message)
    await smtp_client.quit()


asyncio.run(send_with_send_message(mime_message))
"""

E13 = """
import asyncio
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from aiosmtplib import SMTP

message = MIMEMultipart("alternative")
message["From"] = "root@localhost"
message["To"] = "somebody@example.com"
message["Subject"] = "Hello World!"

message.attach(MIMEText("hello", "plain", "utf-8"))
message.attach(MIMEText("<html><body><h1>Hello</h1></body></html>", "html", "utf-8"))
message.set_boundary("fixed-boundary")  # the test's: both libraries must send the same bytes


async def send_multipart_message(message):
    smtp_client = SMTP(hostname="127.0.0.1", port=PORT)
    await smtp_client.connect()
    await smtp_client.send_message(message)
    await smtp_client.quit()


asyncio.run(send_multipart_message(message))
"""

E14 = '''
import asyncio

from aiosmtplib import SMTP

sender = "root@localhost"
recipients = ["somebody@example.com"]
message = """To: somebody@example.com
From: root@localhost
Subject: Hello World!

Sent via aiosmtplib
"""


async def send_with_sendmail():
    smtp_client = SMTP(hostname="127.0.0.1", port=PORT)
    await smtp_client.connect()
    await smtp_client.sendmail(sender, recipients, message)
    await smtp_client.quit()


asyncio.run(send_with_sendmail())
'''

E17 = """
import asyncio

import aiosmtplib

smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=PORT)
sender = "root@localhost"
recipients = ["somebody@example.com"]


async def connect_and_send():
    await smtp.connect()
    return await smtp.sendmail(sender, recipients, "Hello")


result = asyncio.run(connect_and_send())
"""

PLAIN_EXAMPLES = {
    "E1": E1,
    "E2": E2,
    "E3": E3,
    "E4": E4,
    "E11": E11,
    "E12": E12,
    "E13": E13,
    "E14": E14,
    "E17": E17,
}


def _received(library: str, source: str, server: Server) -> list[Envelope]:
    server.recorder.envelopes.clear()
    run_example(source.replace("PORT", str(server.port)), library)
    return list(server.recorder.envelopes)


@pytest.mark.parametrize("name", PLAIN_EXAMPLES)
def test_documented_example_sends_the_same_as_aiosmtplib(plain: Server, name: str) -> None:
    source = PLAIN_EXAMPLES[name]
    theirs = _received("aiosmtplib", source, plain)
    ours = _received("smtpclient.aio", source, plain)
    assert theirs, "the example sent nothing through aiosmtplib itself"
    assert ours == theirs


def test_e8_connects(plain: Server) -> None:
    for library in LIBRARIES:
        with _left_open():
            namespace = run_example(E8.replace("PORT", str(plain.port)), library)
            assert namespace["client"].is_connected
            namespace.clear()  # the client goes, and its transport with it


def test_e17_returns_what_the_docstring_says(plain: Server) -> None:
    for library in LIBRARIES:
        with _left_open():
            namespace = run_example(E17.replace("PORT", str(plain.port)), library)
            assert namespace["result"] == ({}, "OK")
            namespace.clear()


@contextlib.contextmanager
def _left_open() -> Iterator[None]:
    """For examples that end their event loop with the connection open, as E8 and E17 do.

    The transport is then collected unclosed; its ResourceWarning is the
    example's (both libraries give it), not a finding.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        yield
        gc.collect()


def test_e5_to_e7_tls_and_authentication(tls_servers: tuple[Server, Server]) -> None:
    implicit, starttls = tls_servers
    fragment = f"""
    await send(message, hostname="localhost", port={implicit.port}, use_tls=True)
    await send(message, hostname="localhost", port={starttls.port}, start_tls=False)
    await send(message, hostname="localhost", port={starttls.port}, username="test@gmail.com",
               password="test")
    """
    results = {}
    for library in LIBRARIES:
        implicit.recorder.envelopes.clear()
        starttls.recorder.envelopes.clear()
        preamble = f"{HELLO}\nfrom {library} import send\n"
        run_example(in_coroutine(fragment, preamble), library)
        results[library] = (implicit.recorder.envelopes[:], starttls.recorder.envelopes[:])
    assert results["smtpclient.aio"] == results["aiosmtplib"]
    assert len(results["aiosmtplib"][0]) == 1
    assert len(results["aiosmtplib"][1]) == 2


def test_e9_e10_implicit_tls_and_starttls_by_hand(tls_servers: tuple[Server, Server]) -> None:
    implicit, starttls = tls_servers
    fragment = f"""
    smtp_client = aiosmtplib.SMTP(hostname="localhost", port={implicit.port}, use_tls=True)
    await smtp_client.connect()
    await smtp_client.quit()

    smtp_client = aiosmtplib.SMTP(
        hostname="localhost",
        port={starttls.port},
        start_tls=False,
        use_tls=False,
    )
    await smtp_client.connect()
    await smtp_client.starttls()
    await smtp_client.quit()
    """
    for library in LIBRARIES:
        run_example(in_coroutine(fragment, "import aiosmtplib\n"), library)


def test_e16_a_socket_the_caller_connected(plain: Server) -> None:
    fragment = """
    await aiosmtplib.send(
        message,
        sender="root@localhost",
        recipients=["somebody@example.com"],
        sock=sock,
    )
    """
    received = {}
    for library in LIBRARIES:
        plain.recorder.envelopes.clear()
        sock = socket.create_connection(("127.0.0.1", plain.port))
        sock.setblocking(False)
        run_example(in_coroutine(fragment, f"import aiosmtplib\n{HELLO}"), library, sock=sock)
        received[library] = plain.recorder.envelopes[:]
    assert received["smtpclient.aio"] == received["aiosmtplib"]
    assert len(received["aiosmtplib"]) == 1


def test_e18_smtp_response() -> None:
    for library in LIBRARIES:
        namespace = run_example(
            f"from {library} import SMTPResponse\nresponse = SMTPResponse(200, 'OK')\n", library
        )
        response = namespace["response"]
        assert (response.message, response[0]) == ("OK", 200)


class OAuthRecorder(Recorder):
    """A recorder that speaks AUTH XOAUTH2 and accepts exactly the example's token."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[bytes] = []

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        decoded = base64.b64decode(args[1]) if len(args) > 1 else b""
        self.logins.append(decoded)
        return AuthResult(success=b"auth=Bearer your_access_token\x01" in decoded)


E15 = """
import aiosmtplib


async def get_access_token() -> str:
    # Your token refresh logic here
    return "your_access_token"


await aiosmtplib.send(
    message,
    hostname="localhost",
    port=PORT,
    use_tls=True,
    username="your.email@gmail.com",
    oauth_token_generator=get_access_token,
)
"""


def test_e15_oauth2(trusted_ca: trustme.CA) -> None:
    recorder = OAuthRecorder()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        ssl_context=server_tls_context(trusted_ca),
        authenticator=accept_any,
        auth_require_tls=False,  # aiosmtpd counts only STARTTLS as TLS; this is port 465
    )
    controller.start()
    try:
        received = {}
        for library in LIBRARIES:
            recorder.envelopes.clear()
            recorder.logins.clear()
            source = in_coroutine(E15.replace("PORT", str(controller.port)), HELLO)
            run_example(source, library)
            received[library] = (recorder.envelopes[:], recorder.logins[:])
    finally:
        controller.stop()
    assert received["smtpclient.aio"] == received["aiosmtplib"]
    assert received["aiosmtplib"][1] == [
        b"user=your.email@gmail.com\x01auth=Bearer your_access_token\x01\x01"
    ]
