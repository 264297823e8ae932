"""The engine's contract in four corners the RFCs pin down.

- RFC 2920 §3.1: a pipelined DATA that draws 354 with no recipient accepted
  gets the end-of-data marker alone, and the session goes on.
- A reply nothing asked for is refused when it is seen, never paired with the
  next command.
- RFC 3207 §4.2: after STARTTLS the client forgets what it knew, the
  authentication included.
- RFC 2920 §3.1 again: a pipelined group is not written whole before any reply
  is read (a server that answers as it reads would deadlock with a client that
  writes 300,000 RCPTs first), yet an ordinary group is still one write.

The socket tests use :class:`LineServer`, a peer on 127.0.0.1 that answers
each command line as soon as it reads it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TypeVar

import pytest

import smtp_core as sc
from smtp_core import (
    NEED_DATA,
    Connection,
    Procedure,
    RemoteProtocolError,
    Reply,
    State,
    procedures,
)
from transports.sync import SyncDriver, connect

T = TypeVar("T")

GREETING = b"220 srv.test ESMTP\r\n"
EHLO_PIPELINING = b"250-srv.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_PLAIN = b"250-srv.test\r\n250 8BITMIME\r\n"
MESSAGE = b"Subject: secret\r\n\r\nthe content\r\n"

#: Called with each line (without CRLF; ``b"."`` for the end of the data):
#: the bytes to answer with.
Handler = Callable[[bytes], bytes]


class LineServer:
    """Accepts one connection on 127.0.0.1 and answers each line as soon as it reads it.

    The answers to every line of one read go out in one write.  A DATA whose
    answer starts with 354 switches to reading content until the ``.`` line.
    Every socket operation times out after ``timeout`` seconds, so a client
    that stops reading cannot hold the server forever.
    """

    def __init__(self, handler: Handler, *, timeout: float = 10.0) -> None:
        self.handler = handler
        self.timeout = timeout
        self.lines = 0
        self.error: BaseException | None = None
        self._received = bytearray()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(timeout)
        self.host, self.port = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def received(self) -> bytes:
        return bytes(self._received)

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
            with conn:
                conn.settimeout(self.timeout)
                self._talk(conn)
        except Exception as exc:
            self.error = exc

    def _talk(self, conn: socket.socket) -> None:
        conn.sendall(GREETING)
        pending = b""
        in_data = False
        while chunk := conn.recv(1 << 16):
            self._received += chunk
            lines = (pending + chunk).split(b"\r\n")
            pending = lines.pop()
            out = bytearray()
            for line in lines:
                if in_data and line != b".":
                    continue
                self.lines += 1
                answer = self.handler(line)
                out += answer
                in_data = not in_data and line[:4].upper() == b"DATA" and answer[:3] == b"354"
            if out:
                conn.sendall(out)

    def __enter__(self) -> LineServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._listener.close()
        self._thread.join(timeout=self.timeout + 5)


def plain_answers(line: bytes) -> bytes:
    """An accepting server with PIPELINING."""
    verb = line[:4].upper()
    if verb == b"EHLO":
        return EHLO_PIPELINING
    if verb == b"DATA":
        return b"354 go ahead\r\n"
    if line == b".":
        return b"250 2.0.0 queued\r\n"
    if verb == b"QUIT":
        return b"221 2.0.0 bye\r\n"
    return b"250 2.0.0 ok\r\n"


# -- RFC 2920 §3.1: 354 with no recipient accepted -----------------------------------------


def _every_rcpt_refused(line: bytes) -> bytes:
    if line[:4].upper() == b"RCPT":
        return b"550 5.1.1 no such user\r\n"
    if line == b".":
        return b"554 5.5.1 Error: no valid recipients\r\n"
    return plain_answers(line)


def test_354_with_no_recipient_accepted_sends_the_end_of_data_alone() -> None:
    # RFC 2920 §3.1: "If the DATA command was accepted [354] ... the client
    # should send a single dot" when every RCPT failed.  A server that answers
    # DATA before it knows the RCPTs failed (some do) must not get the message.
    with LineServer(_every_rcpt_refused) as server:
        conn = Connection()
        driver = SyncDriver(connect(server.host, server.port, timeout=10))
        try:
            driver.run(procedures.handshake(conn, "client.test"))
            assert conn.extensions.pipelining
            result = driver.run(
                procedures.send_mail(conn, "a@client.test", ["nobody@srv.test"], MESSAGE)
            )
            assert result.delivered is False
            assert result.accepted == ()
            assert result.data_reply is not None
            assert result.data_reply.code == 354
            assert conn.state is State.READY
            noop = driver.run(procedures.command(conn, sc.Noop()))
            assert noop.code == 250
            driver.run(procedures.quit(conn))
        finally:
            driver.close()
    assert server.received.startswith(
        b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<nobody@srv.test>\r\nDATA\r\n"
    )
    after_data = server.received.split(b"DATA\r\n", 1)[1]
    assert after_data in (b".\r\nNOOP\r\nQUIT\r\n", b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")


# -- a surplus reply ----------------------------------------------------------------------


def feed(conn: Connection, data: bytes) -> list[sc.Event]:
    conn.receive_data(data)
    events: list[sc.Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def ready(ehlo: bytes, *, auth_in_clear: bool = False) -> Connection:
    conn = Connection(auth_in_clear=auth_in_clear)
    feed(conn, GREETING)
    conn.send(sc.Ehlo("client.test"))
    feed(conn, ehlo)
    assert conn.state is State.READY
    return conn


BOTH_EHLOS = pytest.mark.parametrize(
    "ehlo", [EHLO_PIPELINING, EHLO_PLAIN], ids=["pipelining", "no-pipelining"]
)


def _first_reply_then(conn: Connection, events: list[object]) -> None:
    """Send NOOP, take the server's two replies to it in one read, keep the first."""
    conn.send(sc.Noop())
    conn.receive_data(b"250 2.0.0 a\r\n250 2.0.0 b\r\n")
    events.append(conn.next_event())


@BOTH_EHLOS
def test_surplus_reply_is_refused_before_the_next_send(ehlo: bytes) -> None:
    # The second reply answers nothing: it must never be taken as the reply to
    # the NOOP sent next.  Refused when it is seen: at the latest, at send().
    conn = ready(ehlo)
    events: list[object] = []
    with pytest.raises(RemoteProtocolError):
        _first_reply_then(conn, events)
        conn.send(sc.Noop())
    assert all(isinstance(e, Reply) and e.lines == (b"2.0.0 a",) for e in events)
    assert conn.state is State.ERROR


@BOTH_EHLOS
def test_surplus_reply_is_refused_by_the_next_next_event(ehlo: bytes) -> None:
    conn = ready(ehlo)
    events: list[object] = []
    with pytest.raises(RemoteProtocolError):
        _first_reply_then(conn, events)
        events.append(conn.next_event())
    assert all(isinstance(e, Reply) and e.lines == (b"2.0.0 a",) for e in events)
    assert conn.state is State.ERROR


# -- RFC 3207 §4.2: STARTTLS forgets the authentication ------------------------------------


def test_authentication_is_forgotten_after_starttls() -> None:
    conn = ready(
        b"250-srv.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n",
        auth_in_clear=True,
    )
    conn.send(sc.Auth("PLAIN", b"\0user\0password"))
    [reply] = feed(conn, b"235 2.7.0 Authentication successful\r\n")
    assert isinstance(reply, Reply) and reply.code == 235
    conn.send(sc.StartTLS())
    feed(conn, b"220 2.0.0 Ready to start TLS\r\n")
    conn.start_tls_done()
    conn.send(sc.Ehlo("client.test"))
    feed(conn, b"250-srv.test\r\n250 AUTH PLAIN\r\n")
    # "The client MUST discard any knowledge obtained from the server ...
    # which was not obtained from the TLS negotiation itself": the server
    # forgot the authentication too, so AUTH is allowed again.
    assert (
        conn.send(sc.Auth("PLAIN", b"\0user\0password")) == b"AUTH PLAIN AHVzZXIAcGFzc3dvcmQ=\r\n"
    )
    [reply] = feed(conn, b"235 2.7.0 Authentication successful\r\n")
    assert isinstance(reply, Reply) and reply.code == 235


# -- RFC 2920 §3.1: never deadlock the server; one write for an ordinary group ------------

HUGE = 300_000


def _answer_at_length(line: bytes) -> bytes:
    # Replies as long as real servers' (postfix: "250 2.1.5 Ok"; others echo
    # the address): 300,000 of them are far more than socket buffers hold.
    if line[:4].upper() == b"RCPT":
        return b"250 2.1.5 Recipient " + line[8:] + b" OK, will be delivered\r\n"
    return plain_answers(line)


def test_huge_pipelined_group_does_not_deadlock() -> None:
    # A server reads a command, writes its reply, reads the next.  A client
    # that writes the whole group before reading fills the server's send
    # buffer and its own: both block.  The 60 s timeouts turn that into a
    # failure instead of a hang.
    recipients = [f"r{i}@srv.test" for i in range(HUGE)]
    with LineServer(_answer_at_length, timeout=60) as server:
        conn = Connection()
        driver = SyncDriver(connect(server.host, server.port, timeout=60))
        try:
            driver.run(procedures.handshake(conn, "client.test"))
            result = driver.run(procedures.send_mail(conn, "a@client.test", recipients, MESSAGE))
            assert len(result.accepted) == HUGE
            assert result.final_reply is not None
            assert result.final_reply.code == 250
            driver.run(procedures.quit(conn))
        finally:
            driver.close()
    assert server.error is None
    # EHLO, MAIL, the RCPTs, DATA, the end of data and QUIT.
    assert server.lines == HUGE + 5


class Recorder:
    """A driver that answers each Read with the next scripted chunk and keeps every request."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.requests: list[sc.IORequest] = []

    def run(self, procedure: Procedure[T]) -> T:
        try:
            request = next(procedure)
            while True:
                self.requests.append(request)
                if isinstance(request, sc.Read):
                    request = procedure.send(next(self.chunks, b""))
                else:
                    request = procedure.send(None)
        except StopIteration as stop:
            result: T = stop.value
            return result


def test_ordinary_pipelined_group_is_one_write_before_the_first_read() -> None:
    conn = Connection()
    Recorder([GREETING, EHLO_PIPELINING]).run(procedures.handshake(conn, "client.test"))
    replies = b"250 ok\r\n" * 4 + b"354 go\r\n"
    recorder = Recorder([replies, b"250 queued\r\n"])
    rcpts = ["x@srv.test", "y@srv.test", "z@srv.test"]
    result = recorder.run(procedures.send_mail(conn, "a@client.test", rcpts, MESSAGE))
    assert result.accepted == tuple(rcpts)
    first, second = recorder.requests[:2]
    assert first == sc.Write(
        b"MAIL FROM:<a@client.test>\r\n"
        b"RCPT TO:<x@srv.test>\r\nRCPT TO:<y@srv.test>\r\nRCPT TO:<z@srv.test>\r\n"
        b"DATA\r\n"
    )
    assert isinstance(second, sc.Read)
    writes = [r for r in recorder.requests if isinstance(r, sc.Write)]
    assert len(writes) == 2  # the group, then the content with its end
