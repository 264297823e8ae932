"""How long each stage of a session may take: decided here, applied by the drivers.

RFC 5321 §4.5.3.2 gives a client's minimum wait per stage, because a busy
server may take minutes to answer MAIL or to accept a message, and a client
that gives up early causes duplicates.  The procedures say which stage every
read and write belongs to (:attr:`Read.stage`, :attr:`Write.stage`); a driver
looks the seconds up in :class:`Timeouts` and, when they run out, raises
:class:`StageTimeout` into the procedure, which leaves the connection closed.
The engine reads no clock: the numbers are only passed along.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import final

__all__ = ["Stage", "StageTimeout", "Timeouts"]


class Stage(enum.Enum):
    """A part of the session with a timeout of its own.

    Its value is the name of its field in :class:`Timeouts`.
    """

    __hash__ = object.__hash__  # identity hashing in C: looked up for every read

    CONNECT = "connect"
    GREETING = "greeting"
    TLS = "tls"
    COMMAND = "command"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    DATA_BLOCK = "data_block"
    DATA_END = "data_end"

    @property
    def description(self) -> str:
        """What is being waited for, for messages: ``"the reply to MAIL"``."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Stage.CONNECT: "the connection to be made",
    Stage.GREETING: "the server's greeting",
    Stage.TLS: "the TLS handshake",
    Stage.COMMAND: "the reply to a command",
    Stage.MAIL: "the reply to MAIL",
    Stage.RCPT: "the reply to RCPT",
    Stage.DATA: "the reply to DATA",
    Stage.DATA_BLOCK: "the server to take a block of message data",
    Stage.DATA_END: "the reply to the end of the message",
}


@final
@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed per stage (``None``: no limit), and for the whole session.

    The defaults are RFC 5321 §4.5.3.2's: 5 minutes for the greeting, MAIL and
    RCPT; 2 for DATA; 3 for each block of data written; 10 for the reply to
    the end of the message, during which the server may be delivering it.
    The RFC sets none for the other commands (EHLO, AUTH, RSET, QUIT...): they
    get MAIL's 5 minutes.  Connecting and the TLS handshake get 1 minute.

    A stage's time bounds a whole reply, not each read, so a server that
    trickles one byte at a time cannot stretch it.  ``total``, if set, bounds
    everything a driver does from the moment it starts (connecting included),
    whatever the stages allow.
    """

    connect: float | None = 60.0
    greeting: float | None = 300.0
    tls: float | None = 60.0
    command: float | None = 300.0
    mail: float | None = 300.0
    rcpt: float | None = 300.0
    data: float | None = 120.0
    data_block: float | None = 180.0
    data_end: float | None = 600.0
    total: float | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and not value > 0:  # rejects NaN too
                raise ValueError(f"timeout {field.name} must be positive or None, not {value!r}")

    def seconds(self, stage: Stage) -> float | None:
        """The seconds allowed for ``stage``."""
        value: float | None = getattr(self, stage.value)
        return value

    @classmethod
    def every(cls, seconds: float | None, *, total: float | None = None) -> Timeouts:
        """The same limit for every stage: the single ``timeout`` of smtplib and aiosmtplib."""
        return cls(**{stage.value: seconds for stage in Stage}, total=total)


class StageTimeout(TimeoutError):
    """A stage of the session ran out of time; the connection is closed.

    A driver raises it into the procedure, so it comes out of the procedure's
    run unless the procedure makes more of it (after the end of a message it
    becomes :class:`OutcomeUnknown`).  It is a ``TimeoutError``, and so an
    ``OSError``, so code that catches either keeps working.

    Attributes:
        stage: the :class:`Stage` that ran out.
        seconds: the limit that was reached.
        overall: True when it was :attr:`Timeouts.total`, not the stage's own.
    """

    def __init__(self, stage: Stage, seconds: float, overall: bool = False) -> None:
        self.stage = stage
        self.seconds = seconds
        self.overall = overall
        limit = "the overall deadline" if overall else "the limit"
        super().__init__(f"timed out waiting for {stage.description} ({limit} of {seconds:g} s)")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.stage, self.seconds, self.overall))
