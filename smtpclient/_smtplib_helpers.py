"""The module-level part of the ``smtplib`` facade: constants and helpers.

smtplib's constants (ports, ``CRLF``, ``OLDSTYLE_AUTH``...), ``SMTPProtocolError``,
the address and data helpers (``quoteaddr``, ``quotedata``), the line checks,
and the engine commands made once.  ``smtpclient._smtplib`` re-exports the
public names; :func:`_net` is how every part of the facade reaches the
``socket`` module (looked up at call time, so tests can replace it).
"""

from __future__ import annotations

import email.utils
import re
import socket
import sys
from types import ModuleType
from typing import Any

from ._errors import SMTPException

__all__ = [
    "CRLF",
    "LMTP_PORT",
    "OLDSTYLE_AUTH",
    "SMTP_PORT",
    "SMTP_SSL_PORT",
    "SMTPProtocolError",
    "bCRLF",
    "quoteaddr",
    "quotedata",
]

SMTP_PORT = 25
SMTP_SSL_PORT = 465
LMTP_PORT = 2003
CRLF = "\r\n"
bCRLF = b"\r\n"  # noqa: N816 - smtplib's name
#: smtplib's per-line read limit.  The engine's own limit is lower
#: (``smtp_core.MAX_REPLY_LINE_LENGTH``); this name is kept for compatibility.
_MAXLINE = 8192
OLDSTYLE_AUTH = re.compile(r"auth=(.*)", re.I)


class SMTPProtocolError(SMTPException, ValueError):
    """The call was refused before anything was sent (``smtp_core.LocalProtocolError``).

    For example a command the session's state does not allow, or an option the
    server did not advertise.  Also a ``ValueError``, as smtplib raises for
    arguments it refuses.
    """

    # Named in tracebacks and pickles after the module it has always been
    # defined in and is imported from, not after this private one.
    __module__ = f"{__package__}._smtplib"


#: The socket module's "no timeout given" sentinel (the same object in test doubles).
_DEFAULT_TIMEOUT: Any = vars(socket)["_GLOBAL_DEFAULT_TIMEOUT"]


def _net() -> ModuleType:
    """The ``socket`` module as the package sees it now (tests replace it)."""
    module: ModuleType = sys.modules[__package__].socket
    return module


# A plain dot-atom address (or a bare name such as "John"): parseaddr returns
# it unchanged, so the 17 µs it costs can be skipped.  tests/test_facade_speed.py
# checks the shortcut against parseaddr.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)?"
)


def quoteaddr(addrstring: str) -> str:
    """Quote an address for MAIL/RCPT, as smtplib does: ``'A <a@b>'`` -> ``'<a@b>'``."""
    if _PLAIN_ADDRESS.fullmatch(addrstring):
        return f"<{addrstring}>"
    displayname, addr = email.utils.parseaddr(addrstring)
    if (displayname, addr) == ("", ""):
        # parseaddr could not make sense of it; smtplib sends it as it is.
        if addrstring.strip().startswith("<"):
            return addrstring
        return f"<{addrstring}>"
    return f"<{addr}>"


def _addr_only(addrstring: str) -> str:
    displayname, addr = email.utils.parseaddr(addrstring)
    if (displayname, addr) == ("", ""):
        return addrstring
    return addr


def quotedata(data: str) -> str:
    """Dot-stuff ``data`` and make every line ending CRLF (smtplib's helper)."""
    return re.sub(r"(?m)^\.", "..", re.sub(r"(?:\r\n|\n|\r(?!\n))", CRLF, data))


def _fix_eols(data: str) -> str:
    return re.sub(r"(?:\r\n|\n|\r(?!\n))", CRLF, data)


def _check_newlines(line: str) -> None:
    # smtplib's own message (bpo-43124), which code and tests match on.
    if "\r" in line or "\n" in line:
        shown = line.replace("\n", "\\n").replace("\r", "\\r")
        raise ValueError(f"command and arguments contain prohibited newline characters: {shown}")
    if "\0" in line:
        shown = line.replace("\0", "\\0")
        raise ValueError(f"command and arguments contain a prohibited NUL character: {shown}")
