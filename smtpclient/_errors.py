"""The exception hierarchy of the standard library's smtplib, name for name.

``SMTPException`` subclasses ``OSError`` as in smtplib since Python 3.4, so
code that catches either keeps working.
"""

from __future__ import annotations

__all__ = [
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPNotSupportedError",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
]


class SMTPException(OSError):
    """Base class of every exception this module raises."""


class SMTPNotSupportedError(SMTPException):
    """The command or option is not supported by the server."""


class SMTPServerDisconnected(SMTPException):
    """Not connected, or the server closed the connection unexpectedly."""


class SMTPResponseException(SMTPException):
    """The server answered with an error code.

    Attributes:
        smtp_code: the reply code (``-1`` when the reply itself was malformed).
        smtp_error: the reply text, as bytes.
    """

    def __init__(self, code: int, msg: bytes | str) -> None:
        self.smtp_code = code
        self.smtp_error = msg
        self.args = (code, msg)


class SMTPSenderRefused(SMTPResponseException):
    """The server refused the sender address; ``sender`` is that address."""

    def __init__(self, code: int, msg: bytes | str, sender: str) -> None:
        self.smtp_code = code
        self.smtp_error = msg
        self.sender = sender
        self.args = (code, msg, sender)


class SMTPRecipientsRefused(SMTPException):
    """Every recipient was refused.

    Attributes:
        recipients: ``{address: (code, text)}`` for each refused recipient.
    """

    def __init__(self, recipients: dict[str, tuple[int, bytes]]) -> None:
        self.recipients = recipients
        self.args = (recipients,)


class SMTPDataError(SMTPResponseException):
    """The server refused the message data."""


class SMTPConnectError(SMTPResponseException):
    """The server's greeting was not 220."""


class SMTPHeloError(SMTPResponseException):
    """The server refused both EHLO and HELO."""


class SMTPAuthenticationError(SMTPResponseException):
    """The server refused the user name and password."""
