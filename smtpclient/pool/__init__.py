"""Bulk sending: a pool of SMTP connections with a shared rate limit.

``Pool`` (blocking, threads) and ``AsyncPool`` (asyncio, trio or anyio tasks)
send many messages over at most ``max_connections`` connections, reused,
checked with NOOP after idling, closed after ``idle_timeout`` and after
``max_messages``; a rate limit shared by the whole pool; bounded retries with
backoff for temporary failures; and never a second copy of a message whose
end was sent (its result is *unknown*, never retried).  The decisions are
:class:`smtp_core.pool.Scheduler`'s, pure code; these are its runners.
"""

from smtp_core.pool import (
    Message,
    MessageResult,
    Policy,
    PoolClosed,
    RecipientOutcome,
    RecipientStatus,
)

from ._session import Session, TLSMode, message_from
from ._tasks import AsyncPool
from ._threads import Pool

__all__ = [
    "AsyncPool",
    "Message",
    "MessageResult",
    "Policy",
    "Pool",
    "PoolClosed",
    "RecipientOutcome",
    "RecipientStatus",
    "Session",
    "TLSMode",
    "message_from",
]
