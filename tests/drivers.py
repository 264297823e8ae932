"""Every driver behind one face, so one test body runs in every I/O world.

A test body is an ``async def body(world)``; :meth:`World.run` runs it on the
world's event loop (the blocking driver's body never suspends, so asyncio
runs it).  ``world.connect(...)`` returns a driver with ``await run(procedure)``
and ``await aclose()``: the asynchronous pump itself, or the blocking driver
behind a two-method adapter.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio
import trio

import transports.anyio
import transports.asyncio
import transports.trio
from smtp_core import Procedure, Timeouts
from transports import sync

T = TypeVar("T")


class Driver(Protocol):
    """What a test body uses of a driver."""

    async def run(self, procedure: Procedure[T]) -> T: ...

    async def aclose(self) -> None: ...


class _Blocking:
    """The blocking driver with the asynchronous driver's two methods."""

    def __init__(self, driver: sync.SyncDriver) -> None:
        self.driver = driver

    async def run(self, procedure: Procedure[T]) -> T:
        return self.driver.run(procedure)

    async def aclose(self) -> None:
        self.driver.close()


Body = Callable[["World"], Awaitable[None]]


@dataclass(frozen=True)
class World:
    """One I/O world: how to run a body, and how to connect in it."""

    name: str
    runner: Callable[[Callable[[], Awaitable[None]]], None]
    module: Any

    def run(self, body: Body) -> None:
        """Run ``body(self)`` to its end on this world's event loop."""
        self.runner(lambda: body(self))

    async def connect(
        self,
        host: str,
        port: int,
        *,
        implicit_tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        proxy: str | None = None,
        source_address: tuple[str, int] | None = None,
        timeouts: Timeouts | None = None,
    ) -> Driver:
        """A driver connected to ``host:port`` (through ``proxy`` if given)."""
        options: dict[str, Any] = {
            "implicit_tls": implicit_tls,
            "ssl_context": ssl_context,
            "server_hostname": server_hostname,
            "proxy": proxy,
            "source_address": source_address,
            "timeouts": timeouts,
        }
        if self.module is sync:
            return _Blocking(sync.connect_driver(host, port, **options))
        driver: Driver = await self.module.connect(host, port, **options)
        return driver

    async def connect_unix(self, path: str, *, timeouts: Timeouts | None = None) -> Driver:
        """A driver connected to the Unix socket at ``path``."""
        if self.module is sync:
            return _Blocking(sync.connect_unix_driver(path, timeouts=timeouts))
        driver: Driver = await self.module.connect_unix(path, timeouts=timeouts)
        return driver


def _asyncio(main: Callable[[], Awaitable[None]]) -> None:
    async def wrapper() -> None:
        await main()

    asyncio.run(wrapper())


def _trio(main: Callable[[], Awaitable[None]]) -> None:
    trio.run(main)


def _anyio_on(backend: str) -> Callable[[Callable[[], Awaitable[None]]], None]:
    def runner(main: Callable[[], Awaitable[None]]) -> None:
        anyio.run(main, backend=backend)

    return runner


WORLDS = [
    World("blocking", _asyncio, sync),
    World("asyncio", _asyncio, transports.asyncio),
    World("trio", _trio, transports.trio),
    World("anyio-asyncio", _anyio_on("asyncio"), transports.anyio),
    World("anyio-trio", _anyio_on("trio"), transports.anyio),
]
