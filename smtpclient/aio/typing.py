"""Shared types of the asyncio API: aiosmtplib's ``typing`` module, name for name.

``SMTPStatus`` names the reply codes the client tests for.  ``Default`` and its one member,
also exported as ``_default``, mark a keyword argument the caller did not pass, where ``None``
is a meaningful value (``timeout=None`` means "no timeout").
"""

from __future__ import annotations

import enum
import os
from collections.abc import Awaitable, Callable
from typing import TypeAlias

__all__ = ["Default", "SMTPStatus", "SMTPTokenGenerator", "SocketPathType", "_default"]

#: An async callable returning an OAuth2 access token, awaited just before XOAUTH2 is sent.
SMTPTokenGenerator: TypeAlias = Callable[[], Awaitable[str]]

#: What a Unix socket path may be given as.
SocketPathType: TypeAlias = str | bytes | os.PathLike[str]


class Default(enum.Enum):
    """The type of the "argument not given" marker; its only member is ``token``."""

    token = 0


_default = Default.token


@enum.unique
class SMTPStatus(enum.IntEnum):
    """Reply codes by name (RFC 5321 §4.2.3), plus ``invalid_response`` for unparsable replies.

    The members are ``int`` subclasses, so ``response.code == SMTPStatus.completed`` and
    ``response.code == 250`` are the same test.
    """

    invalid_response = -1
    system_status_ok = 211
    help_message = 214
    ready = 220
    closing = 221
    auth_successful = 235
    completed = 250
    will_forward = 251
    cannot_vrfy = 252
    auth_continue = 334
    start_input = 354
    domain_unavailable = 421
    mailbox_unavailable = 450
    error_processing = 451
    insufficient_storage = 452
    tls_not_available = 454
    unrecognized_command = 500
    unrecognized_parameters = 501
    command_not_implemented = 502
    bad_command_sequence = 503
    parameter_not_implemented = 504
    domain_does_not_accept_mail = 521
    access_denied = 530  # sendmail's "authentication required"
    auth_failed = 535
    mailbox_does_not_exist = 550
    user_not_local = 551
    storage_exceeded = 552
    mailbox_name_invalid = 553
    transaction_failed = 554
    syntax_error = 555
