"""The seam of the asyncio face: engine results in, aiosmtplib's values and exceptions out.

Every outcome the engine or a driver produces becomes what aiosmtplib shows
for it, here and nowhere else, by six rules (the smtplib face's seam,
``smtpclient._smtplib_outcomes``, has the same shape):

* **A1, replies.**  A reply is ``SMTPResponse(code, text)``: each line's text
  stripped of ``" \\t\\r\\n"`` and decoded UTF-8 (``surrogateescape``), the
  lines joined with ``"\\n"``.
* **A2, the server goes away.**  A close, a reset or any ``OSError`` is
  ``SMTPServerDisconnected`` (connecting: ``SMTPConnectError``); the
  connection is closed first.
* **A3, time runs out.**  Connecting or the greeting:
  ``SMTPConnectTimeoutError``; the TLS handshake: ``SMTPTimeoutError``; any
  reply: ``SMTPReadTimeoutError``.  Each is also an
  :class:`SMTPStageTimeoutError` naming the stage (RFC 5321 §4.5.3.2).
* **A4, replies the engine refuses** (malformed, over-long, unsolicited, or
  bytes after STARTTLS's 220): ``SMTPResponseException(-1, ...)``, after
  closing.  Local refusals (CR, LF or NUL in an argument): ``ValueError``,
  aiosmtplib's type for bad arguments; nothing was sent.
* **A5, after the end of the message.**  A failure while the verdict is
  awaited is :class:`SMTPOutcomeUnknownError`: the message may have been
  delivered, and aiosmtplib's ``SMTPReadTimeoutError`` or
  ``SMTPServerDisconnected`` there invites a retry that delivers twice.
* **A6, transactions.**  MAIL not 2yz: ``SMTPSenderRefused``; each RCPT not
  2yz: an entry of the ``errors`` dict; every recipient refused:
  ``SMTPRecipientsRefused``; DATA not 354 or the end of data not 2yz:
  ``SMTPDataError``.  The one-command path and the pipelined path call the
  same functions in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

from smtp_core import (
    Greeting,
    LocalProtocolError,
    OutcomeUnknown,
    RemoteProtocolError,
    Reply,
    ServerDisconnected,
    Stage,
    StageTimeout,
    TransactionResult,
)
from transports import DriverClosed

from .errors import (
    SMTPConnectError,
    SMTPConnectTimeoutError,
    SMTPDataError,
    SMTPException,
    SMTPOutcomeUnknownError,
    SMTPReadTimeoutError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPStageTimeoutError,
    SMTPTimeoutError,
)
from .response import SMTPResponse

__all__ = [
    "SMTPConnectStageTimeoutError",
    "SMTPHandshakeStageTimeoutError",
    "SMTPReadStageTimeoutError",
    "connect_error",
    "data_outcome",
    "engine_error",
    "final_outcome",
    "mail_outcome",
    "rcpt_outcome",
    "recipients_outcome",
    "response",
    "transaction_outcome",
]

Errors = dict[str, SMTPResponse]
Refusals = list[SMTPRecipientRefused]


class SMTPConnectStageTimeoutError(SMTPStageTimeoutError, SMTPConnectTimeoutError):
    """A3: connecting or the greeting ran out of time (aiosmtplib's ``SMTPConnectTimeoutError``)."""


class SMTPReadStageTimeoutError(SMTPStageTimeoutError, SMTPReadTimeoutError):
    """A3: a reply ran out of time (aiosmtplib's ``SMTPReadTimeoutError``)."""


class SMTPHandshakeStageTimeoutError(SMTPStageTimeoutError):
    """A3: the TLS handshake ran out of time (aiosmtplib's plain ``SMTPTimeoutError``)."""


_STAGE_NAMES = {
    Stage.CONNECT: "connect",
    Stage.GREETING: "greeting",
    Stage.TLS: "starttls",
    Stage.COMMAND: "command",
    Stage.MAIL: "mail",
    Stage.RCPT: "rcpt",
    Stage.DATA: "data-init",
    Stage.DATA_BLOCK: "data-block",
    Stage.DATA_END: "data-end",
}


def response(reply: Reply | Greeting) -> SMTPResponse:
    """A1: the reply as aiosmtplib's ``SMTPResponse``."""
    text = "\n".join(
        line.decode("utf-8", "surrogateescape").strip(" \t\r\n") for line in reply.lines
    )
    return SMTPResponse(reply.code, text)


def _timeout(exc: StageTimeout) -> SMTPTimeoutError:
    """A3: the timeout class aiosmtplib raises for the stage, naming the stage."""
    cls: type[SMTPStageTimeoutError]
    if exc.stage in (Stage.CONNECT, Stage.GREETING):
        cls = SMTPConnectStageTimeoutError
    elif exc.stage is Stage.TLS:
        cls = SMTPHandshakeStageTimeoutError
    else:
        cls = SMTPReadStageTimeoutError
    return cls(str(exc), _STAGE_NAMES[exc.stage])


def engine_error(exc: BaseException) -> Exception:
    """A2-A5: aiosmtplib's exception for what the engine or the driver raised.

    The caller closes the connection first (except for ``ValueError``: a local
    refusal leaves the session as it was) and raises the result ``from exc``.
    """
    if isinstance(exc, OutcomeUnknown):
        return SMTPOutcomeUnknownError(
            f"the message may have been delivered: {exc.cause}",
            cause=exc.cause,
            delivered=exc.delivered,
            unknown=exc.unknown,
        )
    if isinstance(exc, LocalProtocolError):
        return ValueError(str(exc))
    if isinstance(exc, StageTimeout):
        return _timeout(exc)
    if isinstance(exc, ServerDisconnected):
        return SMTPServerDisconnected("Unexpected EOF received")
    if isinstance(exc, RemoteProtocolError):
        return SMTPResponseException(-1, str(exc))
    if isinstance(exc, DriverClosed):
        return SMTPServerDisconnected("Server not connected")
    if isinstance(exc, OSError):
        return SMTPServerDisconnected(f"Connection lost: {exc}")
    if isinstance(exc, SMTPException):
        return exc
    return exc if isinstance(exc, Exception) else SMTPException(str(exc))


def connect_error(exc: BaseException, where: str) -> Exception:
    """A2/A3 while connecting: ``SMTPConnectTimeoutError`` or ``SMTPConnectError``."""
    if isinstance(exc, StageTimeout):
        return _timeout(exc)
    if isinstance(exc, TimeoutError):
        return SMTPConnectStageTimeoutError(f"Timed out connecting to {where}", "connect")
    if isinstance(exc, OSError):
        return SMTPConnectError(f"Error connecting to {where}: {exc}")
    return engine_error(exc)


def mail_outcome(reply: Reply, sender: str) -> None:
    """A6, MAIL: not 2yz is ``SMTPSenderRefused``."""
    if not reply.is_positive:
        answer = response(reply)
        raise SMTPSenderRefused(answer.code, answer.message, sender)


def rcpt_outcome(refusals: Refusals, recipient: str, reply: Reply) -> None:
    """A6, one RCPT: not 2yz goes into ``refusals``, in order (a recipient given twice, twice)."""
    if not reply.is_positive:
        answer = response(reply)
        refusals.append(SMTPRecipientRefused(answer.code, answer.message, recipient))


def recipients_outcome(refusals: Refusals, recipients: Sequence[str]) -> Errors:
    """A6, after the last RCPT: every RCPT refused is ``SMTPRecipientsRefused``.

    Returns:
        The ``errors`` dict: each refused recipient's reply (the last, if given twice).
    """
    if len(refusals) == len(recipients):
        raise SMTPRecipientsRefused(refusals)
    return {r.recipient: SMTPResponse(r.code, r.message) for r in refusals}


def data_outcome(reply: Reply) -> None:
    """A6, DATA: anything but 3yz is ``SMTPDataError``."""
    if not reply.is_intermediate:
        answer = response(reply)
        raise SMTPDataError(answer.code, answer.message)


def final_outcome(reply: Reply | None) -> str:
    """A6, the end of data: not 2yz is ``SMTPDataError``; the text is returned."""
    if reply is None:
        raise SMTPServerDisconnected("Unexpected EOF received")
    answer = response(reply)
    if not reply.is_positive:
        raise SMTPDataError(answer.code, answer.message)
    return answer.message


def transaction_outcome(
    result: TransactionResult, sender: str, recipients: Sequence[str], *, chunking: bool = False
) -> tuple[Errors, str]:
    """A6 for a transaction the engine ran (pipelined): ``(errors, text)`` or the exception.

    The same checks as the one-command path, in its order.  ``result.recipients``
    are in the order of ``recipients``, which key the dict.  With ``chunking``
    there is no DATA: the reply to the last BDAT (or to a refused chunk) is
    the end of data's.
    """
    mail_outcome(result.mail_reply, sender)
    refusals: Refusals = []
    for name, recipient in zip(recipients, result.recipients, strict=True):
        if recipient.rcpt_reply is None:
            raise SMTPServerDisconnected("Unexpected EOF received")  # a 421 came first
        rcpt_outcome(refusals, name, recipient.rcpt_reply)
    errors = recipients_outcome(refusals, recipients)
    if not chunking:
        if result.data_reply is None:
            raise SMTPServerDisconnected("Unexpected EOF received")
        data_outcome(result.data_reply)
    return errors, final_outcome(result.final_reply)
