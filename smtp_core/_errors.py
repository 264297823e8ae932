"""The exceptions the engine raises, sorted by who is to blame.

``LocalProtocolError`` means the caller asked for something illegal; it comes
from command constructors and :meth:`Connection.send`.  ``RemoteProtocolError``
means the server broke the protocol; it comes only from
:meth:`Connection.next_event` and :meth:`Connection.receive_data`.
``ReplyError`` is not a protocol error at all: the server answered correctly,
but negatively, while a procedure needed a positive answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._events import Greeting, Reply

__all__ = [
    "LocalProtocolError",
    "OutcomeUnknown",
    "ProtocolError",
    "RemoteProtocolError",
    "ReplyError",
    "ServerDisconnected",
]


class ProtocolError(Exception):
    """Base class of the engine's protocol errors (never raised itself)."""


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol or the server forbids.

    Raised before any byte of the offending command exists, so a connection
    that raised it from a constructor or from ``send`` is left as it was,
    unless the message says the connection is now in the ``ERROR`` state.
    """


class RemoteProtocolError(ProtocolError):
    """The server broke the protocol (bad reply grammar, limits, bytes out of turn).

    The connection moves to the ``ERROR`` state and stays there.
    """


class ServerDisconnected(RemoteProtocolError):
    """The server closed the connection while a reply was still due."""


class ReplyError(Exception):
    """A procedure needed a positive reply and the server gave a negative one.

    Attributes:
        reply: the :class:`Reply` event, which carries the code, the enhanced
            status code, the text and the command that drew it, or the
            :class:`Greeting` when the server refused the session.
    """

    def __init__(self, reply: Reply | Greeting) -> None:
        self.reply = reply
        command = getattr(reply, "command", None)  # a Greeting has none
        what = "the greeting" if command is None else command.verb
        super().__init__(f"{what} drew {reply.code} {reply.text!r}")

    @property
    def code(self) -> int:
        """The reply code, e.g. ``550``."""
        return self.reply.code

    @property
    def text(self) -> str:
        """The reply text, lines joined with ``\\n``."""
        return self.reply.text


class OutcomeUnknown(Exception):
    """The end of the message was sent, and then its verdict never came.

    The connection failed, timed out or broke the protocol while the client
    waited for the reply to the end of data (or, in LMTP, for some of the
    per-recipient replies).  The server may have taken the message: sending
    it again may deliver it twice, so this is never a plain failure to retry.
    The connection is closed.

    Attributes:
        cause: what happened instead of the verdict (a ``StageTimeout``,
            ``ServerDisconnected``, ``RemoteProtocolError`` or ``OSError``);
            also ``__cause__``.
        delivered: the recipients whose delivery was confirmed before that
            (LMTP's per-recipient replies that did arrive), in order.
        unknown: the recipients whose fate is unknown, in order.
    """

    def __init__(
        self, cause: BaseException, delivered: tuple[str, ...], unknown: tuple[str, ...]
    ) -> None:
        self.cause = cause
        self.delivered = delivered
        self.unknown = unknown
        super().__init__(
            f"the message may have been delivered to {len(unknown)} recipient(s) "
            f"({', '.join(unknown)}): no verdict after the end of data ({cause})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.cause, self.delivered, self.unknown))
