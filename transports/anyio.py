"""The anyio world: an :class:`~transports._stream.AsyncByteStream` over an anyio stream.

:class:`AnyioStream` adapts any :class:`anyio.abc.ByteStream` (a TCP or Unix
socket stream, a :class:`~anyio.streams.tls.TLSStream`, a caller's own) to the
four methods the asynchronous pump needs, on whichever backend anyio runs
(asyncio or trio), turning anyio's exceptions into the built-in ones the pump
expects.  :func:`open_stream` and :func:`open_unix_stream` make one.  Nothing
here knows SMTP.

Requires anyio; importing this module is what makes anyio a dependency.
"""

from __future__ import annotations

import errno
import math
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute, TLSStream

from ._names import check_server_hostname, name_for
from ._pump import tcp_connector, unix_connector
from .sync import READ_SIZE

__all__ = ["READ_SIZE", "AnyioStream", "connect", "connect_unix", "open_stream", "open_unix_stream"]


class AnyioStream:
    """An :class:`anyio.abc.ByteStream` seen as an :class:`~transports._stream.AsyncByteStream`.

    Args:
        stream: a connected anyio byte stream; this object owns it from now on
            and closes it in :meth:`aclose`.

    Every method raises the built-in :class:`TimeoutError` when its
    ``timeout`` (relative seconds, ``None`` for no limit) runs out, after
    which the stream must not be used again: part of the data may have been
    sent or read.
    """

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream

    @property
    def stream(self) -> anyio.abc.ByteStream:
        """The anyio stream in use now (a :class:`~anyio.streams.tls.TLSStream` once TLS is on)."""
        return self._stream

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS session's :class:`ssl.SSLObject` once TLS is active, else ``None``.

        For logging (``version()``, ``cipher()``, ``getpeercert()``).
        """
        # S610 mistakes anyio's typed-attribute lookup for Django's QuerySet.extra.
        return self._stream.extra(TLSAttribute.ssl_object, None)  # noqa: S610

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
        try:
            with _translate("receiving", timeout):
                return await self._stream.receive(READ_SIZE)
        except anyio.EndOfStream:
            return b""

    async def send(self, data: bytes, timeout: float | None) -> None:
        """Write all of ``data``.

        Memory stays bounded: anyio's ``send`` returns once the kernel has
        taken the data or, on the asyncio backend, once the transport holds
        no more than its high-water mark (64 KiB by default), so a large
        message is never queued whole in user space.

        Raises:
            TimeoutError: the peer did not take it all within ``timeout``
                seconds; part of it may have been sent.
            OSError: as :meth:`receive`.
        """
        with _translate("sending", timeout):
            await self._stream.send(data)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> AnyioStream:
        """Run the TLS client handshake over the current stream, upgrading in place.

        ``server_hostname`` is the name checked against the certificate and
        sent as SNI, exactly as given (never derived from the address).

        Returns:
            ``self``, now carrying TLS.

        Raises:
            ssl.SSLError: the handshake failed (``ssl.SSLCertVerificationError``
                for an untrusted or wrong-host certificate, ``ssl.SSLEOFError``
                if the server closed during it); the stream is closed.
            ValueError: ``server_hostname`` is ``None`` but ``context`` checks
                host names; nothing was sent and the stream is as it was.
            TimeoutError, OSError: as :meth:`receive`; the stream is closed.
        """
        check_server_hostname(context, server_hostname)
        try:
            with _translate("in the TLS handshake", timeout):
                # server_side must be explicit: left out, anyio makes a
                # server-side object whenever hostname is None.
                # standard_compatible=False: servers routinely close without
                # close_notify; that is then EOF, and aclose() waits for none.
                tls = await TLSStream.wrap(
                    self._stream,
                    server_side=False,
                    hostname=server_hostname,
                    ssl_context=context,
                    standard_compatible=False,
                )
        except anyio.EndOfStream:
            await anyio.aclose_forcefully(self._stream)
            # With standard_compatible=False anyio reports the server's close
            # as a plain EOF, even mid-handshake; it is a failed handshake.
            raise ssl.SSLEOFError(
                ssl.SSL_ERROR_EOF, "the peer closed the connection during the TLS handshake"
            ) from None
        except BaseException:
            await anyio.aclose_forcefully(self._stream)
            raise
        self._stream = tls
        return self

    async def aclose(self) -> None:
        """Close the stream at once; idempotent, and never raises for a dead peer.

        No close_notify is sent or awaited under TLS (see :meth:`start_tls`),
        and the close completes even inside a cancelled scope.  On the asyncio
        backend anyio aborts the transport, so written bytes it still holds
        (up to the high-water mark, see :meth:`send`) are dropped: read the
        peer's last reply before closing.
        """
        await anyio.aclose_forcefully(self._stream)


async def open_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    source_address: tuple[str, int] | str | None = None,
    connect_timeout: float | None = None,
    happy_eyeballs_delay: float | None = 0.25,
) -> AnyioStream:
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
            ``(ip, port)``; ``""`` and port 0 leave the choice to the OS.
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
        ValueError: a source port without a source IP.
    """
    local_host, local_port = _source(source_address)
    if ssl_context is not None:
        server_hostname = name_for(host, server_hostname)
        check_server_hostname(ssl_context, server_hostname)  # before any connection exists
    with _translate(f"connecting to {host}:{port}", connect_timeout):
        raw = await anyio.connect_tcp(
            host,
            port,
            local_host=local_host,
            local_port=local_port,
            happy_eyeballs_delay=math.inf if happy_eyeballs_delay is None else happy_eyeballs_delay,
        )
        stream = AnyioStream(raw)
        if ssl_context is not None:
            # The surrounding deadline is the whole budget; start_tls closes
            # the stream if the handshake fails or the time runs out.
            await stream.start_tls(ssl_context, server_hostname, None)
    return stream


async def open_unix_stream(path: str, *, connect_timeout: float | None = None) -> AnyioStream:
    """Connect to the Unix socket at ``path`` (LMTP's usual door).

    Returns:
        The connected stream, owned by the caller.

    Raises:
        TimeoutError: not connected within ``connect_timeout`` seconds.
        OSError: the socket is missing or refuses the connection.
    """
    with _translate(f"connecting to {path}", connect_timeout):
        return AnyioStream(await anyio.connect_unix(path))


@contextmanager
def _translate(doing: str, timeout: float | None) -> Iterator[None]:
    """Run the block under ``timeout``, raising built-in exceptions instead of anyio's.

    anyio reports a failed transport as ``BrokenResourceError`` with the real
    error as its ``__cause__`` (the ``OSError``, or an ``ssl.SSLError`` met
    after the handshake): that cause is what callers can act on, so it is
    what they get.  ``EndOfStream`` passes through: only the caller knows
    whether it is an answer (EOF) or a failure.
    """
    try:
        with anyio.fail_after(timeout):
            yield
    except TimeoutError:
        # anyio's own TimeoutError carries no message; give it one.
        raise TimeoutError(f"timed out {doing} (after {timeout} s)") from None
    except anyio.BrokenResourceError as exc:
        if isinstance(exc.__cause__, OSError):  # ssl.SSLError included
            raise exc.__cause__ from None
        # No cause: an earlier operation failed or was cut short (a timeout
        # mid-write under TLS), and the stream refuses to go on.
        raise ConnectionResetError(
            f"connection broken while {doing} (by the peer, or an earlier failed operation)"
        ) from exc
    except anyio.ClosedResourceError as exc:
        # Our own aclose() came first: the same error as a closed socket's.
        raise OSError(errno.EBADF, f"stream already closed ({doing})") from exc


def _source(source_address: tuple[str, int] | str | None) -> tuple[str | None, int | None]:
    """``connect_tcp``'s ``local_host`` and ``local_port`` (``None``: the OS chooses)."""
    ip, source_port = source_address if isinstance(source_address, tuple) else (source_address, 0)
    if source_port and not ip:
        # anyio would silently ignore the port: refuse rather than mislead.
        raise ValueError(f"a source port ({source_port}) needs a source IP")
    return ip or None, source_port or None


#: Connect and return an :class:`~transports.AsyncDriver`: :func:`open_stream`
#: behind the pump, with per-stage timeouts (see ``transports.asyncio.connect``).
connect = tcp_connector(open_stream)
#: Connect to a Unix socket (LMTP) and return an :class:`~transports.AsyncDriver`.
connect_unix = unix_connector(open_unix_stream)
