"""smtpclient.aio: an asyncio API with aiosmtplib's names, on the smtp_core engine.

``import smtpclient.aio as aiosmtplib`` keeps code written for aiosmtplib
working; what differs on purpose is listed in README ("Differences from
aiosmtplib").  The same API runs under trio (directly or through anyio).
"""

from .api import send
from .errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
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
from .smtp import SMTP
from .typing import SMTPStatus, SMTPTokenGenerator

__all__ = [
    "SMTP",
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
    "SMTPResponse",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPStageTimeoutError",
    "SMTPStatus",
    "SMTPTimeoutError",
    "SMTPTokenGenerator",
    "send",
]
