"""Real servers that misbehave on request, for the pool's tests (``tests/test_pool_real.py``).

:class:`PoolServer` is aiosmtpd, in-process on a loopback port (its own thread
and event loop, as ``tests/servers.py``'s), whose protocol can be told to do
what busy or broken servers do to bulk senders:

* ``refuse_mail_after=N``: answer the (N+1)th MAIL of a connection with 421
  and close it (a server's "too many messages per connection").
* ``refuse_dot_every=N``: answer the final dot of every Nth message of a
  connection with 421 and close it.  The message is NOT kept: a 421 to the
  end of data is a verdict (not delivered, try again), unlike silence.
* ``drop_after=N``: close the connection, saying nothing, when the (N+1)th
  MAIL comes (a server that crashes or restarts).
* ``drop_idle_after=N``: close the connection right after the 250 to the
  Nth message's final dot (a server that drops idle clients): the client
  finds out when it next writes.
* ``max_sessions=N``: greet a connection beyond N open at once with 421
  and close it, at once; ``greeting_delay`` seconds before the greeting of
  the others (a server that looks the client up first, as most do).
* ``silent_marker=b"..."``: keep a message whose content holds the marker,
  then never answer its final dot (the server is "still delivering"); the
  client's ``data_end`` timeout ends it.

It records every message it kept (:class:`Arrival`, with the time its MAIL
came, by ``time.monotonic()``, and its connection's number) and counts
connections: open now, at most at once, in all.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as AioSMTP

from tests._postfix import free_port

__all__ = ["Arrival", "PoolServer"]


@dataclass(frozen=True)
class Arrival:
    """One message the server kept."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    mail_at: float  # time.monotonic() when its MAIL came
    connection: int  # 1 for the server's first connection, and so on


class _Recorder:
    """The shared state of a :class:`PoolServer`: messages, MAIL times, connections.

    Written on the server's loop thread, read by the test's: under a lock.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[Arrival] = []
        self.mail_times: list[float] = []  # every MAIL, kept or not
        self.hang_ups = 0  # connections closed by the server (421 or a drop)
        self.refused = 0  # connections greeted with 421 (beyond max_sessions)
        self.open = 0
        self.peak = 0
        self.connections = 0

    def connected(self) -> int:
        with self.lock:
            self.open += 1
            self.connections += 1
            self.peak = max(self.peak, self.open)
            return self.connections

    def disconnected(self) -> None:
        with self.lock:
            self.open -= 1


class _Protocol(AioSMTP):
    """aiosmtpd's SMTP with the misbehaviours of :class:`PoolServer`, per connection."""

    def __init__(self, server: PoolServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server = server
        self.number = 0
        self.mails = 0  # MAIL commands on this connection
        self.kept = 0  # messages taken on this connection (final dot reached)
        self.mail_at = 0.0
        self.close_after_reply = False
        self.refused = False  # greeted with 421: beyond max_sessions
        self.greeted = False

    def connection_made(self, transport: Any) -> None:
        if self.number == 0:  # not again for STARTTLS (not used here)
            self.number = self.server.recorder.connected()
        limit = self.server.max_sessions
        if limit is not None and self.server.open_connections > limit:
            self.refused = True
            with self.server.recorder.lock:
                self.server.recorder.refused += 1
            transport.write(b"421 4.7.0 too many connections, try again later\r\n")
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.server.recorder.disconnected()
        if not self.refused:
            super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        if not self.greeted:
            self.greeted = True
            await asyncio.sleep(self.server.greeting_delay)
        await super().push(status)

    async def smtp_MAIL(self, arg: str | None) -> None:
        server = self.server
        self.mail_at = time.monotonic()
        with server.recorder.lock:
            server.recorder.mail_times.append(self.mail_at)
        if server.drop_after is not None and self.mails >= server.drop_after:
            self._hang_up()  # no reply: the pipelined RCPT and DATA are lost too
            return
        if server.refuse_mail_after is not None and self.mails >= server.refuse_mail_after:
            await self.push("421 4.7.0 too many messages on this connection, closing")
            self._hang_up()
            return
        self.mails += 1
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:
        await super().smtp_DATA(arg)
        idle_after = self.server.drop_idle_after
        if self.close_after_reply or (idle_after is not None and self.kept >= idle_after):
            self._hang_up()

    def _hang_up(self) -> None:
        """Close the connection, as aiosmtpd's QUIT does: nothing more is read."""
        with self.server.recorder.lock:
            self.server.recorder.hang_ups += 1
        if self.transport is not None:
            self.transport.close()
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()


class _Handler:
    """The aiosmtpd handler of a :class:`PoolServer`: its hooks get the connection's protocol."""

    def __init__(self, server: PoolServer) -> None:
        self.server = server

    async def handle_DATA(self, protocol: _Protocol, session: Any, envelope: Any) -> str:
        protocol.kept += 1
        server = self.server
        every = server.refuse_dot_every
        if every is not None and protocol.kept % every == 0:
            protocol.close_after_reply = True
            return "421 4.3.2 shutting down, message not accepted"
        arrival = Arrival(
            envelope.mail_from,
            tuple(envelope.rcpt_tos),
            bytes(envelope.original_content),
            protocol.mail_at,
            protocol.number,
        )
        with server.recorder.lock:
            server.recorder.arrivals.append(arrival)
        marker = server.silent_marker
        if marker is not None and marker in arrival.content:
            # Kept, and no answer: aiosmtpd cancels this when the client hangs up.
            await asyncio.sleep(3600)
        return "250 2.0.0 OK kept"


class _Controller(Controller):
    def __init__(self, server: PoolServer, **kwargs: Any) -> None:
        self.pool_server = server
        super().__init__(_Handler(server), **kwargs)

    def factory(self) -> AioSMTP:
        return _Protocol(self.pool_server, self.handler, **self.SMTP_kwargs)


class PoolServer:
    """aiosmtpd on 127.0.0.1 with the misbehaviours in the module's documentation."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        refuse_mail_after: int | None = None,
        refuse_dot_every: int | None = None,
        drop_after: int | None = None,
        drop_idle_after: int | None = None,
        max_sessions: int | None = None,
        greeting_delay: float = 0.0,
        silent_marker: bytes | None = None,
    ) -> None:
        self.refuse_mail_after = refuse_mail_after
        self.refuse_dot_every = refuse_dot_every
        self.drop_after = drop_after
        self.drop_idle_after = drop_idle_after
        self.max_sessions = max_sessions
        self.greeting_delay = greeting_delay
        self.silent_marker = silent_marker
        self.recorder = _Recorder()
        self.port = free_port()
        self._controller = _Controller(
            self,
            hostname=self.host,
            port=self.port,
            server_hostname="pool.test",
            decode_data=False,
        )

    @property
    def arrivals(self) -> list[Arrival]:
        """Every message kept so far, in the order their final dot came."""
        with self.recorder.lock:
            return list(self.recorder.arrivals)

    @property
    def mail_times(self) -> list[float]:
        """When every MAIL came (refused or not), in order."""
        with self.recorder.lock:
            return list(self.recorder.mail_times)

    @property
    def peak_connections(self) -> int:
        """Connections open at once, at most, so far."""
        with self.recorder.lock:
            return self.recorder.peak

    @property
    def hang_ups(self) -> int:
        """Connections the server closed on purpose (421, or a drop), so far."""
        with self.recorder.lock:
            return self.recorder.hang_ups

    @property
    def refused_connections(self) -> int:
        """Connections greeted with 421 (beyond ``max_sessions``), so far."""
        with self.recorder.lock:
            return self.recorder.refused

    @property
    def open_connections(self) -> int:
        with self.recorder.lock:
            return self.recorder.open

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        with self.recorder.lock:
            return self.recorder.connections

    def __enter__(self) -> PoolServer:
        self._controller.start()
        # start() made a connection of its own to check the server: not the test's.
        deadline = time.monotonic() + 5.0
        while self.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.recorder.lock:
            self.recorder.connections = self.recorder.peak = self.recorder.open
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()
