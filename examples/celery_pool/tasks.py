"""A Celery app whose every worker process owns one ``smtpclient.pool.Pool``.

Run a worker (prefork: one pool per child process)::

    cd examples/celery_pool
    SMTP_HOST=mail.example.com SMTP_RATE_LIMIT=5 \\
        celery -A tasks worker --pool=prefork --concurrency=4

and send from anywhere that can import this module::

    from tasks import send_mail
    summary = send_mail.delay("me@example.com", ["you@example.com"], "Hi", "Hello.").get()

Settings (environment variables, read when the module is imported):

========================  =============================================  ========================
variable                  meaning                                        default
========================  =============================================  ========================
CELERY_BROKER_URL         the broker                                     redis://localhost:6379/0
CELERY_RESULT_BACKEND     where results go                               the broker URL
SMTP_HOST, SMTP_PORT      the SMTP server                                localhost, 25 (465 with
                                                                         implicit TLS)
SMTP_TLS                  required, opportunistic, implicit or none      required
SMTP_USERNAME/PASSWORD    AUTH credentials, if any                       none
SMTP_HELO_NAME            the name said in EHLO                          socket.getfqdn()
SMTP_MAX_CONNECTIONS      connections per worker PROCESS, at most        1
SMTP_RATE_LIMIT           transactions per SMTP_RATE_INTERVAL seconds,   no limit
                          per worker PROCESS (the fleet's total is the
                          number of processes times this)
SMTP_RATE_INTERVAL        the window of SMTP_RATE_LIMIT, in seconds      1
SMTP_RETRY_DELAY          seconds before Celery tries deferred           600
                          recipients again (after the pool's own tries)
========================  =============================================  ========================

See README.md beside this file for what the rate limit means across processes
and why outcome-unknown results are never retried.
"""

from __future__ import annotations

import logging
import os
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal, TypedDict

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown

from smtpclient.pool import (
    Message,
    Policy,
    Pool,
    PoolClosed,
    RecipientOutcome,
    Session,
    message_from,
)

log = logging.getLogger(__name__)

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
app = Celery("smtpclient_example", broker=BROKER)
app.conf.update(
    result_backend=os.environ.get("CELERY_RESULT_BACKEND", BROKER),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # At most once: the task is acknowledged before it runs, so a worker that
    # dies mid-send does not get the message redelivered and sent again (the
    # pool cannot know whether the server took it).  These are Celery's
    # defaults, spelled out because changing them changes that promise.
    task_acks_late=False,
    task_reject_on_worker_lost=False,
    # A child that has sent a message should not hold a second task it cannot
    # start (prefork takes one task at a time per child).
    worker_prefetch_multiplier=1,
)


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value else default


TLS_MODES: dict[str, Literal["required", "opportunistic", "implicit", "none"]] = {
    "required": "required",
    "opportunistic": "opportunistic",
    "implicit": "implicit",
    "none": "none",
}


def session_from_env() -> Session:
    """The pool's :class:`~smtpclient.pool.Session`, from the SMTP_* variables."""
    tls = os.environ.get("SMTP_TLS", "required")
    if tls not in TLS_MODES:
        raise ValueError(f"SMTP_TLS must be one of {', '.join(TLS_MODES)}: {tls!r}")
    return Session(
        host=os.environ.get("SMTP_HOST", "localhost"),
        port=_env_int("SMTP_PORT", None),
        tls=TLS_MODES[tls],
        username=os.environ.get("SMTP_USERNAME") or None,
        password=os.environ.get("SMTP_PASSWORD") or None,
        local_hostname=os.environ.get("SMTP_HELO_NAME") or None,
    )


def policy_from_env() -> Policy:
    """The pool's :class:`~smtpclient.pool.Policy`, from the SMTP_* variables (per process)."""
    return Policy(
        max_connections=_env_int("SMTP_MAX_CONNECTIONS", 1) or 1,
        rate_limit=_env_int("SMTP_RATE_LIMIT", None),
        rate_interval=float(os.environ.get("SMTP_RATE_INTERVAL", "") or 1.0),
    )


# -- one pool per worker process ------------------------------------------------------
#
# The pool is made in each child AFTER the prefork pool forked it, never at
# import time: the worker's parent process imports this module and then forks
# its children, and threads and sockets do not survive a fork.  A Pool made in
# the parent would leave each child a copy whose scheduler and connection
# threads exist only in the parent (a message submitted in the child would wait
# forever), whose locks may have been copied while held, and whose open
# sockets would be shared by several processes writing SMTP into one
# connection.  So: nothing at import, a Pool per child in worker_process_init,
# closed (QUIT on every connection) in worker_process_shutdown.

_pool: Pool | None = None


def open_pool(**_: object) -> None:
    """worker_process_init: this child's pool (its threads start with its first message)."""
    global _pool  # noqa: PLW0603 -- one pool per process is the point
    _pool = Pool(session_from_env(), policy_from_env())
    log.info("pid %d: SMTP pool ready", os.getpid())


def close_pool(**_: object) -> None:
    """worker_process_shutdown: wait for this child's messages, QUIT every connection."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.close()


worker_process_init.connect(open_pool, weak=False)
worker_process_shutdown.connect(close_pool, weak=False)


def current_pool() -> Pool:
    """This process's pool.

    Raises:
        RuntimeError: not in a prefork worker child (no worker_process_init ran).
    """
    if _pool is None:
        raise RuntimeError("no SMTP pool in this process: run the worker with --pool=prefork")
    return _pool


# -- the task -------------------------------------------------------------------------


class RecipientSummary(TypedDict):
    """How one recipient ended, as JSON."""

    recipient: str
    status: str  # accepted, refused, deferred, unknown or error
    code: int | None  # the reply that settled it, if one did
    text: str | None
    error: str | None  # the exception that settled it, if one did
    attempts: int


class MailSummary(TypedDict):
    """A task's result: JSON, so any result backend keeps it."""

    status: str  # the recipients' status if they share one, else "partial"
    message_id: str
    pid: int  # the worker process that sent it (the last try's, after a retry)
    recipients: list[RecipientSummary]


def summarize(outcome: RecipientOutcome) -> RecipientSummary:
    """One recipient's outcome, as JSON."""
    reply = outcome.reply
    return {
        "recipient": outcome.recipient,
        "status": outcome.status,
        "code": reply.code if reply is not None else None,
        "text": reply.text if reply is not None else None,
        "error": repr(outcome.error) if outcome.error is not None else None,
        "attempts": outcome.attempts,
    }


def never_sent(outcome: RecipientOutcome) -> bool:
    """True if no copy reached the server for this recipient, so a later try is safe.

    ``"deferred"``: temporary failures until the pool's own tries ran out;
    ``"error"`` with PoolClosed: the pool closed before it tried.  Never
    ``"unknown"``: the end of the message was sent and no verdict came, so the
    server may have taken it.
    """
    return outcome.status == "deferred" or isinstance(outcome.error, PoolClosed)


def build_message(
    sender: str, recipients: list[str], subject: str, body: str, message_id: str
) -> Message:
    """The pool message: a plain-text email with the given Message-ID."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = ", ".join(recipients)
    email["Subject"] = subject
    email["Date"] = formatdate(localtime=True)
    email["Message-ID"] = message_id
    email.set_content(body)
    return message_from(email, sender=sender, recipients=recipients)


# No autoretry_for: pool.send reports SMTP failures in its result instead of
# raising, and what it can raise besides (a bug in the pool's thread) may come
# after the message was sent.  Retries are decided below, per recipient.
@app.task(name="smtpclient_example.send_mail", bind=True, max_retries=3)
def send_mail(
    self: Task[Any, Any],
    sender: str,
    recipients: list[str],
    subject: str,
    body: str,
    *,
    message_id: str | None = None,
    earlier: list[RecipientSummary] | None = None,
) -> MailSummary:
    """Send one plain-text message through this process's pool; a JSON summary of the result.

    The pool already tried temporary failures again (``Policy.max_attempts``,
    with backoff).  Recipients that still never reached the server are tried
    again by Celery, later, alone, with the same Message-ID; every other
    recipient is settled: accepted, refused, or *unknown*, which is reported
    and never retried.  ``earlier`` carries the settled outcomes of the tries
    before, for the summary.
    """
    message_id = message_id or make_msgid(domain=sender.rpartition("@")[2] or None)
    try:
        result = current_pool().send(build_message(sender, recipients, subject, body, message_id))
    except PoolClosed:  # the process is shutting down: nothing was sent
        raise self.retry(countdown=10) from None

    settled = [*(earlier or []), *(summarize(o) for o in result.outcomes if not never_sent(o))]
    again = [o.recipient for o in result.outcomes if never_sent(o)]
    if result.unknown:
        # Maybe delivered, maybe not: a person or a reconciliation job decides
        # (the server's log has the Message-ID).  Retrying could send a second
        # copy; raising would mark the task failed and invite exactly that.
        log.warning("outcome unknown for %s of %s: not retried", result.unknown, message_id)
    if again and self.request.retries < (self.max_retries or 0):
        raise self.retry(
            args=(sender, again, subject, body),
            kwargs={"message_id": message_id, "earlier": settled},
            countdown=float(os.environ.get("SMTP_RETRY_DELAY", "") or 600),
        )

    outcomes = [*settled, *(summarize(o) for o in result.outcomes if never_sent(o))]
    statuses = {o["status"] for o in outcomes}
    return {
        "status": statuses.pop() if len(statuses) == 1 else "partial",
        "message_id": message_id,
        "pid": os.getpid(),
        "recipients": outcomes,
    }
