"""Events: what :meth:`Connection.next_event` hands back, all immutable."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple, Protocol, final

from ._abnf import enhanced_status
from ._commandbase import BaseCommand

__all__ = ["NEED_DATA", "ConnectionClosed", "Event", "Greeting", "NeedData", "Reply"]


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA`; an Enum of one so ``is NEED_DATA`` narrows."""

    NEED_DATA = "NEED_DATA"


#: Returned by ``next_event`` when the buffered bytes hold no complete event.
NEED_DATA = NeedData.NEED_DATA


# The two reply events are named tuples, not the frozen slotted dataclasses
# STYLE.md asks for (ConnectionClosed and the commands are those): one is
# built per reply, and a tuple is built in C.  Building a Reply through the
# dataclass's slots cost 350 ns, a third of next_event; as a tuple, 100 ns.
# They stay immutable, typed and @final; the price is that a Reply also
# compares equal to a plain tuple of the same values and can be unpacked.


class _HasCodeAndLines(Protocol):
    @property
    def code(self) -> int: ...
    @property
    def lines(self) -> tuple[bytes, ...]: ...


class _ReplyProperties:
    """What both reply events work out from their code and lines."""

    __slots__ = ()

    @property
    def text(self: _HasCodeAndLines) -> str:
        """The text of every line, joined with ``\\n``; bytes that are not UTF-8 are replaced."""
        return b"\n".join(self.lines).decode("utf-8", "replace")

    @property
    def enhanced(self: _HasCodeAndLines) -> tuple[int, int, int] | None:
        """The RFC 3463 enhanced status code the first line starts with, if any (RFC 2034).

        Worked out when asked for: most callers never look, and parsing it for
        every reply cost a third of the reply parser's time.
        """
        return enhanced_status(self.code, self.lines[0]) if self.lines else None

    @property
    def is_positive(self: _HasCodeAndLines) -> bool:
        """True for a 2yz reply (RFC 5321 §4.2.1, positive completion)."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self: _HasCodeAndLines) -> bool:
        """True for a 3yz reply (positive intermediate: send the rest)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self: _HasCodeAndLines) -> bool:
        """True for a 4yz reply (transient negative: try again later)."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self: _HasCodeAndLines) -> bool:
        """True for a 5yz reply (permanent negative: do not repeat as is)."""
        return self.code >= 500


class _GreetingFields(NamedTuple):
    code: int
    lines: tuple[bytes, ...]


class _ReplyFields(NamedTuple):
    command: BaseCommand
    code: int
    lines: tuple[bytes, ...]
    recipient: str | None = None


@final
class Greeting(_GreetingFields, _ReplyProperties):
    """The server's opening reply (RFC 5321 §4.3.1: 220 welcome, 554 go away).

    Attributes:
        code: the reply code.
        lines: each line's text as sent, without code, separator and CRLF
            (never empty: a reply has at least one line).

    Properties: ``text``, ``enhanced``, ``is_positive``, ``is_intermediate``,
    ``is_transient``, ``is_permanent``.
    """

    __slots__ = ()


@final
class Reply(_ReplyFields, _ReplyProperties):
    """A reply, paired with the command that drew it.

    Attributes:
        command: the command this reply answers.  After the end of the message
            content it is the :class:`EndOfContent` command; in LMTP there is
            one such reply per accepted recipient, with ``recipient`` set.
        code: the reply code.
        lines: each line's text as sent, without code, separator and CRLF
            (never empty: a reply has at least one line).
        recipient: the recipient a reply to RCPT is about, and in LMTP the
            recipient a reply to the end of the message is about.

    Properties: ``text``, ``enhanced``, ``is_positive``, ``is_intermediate``,
    ``is_transient``, ``is_permanent``.
    """

    __slots__ = ()


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


#: Builds a :class:`Reply` from a tuple of its four fields without the
#: Python-level ``__new__`` a named tuple's constructor runs (the connection
#: uses it for every reply; a test checks the result equals ``Reply(...)``).
tuple_new = tuple.__new__
