"""What a connection keeps between calls: the current transaction and its pending replies.

:class:`_Transaction` carries one mail transaction from MAIL to its end;
:class:`_Pending` is a command waiting for its reply.  Both are private to
:class:`~smtp_core._connection.Connection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, final

from ._commands import BaseCommand
from ._data import DataEncoder
from ._state import Input, Outcome, State

__all__ = ["_AWAIT_GREETING", "_Pending", "_Transaction"]


@final
@dataclass(slots=True)
class _Transaction:
    """What one mail transaction carries from MAIL to its end."""

    utf8: bool = False  # MAIL had SMTPUTF8: UTF-8 addresses allowed (RFC 6531)
    binary: bool = False  # BODY=BINARYMIME: BDAT only, sent as is (RFC 3030)
    accepted: list[str] = field(default_factory=list)
    encoder: DataEncoder | None = None  # made when DATA is sent
    chunker: DataEncoder | None = None  # made at the first BDAT

    def copy(self) -> _Transaction:
        """An independent copy (the encoders change in place)."""
        return _Transaction(
            self.utf8,
            self.binary,
            list(self.accepted),
            None if self.encoder is None else self.encoder.clone(),
            None if self.chunker is None else self.chunker.clone(),
        )


class _Pending(NamedTuple):
    """A command waiting for its reply, and what the session hopes it gets."""

    command: BaseCommand | None  # None: the greeting, which no command drew
    input: Input
    expected: Outcome
    ends_group: bool
    recipient: str | None = None
    # TRANSITIONS[(source, input, expected)], looked up when the command was
    # sent: if the state is still ``source`` when the hoped-for reply comes,
    # next_event takes ``hoped`` without hashing a key (the usual case); any
    # other reply, or source None, goes to the table.
    source: State | None = None
    hoped: State | None = None


# What a new connection waits for: the greeting, which no command drew.
_AWAIT_GREETING = _Pending(None, Input.GREETING, Outcome.POSITIVE, True)
