"""The trio world: an :class:`~transports._stream.AsyncByteStream` over a trio stream.

:class:`TrioStream` adapts any :class:`trio.abc.Stream` (a TCP or Unix socket
stream, a :class:`trio.SSLStream`, a caller's own) to the four methods the
asynchronous pump needs, turning trio's deadlines and exceptions into the
built-in ones the pump expects.  :func:`open_stream` and
:func:`open_unix_stream` make one.  Nothing here knows SMTP.

Requires trio; importing this module is what makes trio a dependency.
"""

from __future__ import annotations

import errno
import math
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from ._names import check_server_hostname, name_for
from ._pump import tcp_connector, unix_connector
from .sync import READ_SIZE

__all__ = ["READ_SIZE", "TrioStream", "connect", "connect_unix", "open_stream", "open_unix_stream"]


class TrioStream:
    """A :class:`trio.abc.Stream` seen as an :class:`~transports._stream.AsyncByteStream`.

    Args:
        stream: a connected trio stream; this object owns it from now on and
            closes it in :meth:`aclose`.

    Every method raises the built-in :class:`TimeoutError` when its
    ``timeout`` (relative seconds, ``None`` for no limit) runs out, after
    which the stream must not be used again: trio may have sent or read part
    of the data.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream

    @property
    def stream(self) -> trio.abc.Stream:
        """The trio stream in use now (a :class:`trio.SSLStream` once TLS is on)."""
        return self._stream

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS session's :class:`ssl.SSLObject` once TLS is active, else ``None``.

        For logging (``version()``, ``cipher()``, ``getpeercert()``).
        """
        if isinstance(self._stream, trio.SSLStream):
            # SSLStream forwards some of the object's methods but exposes no
            # public way to reach the object itself; tests pin this attribute.
            ssl_object: ssl.SSLObject = self._stream._ssl_object
            return ssl_object
        return None

    async def receive(self, timeout: float | None) -> bytes:
        """Return at most :data:`READ_SIZE` bytes (at least one), or ``b""`` at EOF.

        A TLS peer that closes without sending close_notify also gives
        ``b""``: mail servers commonly do, and SMTP's own end (the reply to
        QUIT) has already been read by then.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            OSError: the connection broke (``ConnectionResetError`` and the
                like), or this stream was already closed (``EBADF``).
        """
        # The hot path: one CancelScope, no context-manager generators (bench/aio.py:
        # _translate's contextlib layers cost ~350 k instructions a message).
        try:
            if timeout is None:
                data = await self._stream.receive_some(READ_SIZE)
            else:
                with trio.CancelScope(deadline=trio.current_time() + max(timeout, 0.0)) as scope:
                    data = await self._stream.receive_some(READ_SIZE)
                if scope.cancelled_caught:
                    raise TimeoutError(f"timed out receiving (after {timeout} s)")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _os_error(exc, "receiving") from None
        # trio.abc.Stream may give a bytearray; bytes() of bytes is the same object.
        return bytes(data)

    async def send(self, data: bytes, timeout: float | None) -> None:
        """Write all of ``data``.

        Memory stays bounded: ``send_all`` returns only once the kernel (or,
        under TLS, the transport below) has taken every byte, so a large
        message is never queued in user space.

        Raises:
            TimeoutError: the peer did not take it all within ``timeout``
                seconds; part of it may have been sent.
            OSError: as :meth:`receive`.
        """
        try:
            if timeout is None:
                await self._stream.send_all(data)
            else:
                with trio.CancelScope(deadline=trio.current_time() + max(timeout, 0.0)) as scope:
                    await self._stream.send_all(data)
                if scope.cancelled_caught:
                    raise TimeoutError(f"timed out sending (after {timeout} s)")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _os_error(exc, "sending") from None

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> TrioStream:
        """Run the TLS client handshake over the current stream, upgrading in place.

        ``server_hostname`` is the name checked against the certificate and
        sent as SNI, exactly as given (never derived from the address).

        Returns:
            ``self``, now carrying TLS.

        Raises:
            ssl.SSLError: the handshake failed (``ssl.SSLCertVerificationError``
                for an untrusted or wrong-host certificate); the stream is
                closed.
            ValueError: ``server_hostname`` is ``None`` but ``context`` checks
                host names; nothing was sent and the stream is as it was.
            TimeoutError, OSError: as :meth:`receive`; the stream is closed.
        """
        check_server_hostname(context, server_hostname)
        try:
            # https_compatible: servers routinely close without close_notify;
            # that is then EOF, and aclose() waits for none.
            tls = trio.SSLStream(
                self._stream, context, server_hostname=server_hostname, https_compatible=True
            )
            with _translate("in the TLS handshake", timeout):
                await tls.do_handshake()
        except BaseException:
            # Closing the transport closes the half-built TLS stream with it.
            await trio.aclose_forcefully(self._stream)
            raise
        self._stream = tls
        return self

    async def aclose(self) -> None:
        """Close the stream at once; idempotent, and never raises for a dead peer.

        No close_notify is awaited under TLS (see :meth:`start_tls`), and the
        close completes even inside a cancelled scope.
        """
        await trio.aclose_forcefully(self._stream)


async def open_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    source_address: tuple[str, int] | str | None = None,
    connect_timeout: float | None = None,
    happy_eyeballs_delay: float | None = 0.25,
) -> TrioStream:
    """Open a TCP connection to ``host``:``port``, with TLS at once if ``ssl_context`` is given.

    ``host`` may resolve to several IPv4 and IPv6 addresses; they are tried in
    turn, a new attempt starting every ``happy_eyeballs_delay`` seconds while
    earlier ones are pending (RFC 8305; ``None`` waits for each to fail).

    Args:
        host: a name or an IP literal.
        port: the TCP port.
        ssl_context: if given, implicit TLS: the handshake runs right after
            connecting.
        server_hostname: the name the certificate must carry.  If ``None``, it
            is ``host`` when ``host`` is a name, and stays ``None`` when
            ``host`` is an IP literal (an address is not the name a certificate
            carries): a context that checks host names then refuses with
            ``ValueError`` before connecting, so pass the name you expect.
        source_address: the local address to connect from, as an IP string or
            ``(ip, 0)`` (``""`` for the default).  trio picks the source port
            itself, so a non-zero port is refused with ``ValueError``.
        connect_timeout: seconds for the whole of connecting and any TLS
            handshake; ``None`` for no limit.
        happy_eyeballs_delay: see above.

    Returns:
        The connected stream, owned by the caller (close it with ``aclose``).

    Raises:
        TimeoutError: not connected (and TLS not up) within ``connect_timeout``.
        OSError: no address could be reached (refused, unreachable, name not
            found).
        ssl.SSLError: the TLS handshake failed.
        ValueError: no ``server_hostname`` for a context that checks host names.
    """
    local_address = _source_ip(source_address)
    if ssl_context is not None:
        server_hostname = name_for(host, server_hostname)
        check_server_hostname(ssl_context, server_hostname)  # before any connection exists
    with _translate(f"connecting to {host}:{port}", connect_timeout):
        raw = await trio.open_tcp_stream(
            host, port, happy_eyeballs_delay=happy_eyeballs_delay, local_address=local_address
        )
        stream = TrioStream(raw)
        if ssl_context is not None:
            # The surrounding deadline is the whole budget; start_tls closes
            # the stream if the handshake fails or the time runs out.
            await stream.start_tls(ssl_context, server_hostname, None)
    return stream


async def open_unix_stream(path: str, *, connect_timeout: float | None = None) -> TrioStream:
    """Connect to the Unix socket at ``path`` (LMTP's usual door).

    Returns:
        The connected stream, owned by the caller.

    Raises:
        TimeoutError: not connected within ``connect_timeout`` seconds.
        OSError: the socket is missing or refuses the connection.
    """
    with _translate(f"connecting to {path}", connect_timeout):
        return TrioStream(await trio.open_unix_socket(path))


@contextmanager
def _translate(doing: str, timeout: float | None) -> Iterator[None]:
    """Run the block under ``timeout``, raising built-in exceptions instead of trio's.

    trio reports a failed transport as ``BrokenResourceError`` with the real
    error as its ``__cause__`` (the ``OSError``, or the ``ssl.SSLError`` of a
    failed handshake): that cause is what callers can act on, so it is what
    they get.
    """
    # A budget already spent (negative) fails at the first checkpoint, as 0 does.
    seconds = math.inf if timeout is None else max(timeout, 0.0)
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        raise TimeoutError(f"timed out {doing} (after {timeout} s)") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise _os_error(exc, doing) from None


def _os_error(exc: trio.BrokenResourceError | trio.ClosedResourceError, doing: str) -> OSError:
    """The built-in error for trio's: what callers can act on."""
    if isinstance(exc, trio.ClosedResourceError):
        # Our own aclose() came first: the same error as a closed socket's.
        error = OSError(errno.EBADF, f"stream already closed ({doing})")
    elif isinstance(exc.__cause__, OSError):  # ssl.SSLError included
        return exc.__cause__
    else:
        # No cause: an earlier operation failed or was cut short (a timeout
        # mid-write under TLS), and the stream refuses to go on.
        error = ConnectionResetError(
            f"connection broken while {doing} (by the peer, or an earlier failed operation)"
        )
    error.__cause__ = exc
    return error


def _source_ip(source_address: tuple[str, int] | str | None) -> str | None:
    """The local IP for ``open_tcp_stream``, or ``None`` to let the OS choose."""
    if isinstance(source_address, tuple):
        ip, source_port = source_address
        if source_port:
            raise ValueError(f"trio cannot bind a source port (got {source_port}); pass 0")
        source_address = ip
    return source_address or None


#: Connect and return an :class:`~transports.AsyncDriver`: :func:`open_stream`
#: behind the pump, with per-stage timeouts (see ``transports.asyncio.connect``).
connect = tcp_connector(open_stream)
#: Connect to a Unix socket (LMTP) and return an :class:`~transports.AsyncDriver`.
connect_unix = unix_connector(open_unix_stream)
