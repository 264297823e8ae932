"""``--count N``: the first message on the command's own session, the others through a pool.

The first message goes as a single one does (its transcript, notes, TLS
report and ``--record``), so that a server that cannot take mail at all fails
the way it does without ``--count``.  That session is closed with QUIT, and
the other N-1 messages go through :class:`smtpclient.pool.Pool` (at most
``--connections`` at once, ``--rate``, ``--max-per-connection``), whose
sessions are opened with the same settings and not shown.  Every result,
the first one's included, feeds the progress bar (or, with ``-v``, a line per
message) as it arrives, and the summary line counts the messages by the
pool's status.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Literal

from smtp_core import (
    Data,
    EndOfContent,
    Extensions,
    LocalProtocolError,
    Mail,
    Rcpt,
    RemoteProtocolError,
    RemoteSASLError,
    ServerDisconnected,
    State,
    Timeouts,
    TransactionResult,
)
from smtp_core.pool import (
    Message,
    MessageResult,
    Policy,
    RecipientOutcome,
    RecipientStatus,
)
from transports.sync import SyncDriver

from ..pool import Pool, Session
from ._commands import _judge, _mail_params, _transaction
from ._common import (
    EXIT_AUTH,
    EXIT_CONNECTION,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_RECIPIENT_REFUSED,
    EXIT_TRANSACTION,
    _Unknown,
)
from ._display import _Progress
from ._message import _MessageSource
from ._session import _reply_text, _Session

__all__ = ["_send_many"]

#: The statuses the summary always counts, in its order ("partial" only when some are).
STATUSES: tuple[RecipientStatus, ...] = ("accepted", "refused", "deferred", "unknown", "error")

#: Messages submitted to the pool and waiting for their result, at most.
_WINDOW = 1000

_POOL_TLS: dict[str, Literal["none", "opportunistic", "required", "implicit"]] = {
    "none": "none",
    "starttls": "opportunistic",
    "required": "required",
    "implicit": "implicit",
}


# -- the pool's sessions -----------------------------------------------------------------------


def _pool_session(session: _Session) -> Session:
    """The pool's session settings, from the command's options and its first session."""
    opts = session.opts
    target = opts.target
    # Over a Unix socket the pool speaks in the clear (Session(path=...) takes
    # no TLS): fine if the first session did too; else _unix_tls_connect.
    plain_socket = target.path is not None and not session.conn.tls_active
    return Session(
        host=target.host or "localhost",
        port=target.port or None,
        path=target.path if plain_socket else None,
        tls="none" if plain_socket else _POOL_TLS[opts.tls],
        ssl_context=None if opts.tls == "none" or plain_socket else session.tls_context(),
        server_hostname=session.server_name,
        username=opts.auth_user,
        password=opts.auth_password,
        mechanisms=opts.auth_mechanisms,
        auth_in_clear=opts.auth_in_clear,
        local_hostname=session.ehlo_name,  # what the first session said
        lmtp=opts.lmtp,
        # --timeout is "for the connection and for each reply": every stage.
        timeouts=Timeouts.every(opts.timeout),
        pipelining=opts.pipelining,
        chunking=opts.bdat,
    )


def _unix_tls_connect(path: str) -> Callable[[Session], SyncDriver]:
    """The pool's ``connect`` for TLS over a Unix socket, which its own refuses."""

    def connect(pool_session: Session) -> SyncDriver:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        context = pool_session.context
        try:
            sock.settimeout(pool_session.timeouts.connect)
            sock.connect(path)
            if pool_session.tls == "implicit" and context is not None:
                sock = context.wrap_socket(sock, server_hostname=pool_session.server_hostname)
        except BaseException:
            sock.close()
            raise
        return SyncDriver(
            sock,
            ssl_context=context,
            server_hostname=pool_session.server_hostname,
            timeouts=pool_session.timeouts,
        )

    return connect


# -- counting the results ------------------------------------------------------------------


def _code_of_error(error: BaseException | None) -> int:
    if isinstance(error, RemoteSASLError):
        return EXIT_AUTH
    if isinstance(error, RemoteProtocolError) and not isinstance(error, ServerDisconnected):
        return EXIT_PROTOCOL
    if isinstance(error, LocalProtocolError):
        return EXIT_TRANSACTION
    return EXIT_CONNECTION


def _judged(outcome: RecipientOutcome, lmtp: bool) -> tuple[int, str]:
    """The exit status and the text of a recipient not accepted."""
    address = outcome.recipient
    reply = outcome.reply
    if outcome.status == "unknown":
        cause = getattr(outcome.error, "cause", outcome.error)
        return EXIT_CONNECTION, f"may have been delivered to {address}: no verdict came ({cause})"
    tries = f" after {outcome.attempts} tries" if outcome.attempts > 1 else ""
    if reply is None:
        what = "deferred" if outcome.status == "deferred" else "failed"
        return _code_of_error(outcome.error), f"{address}: {what}{tries}: {outcome.error}"
    text = _reply_text(reply)
    verb = "deferred" if outcome.status == "deferred" else "refused"
    # The reply names the command that drew it: the sender, the recipient, DATA
    # or the message (its end, or a BDAT chunk) was refused.
    command = reply.command
    if isinstance(command, Rcpt):
        return EXIT_RECIPIENT_REFUSED, f"recipient {address} {verb}{tries}: {text}"
    if isinstance(command, Mail):
        return EXIT_TRANSACTION, f"sender {verb}{tries}: {text}"
    if isinstance(command, Data):
        return EXIT_TRANSACTION, f"DATA {verb}{tries}: {text}"
    if lmtp and isinstance(command, EndOfContent):
        return EXIT_RECIPIENT_REFUSED, f"delivery to {address} {verb}{tries}: {text}"
    return EXIT_TRANSACTION, f"message {verb}{tries}: {text}"


class _Tally:
    """Every message's result as it arrives: counts, the exit status, what to show.

    Fed on the command's thread for the first message, then on the pool's
    thread (``on_result``); read on the command's thread once the pool is closed.
    """

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.total = session.opts.count
        self.messages: Counter[str] = Counter()
        self.recipients: Counter[str] = Counter()
        self.code = EXIT_OK
        self.done = 0
        self.failed = 0
        self.first_problem: str | None = None  # of a message not shown
        self.first_unknown: str | None = None
        self.unknown = 0  # messages with a recipient whose fate is unknown
        self.lines = session.opts.verbose and session.opts.show_transcript
        self.progress = None if self.lines else _Progress(self.total, session.err)
        self.lock = threading.Lock()

    def add(self, result: MessageResult, *, code: int | None = None, shown: bool = False) -> None:
        """Count ``result``; ``code`` and ``shown``: the first message's, judged and shown."""
        key = result.message.key
        number = key if isinstance(key, int) else 0
        with self.lock:
            problems: list[str] = []
            worst = EXIT_OK
            for outcome in result.outcomes:
                self.recipients[outcome.status] += 1
                if outcome.status != "accepted":
                    status, text = _judged(outcome, self.session.opts.lmtp)
                    worst = max(worst, status)
                    problems.append(text)
                    if outcome.status == "unknown" and self.first_unknown is None:
                        self.first_unknown = f"message {number}: {text}"
            self.messages[result.status] += 1
            self.code = max(self.code, worst if code is None else code)
            self.done += 1
            self.failed += result.status != "accepted"
            self.unknown += any(o.status == "unknown" for o in result.outcomes)
            if problems and not shown and not self.lines and self.first_problem is None:
                self.first_problem = f"message {number}: {problems[0]}"
            if self.lines:
                detail = "; ".join(problems) or _accepted_text(result)
                self.session.out.write(f"* message {number}: {result.status}: {detail}\n")
                self.session.out.flush()
            elif self.progress is not None:
                self.progress.update(self.done, self.failed)

    def summary(self, elapsed: float) -> str:
        """The last line: every message by status, then the time."""
        counts = ", ".join(f"{self.messages[s]} {s}" for s in STATUSES)
        if self.messages["partial"]:
            counts += f", {self.messages['partial']} partial"
        line = f"{self.done}/{self.total} messages: {counts}"
        if sum(self.recipients.values()) > self.done:  # more than one recipient a message
            line += "; recipients: " + ", ".join(
                f"{self.recipients[s]} {s}" for s in STATUSES if self.recipients[s]
            )
        rate = self.done / max(elapsed, 1e-9)
        return f"{line}; {elapsed:.2f} s, {rate:.1f} msg/s\n"


def _accepted_text(result: MessageResult) -> str:
    replies = {_reply_text(o.reply) for o in result.outcomes if o.reply is not None}
    return " / ".join(sorted(replies)) or "accepted"


def _first_result(message: Message, result: TransactionResult) -> MessageResult:
    status: dict[str, RecipientStatus] = {
        "accepted": "accepted",
        "temporary": "deferred",
        "permanent": "refused",
    }
    return MessageResult(
        message,
        tuple(RecipientOutcome(r.recipient, status[r.status], r.reply) for r in result.recipients),
    )


# -- the mode ------------------------------------------------------------------------------


def _send_many(session: _Session, source: _MessageSource) -> int:
    """``--count N`` (N > 1) after the session's stages: see the module's documentation."""
    opts = session.opts
    ext: Extensions = session.conn.extensions  # the pool's sessions get what this one got
    start = time.monotonic()

    def message(number: int) -> Message:
        content = source.message()
        return Message(
            opts.sender or "",
            tuple(opts.recipients),
            content,
            tuple(_mail_params(opts, ext, content)),
            tuple(opts.rcpt_params),
            key=number,
        )

    others = opts.count - 1
    session.display.note(
        f"message 1 of {opts.count} on this session; the other {others} through up to "
        f"{opts.connections} new connection{'s' if opts.connections != 1 else ''} (not shown)"
    )
    pool_session = _pool_session(session)
    tally = _Tally(session)
    try:
        first = message(1)
        first_began = time.monotonic()
        retry_first = False
        try:
            result = _transaction(session, first.content)
        except _Unknown as exc:
            session.err_line(exc.message)
            delivered = set(exc.outcome.delivered)
            tally.add(
                MessageResult(
                    first,
                    tuple(
                        RecipientOutcome(
                            r, "accepted" if r in delivered else "unknown", None, exc.outcome
                        )
                        for r in first.recipients
                    ),
                ),
                code=exc.code,
                shown=True,
            )
        else:
            code, problems = _judge(session, result)
            for problem in problems:
                session.err_line(problem)
            # Nothing taken and only temporary refusals (a 421, greylisting): the
            # pool tries it again, as it would its own.
            retry_first = not result.delivered and all(
                r.status == "temporary" for r in result.recipients
            )
            if not retry_first:
                tally.add(_first_result(first, result), code=code, shown=True)
        if session.conn.state is not State.CLOSED:
            session.quit()
        _run_pool(
            session,
            pool_session=pool_session,
            tally=tally,
            message=message,
            first=first if retry_first else None,
            first_began=first_began,
        )
    finally:
        if tally.progress is not None:
            tally.progress.finish()
        session.out.write(tally.summary(time.monotonic() - start))
        session.out.flush()
    if tally.first_problem is not None:
        session.err_line(f"first failure not shown: {tally.first_problem}")
    if tally.first_unknown is not None:
        session.err_line(
            f"{tally.unknown} message{'s' if tally.unknown != 1 else ''} may have been "
            f"delivered: the end was sent and no verdict came (first: {tally.first_unknown})"
        )
    return tally.code


def _run_pool(
    session: _Session,
    *,
    pool_session: Session,
    tally: _Tally,
    message: Callable[[int], Message],
    first: Message | None,
    first_began: float,
) -> None:
    """Messages 2 to N (and the first again, if it is to be retried) through the pool."""
    opts = session.opts
    limit, interval = opts.rate if opts.rate is not None else (None, 1.0)
    policy = Policy(
        max_connections=opts.connections,
        max_messages=opts.max_per_connection or Policy().max_messages,
        rate_limit=limit,
        rate_interval=interval,
    )
    # The messages are made as the pool takes them, not all at once: at most
    # _WINDOW wait for their result (the pool keeps each one's content).
    window = threading.Semaphore(_WINDOW)

    def on_result(result: MessageResult) -> None:
        tally.add(result)
        window.release()

    target = opts.target
    if target.path is not None and pool_session.path is None:
        pool = Pool(
            pool_session, policy, on_result=on_result, connect=_unix_tls_connect(target.path)
        )
    else:
        pool = Pool(pool_session, policy, on_result=on_result)

    def pending() -> Iterator[Message]:
        if first is not None:
            yield first
        for number in range(2, opts.count + 1):
            yield message(number)

    try:
        for index, each in enumerate(pending(), 1):
            # The first message began a transaction the pool's rate window does
            # not know of: the pool begins limit - 1 until that one leaves it.
            if index == limit:
                time.sleep(max(0.0, first_began + interval - time.monotonic()))
            window.acquire()
            pool.submit(each)
        pool.close()
    except BaseException:
        pool.close(cancel=True)  # transactions under way end; the rest end as "error"
        raise
