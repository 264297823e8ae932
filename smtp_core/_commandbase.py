"""The base class of every command, in a module of its own below the rest of the engine.

:class:`BaseCommand` is re-exported by :mod:`smtp_core._commands`, where the
commands are.  It lives here because the reply events name it (a
:class:`~smtp_core._events.Reply` carries the command it answers) and the
errors name the events, while the commands need the errors: defined beside
the commands, it would close that circle.  It imports nothing of the engine's.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["BaseCommand"]


class BaseCommand:
    """What every command has: a verb, a wire form and the pipelining rule.

    Attributes:
        VERB: the upper-case verb, e.g. ``"MAIL"``.
        ends_group: True if RFC 2920 §3.1 lets this command only end a
            pipelined group (the client must wait for its reply before
            sending anything else).
    """

    __slots__ = ()
    VERB: ClassVar[str] = ""
    ends_group: ClassVar[bool] = True
    _verb_lower: ClassVar[str] = ""  # VERB.lower(), made once per class

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._verb_lower = cls.VERB.lower()

    @property
    def verb(self) -> str:
        """The upper-case verb, e.g. ``"MAIL"``."""
        return self.VERB

    def arguments(self, lowercase: bool = False) -> str:
        """The text after the verb (without the separating space), or ``""``."""
        return ""

    def line(self, lowercase: bool = False) -> str:
        """The command line without CRLF; ``lowercase`` writes the verb as smtplib does."""
        # VERB, not the verb property: a class whose verb is not its VERB
        # (Command) writes its own line.
        verb = self._verb_lower if lowercase else self.VERB
        args = self.arguments(lowercase)
        return f"{verb} {args}" if args else verb

    def has_non_ascii(self) -> bool:
        """True if any argument needs UTF-8 (RFC 6531 SMTPUTF8) on the wire."""
        return not self.arguments().isascii()
