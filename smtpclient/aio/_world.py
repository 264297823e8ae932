"""Which event loop the asyncio face runs on, and what it needs from it.

The face is written once; asyncio, trio (directly or through anyio) each give
it a lock, a way to run a blocking call in a thread (``socket.getfqdn`` can
block for seconds: never on the event loop), and their driver module.
``sniffio`` (installed with trio and anyio) tells them apart; without it the
loop is asyncio's.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from types import ModuleType
from typing import Any, TypeVar

from transports import AsyncByteStream

T = TypeVar("T")

__all__ = ["World", "current_world"]


class World:
    """What the face needs from one event loop."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def driver(self) -> ModuleType:
        """The world's ``transports`` module (``open_stream``, ``open_unix_stream``)."""
        if self.name == "trio":
            import transports.trio

            return transports.trio
        import transports.asyncio

        return transports.asyncio

    def lock(self) -> AbstractAsyncContextManager[object]:
        """A new lock of this world."""
        if self.name == "trio":
            import trio

            return trio.Lock()
        return asyncio.Lock()

    async def in_thread(self, function: Callable[[], T]) -> T:
        """Run a blocking ``function`` in a worker thread and return its result."""
        if self.name == "trio":
            import trio

            return await trio.to_thread.run_sync(function)
        return await asyncio.get_running_loop().run_in_executor(None, function)

    async def adopt(
        self,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        timeout: float | None,
    ) -> AsyncByteStream:
        """A stream over a socket the caller connected (TLS at once if ``ssl_context``)."""
        if self.name == "trio":
            import trio

            import transports.trio

            stream = transports.trio.TrioStream(
                trio.SocketStream(trio.socket.from_stdlib_socket(sock))
            )
            if ssl_context is not None:
                return await stream.start_tls(ssl_context, server_hostname, timeout)
            return stream
        import transports.asyncio

        return await transports.asyncio.open_stream(
            sock=sock,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            connect_timeout=timeout,
        )

    def close_soon(self, close: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``close()`` on this loop without waiting for it (from sync code)."""
        if self.name == "trio":
            import trio

            trio.lowlevel.spawn_system_task(close)
        else:
            asyncio.get_running_loop().create_task(close())


def current_world() -> World:
    """The world of the running event loop."""
    try:
        import sniffio
    except ImportError:  # neither trio nor anyio is installed: asyncio it is
        return World("asyncio")
    return World("trio" if sniffio.current_async_library() == "trio" else "asyncio")
