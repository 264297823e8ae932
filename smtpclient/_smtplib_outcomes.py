"""The seam: how engine outcomes become smtplib's return values and exceptions.

Every part of the smtplib facade turns what the engine and the socket report
into what smtplib reports through this module, and only through it, so that
one set of rules holds everywhere (and the asynchronous API can reuse it).
The rules, each with its tests (``tests/test_facade_contract.py``, the
differential harness in ``tests/differential``):

R1  A reply is ``(code, text)``: ``text`` is the reply's lines joined by
    ``b"\\n"``, each stripped of spaces and tabs at both ends, as smtplib's
    ``getreply`` makes it.  Any code from 200 to 599 is a reply; it is judged
    by its first digit (RFC 5321 §4.2.1).
R2  The server went away -- the engine's ``ConnectionClosed`` or
    ``ServerDisconnected``, or an ``OSError`` (a timeout included) while
    reading -- is ``SMTPServerDisconnected``, and the socket is closed first.
    An ``OSError`` while writing is ``SMTPServerDisconnected("Server not
    connected")``, as smtplib's ``send``.  A 421 reply (the server is closing
    the channel, RFC 5321 §3.8) is returned or raised as smtplib does, and the
    socket is closed at once, where smtplib keeps it until a later call finds
    the close: that call raises ``SMTPServerDisconnected`` in both, without
    writing its command first here.  A deviation.
R3  A reply the engine refuses (``RemoteProtocolError``: a broken grammar, a
    line or reply over the limits, a reply nobody asked for, bytes after the
    220 to STARTTLS) is ``SMTPResponseException(-1, <what was wrong>)`` (-1 is
    smtplib's code for a reply it cannot read), and the socket is closed: a
    session out of step cannot be trusted with the next command.  A
    deviation (README: "Differences from smtplib").
R4  Nothing is refused locally but what README's deviation table lists:
    CR or LF in a command (``ValueError``, smtplib's own message), NUL
    (``ValueError``), a command line over the engine's limits
    (``SMTPProtocolError``, an ``SMTPException`` and a ``ValueError``).
    Everything else goes to the server and its reply is reported.
R5  SASL: a challenge that is not base64, or that the mechanism cannot
    answer, cancels the exchange with ``*`` (RFC 4954 §4) and is
    ``SMTPAuthenticationError(334, <the challenge>)``; a server that breaks
    SCRAM (a wrong or missing server signature, even after 235) closes the
    session and is ``SMTPAuthenticationError(-1, <what was wrong>)``.
R6  ``sendmail`` returns only when the server accepted the end of the data
    (a 2yz, in LMTP for at least one recipient); its result is the dict of
    refused recipients keyed by the addresses as the caller gave them.
    Otherwise, in smtplib's order: ``SMTPSenderRefused`` (MAIL not 2yz),
    ``SMTPRecipientsRefused`` (a 421 to a RCPT -- with the refusals up to
    it -- or every recipient refused), ``SMTPDataError`` (DATA not 354, or
    the end of data not 2yz), ``SMTPServerDisconnected`` (the server closed
    before its verdict).  A 421 anywhere closes the socket first.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from typing import NoReturn

from smtp_core import (
    Greeting,
    LocalProtocolError,
    OutcomeUnknown,
    RemoteProtocolError,
    Reply,
    ServerDisconnected,
    TransactionResult,
)

from ._errors import (
    SMTPDataError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from ._smtplib_helpers import SMTPProtocolError

__all__ = [
    "AnyReply",
    "Refused",
    "data_outcome",
    "disconnected",
    "final_outcome",
    "lmtp_outcome",
    "mail_outcome",
    "raise_engine_error",
    "rcpt_outcome",
    "recipients_outcome",
    "reply_text",
    "sendmail_outcome",
]

Refused = dict[str, tuple[int, bytes]]
#: A reply as the facade reads it: a greeting only where a caller reads one by hand.
AnyReply = Reply | Greeting


def reply_text(reply: AnyReply) -> bytes:
    """R1: smtplib's text of a reply: its lines, stripped, joined by ``\\n``."""
    lines = reply.lines
    if len(lines) == 1:
        return lines[0].strip(b" \t")
    return b"\n".join([line.strip(b" \t") for line in lines])


def disconnected(close: Callable[[], None], detail: str = "") -> NoReturn:
    """R2: close, then raise smtplib's ``SMTPServerDisconnected``."""
    close()
    message = "Connection unexpectedly closed"
    raise SMTPServerDisconnected(f"{message}: {detail}" if detail else message)


def raise_engine_error(exc: Exception, close: Callable[[], None]) -> NoReturn:
    """R2-R4: raise smtplib's exception for ``exc`` (call it in the ``except`` block).

    ``close`` closes the session's socket; it is called for everything but a
    local refusal, which leaves the session as it was.
    """
    if isinstance(exc, OutcomeUnknown) and isinstance(exc.cause, Exception):
        # smtplib knows no "outcome unknown": what failed after the end of
        # data is reported as smtplib reports that failure.
        exc = exc.cause
    if isinstance(exc, LocalProtocolError):
        raise SMTPProtocolError(str(exc)) from exc
    if isinstance(exc, ServerDisconnected):
        disconnected(close)
    if isinstance(exc, RemoteProtocolError):
        close()
        raise SMTPResponseException(-1, str(exc).encode()) from exc
    close()
    if isinstance(exc, ssl.SSLError):
        raise exc  # as smtplib: a failed handshake is reported as it is
    if isinstance(exc, OSError):
        raise SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from exc
    raise exc


def _refused(reply: AnyReply) -> tuple[int, bytes]:
    return reply.code, reply_text(reply)


def _nothing() -> None:
    """The reset of a transaction the engine already reset (RSET in ``send_mail``)."""


def mail_outcome(
    reply: AnyReply, from_addr: str, *, close: Callable[[], None], reset: Callable[[], None]
) -> None:
    """R6, MAIL: not 2yz is ``SMTPSenderRefused``, after ``close`` (421) or ``reset``."""
    if reply.is_positive:
        return
    if reply.code == 421:
        close()
    else:
        reset()
    raise SMTPSenderRefused(reply.code, reply_text(reply), from_addr)


def rcpt_outcome(
    refused: Refused, address: str, reply: AnyReply, *, close: Callable[[], None]
) -> None:
    """R6, one RCPT: not 2yz goes into ``refused``; a 421 closes and raises at once."""
    if reply.is_positive:
        return
    refused[address] = _refused(reply)
    if reply.code == 421:
        close()
        raise SMTPRecipientsRefused(refused)


def recipients_outcome(refused: Refused, count: int, *, reset: Callable[[], None]) -> None:
    """R6, after the last RCPT: every recipient refused is ``SMTPRecipientsRefused``."""
    if len(refused) == count:
        reset()
        raise SMTPRecipientsRefused(refused)


def data_outcome(reply: AnyReply, *, close: Callable[[], None]) -> None:
    """R6, DATA: anything but 354 is ``SMTPDataError`` (smtplib's ``data()`` resets nothing)."""
    if reply.is_intermediate:
        return
    if reply.code == 421:
        close()
    raise SMTPDataError(reply.code, reply_text(reply))


def final_outcome(
    reply: AnyReply | None, *, close: Callable[[], None], reset: Callable[[], None]
) -> None:
    """R6, the end of data: no reply is ``SMTPServerDisconnected``; not 2yz ``SMTPDataError``."""
    if reply is None:
        disconnected(close)
    if reply.is_positive:
        return
    if reply.code == 421:
        close()
    else:
        reset()
    raise SMTPDataError(reply.code, reply_text(reply))


def lmtp_outcome(
    refused: Refused,
    verdicts: Sequence[tuple[str, AnyReply]],
    count: int,
    *,
    close: Callable[[], None],
) -> Refused:
    """R6, LMTP: each recipient's own verdict; every recipient refused is an exception."""
    for address, reply in verdicts:
        if not reply.is_positive:
            refused[address] = _refused(reply)
    if any(reply.code == 421 for _, reply in verdicts):
        close()
    if len(refused) == count:
        raise SMTPRecipientsRefused(refused)
    return refused


def sendmail_outcome(
    result: TransactionResult,
    from_addr: str,
    to_addrs: Sequence[str],
    *,
    lmtp: bool,
    close: Callable[[], None],
    reset: Callable[[], None],
) -> Refused:
    """R6 for a transaction the engine ran (pipelined): the refused dict, or the exception.

    The steps are those of the one-command-at-a-time path, in its order, and
    ``reset`` (smtplib's quiet RSET) is called where smtplib calls it, but
    after every recipient was refused: the engine's ``transaction`` sent RSET
    then already.  ``result.recipients`` are in the order of ``to_addrs``;
    the dict is keyed by ``to_addrs``.
    """
    mail_outcome(result.mail_reply, from_addr, close=close, reset=reset)
    refused: Refused = {}
    for address, recipient in zip(to_addrs, result.recipients, strict=True):
        if recipient.rcpt_reply is None:
            break  # not answered: a 421 came first
        rcpt_outcome(refused, address, recipient.rcpt_reply, close=close)
    recipients_outcome(refused, len(to_addrs), reset=_nothing)
    if result.data_reply is None:
        disconnected(close)  # the server closed before answering DATA
    data_outcome(result.data_reply, close=close)
    if lmtp and result.final_reply is not None:
        verdicts = [
            (address, recipient.reply)
            for address, recipient in zip(to_addrs, result.recipients, strict=True)
            if address not in refused
        ]
        return lmtp_outcome(refused, verdicts, len(to_addrs), close=close)
    final_outcome(result.final_reply, close=close, reset=reset)
    return refused
