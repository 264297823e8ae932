"""The ``smtpclient`` command, end to end: a real subprocess against real servers.

Each test runs ``python -bb -m smtpclient ...`` and checks its exit status, its
output and what the server (aiosmtpd, postfix, or a scripted hostile peer)
received.
"""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import io
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP as AioLMTP

from smtp_core import parse_transcript
from smtpclient._cli import parse_server, run
from tests._postfix import TEST_DOMAIN, PostfixServer, free_port, strip_trace_headers
from tests.servers import (
    AUTH_PASSWORD,
    AUTH_USER,
    CLOSE,
    AiosmtpdServer,
    ContentKeeper,
    ScriptedServer,
    Step,
    password_authenticator,
    running_controller,
    server_tls_context,
)

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = AUTH_USER, AUTH_PASSWORD

# Leading dots, a lone dot line and bare line endings: what reaches the server
# is this with every line ending made CRLF.
TRICKY = (
    b"Subject: tricky\r\nFrom: <sender@client.test>\r\n\r\n"
    b".leading dot\r\n.\r\n..\r\nbare LF\nend without newline"
)
TRICKY_AS_RECEIVED = (
    b"Subject: tricky\r\nFrom: <sender@client.test>\r\n\r\n"
    b".leading dot\r\n.\r\n..\r\nbare LF\r\nend without newline\r\n"
)


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> Result:
    """Run the command in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-bb", "-m", "smtpclient", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"))


def server_of(server: AiosmtpdServer | Controller) -> str:
    if isinstance(server, AiosmtpdServer):
        return f"{server.host}:{server.port}"
    return f"127.0.0.1:{server.port}"


# -- servers of this module ------------------------------------------------------------


@pytest.fixture
def auth_server() -> Iterator[tuple[Controller, ContentKeeper]]:
    handler = ContentKeeper()
    with running_controller(
        handler,
        authenticator=password_authenticator,
        auth_require_tls=False,
        server_hostname="auth.test",
    ) as controller:
        yield controller, handler


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[tuple[Controller, ContentKeeper]]:
    """STARTTLS required, AUTH offered only inside TLS."""
    handler = ContentKeeper()
    with running_controller(
        handler,
        tls_context=server_tls_context(ca),
        require_starttls=True,
        authenticator=password_authenticator,
        server_hostname="localhost",
    ) as controller:
        yield controller, handler


class _UnixLMTPController(UnixSocketController):
    def factory(self) -> AioLMTP:
        return AioLMTP(self.handler, **self.SMTP_kwargs)


# -- help and usage ----------------------------------------------------------------------


def test_help_exits_0_and_documents_the_exit_codes() -> None:
    result = cli("--help")
    assert result.code == 0
    assert "exit status:" in result.out
    for line in (
        "0  every recipient accepted",
        "1  at least one recipient was refused",
        "2  usage error",
        "3  connection or TLS failure",
        "4  authentication failed",
        "5  the server refused the transaction",
        "6  protocol error",
    ):
        assert line in result.out
    assert "examples:" in result.out
    assert "smtpclient probe -s mx.example.com" in result.out
    assert "--quit-after" in result.out


def test_usage_error_exits_2() -> None:
    result = cli("-s", "127.0.0.1:1", "-f", "a@client.test")
    assert result.code == 2
    assert result.err.startswith("usage: smtpclient [send|probe]")
    assert "smtpclient: error: no recipient: give --to ADDRESS" in result.err
    assert result.out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "127.0.0.1:port", "-f", "a@b.test", "-t", "c@d.test"], "port must be"),
        (["-s", "[::1:25", "-f", "a@b.test", "-t", "c@d.test"], "expected [ADDRESS]"),
        (["-t", "c@d.test"], "sender is missing"),
        (["-f", "a b@c.test", "-t", "c@d.test"], "MAIL sender"),
        (["-f", "a@b.test", "-t", "c@d.test\r\nRSET"], "RCPT recipient"),
        (["-f", "a@b.test", "-t", "c@d.test", "--ehlo", "bad name"], "EHLO name"),
        (["-f", "a@b.test", "-t", "c@d.test", "--data", "-", "--subject", "x"], "--data"),
        (["-f", "a@b.test", "-t", "c@d.test", "--header", "no colon"], "--header"),
        (["probe", "-t", "c@d.test"], "probe sends no message"),
        (["-f", "a@b.test", "-t", "c@d.test", "-a", "u", "--auth-mechanism", "XOAUTH2"], "unknown"),
        (["-f", "a@b.test", "-t", "c@d.test", "--auth-password", "x"], "need --auth-user"),
        (["-f", "a@b.test", "-t", "c@d.test", "--count", "2", "--quit-after", "rcpt"], "--count"),
        (["-f", "a@b.test", "-t", "c@d.test", "--raw", "-"], "--raw sends no message"),
        (["-f", "a@b.test", "-t", "c@d.test", "--tls", "bogus"], "invalid choice"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    # In-process, for speed: the checks made before connecting.
    out, err = io.StringIO(), io.StringIO()
    assert run(args, stdout=out, stderr=err) == 2
    assert message in err.getvalue()
    assert out.getvalue() == ""


def test_server_syntax() -> None:
    assert parse_server("mx.example", 25) == parse_server("mx.example:25", 587)
    target = parse_server("[::1]:2525", 25)
    assert (target.host, target.port, str(target)) == ("::1", 2525, "[::1]:2525")
    assert (parse_server("[::1]", 25).port, parse_server("::1", 25).host) == (25, "::1")
    assert parse_server("192.0.2.1:587", 25).port == 587
    assert parse_server("/run/lmtp.sock", 24).path == "/run/lmtp.sock"


# -- sending -----------------------------------------------------------------------------


def test_plain_send_arrives_intact(aiosmtpd_server: AiosmtpdServer, tmp_path: Path) -> None:
    message = tmp_path / "message.eml"
    message.write_bytes(TRICKY)
    result = cli(
        "-s", server_of(aiosmtpd_server), "--ehlo", "client.test",
        "-f", "sender@client.test", "-t", "one@example.test", "-t", "two@example.test",
        "--data", str(message),
    )  # fmt: skip
    assert result.code == 0, result
    [got] = aiosmtpd_server.messages
    assert (got.mail_from, got.rcpt_tos) == (
        "sender@client.test",
        ["one@example.test", "two@example.test"],
    )
    assert got.content == TRICKY_AS_RECEIVED
    lines = result.out.splitlines()
    assert "S: 220 aiosmtpd.test Python SMTP 1.4.6" in lines
    assert "C: EHLO client.test" in lines
    assert any(line.startswith("C: MAIL FROM:<sender@client.test> SIZE=") for line in lines)
    assert "C: RCPT TO:<two@example.test>" in lines
    assert "C: ..leading dot" in lines  # dot-stuffed on the wire
    assert lines[-2:] == ["C: QUIT", "S: 221 Bye"]
    assert result.err == ""


def test_message_from_stdin(aiosmtpd_server: AiosmtpdServer) -> None:
    result = cli(
        "-s", server_of(aiosmtpd_server), "-f", "s@client.test", "-t", "r@example.test",
        "--data", "-", "-q",
        stdin=b"Subject: stdin\n\nfrom a pipe\n",
    )  # fmt: skip
    assert (result.code, result.out, result.err) == (0, "", "")
    assert aiosmtpd_server.messages[0].content == b"Subject: stdin\r\n\r\nfrom a pipe\r\n"


def test_built_message_with_headers_and_attachment(
    aiosmtpd_server: AiosmtpdServer, tmp_path: Path
) -> None:
    attachment = tmp_path / "report.pdf"
    payload = bytes(range(256)) * 3
    attachment.write_bytes(payload)
    result = cli(
        "-s", server_of(aiosmtpd_server), "-f", "alice@client.test", "-t", "bob@example.test",
        "--subject", "Grüße", "--header", "X-Test: yes", "--header", "To: Bob <bob@example.test>",
        "--body", "héllo\n.dot line\n", "--attach", str(attachment), "--suppress-data",
    )  # fmt: skip
    assert result.code == 0, result
    assert re.search(r"^C: <message content: \d+ bytes>$", result.out, re.MULTILINE)
    assert "C: Subject:" not in result.out  # --suppress-data
    [got] = aiosmtpd_server.messages
    msg = email.message_from_bytes(got.content, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    assert msg["Subject"] == "Grüße"
    assert msg["X-Test"] == "yes"
    assert msg["To"] == "Bob <bob@example.test>"  # --header replaced the default
    assert msg["From"] == "alice@client.test"
    assert msg["Date"] and msg["Message-ID"].endswith("@client.test>")
    assert msg.get_content_type() == "multipart/mixed"
    body = msg.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "héllo\n.dot line\n"
    [part] = list(msg.iter_attachments())
    assert part.get_filename() == "report.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_content() == payload


def test_refused_recipient_exits_1(aiosmtpd_server: AiosmtpdServer) -> None:
    result = cli(
        "-s", server_of(aiosmtpd_server), "-f", "s@client.test",
        "-t", "ok@example.test,reject@example.test", "-q",
    )  # fmt: skip
    assert result.code == 1
    assert (
        result.err == "smtpclient: recipient reject@example.test refused: 550 5.1.1 no such user\n"
    )
    assert [m.rcpt_tos for m in aiosmtpd_server.messages] == [["ok@example.test"]]


def test_every_recipient_refused_exits_1(aiosmtpd_server: AiosmtpdServer) -> None:
    result = cli("-s", server_of(aiosmtpd_server), "-f", "s@client.test", "-t", "reject@x.test")
    assert result.code == 1
    assert "reject@x.test refused: 550" in result.err
    assert aiosmtpd_server.messages == []


def test_connection_refused_exits_3() -> None:
    port = free_port()  # nothing listens there
    result = cli("-s", f"127.0.0.1:{port}", "-f", "s@client.test", "-t", "r@example.test")
    assert result.code == 3
    assert f"cannot connect to 127.0.0.1:{port}" in result.err
    assert "Connection refused" in result.err


def test_quit_after_rcpt_sends_no_data(aiosmtpd_server: AiosmtpdServer) -> None:
    result = cli(
        "-s", server_of(aiosmtpd_server), "-f", "s@client.test", "-t", "r@example.test",
        "--quit-after", "rcpt",
    )  # fmt: skip
    assert result.code == 0, result
    assert aiosmtpd_server.messages == []
    lines = result.out.splitlines()
    assert "C: RCPT TO:<r@example.test>" in lines
    assert "C: DATA" not in lines
    assert lines[-3:] == ["* stopping after rcpt", "C: QUIT", "S: 221 Bye"]


def test_quit_after_rcpt_pipelined_bytes() -> None:
    steps: list[Step] = [
        b"220 scripted ESMTP\r\n",
        ("expect", 1),
        b"250-scripted\r\n250 PIPELINING\r\n",
        ("expect", 3),  # MAIL and both RCPTs in one write
        b"250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n",
        ("expect", 1),
        b"221 bye\r\n",
    ]
    with ScriptedServer(steps) as server:
        result = cli(
            "-s", f"127.0.0.1:{server.port}", "--ehlo", "client.test", "-f", "s@client.test",
            "-t", "a@example.test", "-t", "b@example.test", "--quit-after", "rcpt", "-q",
        )  # fmt: skip
    assert result.code == 1
    assert "b@example.test refused: 550 5.1.1 unknown" in result.err
    assert server.received == (
        b"EHLO client.test\r\nMAIL FROM:<s@client.test>\r\n"
        b"RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nQUIT\r\n"
    )


def test_quit_after_data_drops_the_connection(aiosmtpd_server: AiosmtpdServer) -> None:
    result = cli(
        "-s", server_of(aiosmtpd_server), "-f", "s@client.test", "-t", "r@example.test",
        "--quit-after", "data",
    )  # fmt: skip
    assert result.code == 0, result
    assert "S: 354" in result.out
    assert "C: QUIT" not in result.out
    assert aiosmtpd_server.messages == []


def test_count_sends_the_first_in_this_session_with_a_summary(
    aiosmtpd_server: AiosmtpdServer,
) -> None:
    # The others go through the pool: tests/test_cli_pool.py.
    result = cli(
        "-s", server_of(aiosmtpd_server), "-f", "s@client.test", "-t", "r@example.test",
        "--count", "20",
    )  # fmt: skip
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert re.fullmatch(
        r"20/20 messages: 20 accepted, 0 refused, 0 deferred, 0 unknown, 0 error; "
        r"\d+\.\d\d s, \d+\.\d msg/s",
        lines[-1],
    )
    assert lines[-3:-1] == ["C: QUIT", "S: 221 Bye"]
    assert result.out.count("C: MAIL FROM:") == 1  # only the first transaction is shown
    assert result.out.count("C: EHLO") == 1
    assert "smtpclient: 20/20 done" in result.err  # the progress, without a terminal
    assert len(aiosmtpd_server.messages) == 20
    ids = {email.message_from_bytes(m.content)["Message-ID"] for m in aiosmtpd_server.messages}
    assert len(ids) == 20


def test_record_file_parses(aiosmtpd_server: AiosmtpdServer, tmp_path: Path) -> None:
    record = tmp_path / "session.txt"
    result = cli(
        "-s", server_of(aiosmtpd_server), "-f", "s@client.test", "-t", "r@example.test",
        "--body", "recorded", "--record", str(record), "-q",
    )  # fmt: skip
    assert result.code == 0, result
    transcript = parse_transcript(record.read_text("utf-8"))
    assert transcript.header("format") == "smtp-transcript/1"
    assert transcript.header("server") == server_of(aiosmtpd_server)
    assert transcript.header("protocol") == "SMTP"
    assert b"MAIL FROM:<s@client.test>" in transcript.client_bytes
    assert b"\r\nrecorded\r\n.\r\n" in transcript.client_bytes
    assert transcript.server_bytes.startswith(b"220 aiosmtpd.test")
    assert transcript.events[-1] == "client-close"
    assert not transcript.redacted


# -- AUTH ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_credentials_never_appear(
    auth_server: tuple[Controller, ContentKeeper], tmp_path: Path, mechanism: str
) -> None:
    controller, handler = auth_server
    record = tmp_path / "auth.txt"
    result = cli(
        "-s", server_of(controller), "-f", "s@client.test", "-t", "r@example.test",
        "--auth-user", USER, "--auth-password-env", "SMTP_TEST_PASSWORD",
        "--auth-mechanism", mechanism, "--auth-in-clear", "--record", str(record),
        env={"SMTP_TEST_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert result.code == 0, result
    assert len(handler.contents) == 1
    assert f"C: AUTH {mechanism}" in result.out
    assert "<redacted AUTH payload:" in result.out
    assert "S: 235 2.7.0 Authentication successful" in result.out
    secrets = [
        PASSWORD,
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
        base64.b64encode(USER.encode()).decode(),
    ]
    text = record.read_text("utf-8")
    assert parse_transcript(text).redacted
    for secret in secrets:
        assert secret not in result.out
        assert secret not in result.err
        assert secret not in text


def test_auth_refused_exits_4(auth_server: tuple[Controller, ContentKeeper]) -> None:
    controller, handler = auth_server
    result = cli(
        "-s", server_of(controller), "-f", "s@client.test", "-t", "r@example.test",
        "-a", USER, "--auth-password", "wrong", "--auth-in-clear", "-q",
    )  # fmt: skip
    assert result.code == 4
    assert "authentication failed: 535" in result.err
    assert handler.contents == []


def test_auth_in_the_clear_needs_opting_in(auth_server: tuple[Controller, ContentKeeper]) -> None:
    controller, handler = auth_server
    result = cli(
        "-s", server_of(controller), "-f", "s@client.test", "-t", "r@example.test",
        "-a", USER, "--auth-password", PASSWORD,
    )  # fmt: skip
    assert result.code == 4
    assert "TLS is off" in result.err and "--auth-in-clear" in result.err
    assert "C: AUTH" not in result.out  # the engine refused before any byte
    assert result.out.rstrip().endswith("S: 221 Bye")
    assert handler.contents == []


def test_password_needed_without_a_terminal(auth_server: tuple[Controller, ContentKeeper]) -> None:
    result = cli(
        "-s", server_of(auth_server[0]), "-f", "s@client.test", "-t", "r@x.test", "-a", "u"
    )
    assert result.code == 2
    assert "no password" in result.err


# -- TLS ------------------------------------------------------------------------------------


def test_starttls_send_with_a_trusted_ca(
    tls_server: tuple[Controller, ContentKeeper], ca_file: str
) -> None:
    controller, handler = tls_server
    result = cli(
        "-s", f"localhost:{controller.port}", "--tls", "required", "--cafile", ca_file,
        "-f", "s@client.test", "-t", "r@example.test", "-a", USER, "--auth-password-env", "PW",
        "--body", "inside TLS",
        env={"PW": PASSWORD},
    )  # fmt: skip
    assert result.code == 0, result
    assert len(handler.contents) == 1 and b"\r\ninside TLS\r\n" in handler.contents[0]
    out = result.out
    assert out.index("C: STARTTLS") < out.index("* TLS: TLSv1.") < out.index("C: AUTH PLAIN")
    assert "* certificate: verified for localhost" in out
    assert "* SANs: DNS:localhost" in out
    assert PASSWORD not in out


def test_starttls_untrusted_certificate_exits_3(
    tls_server: tuple[Controller, ContentKeeper],
) -> None:
    controller, handler = tls_server
    result = cli("-s", f"localhost:{controller.port}", "-f", "s@client.test", "-t", "r@x.test")
    assert result.code == 3
    assert "TLS handshake with" in result.err and "--no-tls-verify" in result.err
    assert handler.contents == []


def test_tls_required_but_not_offered_exits_3(aiosmtpd_server: AiosmtpdServer) -> None:
    result = cli(
        "-s", server_of(aiosmtpd_server), "--tls", "required", "-f", "s@client.test",
        "-t", "r@example.test",
    )  # fmt: skip
    assert result.code == 3
    assert "does not offer STARTTLS" in result.err
    assert result.out.rstrip().endswith("S: 221 Bye")  # a polite QUIT
    assert aiosmtpd_server.messages == []


def test_probe_starttls_shows_certificate(
    tls_server: tuple[Controller, ContentKeeper], ca_file: str
) -> None:
    controller, _ = tls_server
    result = cli("probe", "-s", f"localhost:{controller.port}", "--cafile", ca_file)
    assert result.code == 0, result
    out = result.out
    assert re.search(r"^STARTTLS\s+offered; started$", out, re.MULTILINE)
    assert re.search(r"^TLS\s+TLSv1\.[23], \S+ \(\d+ bits\)$", out, re.MULTILINE)
    assert re.search(r"^certificate\s+verified for localhost$", out, re.MULTILINE)
    assert re.search(r"^  subject\s+O=trustme", out, re.MULTILINE)
    assert re.search(r"^  issuer\s+O=trustme.*Testing CA", out, re.MULTILINE)
    assert re.search(r"^  valid\s+.* UTC \(expires in \d+ days\)$", out, re.MULTILINE)
    assert re.search(r"^  SANs\s+DNS:localhost$", out, re.MULTILINE)
    assert re.search(r"^AUTH\s+LOGIN PLAIN \(before TLS: not offered\)$", out, re.MULTILINE)
    assert "C: " not in out  # no transcript in probe mode without -v


def test_probe_without_verification_decodes_the_certificate(
    tls_server: tuple[Controller, ContentKeeper], ca: trustme.CA
) -> None:
    controller, _ = tls_server
    result = cli("probe", "-s", f"127.0.0.1:{controller.port}", "--no-tls-verify")
    assert result.code == 0, result
    out = result.out
    assert re.search(r"^certificate\s+NOT verified \(--no-tls-verify\)$", out, re.MULTILINE)
    assert re.search(r"^  subject\s+O=trustme v[\d.]+, OU=Testing cert", out, re.MULTILINE)
    assert re.search(r"^  valid\s+\d{4}-\d\d-\d\d .* UTC \(expires", out, re.MULTILINE)
    assert re.search(r"^  SANs\s+DNS:localhost$", out, re.MULTILINE)
    assert re.search(r"^  SHA-256\s+([0-9A-F]{2}:){31}[0-9A-F]{2}$", out, re.MULTILINE)


def test_probe_implicit_tls(ca: trustme.CA, ca_file: str) -> None:
    controller = Controller(
        ContentKeeper(),
        hostname="127.0.0.1",
        port=free_port(),
        ssl_context=server_tls_context(ca),
        server_hostname="localhost",
    )
    controller.start()
    try:
        result = cli(
            "probe", "-s", f"127.0.0.1:{controller.port}", "--tls", "implicit",
            "--cafile", ca_file, "--tls-name", "localhost",
        )  # fmt: skip
    finally:
        controller.stop()
    assert result.code == 0, result
    assert re.search(r"^TLS\s+TLSv1\.[23]", result.out, re.MULTILINE)
    assert result.out.index("TLS ") < result.out.index("greeting")


# -- probe, BDAT and LMTP against real servers ------------------------------------------------


def test_probe_postfix_lists_the_features(postfix_server: PostfixServer) -> None:
    result = cli("probe", "-s", f"{postfix_server.host}:{postfix_server.port}", "-v")
    assert result.code == 0, result
    out = result.out
    assert re.search(r"^greeting\s+220 ", out, re.MULTILINE)
    for keyword in ("PIPELINING", "CHUNKING", "8BITMIME", "SMTPUTF8", "DSN"):
        assert re.search(rf"^{keyword}\s+yes$", out, re.MULTILINE), keyword
    assert re.search(r"^extensions\s+PIPELINING$", out, re.MULTILINE)
    assert re.search(r"^SIZE\s+\d+ octets \([\d.]+ MiB\)$", out, re.MULTILINE)
    assert re.search(r"^STARTTLS\s+not offered$", out, re.MULTILINE)
    assert re.search(r"^AUTH\s+not offered$", out, re.MULTILINE)
    assert "C: QUIT" in out  # -v shows the transcript


def test_bdat_to_postfix_delivers_exact_bytes(
    postfix_server: PostfixServer, tmp_path: Path
) -> None:
    rcpt = f"cli-bdat-{uuid.uuid4().hex[:10]}@{TEST_DOMAIN}"
    message = tmp_path / "message.eml"
    message.write_bytes(TRICKY)
    result = cli(
        "-s", f"{postfix_server.host}:{postfix_server.port}", "--ehlo", "client.test",
        "-f", "sender@client.test", "-t", rcpt, "--data", str(message), "--bdat",
    )  # fmt: skip
    assert result.code == 0, result
    size = len(TRICKY_AS_RECEIVED)
    assert f"C: BDAT {size} LAST" in result.out.splitlines()
    assert "C: DATA" not in result.out
    [raw] = postfix_server.wait_for_messages(1, recipient=rcpt)
    assert strip_trace_headers(raw) == TRICKY_AS_RECEIVED


def test_bdat_needs_chunking(aiosmtpd_server: AiosmtpdServer) -> None:
    result = cli(
        "-s", server_of(aiosmtpd_server), "-f", "s@client.test", "-t", "r@x.test", "--bdat", "-q"
    )
    assert result.code == 5
    assert "CHUNKING" in result.err


def test_lmtp_reports_each_recipient(aiosmtpd_lmtp_server: AiosmtpdServer) -> None:
    result = cli(
        "-s", server_of(aiosmtpd_lmtp_server), "--lmtp", "-f", "s@client.test",
        "-t", "one@example.test", "-t", "reject@example.test", "-t", "two@example.test",
    )  # fmt: skip
    assert result.code == 1
    lines = result.out.splitlines()
    assert any(line.startswith("C: LHLO ") for line in lines)
    assert "* delivered to one@example.test: 250 2.0.0 <one@example.test> delivered" in lines
    assert "* delivered to two@example.test: 250 2.0.0 <two@example.test> delivered" in lines
    assert "reject@example.test refused: 550 5.1.1 no such user" in result.err
    [got] = aiosmtpd_lmtp_server.messages
    assert got.rcpt_tos == ["one@example.test", "two@example.test"]


def test_lmtp_over_a_unix_socket(tmp_path: Path) -> None:
    handler = ContentKeeper()
    path = tmp_path / "lmtp.sock"
    controller = _UnixLMTPController(handler, unix_socket=str(path))
    controller.start()
    try:
        result = cli("-s", str(path), "--lmtp", "-f", "s@client.test", "-t", "u@example.test", "-q")
    finally:
        controller.stop()
    assert (result.code, result.err) == (0, "")
    assert len(handler.contents) == 1


# -- raw bytes and hostile servers -------------------------------------------------------------


def test_raw_bytes_go_out_exactly(tmp_path: Path) -> None:
    raw = b"NOOP \x00odd\r\nmail from:<not checked>\r\n"
    steps: list[Step] = [
        b"220 scripted\r\n",
        ("expect", 1),
        b"250 scripted\r\n",
        ("expect", 2),
        b"250 2.0.0 noop\r\n501-5.5.2 bad\r\n501 5.5.2 syntax\r\n",
        ("expect", 1),
        b"221 bye\r\n",
    ]
    path = tmp_path / "raw.bin"
    path.write_bytes(raw)
    with ScriptedServer(steps) as server:
        result = cli(
            "-s", f"127.0.0.1:{server.port}", "--ehlo", "client.test", "--raw", str(path),
            "--raw-replies", "2",
        )  # fmt: skip
    assert result.code == 0, result
    assert server.received == b"EHLO client.test\r\n" + raw + b"QUIT\r\n"
    assert result.out.splitlines()[-7:] == [
        "C: NOOP \\x00odd",
        "C: mail from:<not checked>",
        "S: 250 2.0.0 noop",
        "S: 501-5.5.2 bad",
        "S: 501 5.5.2 syntax",
        "C: QUIT",
        "S: 221 bye",
    ]


def test_raw_quiet_prints_the_replies(aiosmtpd_server: AiosmtpdServer) -> None:
    result = cli(
        "-s", server_of(aiosmtpd_server), "--raw", "-", "--raw-replies", "2", "-q",
        stdin=b"NOOP\r\nVRFY postmaster\r\n",
    )  # fmt: skip
    assert result.code == 0, result
    assert result.out.splitlines() == [
        "250 OK",
        "252 Cannot VRFY user, but will accept message and attempt delivery",
    ]


def test_greeting_refused_exits_3_after_a_polite_quit() -> None:
    steps: list[Step] = [b"554 5.3.2 go away\r\n", ("expect", 1), b"221 bye\r\n"]
    with ScriptedServer(steps) as server:
        result = cli("-s", f"127.0.0.1:{server.port}", "-f", "s@client.test", "-t", "r@x.test")
    assert result.code == 3
    assert "refused the session: 554 5.3.2 go away" in result.err
    assert server.received == b"QUIT\r\n"


def test_malformed_reply_exits_6() -> None:
    steps: list[Step] = [
        b"220 scripted\r\n",
        ("expect", 1),
        b"250-scripted\r\nnot a reply line\r\n",
    ]
    with ScriptedServer(steps) as server:
        result = cli("-s", f"127.0.0.1:{server.port}", "-f", "s@client.test", "-t", "r@x.test")
    assert result.code == 6
    assert "protocol error from the server" in result.err


def test_server_closing_mid_session_exits_3() -> None:
    steps: list[Step] = [
        b"220 scripted\r\n",
        ("expect", 1),
        b"250 scripted\r\n",
        ("expect", 1),
        CLOSE,
    ]
    with ScriptedServer(steps) as server:
        result = cli("-s", f"127.0.0.1:{server.port}", "-f", "s@client.test", "-t", "r@x.test")
    assert result.code == 3
    assert "server closed the connection" in result.err
    assert "* the server closed the connection" in result.out


def test_silent_server_times_out_with_3() -> None:
    with ScriptedServer([("expect", 1)]) as server:
        result = cli(
            "-s", f"127.0.0.1:{server.port}", "--timeout", "0.3", "-f", "s@client.test",
            "-t", "r@x.test",
        )  # fmt: skip
    assert result.code == 3
    assert result.err == "smtpclient: greeting: no reply within 0.3 s\n"


def test_sender_refused_exits_5(tmp_path: Path) -> None:
    steps: list[Step] = [
        b"220 scripted\r\n",
        ("expect", 1),
        b"250 scripted\r\n",
        ("expect", 1),
        b"553 5.1.8 sender rejected\r\n",
        ("expect", 1),
        b"221 bye\r\n",
    ]
    with ScriptedServer(steps) as server:
        result = cli(
            "-s", f"127.0.0.1:{server.port}", "-f", "s@client.test", "-t", "r@x.test", "-q"
        )
    assert result.code == 5
    assert result.err == "smtpclient: sender refused: 553 5.1.8 sender rejected\n"
    assert server.received.endswith(b"QUIT\r\n")


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_pipelining_switch(mode: str) -> None:
    steps: list[Step] = [
        b"220 scripted ESMTP\r\n", ("expect", 1), b"250-scripted\r\n250 PIPELINING\r\n",
        ("expect", 1), b"250 ok\r\n", ("expect", 1), b"250 ok\r\n", ("expect", 1), b"354 go\r\n",
        ("expect", 1), b"250 queued\r\n", ("expect", 1), b"221 bye\r\n",
    ]  # fmt: skip
    with ScriptedServer(steps) as server:
        result = cli(
            "-s", f"127.0.0.1:{server.port}", "--ehlo", "client.test", "-f", "s@client.test",
            "-t", "a@example.test", "--data", "-", "--pipelining", mode,
            stdin=b"Subject: p\r\n\r\nx\r\n",
        )  # fmt: skip
    assert result.code == 0, result
    lines = [line[:6] for line in result.out.splitlines() if line[:3] in ("C: ", "S: ")]
    start = lines.index("C: MAI")
    if mode == "auto":
        assert lines[start : start + 4] == ["C: MAI", "C: RCP", "C: DAT", "S: 250"]
    else:
        assert lines[start : start + 4] == ["C: MAI", "S: 250", "C: RCP", "S: 250"]
