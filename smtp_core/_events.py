"""Events: what :meth:`Connection.next_event` hands back, all immutable."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import final

from ._commands import BaseCommand

__all__ = ["NEED_DATA", "ConnectionClosed", "Event", "Greeting", "NeedData", "Reply"]


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA`; an Enum of one so ``is NEED_DATA`` narrows."""

    NEED_DATA = "NEED_DATA"


#: Returned by ``next_event`` when the buffered bytes hold no complete event.
NEED_DATA = NeedData.NEED_DATA


class _ReplyFields:
    """Helpers shared by :class:`Greeting` and :class:`Reply`."""

    __slots__ = ()
    code: int
    lines: tuple[bytes, ...]

    @property
    def text(self) -> str:
        """The text of every line, joined with ``\\n``; bytes that are not UTF-8 are replaced."""
        return b"\n".join(self.lines).decode("utf-8", "replace")

    @property
    def is_positive(self) -> bool:
        """True for a 2yz reply (RFC 5321 §4.2.1, positive completion)."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """True for a 3yz reply (positive intermediate: send the rest)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """True for a 4yz reply (transient negative: try again later)."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """True for a 5yz reply (permanent negative: do not repeat as is)."""
        return self.code >= 500


@final
@dataclass(frozen=True, slots=True)
class Greeting(_ReplyFields):
    """The server's opening reply (RFC 5321 §4.3.1: 220 welcome, 554 go away).

    Attributes:
        code: the reply code.
        lines: each line's text as sent, without code, separator and CRLF.
        enhanced: the RFC 3463 enhanced status code of the first line, if it had one.
    """

    code: int
    lines: tuple[bytes, ...]
    enhanced: tuple[int, int, int] | None = None


@final
@dataclass(frozen=True, slots=True)
class Reply(_ReplyFields):
    """A reply, paired with the command that drew it.

    Attributes:
        command: the command this reply answers.  After the end of the message
            content it is the :class:`EndOfContent` command; in LMTP there is
            one such reply per accepted recipient, with ``recipient`` set.
        code: the reply code.
        lines: each line's text as sent, without code, separator and CRLF.
        enhanced: the RFC 3463 enhanced status code of the first line, if it
            had one (RFC 2034).
        recipient: the recipient a reply to RCPT is about, and in LMTP the
            recipient a reply to the end of the message is about.
    """

    command: BaseCommand
    code: int
    lines: tuple[bytes, ...]
    enhanced: tuple[int, int, int] | None = None
    recipient: str | None = None


@final
@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the connection (the driver fed ``b""``).

    Attributes:
        unanswered: the commands that were still waiting for a reply; empty
            after QUIT was answered or when nothing was outstanding.
    """

    unanswered: tuple[BaseCommand, ...] = ()


Event = Greeting | Reply | ConnectionClosed


# A frozen dataclass's __init__ sets each field through object.__setattr__,
# which costs twice what the slot descriptors cost when called directly.
# Replies are the engine's most frequent event, so the connection builds them
# here; the result is exactly the object Reply(...) would give.
_new = object.__new__
_set_command = vars(Reply)["command"].__set__
_set_code = vars(Reply)["code"].__set__
_set_lines = vars(Reply)["lines"].__set__
_set_enhanced = vars(Reply)["enhanced"].__set__
_set_recipient = vars(Reply)["recipient"].__set__


def make_reply(
    command: BaseCommand,
    code: int,
    lines: tuple[bytes, ...],
    enhanced: tuple[int, int, int] | None,
    recipient: str | None,
) -> Reply:
    """Build a :class:`Reply` fast (for the connection; users call ``Reply(...)``)."""
    reply: Reply = _new(Reply)
    _set_command(reply, command)
    _set_code(reply, code)
    _set_lines(reply, lines)
    _set_enhanced(reply, enhanced)
    _set_recipient(reply, recipient)
    return reply
