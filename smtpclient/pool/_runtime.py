"""What the asynchronous pool needs from its event loop: tasks, a wake-up flag, a clock.

asyncio (standard library only) and trio each give it the same four things;
anyio runs on one of the two, so it takes theirs (its driver is chosen apart,
by ``transport``).  ``sniffio`` (installed with trio and anyio) tells them
apart; without it the loop is asyncio's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

__all__ = ["Flag", "Runtime", "TaskGroup", "current_runtime"]


class Flag:
    """A wake-up flag: :meth:`set` from any task; :meth:`wait` until set or a timeout."""

    def set(self) -> None:
        """Wake the waiter (or the next one to wait)."""
        raise NotImplementedError

    async def wait(self, timeout: float | None) -> None:
        """Return once set (then clear it) or after ``timeout`` seconds."""
        raise NotImplementedError


class TaskGroup:
    """Tasks that end before the group's ``async with`` does."""

    def start(self, function: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``function(*args)`` as a task of the group."""
        raise NotImplementedError

    async def __aenter__(self) -> TaskGroup:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        raise NotImplementedError


class Runtime:
    """One event loop's flags, task groups, clock and threads."""

    name = "asyncio"

    def flag(self) -> Flag:
        """A new flag."""
        return _AsyncioFlag()

    def task_group(self) -> TaskGroup:
        """A new task group."""
        return _AsyncioGroup()

    def now(self) -> float:
        """The loop's clock, in seconds."""
        return asyncio.get_running_loop().time()

    async def in_thread(self, function: Callable[[], object]) -> object:
        """Run a blocking ``function`` in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(None, function)

    async def close_quietly(self, closing: Callable[[], Awaitable[None]]) -> None:
        """Await ``closing()`` even while being cancelled, for a second at most; errors ignored."""
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(closing()), 1.0)


class _AsyncioFlag(Flag):
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None) -> None:
        if self._event.is_set():
            pass
        elif timeout is None:  # a connection's inbox: no wait_for task and timer a message
            await self._event.wait()
        else:
            # asyncio.TimeoutError: a class of its own before Python 3.11.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()


class _AsyncioGroup(TaskGroup):
    """asyncio.TaskGroup's contract for Python 3.10, which has none."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    def start(self, function: Callable[..., Awaitable[None]], *args: Any) -> None:
        async def run() -> None:
            await function(*args)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            for other in self._tasks:
                other.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        if exc is not None:
            for task in self._tasks:
                task.cancel()
        try:
            while self._tasks:  # tasks may start tasks while the group waits
                await asyncio.wait(set(self._tasks))
        except BaseException:
            for task in self._tasks:
                task.cancel()
            raise
        if self._failure is not None and exc is None:
            raise self._failure
        return None


class _TrioRuntime(Runtime):
    name = "trio"

    def flag(self) -> Flag:
        return _TrioFlag()

    def task_group(self) -> TaskGroup:
        return _TrioGroup()

    def now(self) -> float:
        import trio

        return trio.current_time()

    async def in_thread(self, function: Callable[[], object]) -> object:
        import trio

        return await trio.to_thread.run_sync(function)

    async def close_quietly(self, closing: Callable[[], Awaitable[None]]) -> None:
        import trio

        with trio.CancelScope(shield=True), trio.move_on_after(1.0), contextlib.suppress(Exception):
            await closing()


class _TrioFlag(Flag):
    def __init__(self) -> None:
        import trio

        self._trio = trio
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None) -> None:
        trio = self._trio
        with trio.move_on_after(math.inf if timeout is None else timeout):
            await self._event.wait()
        if self._event.is_set():
            self._event = trio.Event()  # trio's events are set once


class _TrioGroup(TaskGroup):
    def __init__(self) -> None:
        import trio

        self._manager = trio.open_nursery()
        self._nursery: trio.Nursery | None = None

    def start(self, function: Callable[..., Awaitable[None]], *args: Any) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(function, *args)

    async def __aenter__(self) -> TaskGroup:
        self._nursery = await self._manager.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        if exc is not None and self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        return await self._manager.__aexit__(kind, exc, tb)


def current_runtime() -> Runtime:
    """The runtime of the running event loop: trio's, or asyncio's."""
    try:
        import sniffio
    except ImportError:  # neither trio nor anyio is installed
        return Runtime()
    if sniffio.current_async_library() == "trio":
        return _TrioRuntime()
    return Runtime()
