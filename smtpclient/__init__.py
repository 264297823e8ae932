"""smtpclient: a drop-in replacement for the standard library's ``smtplib``.

``import smtpclient as smtplib`` keeps your code working while the protocol is
handled by the ``smtp_core`` engine: certificates verified, arguments with
CR/LF/NUL refused, bare line endings in messages repaired, PIPELINING used
when offered.  :class:`client_SMTP` is the step-by-step API.
"""

import socket  # looked up at call time by SMTP (tests replace smtpclient.socket)
import ssl

from ._client import CONNECT_SUCCESS, ClientClosedError, client_SMTP
from ._errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from ._smtplib import (
    _MAXLINE,
    CRLF,
    LMTP,
    LMTP_PORT,
    OLDSTYLE_AUTH,
    SMTP,
    SMTP_PORT,
    SMTP_SSL,
    SMTP_SSL_PORT,
    SMTPProtocolError,
    bCRLF,
    quoteaddr,
    quotedata,
)

__all__ = [
    "CONNECT_SUCCESS",
    "CRLF",
    "LMTP",
    "LMTP_PORT",
    "OLDSTYLE_AUTH",
    "SMTP",
    "SMTP_PORT",
    "SMTP_SSL",
    "SMTP_SSL_PORT",
    "ClientClosedError",
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPNotSupportedError",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "bCRLF",
    "client_SMTP",
    "quoteaddr",
    "quotedata",
]

_ = (_MAXLINE, socket, ssl)
