"""The blocking pool: the scheduler on one thread, each connection on its own.

A connection's socket blocks, so each connection has a thread that runs the
actions the scheduler gives it, in order, and reports how they ended.  The
scheduler's thread does nothing else: it hands out actions and results.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future

from smtp_core.pool import Action, Close, Message, MessageResult, Open, Outcome, Policy, Scheduler
from transports.sync import SyncDriver, connect_driver

from ._session import Session

__all__ = ["Pool"]

log = logging.getLogger("smtpclient.pool")

Connect = Callable[[Session], SyncDriver]


def _connect(session: Session) -> SyncDriver:
    return connect_driver(session.host, session.target_port, **session.connect_arguments())


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
            ``transports.sync.connect_driver``); for custom transports.
    """

    def __init__(
        self,
        session: Session | None = None,
        policy: Policy | None = None,
        *,
        on_result: Callable[[MessageResult], None] | None = None,
        connect: Connect = _connect,
    ) -> None:
        self.session = session if session is not None else Session()
        self.scheduler = Scheduler(policy)
        self._on_result = on_result
        self._connect = connect
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._reports: deque[tuple[Action, Outcome]] = deque()
        self._futures: dict[int, Future[MessageResult]] = {}
        self._inboxes: dict[int, queue.SimpleQueue[Action]] = {}
        self._thread: threading.Thread | None = None

    # -- the caller's side -------------------------------------------------------------

    def submit(self, message: Message) -> Future[MessageResult]:
        """Queue ``message``; its future gets its result.

        Raises:
            PoolClosed: the pool was closed.
        """
        future: Future[MessageResult] = Future()
        with self._lock:
            if id(message) in self._futures:
                raise ValueError("this message is in the pool already")
            self.scheduler.submit(message)
            self._futures[id(message)] = future
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="smtpclient-pool")
                self._thread.start()
            self._wake.notify()
        return future

    def send(self, message: Message, timeout: float | None = None) -> MessageResult:
        """Queue ``message`` and wait for its result."""
        return self.submit(message).result(timeout)

    def send_many(self, messages: Iterable[Message]) -> Iterator[MessageResult]:
        """Queue every message, then yield their results as they settle."""
        results: queue.SimpleQueue[MessageResult] = queue.SimpleQueue()
        count = 0
        for message in messages:
            self.submit(message).add_done_callback(lambda f: results.put(f.result()))
            count += 1
        for _ in range(count):
            yield results.get()

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
            self._wake.notify()
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
        scheduler = self.scheduler
        try:
            while True:
                actions: list[Action] = []
                with self._lock:
                    while self._reports:
                        action, outcome = self._reports.popleft()
                        scheduler.report(action, outcome, time.monotonic())
                    settled = scheduler.results()
                    done = scheduler.done
                    if not done:
                        now = time.monotonic()
                        actions = scheduler.poll(now)
                        if not actions and not settled:
                            deadline = scheduler.deadline()
                            # Woken by a report, a submission or close(); else at the deadline.
                            self._wake.wait(None if deadline is None else max(0.0, deadline - now))
                self._deliver(settled)
                if done:
                    return
                for action in actions:
                    self._dispatch(action)
        except BaseException as exc:  # a bug: say so to every waiter rather than hang them
            log.exception("the pool's thread failed")
            with self._lock:
                futures = list(self._futures.values())
                self._futures.clear()
            for future in futures:
                future.set_exception(exc)
            raise

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
            with self._lock:
                self._reports.append((action, outcome))
                self._wake.notify()
            if isinstance(action, Close):
                return
            action = inbox.get()
