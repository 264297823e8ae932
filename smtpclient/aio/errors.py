"""The exceptions of the asyncio API: aiosmtplib's classes, name for name, and two of ours.

Every aiosmtplib class is here with the same name, the same bases in the same order, the same
positional-only constructor and the same attributes, so ``except SMTPResponseException as e:
e.code`` and ``except ConnectionError`` keep catching what they caught.  Two details decide
how the instances behave and are kept on purpose:

* Each constructor sets ``args`` itself and never calls ``OSError.__init__``.  The classes
  that are also ``ConnectionError`` or ``TimeoutError`` therefore keep ``errno`` and
  ``strerror`` at ``None``, and ``str(SMTPConnectResponseError(554, "no"))`` is
  ``"(554, 'no')"``, not ``"[Errno 554] no"``.
* The timeout classes subclass :class:`asyncio.TimeoutError`.  From Python 3.11 that is the
  builtin :class:`TimeoutError`; on Python 3.10 it is a separate class, so there
  ``except TimeoutError`` (the builtin) does *not* catch :class:`SMTPTimeoutError`, exactly
  as with aiosmtplib.

Ours, not aiosmtplib's:

* :class:`SMTPOutcomeUnknownError`: the connection failed or timed out after the end of the
  message was sent, so the server may have accepted it.
* :class:`SMTPStageTimeoutError`: a timeout that names the protocol stage it cut short.
"""

from __future__ import annotations

# Re-exported as aiosmtplib.errors does: the builtin from 3.11, its own class on 3.10.
from asyncio import TimeoutError as TimeoutError  # noqa: PLC0414 - the alias marks the export
from collections.abc import Iterable
from typing import Any

__all__ = [
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPConnectResponseError",
    "SMTPConnectTimeoutError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPNotSupported",
    "SMTPOutcomeUnknownError",
    "SMTPReadTimeoutError",
    "SMTPRecipientRefused",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPStageTimeoutError",
    "SMTPTimeoutError",
]


class SMTPException(Exception):
    """Base class of every exception the asyncio API raises on purpose.

    Attributes:
        message: the explanation, also the only item of ``args``.
    """

    def __init__(self, message: str, /) -> None:
        self.message = message
        self.args = (message,)


class SMTPServerDisconnected(SMTPException, ConnectionError):
    """The connection is gone: lost mid-command, or never made before a command needed it."""


class SMTPConnectError(SMTPException, ConnectionError):
    """Opening the connection failed (refused, unreachable, closed before the greeting)."""


class SMTPTimeoutError(SMTPException, TimeoutError):
    """A network operation (connect, TLS handshake, wait for a reply) ran out of time."""


class SMTPConnectTimeoutError(SMTPTimeoutError, SMTPConnectError):
    """Connecting, or waiting for the server's greeting, ran out of time."""


class SMTPReadTimeoutError(SMTPTimeoutError):
    """Waiting for the server's reply to a command ran out of time."""


class SMTPNotSupported(SMTPException):
    """The server does not offer what the call needs (an extension such as SMTPUTF8)."""


class SMTPResponseException(SMTPException):
    """The server answered with a code the call cannot accept.

    Attributes:
        code: the reply code; ``-1`` when the reply itself could not be parsed.
        message: the reply text, continuation lines joined with ``"\\n"``.
    """

    def __init__(self, code: int, message: str, /) -> None:
        self.code = code
        self.message = message
        self.args = (code, message)


class SMTPConnectResponseError(SMTPResponseException, SMTPConnectError):
    """The server's greeting carried a code other than 220."""


class SMTPHeloError(SMTPResponseException):
    """The server refused EHLO or HELO."""


class SMTPDataError(SMTPResponseException):
    """The server refused DATA, or refused the message after its end was sent."""


class SMTPAuthenticationError(SMTPResponseException):
    """The server refused an AUTH step, usually because the credentials are wrong."""


class SMTPSenderRefused(SMTPResponseException):
    """The server refused MAIL FROM.

    Attributes:
        sender: the sender as the caller passed it (before any parsing).
    """

    def __init__(self, code: int, message: str, sender: str, /) -> None:
        self.code = code
        self.message = message
        self.sender = sender
        self.args = (code, message, sender)


class SMTPRecipientRefused(SMTPResponseException):
    """The server refused one RCPT TO.

    Attributes:
        recipient: the recipient as the caller passed it (before any parsing).
    """

    def __init__(self, code: int, message: str, recipient: str, /) -> None:
        self.code = code
        self.message = message
        self.recipient = recipient
        self.args = (code, message, recipient)


class SMTPRecipientsRefused(SMTPException):
    """The server refused every recipient of a transaction.

    Unlike its ``smtplib`` namesake this holds a list of exceptions, not a dict.

    Attributes:
        recipients: one :class:`SMTPRecipientRefused` per recipient, in the order sent.
    """

    def __init__(self, recipients: list[SMTPRecipientRefused], /) -> None:
        self.recipients = recipients
        self.args = (recipients,)


class SMTPStageTimeoutError(SMTPTimeoutError):
    """A timeout that says which stage of the session it interrupted.

    The stage names follow RFC 5321 §4.5.3.2, which gives each its own limit, for example
    ``"connect"``, ``"greeting"``, ``"mail"``, ``"rcpt"``, ``"data-init"``, ``"data-block"``
    and ``"data-end"``.  ``str()`` shows only the message, as for every timeout here.

    Attributes:
        stage: the name of the interrupted stage.
    """

    def __init__(self, message: str, /, stage: str) -> None:
        super().__init__(message)
        self.stage = stage

    def __reduce__(self) -> tuple[Any, ...]:
        # ``args`` holds the message only, so the default reduction would lose ``stage``.
        return (type(self), (self.message, self.stage), self.__dict__)


class SMTPOutcomeUnknownError(SMTPException):
    """The connection failed or timed out after the end of the message was sent.

    The message may have been delivered: the server can have accepted it and committed to
    delivering it before the failure, with its reply lost.  Do not retry blindly, or the
    recipients may get it twice; look at the server's logs or ask the recipients instead.

    Attributes:
        cause: the error that interrupted the session (a timeout, a reset, an EOF).
        delivered: recipients for whom the server's acceptance of the message did arrive
            (LMTP answers once per recipient, so some answers may precede the failure).
        unknown: recipients whose fate is unknown.
    """

    def __init__(
        self,
        message: str,
        /,
        cause: BaseException,
        delivered: Iterable[str] = (),
        unknown: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.delivered: tuple[str, ...] = tuple(delivered)
        self.unknown: tuple[str, ...] = tuple(unknown)

    def __reduce__(self) -> tuple[Any, ...]:
        # ``args`` holds the message only, so the default reduction would lose the rest.
        arguments = (self.message, self.cause, self.delivered, self.unknown)
        return (type(self), arguments, self.__dict__)
