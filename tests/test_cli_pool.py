"""``smtpclient --count N`` through the connection pool: a real subprocess, a real aiosmtpd.

The first message goes on the command's own session (shown); the others
through ``smtpclient.pool.Pool``.  The server here counts connections (open
at once, at most, in all), times every MAIL, and can refuse every Nth RCPT or
never answer the final dot.
"""

from __future__ import annotations

import asyncio
import email
import io
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP as AioLMTP
from aiosmtpd.smtp import SMTP as AioSMTP

from smtpclient._cli import run
from tests._postfix import free_port
from tests.servers import ContentKeeper, password_authenticator, server_tls_context
from tests.test_cli import PASSWORD, USER, cli

SUMMARY = re.compile(
    r"(?P<done>\d+)/(?P<total>\d+) messages: (?P<accepted>\d+) accepted, (?P<refused>\d+) "
    r"refused, (?P<deferred>\d+) deferred, (?P<unknown>\d+) unknown, (?P<error>\d+) error"
    r"(?:, (?P<partial>\d+) partial)?(?:; recipients: (?P<recipients>[^;]+))?; "
    r"\d+\.\d\d s, \d+\.\d msg/s"
)


def summary(out: str) -> dict[str, str | None]:
    """The summary line (the last of stdout), by field."""
    match = SUMMARY.fullmatch(out.splitlines()[-1])
    assert match is not None, out[-500:]
    return match.groupdict()


class _Protocol(AioSMTP):
    def __init__(self, server: CountingServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server = server
        self.counted = False
        self.transaction = 0  # the number of this connection's MAIL among all the server's

    def connection_made(self, transport: Any) -> None:
        if not self.counted:
            self.counted = True
            self.server.connected()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.server.disconnected()
        super().connection_lost(error)

    async def smtp_MAIL(self, arg: str | None) -> None:
        with self.server.lock:
            self.server.mail_times.append(time.monotonic())
            self.transaction = len(self.server.mail_times)
        if self.server.refuse_at.get(self.transaction) == "mail":
            await self.push("550 5.7.1 sender refused by the test")
            return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str | None) -> None:
        if self.server.refuse_at.get(self.transaction) == "data":
            await self.push("554 5.5.1 no DATA by the test")
            return
        await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, server: CountingServer) -> None:
        self.server = server
        self.rcpts = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.rcpts += 1  # on the server's one event loop: no lock needed
        every = self.server.refuse_rcpt_every
        if every is not None and self.rcpts % every == 0:
            return "550 5.1.1 refused by the test"
        if self.server.tempfail_first and self.rcpts == 1:
            return "451 4.7.1 greylisted, try again"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.server.lock:
            self.server.contents.append(bytes(envelope.original_content))
        if self.server.silent:
            await asyncio.sleep(3600)  # kept, and never answered: cancelled at hang-up
        if self.server.refuse_at.get(len(self.server.mail_times)) == "dot":
            return "554 5.6.0 content refused by the test"
        return "250 2.0.0 kept"


class _Controller(Controller):
    def __init__(self, server: CountingServer, **kwargs: Any) -> None:
        self.counting = server
        super().__init__(_Handler(server), **kwargs)

    def factory(self) -> AioSMTP:
        return _Protocol(self.counting, self.handler, **self.SMTP_kwargs)


class CountingServer:
    """aiosmtpd on loopback that counts connections and times each MAIL."""

    def __init__(
        self,
        *,
        refuse_rcpt_every: int | None = None,
        silent: bool = False,
        tempfail_first: bool = False,
        refuse_at: dict[int, str] | None = None,
    ) -> None:
        self.refuse_rcpt_every = refuse_rcpt_every
        # The Nth MAIL's transaction refused at "mail", "data" or "dot" (5yz).
        self.refuse_at = refuse_at or {}
        self.tempfail_first = tempfail_first
        self.silent = silent
        self.lock = threading.Lock()
        self.contents: list[bytes] = []
        self.mail_times: list[float] = []
        self.open = self.peak = self.connections = 0
        self._controller = _Controller(
            self,
            hostname="127.0.0.1",
            port=free_port(),
            server_hostname="count.test",
            decode_data=False,
        )

    def connected(self) -> None:
        with self.lock:
            self.open += 1
            self.connections += 1
            self.peak = max(self.peak, self.open)

    def disconnected(self) -> None:
        with self.lock:
            self.open -= 1

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._controller.port}"

    def __enter__(self) -> CountingServer:
        self._controller.start()
        deadline = time.monotonic() + 5  # start() checks the server with a connection of its own
        while self.open and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            self.connections = self.peak = self.open
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with CountingServer() as running:
        yield running


def send(server: CountingServer, *args: str) -> Any:
    return cli("-s", server.address, "-f", "s@client.test", "-t", "r@example.test", *args)


# -- the pool delivers, the summary and the progress count ----------------------------------


def test_200_messages_over_at_most_4_connections(server: CountingServer) -> None:
    result = send(server, "--count", "200", "--connections", "4")
    assert result.code == 0, result
    assert summary(result.out) == {
        "done": "200", "total": "200", "accepted": "200", "refused": "0", "deferred": "0",
        "unknown": "0", "error": "0", "partial": None, "recipients": None,
    }  # fmt: skip
    assert len(server.contents) == 200
    ids = {email.message_from_bytes(c)["Message-ID"] for c in server.contents}
    assert len(ids) == 200  # 200 messages, none twice
    # The command's own session (closed first), then the pool: 4 at once at most.
    assert server.peak <= 4
    assert 2 <= server.connections <= 1 + 4
    # The first message's transcript, then QUIT, then only the summary.
    lines = result.out.splitlines()
    assert result.out.count("C: MAIL FROM:") == 1
    assert lines[-3:-1] == ["C: QUIT", "S: 221 Bye"]
    assert "* message 1 of 200 on this session; the other 199 through up to 4" in result.out
    # The progress, fed by the results as they came: a line every tenth, the last at 200.
    progress = [line for line in result.err.splitlines() if " done (" in line]
    assert [line.split()[1] for line in progress] == [f"{20 * i}/200" for i in range(1, 11)]
    assert progress[-1].startswith("smtpclient: 200/200 done (")


def test_verbose_shows_a_line_per_result(server: CountingServer) -> None:
    result = send(server, "--count", "6", "--connections", "2", "-v")
    assert result.code == 0, result
    lines = [line for line in result.out.splitlines() if line.startswith("* message ")]
    numbers = sorted(int(line.split()[2].rstrip(":")) for line in lines if ": accepted: " in line)
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert " done (" not in result.err  # the lines are the progress


def test_rate_is_respected(server: CountingServer) -> None:
    start = time.monotonic()
    result = send(server, "--count", "7", "--connections", "3", "--rate", "3/1", "-q")
    elapsed = time.monotonic() - start
    assert result.code == 0, result
    assert summary(result.out)["accepted"] == "7"
    # 7 transactions, 3 in any second: the 4th a second after the 1st, the 7th after 2 s.
    assert elapsed >= 2.0
    times = sorted(server.mail_times)
    assert len(times) == 7
    # Any 4 consecutive MAILs span a second, less the time a MAIL takes to arrive once
    # its transaction began (a thread's wake-up, loopback): generous, for loaded machines.
    assert all(later - earlier >= 0.8 for earlier, later in zip(times, times[3:], strict=False))


def test_refused_recipients_are_counted_and_exit_1() -> None:
    with CountingServer(refuse_rcpt_every=3) as server:
        result = send(server, "--count", "30", "--connections", "3", "-q")
    assert result.code == 1, result
    got = summary(result.out)
    assert (got["accepted"], got["refused"], got["deferred"], got["unknown"], got["error"]) == (
        "20", "10", "0", "0", "0",
    )  # fmt: skip
    assert len(server.contents) == 20
    assert "refused: 550 5.1.1 refused by the test" in result.err
    assert "smtpclient: 30/30 done" in result.err and "10 not accepted" in result.err


def test_one_refused_recipient_of_two() -> None:
    with CountingServer(refuse_rcpt_every=2) as refusing:
        result = cli(
            "-s", refusing.address, "-f", "s@client.test", "-t", "a@example.test",
            "-t", "b@example.test", "--count", "4", "--connections", "1", "-q",
        )  # fmt: skip
    assert result.code == 1
    got = summary(result.out)
    assert (got["accepted"], got["partial"], got["recipients"]) == (
        "0",
        "4",
        "4 accepted, 4 refused",
    )
    assert "smtpclient: recipient b@example.test refused: 550" in result.err  # the first message


def test_each_refusal_names_the_command_that_drew_it() -> None:
    # One connection: the Nth MAIL the server sees is message N's.
    with CountingServer(refuse_at={2: "mail", 3: "data", 4: "dot"}) as server:
        result = send(server, "--count", "5", "--connections", "1", "-v")
    assert result.code == 5, result  # EXIT_TRANSACTION: not the recipient's refusal (1)
    lines = {
        int(line.split()[2].rstrip(":")): line.split(": ", 1)[1]
        for line in result.out.splitlines()
        if re.match(r"\* message \d+: ", line)
    }
    assert lines[2] == "refused: sender refused: 550 5.7.1 sender refused by the test"
    assert lines[3] == "refused: DATA refused: 554 5.5.1 no DATA by the test"
    assert lines[4] == "refused: message refused: 554 5.6.0 content refused by the test"
    assert lines[5].startswith("accepted: ")
    assert len(server.contents) == 3  # messages 1, 4 (refused after its content) and 5
    assert len(server.mail_times) == 5  # 5yz: none tried again


def test_no_verdict_is_unknown_and_exits_3() -> None:
    with CountingServer(silent=True) as server:
        result = send(server, "--count", "5", "--connections", "2", "--timeout", "0.5", "-q")
    assert result.code == 3, result
    got = summary(result.out)
    assert (got["accepted"], got["unknown"], got["done"]) == ("0", "5", "5")
    assert len(server.contents) == 5  # every one was taken: "unknown", never "failed"
    assert "sent" not in result.out.splitlines()[-1]
    assert "5 messages may have been delivered" in result.err
    # Never sent twice: an unknown outcome is not retried.
    assert len(server.mail_times) == 5


def test_no_verdict_on_a_single_message_exits_3() -> None:
    # Without --count: a clear error, not a traceback.
    with CountingServer(silent=True) as server:
        result = send(server, "--timeout", "0.5", "-q")
    assert result.code == 3, result
    assert result.err.startswith("smtpclient: send: the message may have been delivered to 1")
    assert "Traceback" not in result.err


def test_a_first_message_deferred_is_tried_again_in_the_pool() -> None:
    with CountingServer(tempfail_first=True) as server:
        result = send(server, "--count", "3", "-q")
    assert result.code == 0, result
    assert summary(result.out)["accepted"] == "3"
    assert len(server.contents) == 3
    assert "smtpclient: recipient r@example.test refused: 451 4.7.1 greylisted" in result.err


def test_count_over_tls_with_auth(ca: trustme.CA, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = ContentKeeper()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_tls_context(ca),
        require_starttls=True,
        authenticator=password_authenticator,
        server_hostname="localhost",
    )
    controller.start()
    try:
        result = cli(
            "-s", f"localhost:{controller.port}", "--tls", "required", "--cafile", str(ca_file),
            "-f", "s@client.test", "-t", "r@example.test", "-a", USER, "--auth-password-env",
            "PW", "--count", "6", "--connections", "3", "-q",
            env={"PW": PASSWORD},
        )  # fmt: skip
    finally:
        controller.stop()
    assert result.code == 0, result
    assert summary(result.out)["accepted"] == "6"
    assert len(handler.contents) == 6


class _UnixLMTPController(UnixSocketController):
    def factory(self) -> AioLMTP:
        return AioLMTP(self.handler, **self.SMTP_kwargs)


def test_count_lmtp_over_a_unix_socket(tmp_path: Path) -> None:
    handler = ContentKeeper()
    path = tmp_path / "lmtp.sock"
    controller = _UnixLMTPController(handler, unix_socket=str(path))
    controller.start()
    try:
        result = cli(
            "-s", str(path), "--lmtp", "-f", "s@client.test", "-t", "u@example.test",
            "--count", "5", "--connections", "2", "--max-per-connection", "2", "-q",
        )  # fmt: skip
    finally:
        controller.stop()
    assert result.code == 0, result
    assert summary(result.out)["accepted"] == "5"
    assert len(handler.contents) == 5


def test_count_starttls_over_a_unix_socket(ca: trustme.CA, tmp_path: Path) -> None:
    # The pool's own Unix sockets take no TLS: the command connects them itself.
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = ContentKeeper()
    path = tmp_path / "smtp.sock"
    controller = UnixSocketController(
        handler,
        unix_socket=str(path),
        tls_context=server_tls_context(ca),
        require_starttls=True,
    )
    controller.start()
    try:
        result = cli(
            "-s", str(path), "--tls", "required", "--cafile", str(ca_file),
            "-f", "s@client.test", "-t", "u@example.test", "--count", "4", "--connections", "2",
            "-q",
        )  # fmt: skip
    finally:
        controller.stop()
    assert result.code == 0, result
    assert summary(result.out)["accepted"] == "4"
    assert len(handler.contents) == 4


# -- usage -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "5", "--rate", "5"], "--rate must be N/SECONDS"),
        (["--count", "5", "--rate", "0/60"], "--rate must be N/SECONDS"),
        (["--count", "5", "--rate", "10/0"], "--rate must be N/SECONDS"),
        (["--count", "5", "--rate", "ten/60"], "--rate must be N/SECONDS"),
        (["--count", "5", "--rate", "1/nan"], "--rate must be N/SECONDS"),
        (["--count", "5", "--connections", "0"], "--connections must be 1 or more"),
        (["--count", "5", "--max-per-connection", "0"], "--max-per-connection must be 1"),
        (["--connections", "4"], "go with --count N"),
        (["--rate", "1/1"], "go with --count N"),
    ],
)
def test_pool_usage_errors(args: list[str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run(["-f", "a@b.test", "-t", "c@d.test", *args], stdout=out, stderr=err) == 2
    assert message in err.getvalue()
    assert out.getvalue() == ""


def test_pool_usage_error_exits_2_in_a_subprocess() -> None:
    result = cli("-f", "a@b.test", "-t", "c@d.test", "--count", "3", "--connections", "-1")
    assert result.code == 2
    assert "--connections must be 1 or more" in result.err
