"""The blocking pool: the scheduler on one thread, each connection on its own.

A connection's socket blocks, so each connection has a thread that runs the
actions the scheduler gives it, in order, and reports how they ended.  The
scheduler's thread does nothing else: it hands out actions and results.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future

from smtp_core.pool import Action, Close, Message, MessageResult, Open, Outcome, Policy, Scheduler
from transports.sync import SyncDriver

from ._session import Session, log_report, log_result

__all__ = ["Pool"]

log = logging.getLogger("smtpclient.pool")

Connect = Callable[[Session], SyncDriver]


class Pool:
    """Send many messages over at most ``policy.max_connections`` blocking connections.

    Messages are sent by background threads; :meth:`submit` returns at once
    with a :class:`~concurrent.futures.Future` of the message's one
    :class:`~smtp_core.pool.MessageResult`.  Use it as a context manager (or
    call :meth:`close`): leaving waits for every message's result and closes
    every connection with QUIT.

    Args:
        session: where to connect and how (see :class:`Session`).
        policy: the limits (see :class:`~smtp_core.pool.Policy`).
        on_result: called with each result as it settles, on the pool's
            thread (keep it short; exceptions are logged and ignored).
        connect: makes a connected driver for the session (default:
            :meth:`Session.connect_sync`); for custom transports.
    """

    def __init__(
        self,
        session: Session | None = None,
        policy: Policy | None = None,
        *,
        on_result: Callable[[MessageResult], None] | None = None,
        connect: Connect = Session.connect_sync,
    ) -> None:
        self.session = session if session is not None else Session()
        self.scheduler = Scheduler(policy)
        self._on_result = on_result
        self._pid = os.getpid()
        self._connect = connect
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._poked = False  # set with each wake-up of the scheduler's thread
        self._sleeping_until = -math.inf  # its wake-up time, while it sleeps
        self._futures: dict[int, Future[MessageResult]] = {}
        self._inboxes: dict[int, queue.SimpleQueue[Action]] = {}
        self._thread: threading.Thread | None = None

    # -- the caller's side -------------------------------------------------------------

    def submit(self, message: Message) -> Future[MessageResult]:
        """Queue ``message``; its future gets its result.

        The future is running from the start: ``cancel()`` on it returns
        False, and the message goes on (a message in the pool is not
        withdrawn one by one: ``close(cancel=True)`` ends every one not yet
        under way).

        Raises:
            PoolClosed: the pool was closed.
            RuntimeError: the pool was made in another process (before a fork:
                its threads did not come along; make one in each process).
        """
        if os.getpid() != self._pid:
            raise RuntimeError("this Pool was made in another process: make one after the fork")
        future: Future[MessageResult] = Future()
        future.set_running_or_notify_cancel()  # cancel() would leave set_result to raise
        with self._lock:
            if id(message) in self._futures:
                raise ValueError("this message is in the pool already")
            self.scheduler.submit(message)
            self._futures[id(message)] = future
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="smtpclient-pool")
                self._thread.start()
            self._poke()
        return future

    def send(self, message: Message, timeout: float | None = None) -> MessageResult:
        """Queue ``message`` and wait for its result.

        Raises:
            TimeoutError: no result within ``timeout`` seconds; the message
                stays in the pool, and its result still goes to ``on_result``.
        """
        return self.submit(message).result(timeout)

    def send_many(
        self, messages: Iterable[Message], *, window: int = 1000
    ) -> Iterator[MessageResult]:
        """Send ``messages``, yielding their results as they settle.

        At most ``window`` of them are in the pool at once: the next is taken
        from ``messages`` as a result comes out, so a generator of a million
        messages is never all in memory.
        """
        if window < 1:
            raise ValueError("window must be 1 or more")
        results: queue.SimpleQueue[MessageResult] = queue.SimpleQueue()
        source = iter(messages)
        in_pool = 0
        while True:
            for message in itertools.islice(source, window - in_pool):
                self.submit(message).add_done_callback(lambda f: results.put(f.result()))
                in_pool += 1
            if not in_pool:
                return
            yield results.get()
            in_pool -= 1

    def close(self, *, cancel: bool = False) -> None:
        """Wait for every result, close every connection, and stop the threads.

        With ``cancel``, messages not yet under way end at once as
        ``"error"`` (:class:`~smtp_core.pool.PoolClosed`) instead.
        """
        with self._lock:
            if cancel:
                self.scheduler.cancel()
            else:
                self.scheduler.finish()
            self._poke()
            thread = self._thread
        if thread is not None:
            thread.join()
        self._deliver_settled()  # results settled without a thread (cancel before any start)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(cancel=exc_info[0] is not None)

    # -- the scheduler's thread --------------------------------------------------------

    def _run(self) -> None:
        """Step the scheduler when no connection does: at its deadlines, after submissions."""
        scheduler = self.scheduler
        try:
            while True:
                with self._lock:
                    self._poked = False
                self._deliver(self._step())
                with self._lock:
                    if scheduler.done:
                        return
                    if not self._poked:  # else something changed since the step: step again
                        deadline = scheduler.deadline()
                        self._sleeping_until = math.inf if deadline is None else deadline
                        left = None if deadline is None else deadline - time.monotonic()
                        self._wake.wait(None if left is None else max(0.0, left))
                        self._sleeping_until = -math.inf
        except BaseException as exc:  # a bug: say so to every waiter rather than hang them
            log.exception("the pool's thread failed")
            with self._lock:
                futures = list(self._futures.values())
                self._futures.clear()
            for future in futures:
                future.set_exception(exc)
            raise

    def _step(self, report: tuple[Action, Outcome] | None = None) -> list[MessageResult]:
        """Report, start what the scheduler says to start now, and return what it settled.

        Run by the scheduler's thread and, after each action, by the
        connection's own thread: a connection goes straight on to its next
        message without waking the scheduler's thread (a thread switch less
        a message).
        """
        scheduler = self.scheduler
        with self._lock:
            if report is not None:
                scheduler.report(report[0], report[1], time.monotonic())
            # One poll starts all it can at this instant (tests/pool_sim.py
            # checks a second one finds nothing): 14 % of the scheduler's instructions.
            for action in scheduler.poll(time.monotonic()):
                self._dispatch(action)
            deadline = scheduler.deadline()
            if scheduler.done or (deadline is not None and deadline < self._sleeping_until):
                self._poke()  # the scheduler's thread sleeps too long, or should end
            return scheduler.results()

    def _poke(self) -> None:
        """Wake the scheduler's thread (under the lock)."""
        self._poked = True
        self._wake.notify()

    def _dispatch(self, action: Action) -> None:
        if isinstance(action, Open):
            inbox: queue.SimpleQueue[Action] = queue.SimpleQueue()
            self._inboxes[action.conn] = inbox
            threading.Thread(
                target=self._connection, args=(action, inbox), name=f"smtpclient-pool-{action.conn}"
            ).start()
        else:
            self._inboxes[action.conn].put(action)
            if isinstance(action, Close):
                del self._inboxes[action.conn]

    def _deliver(self, settled: list[MessageResult]) -> None:
        for result in settled:
            log_result(result)
            with self._lock:
                future = self._futures.pop(id(result.message), None)
            if future is not None:
                future.set_result(result)
            if self._on_result is not None:
                try:
                    self._on_result(result)
                except Exception:
                    log.exception("on_result raised; the pool goes on")

    def _deliver_settled(self) -> None:
        with self._lock:
            settled = self.scheduler.results()
        self._deliver(settled)

    # -- a connection's thread ---------------------------------------------------------

    def _connection(self, opening: Open, inbox: queue.SimpleQueue[Action]) -> None:
        session = self.session
        driver: SyncDriver | None = None
        conn = session.connection()
        action: Action = opening
        while True:
            outcome: Outcome = None
            try:
                if isinstance(action, Open):
                    driver = self._connect(session)
                procedure = session.procedure(action, conn)
                if procedure is not None and driver is not None:
                    outcome = driver.run(procedure)
            except Exception as exc:
                outcome = exc
            if isinstance(action, Close):
                if driver is not None:
                    with contextlib.suppress(OSError):
                        driver.close()
                outcome = None
            log_report(action, outcome)
            self._deliver(self._step((action, outcome)))
            if isinstance(action, Close):
                return
            action = inbox.get()
