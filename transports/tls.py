"""TLS over any byte stream: a sans-I/O core and two thin drivers over it.

``ssl.SSLObject`` speaks TLS into two ``ssl.MemoryBIO`` buffers instead of a
socket, so TLS can run over whatever moves bytes: a custom transport, a proxy
tunnel, an in-memory pipe in a test.  Three layers, each usable alone:

* :class:`TLSEngine` -- the sans-I/O core (the name follows Java's
  ``SSLEngine``, which has the same job).  Feed it the peer's ciphertext, take
  the ciphertext it wants sent; each step (handshake, read, write) says
  whether it needs more ciphertext first.  It never waits and never touches
  I/O.
* :class:`TLSStream` -- an :class:`~transports._stream.AsyncByteStream` over
  another one: what a custom stream's ``start_tls`` returns.
* :class:`BlockingTLSStream` -- the same over any blocking object with
  ``recv(n)`` and ``sendall(data)``, for socket-like objects that are not
  sockets (``ssl.SSLContext.wrap_socket`` needs a real one).

The drivers are loops of one shape: run a step; if it needs ciphertext,
first send what the engine queued (the peer may be waiting for it), then read
from the transport and feed it in.

Two choices apply to both drivers:

* The peer closing the transport without a TLS ``close_notify`` alert (a
  "ragged EOF") is a plain end of stream, ``b""``.  Many SMTP servers close
  that way after 221.  close_notify guards against a truncation the
  application cannot see; SMTP cannot be truncated unseen, since every reply
  ends in a line the engine waits for, and a reply cut short is reported as
  ``ServerDisconnected``.
* The end of the transport during the handshake raises ``ssl.SSLEOFError``
  (what ``SSLObject`` itself reports), so every handshake failure, a closed
  peer included, is an ``ssl.SSLError``, as ``AsyncByteStream.start_tls``
  documents.  An error of the transport (``ConnectionResetError`` ...)
  passes through unchanged.
"""

from __future__ import annotations

import ssl
import time
from contextlib import suppress
from typing import Any

from smtp_core import NEED_DATA, NeedData

from ._names import check_server_hostname
from ._stream import AsyncByteStream

__all__ = [
    "CLOSE_NOTIFY_TIMEOUT",
    "READ_SIZE",
    "RECORD_SIZE",
    "SEND_BUFFER",
    "BlockingTLSStream",
    "TLSEngine",
    "TLSStream",
]

#: Plaintext bytes asked of ``SSLObject.read`` and ciphertext bytes asked of
#: the transport per read: the size ``transports.sync`` reads with, for the
#: same reason (``read(n)`` allocates ``n`` bytes before it shrinks them, so a
#: bigger figure costs CPU on every short SMTP reply).
READ_SIZE = 8192
#: Plaintext bytes encrypted per ``SSLObject.write`` call: the largest TLS
#: record (RFC 8446 §5.1, RFC 5246 §6.2.1: 2^14 bytes), so each call makes one
#: full record.  ``SSLObject.write`` encrypts all it is given into the memory
#: buffer at once: handed 50 MiB, it would hold 50 MiB of ciphertext.
RECORD_SIZE = 16384
#: Ciphertext bytes the engine queues before the driver must send them: no
#: more than this plus one record is ever held, whatever the size of a send.
#: Big enough that a driver writes a few records per transport call.
SEND_BUFFER = 65536
#: Seconds :meth:`TLSStream.aclose` allows for sending close_notify.  The alert
#: is a courtesy: a peer that has not taken a few bytes in this time will not
#: read them either, and closing must never hang.
CLOSE_NOTIFY_TIMEOUT = 1.0


class TLSEngine:
    """The client side of one TLS connection, with no I/O: ciphertext in, ciphertext out.

    Every step leaves the ciphertext it produced queued: send it with
    :meth:`data_to_send` before waiting for the peer, and feed what the peer
    sends to :meth:`receive_data` (``b""`` when the transport reached its end).
    A step that returns ``NEED_DATA`` has done all it can until more
    ciphertext is fed in.  Errors are those of ``ssl.SSLObject``; after one,
    the engine is unusable.

    Args:
        context: the client context; its own verification settings apply
            (``ssl.create_default_context()`` checks the chain and the name).
        server_hostname: the name the certificate must carry, also sent as SNI.
            It is never derived from an address.  ``None`` is allowed only
            when ``context.check_hostname`` is off.

    Raises:
        ValueError: ``server_hostname`` is ``None`` and the context checks
            host names.
    """

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        check_server_hostname(context, server_hostname)  # wrap_bio would skip the name
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_hostname
        )

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The ``ssl.SSLObject``: certificate, cipher, version, ALPN."""
        return self._ssl

    @property
    def pending_output(self) -> int:
        """Ciphertext bytes queued for the peer."""
        return self._outgoing.pending

    def receive_data(self, data: bytes) -> None:
        """Store ciphertext from the peer; ``b""`` means the transport reached its end.

        Raises:
            ssl.SSLError: data after the end was fed in.
        """
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    def data_to_send(self) -> bytes:
        """Return and forget the queued ciphertext (``b""`` if none).

        At most :data:`SEND_BUFFER` plus one record's worth, if the steps
        were used as documented.
        """
        return self._outgoing.read()

    def do_handshake(self) -> bool:
        """Advance the handshake: True once it is complete, False while it needs ciphertext.

        Raises:
            ssl.SSLCertVerificationError: the certificate is untrusted or for
                another name.
            ssl.SSLEOFError: the transport ended before the handshake did.
            ssl.SSLError: any other failure (an alert from the peer...).
                A fatal alert for the peer may be queued: send it if you can.
        """
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def read(self, size: int = READ_SIZE) -> bytes | NeedData:
        """Return up to ``size`` plaintext bytes, ``b""`` at the end, or ``NEED_DATA``.

        The end is the peer's close_notify or, just as well, the transport's
        end without it (see the module's docstring).  Reading may queue
        ciphertext (an answer to a TLS 1.3 KeyUpdate): send it before waiting.

        Raises:
            ssl.SSLError: an alert from the peer, or corrupt records.
        """
        try:
            return self._ssl.read(size)
        except ssl.SSLWantReadError:
            return NEED_DATA
        except ssl.SSLEOFError:
            return b""  # a ragged EOF: the peer closed without close_notify
        except ssl.SSLZeroReturnError:
            # The peer's close_notify after our own: SSLObject returns b"" for
            # it only when we have not closed first.
            return b""

    def write(self, data: bytes | memoryview) -> int | NeedData:
        """Encrypt a prefix of ``data``; return how many bytes of it were taken.

        Encrypts one record at a time and stops once :data:`SEND_BUFFER`
        bytes of ciphertext are queued, so send them and call again with the
        rest.  Returns ``NEED_DATA`` if nothing could be taken before the
        peer's ciphertext arrives (a TLS 1.2 renegotiation in progress).

        Raises:
            ssl.SSLError: the connection failed or was closed.
        """
        view = memoryview(data)
        taken = 0
        while taken < len(view) and self._outgoing.pending < SEND_BUFFER:
            try:
                taken += self._ssl.write(view[taken : taken + RECORD_SIZE])
            except ssl.SSLWantReadError:
                return taken or NEED_DATA
        return taken

    def close(self) -> None:
        """Queue a close_notify alert for the peer; never raises.

        The peer's own close_notify is not waited for: RFC 8446 §6.1 lets the
        side that closes stop reading, and SMTP has nothing left to read after
        QUIT.  Does nothing if the connection already failed.
        """
        # The first SSL_shutdown queues close_notify; Python then tries a
        # second one, which wants the peer's alert and raises WantRead.  A
        # broken connection raises other SSL errors: nothing can be sent then.
        with suppress(ssl.SSLError):
            self._ssl.unwrap()


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _left(deadline: float | None, doing: str) -> float | None:
    """The seconds left before ``deadline`` for the transport's next call."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"timed out {doing}")
    return left


class TLSStream:
    """TLS over another :class:`~transports._stream.AsyncByteStream`; one itself.

    Make one with :meth:`wrap`.  Each call's ``timeout`` is one budget for the
    whole call, however many transport calls it takes: a peer that trickles
    ciphertext cannot stretch it.  A call whose budget runs out raises the
    built-in ``TimeoutError``.  After a ``TimeoutError``, a cancellation or
    any other error in :meth:`send`, records may have been cut: the stream
    is unusable and should be closed.  Calls must not overlap (the pump
    never overlaps them).

    Args:
        transport: the stream the ciphertext travels on (now owned by this one).
        engine: an engine whose handshake is complete.
    """

    def __init__(self, transport: AsyncByteStream, engine: TLSEngine) -> None:
        self._transport = transport
        self._engine = engine
        self._closed = False

    @classmethod
    async def wrap(
        cls,
        stream: AsyncByteStream,
        context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float | None,
    ) -> TLSStream:
        """Run the TLS client handshake over ``stream``; return the TLS stream.

        Returns:
            A :class:`TLSStream` that owns ``stream``: closing it closes
            ``stream``.

        Raises:
            ssl.SSLCertVerificationError: the certificate is untrusted or does
                not carry ``server_hostname`` (with a verifying context).
            ssl.SSLEOFError: ``stream`` ended during the handshake.
            ssl.SSLError: any other TLS failure.
            ValueError: ``server_hostname`` is ``None`` and the context checks
                host names.
            TimeoutError: the handshake took longer than ``timeout`` seconds.
            OSError: from ``stream``.

        On failure ``stream`` is left open for the caller to close (the pump
        closes the stream it holds, which is ``stream``).
        """
        engine = TLSEngine(context, server_hostname)
        self = cls(stream, engine)
        deadline = _deadline(timeout)
        try:
            while not engine.do_handshake():
                await self._flush(deadline, "sending the TLS handshake")
                await self._fill(deadline, "waiting for the TLS handshake")
        except ssl.SSLError:
            # Tell the peer why (a bad_certificate alert, say), if it listens.
            with suppress(OSError, TimeoutError):
                await self._flush(deadline, "sending a TLS alert")
            raise
        # TLS 1.3: the client's Finished is still queued.
        await self._flush(deadline, "sending the TLS handshake")
        return self

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The ``ssl.SSLObject``: ``getpeercert()``, ``version()``, ``cipher()``..."""
        return self._engine.ssl_object

    async def receive(self, timeout: float | None) -> bytes:
        """Return decrypted bytes (at least one), or ``b""`` once the peer closed.

        The peer closing its transport without close_notify is a close too.

        Raises:
            TimeoutError: no plaintext within ``timeout`` seconds.
            ssl.SSLError: an alert from the peer, or corrupt records.
            OSError: from the transport.
        """
        engine = self._engine
        data = engine.read()
        if data is not NEED_DATA:
            return data  # already decrypted: no clock, no transport call
        deadline = _deadline(timeout)
        while data is NEED_DATA:
            await self._flush(deadline, "sending TLS data")
            await self._fill(deadline, "waiting for data")
            data = engine.read()
        return data

    async def send(self, data: bytes, timeout: float | None) -> None:
        """Encrypt and write all of ``data``, at most one :data:`SEND_BUFFER` at a time.

        Raises:
            TimeoutError: the transport did not take it within ``timeout`` seconds.
            ssl.SSLError: the TLS connection failed or was closed.
            OSError: from the transport.
        """
        engine = self._engine
        deadline = _deadline(timeout)
        view = memoryview(data)
        while view:
            taken = engine.write(view)
            if taken is NEED_DATA:
                # A TLS 1.2 renegotiation in progress (TLS 1.3 has none).
                # Plaintext read meanwhile stays in the engine for receive.
                # Tested with a stand-in SSLObject only: no Python server can
                # start a renegotiation.
                await self._flush(deadline, "sending TLS data")
                await self._fill(deadline, "waiting for TLS renegotiation")
                continue
            view = view[taken:]
            await self._flush(deadline, "sending TLS data")

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> AsyncByteStream:
        """Refuse: TLS inside TLS is not supported.

        Raises:
            NotImplementedError: always; a ``Connection`` built with
                ``tls_active=True`` never asks for STARTTLS.
        """
        raise NotImplementedError(
            "TLS inside TLS is not supported: this stream is already TLS "
            "(build the Connection with tls_active=True for implicit TLS)"
        )

    async def aclose(self) -> None:
        """Send close_notify (best effort, without waiting for the peer's) and close the transport.

        Idempotent; never raises for a dead peer.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._engine.close()
            with suppress(OSError, TimeoutError):  # ssl.SSLError is an OSError
                await self._flush(_deadline(CLOSE_NOTIFY_TIMEOUT), "sending close_notify")
        finally:
            await self._transport.aclose()

    async def _flush(self, deadline: float | None, doing: str) -> None:
        """Send all queued ciphertext."""
        engine = self._engine
        while engine.pending_output:
            await self._transport.send(engine.data_to_send(), _left(deadline, doing))

    async def _fill(self, deadline: float | None, doing: str) -> None:
        """Read ciphertext from the transport into the engine (its end included)."""
        data = await self._transport.receive(_left(deadline, doing))
        self._engine.receive_data(data)


class BlockingTLSStream:
    """TLS over a blocking object with ``recv(n)`` and ``sendall(data)``; such an object itself.

    For socket-like objects that are not sockets (a tunnel, a test double);
    for a real socket, ``ssl.SSLContext.wrap_socket`` is the faster choice.
    Timeouts are the transport's own, per call to it.  Make one with
    :meth:`wrap`.

    Args:
        transport: the object the ciphertext travels on (now owned by this one).
        engine: an engine whose handshake is complete.
    """

    def __init__(self, transport: Any, engine: TLSEngine) -> None:
        self._transport = transport
        self._engine = engine
        self._closed = False

    @classmethod
    def wrap(
        cls, transport: Any, context: ssl.SSLContext, server_hostname: str | None
    ) -> BlockingTLSStream:
        """Run the TLS client handshake over ``transport``; return the TLS stream.

        Raises:
            The errors of :meth:`TLSStream.wrap`, less its own timeout: the
            transport's (``socket.timeout`` is a ``TimeoutError``).
        """
        engine = TLSEngine(context, server_hostname)
        self = cls(transport, engine)
        while not engine.do_handshake():
            self._flush()
            engine.receive_data(transport.recv(READ_SIZE))
        self._flush()
        return self

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The ``ssl.SSLObject``."""
        return self._engine.ssl_object

    def recv(self, size: int = READ_SIZE) -> bytes:
        """Return up to ``size`` decrypted bytes (at least one), or ``b""`` once the peer closed.

        Raises:
            ssl.SSLError: an alert from the peer, or corrupt records.
            OSError: from the transport.
        """
        engine = self._engine
        data = engine.read(size)
        while data is NEED_DATA:
            self._flush()
            engine.receive_data(self._transport.recv(READ_SIZE))
            data = engine.read(size)
        return data

    def sendall(self, data: bytes) -> None:
        """Encrypt and write all of ``data``, at most one :data:`SEND_BUFFER` at a time.

        Raises:
            ssl.SSLError, OSError: as :meth:`recv`.
        """
        engine = self._engine
        view = memoryview(data)
        while view:
            taken = engine.write(view)
            if taken is NEED_DATA:  # as in TLSStream.send
                self._flush()
                engine.receive_data(self._transport.recv(READ_SIZE))
                continue
            view = view[taken:]
            self._flush()

    def close(self) -> None:
        """Send close_notify (best effort) and close the transport; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._engine.close()
            with suppress(OSError):
                self._flush()
        finally:
            self._transport.close()

    def _flush(self) -> None:
        engine = self._engine
        while engine.pending_output:
            self._transport.sendall(engine.data_to_send())
