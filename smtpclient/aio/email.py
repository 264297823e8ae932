"""Address and message helpers of the asyncio API, with aiosmtplib's observable behaviour.

These are the imitated API's own functions: ``SMTP.sendmail`` and ``SMTP.send_message`` use
them to turn what the caller gave into envelope addresses and message bytes, and users import
them directly.  They lean on :mod:`email.utils` and :mod:`email.generator`, so some results
follow the running Python: from 3.13 (and the security releases that took the change)
``parseaddr`` is strict and gives up on input such as ``"a@b, c@d"``, which then reaches the
caller's fallback whole.

What they let through is listed in ``API.md`` under "safety deviations to decide": the
envelope commands themselves are checked again by the engine before any byte is written.
"""

from __future__ import annotations

import copy
import email.generator
import email.header
import email.headerregistry
import email.message
import email.policy
import email.utils
import io
import re
from collections.abc import Iterable
from typing import cast

# extract_addresses is public but, as in aiosmtplib, left out of ``import *``.
__all__ = [
    "extract_recipients",
    "extract_sender",
    "flatten_message",
    "parse_address",
    "quote_address",
]

_AnyMessage = email.message.EmailMessage | email.message.Message

# RFC 5321 §4.1.2:  Quoted-string = DQUOTE *QcontentSMTP DQUOTE
#                   QcontentSMTP  = qtextSMTP / quoted-pairSMTP
#                   quoted-pairSMTP = %d92 %d32-126
# Looser than the grammar, as aiosmtplib is: a quoted pair may escape any character but LF
# (CR included), and qtext is anything but DQUOTE, backslash, CR and LF.
_LEADING_QUOTED_STRING = re.compile(r'"(?:\\[^\n]|[^"\\\r\n])*"')

_MULTIPLE_RESENT_BLOCKS = "message has more than one 'Resent-' header block"


def _check_mailbox(address: str) -> None:
    """Refuse an address that would break out of its place on a MAIL/RCPT/VRFY/EXPN line.

    Whitespace (which takes in CR and LF), angle brackets and double quotes may appear only
    inside a quoted local part at the very start of the address.

    Raises:
        ValueError: the address contains such a character elsewhere.
    """
    leading = _LEADING_QUOTED_STRING.match(address)
    rest = address[leading.end() :] if leading else address
    for character in rest:
        if character.isspace() or character in '<>"':
            msg = f"{address!r} cannot be used as an SMTP mailbox: {character!r} is not allowed"
            raise ValueError(msg)


def parse_address(address: str) -> str:
    """Take the mailbox out of an address as people write it.

    ``"Jo <jo@example.org>"`` gives ``"jo@example.org"``.  When :func:`email.utils.parseaddr`
    finds nothing, the input with surrounding whitespace removed is used as it is.

    Args:
        address: an address, with or without display name, angle brackets or comments.

    Returns:
        The mailbox, possibly ``""``.

    Raises:
        ValueError: the mailbox contains whitespace, ``<``, ``>`` or ``"`` outside a leading
            quoted local part, so it could smuggle parameters or commands onto a command line.
    """
    mailbox = email.utils.parseaddr(address)[1]
    if not mailbox:
        mailbox = address.strip()
    _check_mailbox(mailbox)
    return mailbox


def quote_address(address: str) -> str:
    """Give the mailbox of ``address`` in angle brackets, as MAIL FROM and RCPT TO carry it.

    Returns:
        ``"<" + parse_address(address) + ">"``; ``"<>"`` when nothing is left.

    Raises:
        ValueError: as :func:`parse_address`.
    """
    return f"<{parse_address(address)}>"


def flatten_message(
    message: _AnyMessage,
    /,
    *,
    utf8: bool = False,
    cte_type: str = "8bit",
) -> bytes:
    """Serialise a message for DATA, without its ``Bcc`` and ``Resent-Bcc`` headers.

    An :class:`email.message.EmailMessage` is generated under :data:`email.policy.SMTP`
    (CRLF line endings, RFC 2047 encoded headers), or :data:`email.policy.SMTPUTF8` when
    ``utf8`` is true (UTF-8 headers left as they are).  A legacy
    :class:`email.message.Message` is generated under :data:`email.policy.compat32` whatever
    ``utf8`` says: its lines end in ``"\\n"`` (DATA normalises them) and body lines starting
    with ``"From "`` are escaped as ``">From "``.  A ``cte_type`` other than ``"8bit"``
    replaces the policy's, so that ``"7bit"`` re-encodes 8-bit parts for a server without
    8BITMIME.

    Args:
        message: the message; it is not modified.
        utf8: use SMTPUTF8 rules for an ``EmailMessage``.
        cte_type: the content-transfer-encoding limit handed to the generator.

    Returns:
        The message bytes.

    Raises:
        Whatever :mod:`email.generator` raises for a message it cannot serialise under that
        policy (for instance :class:`email.errors.HeaderParseError` for a header value that
        embeds another header).
    """
    # A shallow copy has its own header list once a header is deleted, so the caller's
    # message keeps its Bcc.
    outgoing = copy.copy(message)
    del outgoing["Bcc"]
    del outgoing["Resent-Bcc"]

    policy: email.policy.Policy
    if isinstance(outgoing, email.message.EmailMessage):
        policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    else:
        policy = email.policy.compat32
    if cte_type != "8bit":
        policy = policy.clone(cte_type=cte_type)

    with io.BytesIO() as buffer:
        email.generator.BytesGenerator(buffer, policy=policy).flatten(outgoing)
        return buffer.getvalue()


def extract_addresses(
    header: str | email.headerregistry.AddressHeader | email.header.Header,
    /,
) -> list[str]:
    """List the mailboxes in one address header, as envelope addresses.

    The three forms a header value takes are read differently:

    * an :class:`email.headerregistry.AddressHeader` (``EmailMessage``) gives the
      ``addr_spec`` of each address;
    * an :class:`email.header.Header` gives one address per encoded chunk, each through
      :func:`parse_address`;
    * a ``str`` (legacy ``Message``) gives whatever :func:`email.utils.getaddresses` finds,
      unchecked.

    Returns:
        The mailboxes, in header order.

    Raises:
        ValueError: a ``Header`` chunk fails :func:`parse_address`.
        LookupError: a ``Header`` chunk names a charset Python does not know.
    """
    if isinstance(header, email.headerregistry.AddressHeader):
        # An address header assigned an iterable may hold plain strings.
        entries = cast(Iterable[str | email.headerregistry.Address], header.addresses)
        return [
            entry.addr_spec
            if isinstance(entry, email.headerregistry.Address)
            else parse_address(entry)
            for entry in entries
        ]
    if isinstance(header, email.header.Header):
        return [
            parse_address(str(chunk, encoding=charset or "ascii"))
            for chunk, charset in email.header.decode_header(header)
        ]
    return [mailbox for _, mailbox in email.utils.getaddresses([header])]


def _resent_block(message: _AnyMessage) -> bool:
    """Tell whether the message was resent (RFC 5322 §3.6.6), from its ``Resent-Date``.

    Raises:
        ValueError: there are several ``Resent-Date`` headers, hence several resent blocks,
            and nothing says which is the latest.
    """
    dates = message.get_all("Resent-Date")
    if dates is not None and len(dates) > 1:
        raise ValueError(_MULTIPLE_RESENT_BLOCKS)
    return bool(dates)


def extract_sender(message: _AnyMessage, /) -> str | None:
    """Find the envelope sender of a message in its headers.

    ``Sender`` is preferred to ``From`` (RFC 5322 §3.6.2); for a resent message,
    ``Resent-Sender`` to ``Resent-From``.  Only the first header of that name is read, and a
    present but empty ``Sender`` does not fall back to ``From``.

    Returns:
        The first mailbox of that header, or ``None`` when there is no such header or it
        holds no address.

    Raises:
        ValueError: more than one resent block, or as :func:`extract_addresses`.
    """
    if _resent_block(message):
        preferred, fallback = "Resent-Sender", "Resent-From"
    else:
        preferred, fallback = "Sender", "From"
    header = message[preferred] if preferred in message else message[fallback]
    if header is None:
        return None
    mailboxes = extract_addresses(header)
    return mailboxes[0] if mailboxes else None


def extract_recipients(message: _AnyMessage, /) -> list[str]:
    """Find the envelope recipients of a message in its headers.

    Reads every ``To``, ``Cc`` and ``Bcc`` header, in that order; for a resent message,
    ``Resent-To``, ``Resent-Cc`` and ``Resent-Bcc`` instead.

    Returns:
        The mailboxes, duplicates kept.

    Raises:
        ValueError: more than one resent block, or as :func:`extract_addresses`.
    """
    names = (
        ("Resent-To", "Resent-Cc", "Resent-Bcc") if _resent_block(message) else ("To", "Cc", "Bcc")
    )
    recipients: list[str] = []
    for name in names:
        for header in message.get_all(name, failobj=[]):
            recipients += extract_addresses(header)
    return recipients
