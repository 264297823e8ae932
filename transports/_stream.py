"""The byte-stream interfaces the drivers run the engine's procedures over.

A driver needs four things of a connection: read what is there, write all of
some bytes, start TLS on it, close it.  Each world (asyncio, trio, anyio, a
caller's own transport) supplies an object with these four methods; one pump
(:class:`transports.AsyncDriver`) runs every procedure over any of them.

Timeouts are relative seconds (``None``: wait for ever), because each world
has its own clock; the pump turns the engine's per-stage deadlines into them.
A method whose time runs out raises the built-in :class:`TimeoutError` and
leaves the stream unusable: the pump closes it.
"""

from __future__ import annotations

import ssl
from typing import Protocol, runtime_checkable

__all__ = ["AsyncByteStream"]


@runtime_checkable
class AsyncByteStream(Protocol):
    """A connected, ordered byte stream, as the asynchronous pump uses it.

    Implementations must not read ahead of what :meth:`receive` returns (a
    proxy's reply followed by the server's greeting in one read must reach the
    engine whole), and must not buffer writes without bound: :meth:`send`
    returns once the bytes are handed to the operating system or the peer,
    so a 50 MiB message never sits in memory.
    """

    async def receive(self, timeout: float | None) -> bytes:
        """Return the bytes available (at least one), or ``b""`` once the peer closed.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            OSError: the connection failed.
        """
        ...

    async def send(self, data: bytes, timeout: float | None) -> None:
        """Write all of ``data``.

        Raises:
            TimeoutError: the peer did not take it within ``timeout`` seconds.
            OSError: the connection failed.
        """
        ...

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> AsyncByteStream:
        """Run the TLS client handshake; return the stream to use from now on.

        ``server_hostname`` is the name the certificate must carry (and the
        SNI sent); it is never derived from the address connected to.  The
        returned stream may be ``self`` (upgraded in place) or a new one that
        wraps it.

        Raises:
            ssl.SSLError: the handshake failed (an untrusted or wrong-host
                certificate included).
            TimeoutError, OSError: as :meth:`receive`.
        """
        ...

    async def aclose(self) -> None:
        """Close the stream; idempotent, and never raises for a dead peer."""
        ...
