"""The decisions of a pool of SMTP connections, as pure code.

A :class:`Scheduler` decides when to open a connection, which connection takes
which message, when to check an idle one with NOOP, when to close one, when
the rate limit says wait, and when (and whether) to try again.  It does no
I/O and reads no clock: every call takes ``now`` (seconds, from any monotonic
clock) and the runner of each world (threads, asyncio, trio, anyio) is a thin
loop around it::

    scheduler.submit(message, now)
    while not scheduler.done:
        for action in scheduler.poll(now):      # Open, Send, Check, Close
            start(action)                       # concurrently; when it ends:
        ...                                     # scheduler.report(action, outcome, now)
        wait until an action ends or scheduler.deadline()

The rules that make a pool safe to use for bulk mail:

* Never more than ``max_connections`` connections (counted from :class:`Open`
  until its :class:`Close` is reported), and never more than
  ``max_messages`` transactions on one connection.
* Never more than ``rate_limit`` transactions begun in any ``rate_interval``
  seconds, over the whole pool (a sliding window, so no burst at the edges).
* Never sent twice: once the end of the message was sent, a connection that
  fails or times out before the verdict leaves the message's fate unknown
  (:class:`~smtp_core.OutcomeUnknown`, RFC 5321 §4.5.4.1 and §6.1).  Those
  recipients end as ``"unknown"`` and are never tried again.
* A temporary failure (a 4yz reply; a connection that fails before the end of
  the message was sent) is tried again after a backoff, at most
  ``max_attempts`` times in all, then ends as ``"deferred"``.
* The recipients a server would not take in one transaction (452 "too many
  recipients", RFC 5321 §4.5.3.1.10; also 552 with enhanced code 5.5.3, which
  §4.5.3.1.10 asks clients to treat as temporary) go at once into a further
  transaction of the same message, if that transaction delivered to others,
  so every transaction makes progress; the others never get a second copy.
* Every message ends in exactly one :class:`MessageResult`, with one
  :class:`RecipientOutcome` per recipient: accepted, refused (with the reply),
  deferred, unknown, or error.

RSET is sent only where a transaction was left open (the engine's
:func:`~smtp_core.procedures.send_mail` does it): after the verdict on the
end of data the transaction is over (RFC 5321 §4.1.1.4), and a RSET there
would cost a round trip per message and tell nothing NOOP does not.
"""

from __future__ import annotations

import heapq
import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, final

from ._errors import LocalProtocolError, OutcomeUnknown, RemoteProtocolError, ServerDisconnected
from ._events import Reply
from ._procedures import TransactionResult

__all__ = [
    "Action",
    "Check",
    "Close",
    "Message",
    "MessageResult",
    "Open",
    "Outcome",
    "Policy",
    "PoolClosed",
    "RecipientOutcome",
    "RecipientStatus",
    "Scheduler",
    "Send",
]

RecipientStatus = Literal["accepted", "refused", "deferred", "unknown", "error"]


class PoolClosed(Exception):
    """The pool was closed before it could try this message (again)."""


@final
@dataclass(frozen=True, slots=True)
class Policy:
    """The limits and timings of a pool.

    Attributes:
        max_connections: connections open at once, at most.
        max_messages: transactions one connection carries before it is
            closed (and a fresh one opened if more are waiting).
        rate_limit: transactions begun in any ``rate_interval`` seconds, at
            most, over the whole pool; ``None`` for no limit.
        rate_interval: the window of ``rate_limit``, in seconds.
        idle_timeout: a connection idle this long is closed.
        check_after: a connection idle this long is checked with NOOP before
            it takes another message (0: before each reuse; one the server
            has just answered, opening or checking it, is not checked again).
        max_attempts: tries per recipient for temporary failures (the first
            one included); then it ends as ``"deferred"``.
        backoff: seconds before the second try; each later try waits
            ``backoff_factor`` times longer, at most ``max_backoff``.
        backoff_factor: see ``backoff``.
        max_backoff: see ``backoff``.
        max_recipients: recipients per transaction, at most (a message with
            more is sent in several transactions); ``None`` for no limit.
    """

    max_connections: int = 5
    max_messages: int = 100
    rate_limit: int | None = None
    rate_interval: float = 1.0
    idle_timeout: float = 60.0
    check_after: float = 10.0
    max_attempts: int = 3
    backoff: float = 1.0
    backoff_factor: float = 2.0
    max_backoff: float = 300.0
    max_recipients: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_messages", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be 1 or more")
        for name in ("rate_limit", "max_recipients"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be 1 or more, or None")
        for name in ("idle_timeout", "check_after", "backoff", "max_backoff"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ValueError(f"{name} must be 0 or more")
        if not self.rate_interval > 0:
            raise ValueError("rate_interval must be more than 0")
        if not self.backoff_factor >= 1:
            raise ValueError("backoff_factor must be 1 or more")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1``, after try ``attempt`` failed."""
        return float(min(self.max_backoff, self.backoff * self.backoff_factor ** (attempt - 1)))


@final
@dataclass(frozen=True, slots=True, eq=False)
class Message:
    """One message for the pool: the envelope and the content, as bytes.

    The content is kept for retries, so it is bytes, not a stream.  ``key``
    is the caller's own tag, handed back in the result.
    """

    sender: str
    recipients: tuple[str, ...]
    content: bytes
    mail_params: tuple[str, ...] = ()
    rcpt_params: tuple[str, ...] = ()
    key: object = None

    def __post_init__(self) -> None:
        given: object = self.recipients  # typed as a tuple; any sequence is taken
        if isinstance(given, str):
            raise TypeError("recipients must be a sequence of addresses, not one str")
        if not self.recipients:
            raise ValueError("a message needs at least one recipient")
        if not isinstance(self.content, bytes):
            raise TypeError("content must be bytes (the pool keeps it for retries)")
        object.__setattr__(self, "recipients", tuple(self.recipients))
        object.__setattr__(self, "mail_params", tuple(self.mail_params))
        object.__setattr__(self, "rcpt_params", tuple(self.rcpt_params))


@final
@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """How one recipient of a message ended.

    Attributes:
        recipient: the address.
        status: ``"accepted"`` (the server took the message for it),
            ``"refused"`` (a 5yz reply), ``"deferred"`` (temporary failures
            until the tries ran out), ``"unknown"`` (the end of the message
            was sent and no verdict came: it may have been delivered; never
            tried again), or ``"error"`` (a local error, or the pool closed).
        reply: the reply that settled it, if a reply did (a recipient refused
            in a transaction whose verdict never came is ``"refused"`` with
            no reply: :class:`~smtp_core.OutcomeUnknown` keeps none).
        error: the exception that settled it, if one did.
        attempts: the transactions tried for it.
    """

    recipient: str
    status: RecipientStatus
    reply: Reply | None = None
    error: BaseException | None = None
    attempts: int = 1


@final
@dataclass(frozen=True, slots=True, eq=False)
class MessageResult:
    """The one result of one message: an outcome per recipient, in order."""

    message: Message
    outcomes: tuple[RecipientOutcome, ...]

    @property
    def status(self) -> RecipientStatus | Literal["partial"]:
        """The recipients' status if they all share one, else ``"partial"``."""
        statuses = {o.status for o in self.outcomes}
        return statuses.pop() if len(statuses) == 1 else "partial"

    @property
    def accepted(self) -> tuple[str, ...]:
        """The recipients the server took the message for."""
        return self._with("accepted")

    @property
    def unknown(self) -> tuple[str, ...]:
        """The recipients the message may or may not have reached."""
        return self._with("unknown")

    @property
    def failed(self) -> dict[str, RecipientOutcome]:
        """Each recipient not accepted, with its outcome."""
        return {o.recipient: o for o in self.outcomes if o.status != "accepted"}

    def _with(self, status: str) -> tuple[str, ...]:
        return tuple(o.recipient for o in self.outcomes if o.status == status)


@final
@dataclass(frozen=True, slots=True)
class Open:
    """Connect, and open the session (greeting, EHLO, STARTTLS, AUTH).

    Report the reply that ended it (or ``None``), or the exception.
    """

    conn: int


@final
@dataclass(frozen=True, slots=True)
class Send:
    """Run one transaction of ``message`` on ``conn``, to ``recipients``.

    Report the :class:`~smtp_core.TransactionResult` or the exception.
    """

    conn: int
    message: Message
    recipients: tuple[str, ...]
    attempt: int


@final
@dataclass(frozen=True, slots=True)
class Check:
    """Send NOOP on ``conn``; report the reply or the exception."""

    conn: int


@final
@dataclass(frozen=True, slots=True)
class Close:
    """Close ``conn``: with QUIT first if ``quit``, then the socket.

    Report ``None`` (errors while closing change nothing).
    """

    conn: int
    quit: bool


Action = Open | Send | Check | Close
Outcome = TransactionResult | Reply | BaseException | None

# Failures of the connection itself, before the end of the message was sent:
# nothing was delivered, and a fresh connection may do better.
_CONNECTION_FAILURES = (OSError, EOFError, ServerDisconnected, RemoteProtocolError)


@dataclass(slots=True, eq=False)
class _Entry:
    """A message in the pool, and how far its recipients have got."""

    message: Message
    outcomes: list[RecipientOutcome | None]
    unsettled: int


@dataclass(slots=True, eq=False)
class _Job:
    """Some recipients of a message, for one transaction."""

    entry: _Entry
    indices: tuple[int, ...]
    attempt: int
    carried: bool = False  # a 452 carry-over: try ``attempt`` was already made

    @property
    def recipients(self) -> tuple[str, ...]:
        to = self.entry.message.recipients
        return tuple(to[i] for i in self.indices)

    @property
    def tried(self) -> int:
        """The tries made so far, if this job ends before it is sent."""
        return self.attempt if self.carried else self.attempt - 1


_State = Literal["opening", "idle", "busy", "checking", "closing"]


@dataclass(slots=True, eq=False)
class _Conn:
    id: int
    state: _State = "opening"
    transactions: int = 0
    idle_since: float = 0.0
    job: _Job | None = None
    # Went idle on the server's answer to Open or to a NOOP, and no poll has
    # passed it over since: it takes a waiting message without another check.
    fresh: bool = False
    # The open failures counted when it was asked for: the failures of one
    # burst of opens count as one try, not max_connections of them.
    failures_before: int = 0


@dataclass(order=True, slots=True)
class _Delayed:
    ready_at: float
    seq: int
    job: _Job = field(compare=False)


class Scheduler:
    """The pool's decisions; see the module's documentation.

    Attributes:
        policy: the :class:`Policy`.
    """

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy if policy is not None else Policy()
        self._ready: deque[_Job] = deque()
        self._delayed: list[_Delayed] = []
        self._seq = 0
        self._conns: dict[int, _Conn] = {}
        # Poll and deadline run after every report: what they look at is kept
        # up to date rather than searched for (bench/pool.py, callgrind).
        self._idle: dict[int, _Conn] = {}  # in the order they went idle
        self._waiting = 0  # connections opening or being checked
        self._next_conn = 0
        self._to_close: list[Close] = []
        self._begun: deque[float] = deque()  # when each transaction of the window began
        self._open_failures = 0
        self._open_after = float("-inf")
        # Set when opening failed for good with no connection alive: until
        # _open_after, what comes to be sent ends at once the same way (with
        # this status and error) instead of waiting for a doomed connection.
        self._broken: tuple[RecipientStatus, BaseException] | None = None
        self._results: list[MessageResult] = []
        self._unsettled = 0
        self._input_done = False
        self._cancelled: BaseException | None = None
        self._clock = float("-inf")  # the latest ``now`` given

    # -- what the caller says ----------------------------------------------------------

    def submit(self, message: Message) -> None:
        """Add ``message`` to the queue.

        Raises:
            PoolClosed: :meth:`finish` or :meth:`cancel` was called.
        """
        if self._input_done:
            raise PoolClosed("the pool takes no more messages")
        count = len(message.recipients)
        entry = _Entry(message, [None] * count, count)
        self._unsettled += 1
        step = self.policy.max_recipients or count
        for start in range(0, count, step):
            self._ready.append(_Job(entry, tuple(range(start, min(count, start + step))), 1))

    def finish(self) -> None:
        """No more messages: once every one has its result, close every connection."""
        self._input_done = True

    def cancel(self, reason: str = "the pool was closed") -> None:
        """Stop: messages waiting for a try end as ``"error"`` (:class:`PoolClosed`).

        Transactions under way end as they end; then every connection closes.
        """
        self._input_done = True
        self._cancelled = PoolClosed(reason)
        waiting = list(self._ready) + [d.job for d in self._delayed]
        self._ready.clear()
        self._delayed.clear()
        for job in waiting:
            self._settle(job, "error", error=self._cancelled, attempts=job.tried)

    # -- what the pool does next -------------------------------------------------------

    def poll(self, now: float) -> list[Action]:
        """The actions to start now (each on its own connection, concurrently)."""
        policy = self.policy
        actions: list[Action] = list(self._to_close)
        self._to_close.clear()
        while self._delayed and self._delayed[0].ready_at <= now:
            self._ready.append(heapq.heappop(self._delayed).job)
        self._clock = now
        # The same sum as deadline()'s, so the wake-up it asks for frees the slot.
        while self._begun and self._begun[0] + policy.rate_interval <= now:
            self._begun.popleft()
        if self._broken is not None:
            if now < self._open_after and not self._alive():
                self._fail_waiting(*self._broken)
            else:
                self._broken = None  # time for one probe (or a live connection takes it)
        # Most recently used first: the others go idle and close, so a
        # trickle of mail keeps one warm connection rather than K cold ones.
        # (The idle ones are kept in the order they went idle.)
        for conn in list(reversed(self._idle.values())):
            # The same sums as deadline()'s, so the wake-up it asks for acts:
            # now - idle_since may round below the timeout (4.1 - 3.1 < 1.0).
            timed_out = now >= conn.idle_since + policy.idle_timeout
            stale = now >= conn.idle_since + policy.check_after
            fresh, conn.fresh = conn.fresh, False
            can_send = bool(self._ready) and self._room() > 0
            # A connection the server answered just now (Open, NOOP) takes the
            # message whatever the clock says: else check_after=0 would NOOP
            # forever and idle_timeout=0 would close each new one unused.
            taken_now = fresh and can_send
            # Asked each time round: the connection before may have taken the last message.
            no_more_work = self._input_done and not self._ready and not self._delayed
            if not taken_now and (timed_out or no_more_work):
                actions.append(self._close(conn, quit=True))
            elif can_send and stale and not fresh:
                # Only when the message could go now: a NOOP while the rate
                # limit holds it back would be stale by the time it may go.
                self._enter(conn, "checking")
                actions.append(Check(conn.id))
            elif can_send:
                job = self._ready.popleft()
                self._enter(conn, "busy")
                conn.job = job
                conn.transactions += 1
                if policy.rate_limit is not None:
                    self._begun.append(now)
                actions.append(Send(conn.id, job.entry.message, job.recipients, job.attempt))
        waiting_for = self._waiting
        while (
            len(self._ready) > waiting_for
            and len(self._conns) < policy.max_connections
            and self._room() > waiting_for
            and now >= self._open_after
            and not (self._open_failures and waiting_for)  # after a failure, one probe at a time
        ):
            conn = _Conn(self._next_conn, failures_before=self._open_failures)
            self._next_conn += 1
            self._conns[conn.id] = conn
            self._waiting += 1  # it is born opening
            waiting_for += 1
            actions.append(Open(conn.id))
        return actions

    def deadline(self) -> float | None:
        """When to :meth:`poll` again if no action ends before; ``None``: not until one does."""
        policy = self.policy
        times: list[float] = []
        if self._delayed:
            times.append(self._delayed[0].ready_at)
        can_send = bool(self._ready) and self._room() > 0
        for conn in self._idle.values():
            times.append(conn.idle_since + policy.idle_timeout)
            if can_send:  # the same test as poll()'s, so the wake-up it asks for acts
                times.append(conn.idle_since + policy.check_after)
        if self._ready:
            if self._room() <= 0:
                times.append(self._begun[0] + policy.rate_interval)
            if self._open_after > self._clock:
                times.append(self._open_after)
        return min(times) if times else None

    def report(self, action: Action, outcome: Outcome, now: float) -> None:
        """How ``action`` ended: its procedure's result, or the exception it raised."""
        self._clock = max(self._clock, now)
        conn = self._conns[action.conn]
        if isinstance(action, Close):
            del self._conns[action.conn]
        elif isinstance(action, Open):
            self._opened(conn, outcome, now)
        elif isinstance(action, Check):
            if isinstance(outcome, Reply) and outcome.is_positive:
                self._idle_now(conn, now, fresh=True)
            else:
                quit = isinstance(outcome, Reply) and outcome.code != 421
                self._to_close.append(self._close(conn, quit=quit))
        else:
            job, conn.job = conn.job, None
            assert job is not None
            usable = self._sent(job, outcome, now)
            if usable and conn.transactions < self.policy.max_messages:
                self._idle_now(conn, now)
            else:
                self._to_close.append(self._close(conn, quit=usable))

    # -- what the caller reads ---------------------------------------------------------

    def results(self) -> list[MessageResult]:
        """The results settled since the last call, in the order they settled."""
        results, self._results = self._results, []
        return results

    @property
    def done(self) -> bool:
        """True once :meth:`finish` was called, every result is out and no connection is left."""
        return self._input_done and not self._unsettled and not self._conns

    @property
    def unsettled(self) -> int:
        """Messages submitted that have no result yet."""
        return self._unsettled

    @property
    def connections(self) -> int:
        """Connections counted against ``max_connections`` (opening to closed)."""
        return len(self._conns)

    # -- inside ------------------------------------------------------------------------

    def _enter(self, conn: _Conn, state: _State) -> None:
        """Move ``conn`` to ``state``, keeping the idle ones and the count of those awaited."""
        old = conn.state
        if old == "idle":
            del self._idle[conn.id]
        elif old in ("opening", "checking"):
            self._waiting -= 1
        if state == "idle":
            self._idle[conn.id] = conn
        elif state == "checking":
            self._waiting += 1
        conn.state = state

    def _room(self) -> int:
        """Transactions the rate limit allows to begin now."""
        limit = self.policy.rate_limit
        return sys.maxsize if limit is None else limit - len(self._begun)

    def _idle_now(self, conn: _Conn, now: float, *, fresh: bool = False) -> None:
        self._enter(conn, "idle")
        conn.idle_since, conn.fresh = now, fresh

    def _close(self, conn: _Conn, *, quit: bool) -> Close:
        self._enter(conn, "closing")
        return Close(conn.id, quit)

    def _opened(self, conn: _Conn, outcome: Outcome, now: float) -> None:
        if not isinstance(outcome, BaseException):
            self._open_failures, self._open_after, self._broken = 0, float("-inf"), None
            self._idle_now(conn, now, fresh=True)
            return
        self._to_close.append(self._close(conn, quit=False))
        if conn.failures_before == self._open_failures:  # the first of its burst to fail
            self._open_failures += 1
            self._open_after = now + self.policy.delay(self._open_failures)
        permanent = _is_permanent(outcome)
        # A connection still opening may yet work: a server that takes two
        # connections refuses the third at once, before the first two open.
        if self._alive() or not (permanent or self._open_failures >= self.policy.max_attempts):
            return
        # No connection works and none will: what waits ends now, and what
        # comes before the next probe too, not after thousands of doomed
        # connection attempts.  The backoff keeps growing until one opens.
        status: RecipientStatus = "error" if permanent else "deferred"
        self._broken = (status, outcome)
        self._fail_waiting(status, outcome)

    def _alive(self) -> bool:
        """True if a connection is open or opening."""
        return any(c.state != "closing" for c in self._conns.values())

    def _fail_waiting(self, status: RecipientStatus, error: BaseException) -> None:
        waiting = list(self._ready) + [d.job for d in self._delayed]
        self._ready.clear()
        self._delayed.clear()
        for job in waiting:
            self._settle(job, status, error=error, attempts=job.tried)

    def _sent(self, job: _Job, outcome: Outcome, now: float) -> bool:
        """Settle or requeue ``job``'s recipients; True if the connection is still usable."""
        if isinstance(outcome, TransactionResult):
            self._transaction_done(job, outcome, now)
            return not _closing(outcome)
        if isinstance(outcome, OutcomeUnknown):
            delivered, unknown = set(outcome.delivered), set(outcome.unknown)
            for index, address in zip(job.indices, job.recipients, strict=True):
                if address in delivered:
                    self._settle_one(job, index, "accepted", attempts=job.attempt)
                elif address in unknown:
                    self._settle_one(job, index, "unknown", error=outcome, attempts=job.attempt)
                else:  # refused at RCPT (or by its LMTP verdict): never delivered
                    self._settle_one(job, index, "refused", error=outcome, attempts=job.attempt)
            return False
        if isinstance(outcome, LocalProtocolError):
            # Refused before any byte was written: the message, not the connection.
            self._settle(job, "error", error=outcome, attempts=job.attempt)
            return True
        if isinstance(outcome, _CONNECTION_FAILURES):
            self._retry(job, job.indices, now, error=outcome)
            return False
        assert isinstance(outcome, BaseException), f"Send reported {outcome!r}"
        self._settle(job, "error", error=outcome, attempts=job.attempt)
        return False

    def _transaction_done(self, job: _Job, result: TransactionResult, now: float) -> None:
        carried: list[int] = []
        retried: dict[int, Reply] = {}  # each its own reply, should it end "deferred"
        for index, rcpt in zip(job.indices, result.recipients, strict=True):
            status = rcpt.status
            if status == "accepted":
                self._settle_one(job, index, "accepted", reply=rcpt.reply, attempts=job.attempt)
            elif _too_many(rcpt.reply) and result.delivered and self._cancelled is None:
                carried.append(index)
            elif status == "temporary" or _too_many(rcpt.reply):
                # A 552 5.5.3 is temporary too (§4.5.3.1.10), also when this
                # transaction delivered nothing; after cancel() no further
                # transaction begins, so _retry ends these as "deferred".
                retried[index] = rcpt.reply
            else:
                self._settle_one(job, index, "refused", reply=rcpt.reply, attempts=job.attempt)
        if carried:
            # The transaction delivered to others: the next one makes progress
            # too, so this needs no backoff and costs no try.
            self._ready.appendleft(_Job(job.entry, tuple(carried), job.attempt, carried=True))
        if retried:
            self._retry(job, tuple(retried), now, replies=retried)

    def _retry(
        self,
        job: _Job,
        indices: tuple[int, ...],
        now: float,
        *,
        replies: Mapping[int, Reply] | None = None,
        error: BaseException | None = None,
    ) -> None:
        if job.attempt >= self.policy.max_attempts or self._cancelled is not None:
            for index in indices:
                reply = replies.get(index) if replies is not None else None
                self._settle_one(
                    job, index, "deferred", reply=reply, error=error, attempts=job.attempt
                )
            return
        self._seq += 1
        retry = _Job(job.entry, indices, job.attempt + 1)
        ready_at = now + self.policy.delay(job.attempt)
        heapq.heappush(self._delayed, _Delayed(ready_at, self._seq, retry))

    def _settle(
        self,
        job: _Job,
        status: RecipientStatus,
        *,
        error: BaseException,
        attempts: int,
    ) -> None:
        for index in job.indices:
            self._settle_one(job, index, status, error=error, attempts=attempts)

    def _settle_one(
        self,
        job: _Job,
        index: int,
        status: RecipientStatus,
        *,
        reply: Reply | None = None,
        error: BaseException | None = None,
        attempts: int,
    ) -> None:
        entry = job.entry
        assert entry.outcomes[index] is None, "a recipient is settled once"
        address = entry.message.recipients[index]
        entry.outcomes[index] = RecipientOutcome(address, status, reply, error, attempts)
        entry.unsettled -= 1
        if not entry.unsettled:
            outcomes = tuple(o for o in entry.outcomes if o is not None)
            self._results.append(MessageResult(entry.message, outcomes))
            self._unsettled -= 1


def _closing(result: TransactionResult) -> bool:
    """True if the server answered 421 (closing the connection) in ``result``.

    Every reply that can be a 421 settles some recipient there: MAIL's and
    DATA's stand for each recipient they stopped, an RCPT's for its own, the
    end of data's for each one accepted.
    """
    return any(r.reply.code == 421 for r in result.recipients)


def _too_many(reply: Reply) -> bool:
    """A refusal for this transaction only: too many recipients (RFC 5321 §4.5.3.1.10)."""
    enhanced = reply.enhanced
    return reply.code == 452 or (enhanced is not None and enhanced[1:] == (5, 3))


def _is_permanent(error: BaseException) -> bool:
    """True if opening a session failed in a way another try will not mend.

    A 5yz reply (greeting, EHLO, STARTTLS, AUTH), a certificate the server
    cannot prove, or a local refusal (TLS required and not offered, no AUTH
    mechanism in common).
    """
    code = getattr(getattr(error, "reply", None), "code", None)
    if isinstance(code, int):
        return code >= 500
    # ssl.SSLCertVerificationError, told by its documented attribute: the
    # engine imports no I/O module (tests/test_core_imports.py).
    return isinstance(error, LocalProtocolError) or hasattr(error, "verify_code")
