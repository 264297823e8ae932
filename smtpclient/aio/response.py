"""The reply type of the asyncio API: aiosmtplib's ``SMTPResponse``."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SMTPResponse"]


class SMTPResponse(NamedTuple):
    """A server reply: its code and its text.

    A plain named tuple, so ``code, message = response`` and ``response[0]`` work, and it equals
    any tuple with the same two items (aiosmtplib's ``SMTPResponse`` included).  ``str()``
    shows the reply as the server wrote it on one line, ``"250 OK"``; ``repr()`` is the named
    tuple's, ``SMTPResponse(code=250, message='OK')``.

    Attributes:
        code: the reply code (``-1`` for a reply that could not be parsed).
        message: the reply text without its code; the lines of a multiline reply are joined
            with ``"\\n"``.
    """

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"
