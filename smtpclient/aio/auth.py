"""The SASL encoders of the asyncio API: aiosmtplib's ``auth`` functions.

Each takes credentials as ``str`` (encoded as UTF-8) or ``bytes`` and returns the base64
text that goes on the wire after ``AUTH <mechanism>`` or in answer to a ``334`` challenge.
Like aiosmtplib's they encode whatever they are given, NUL bytes and all; the engine's SASL
mechanisms, which the SMTP class drives, are the ones that refuse unsafe credentials.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from .errors import SMTPAuthenticationError
from .typing import SMTPStatus

__all__ = [
    "auth_crammd5_verify",
    "auth_login_encode",
    "auth_plain_encode",
    "auth_xoauth2_encode",
]


def _octets(value: str | bytes) -> bytes:
    """Give ``value`` as bytes, encoding a ``str`` as UTF-8 (which may raise)."""
    return value if isinstance(value, bytes) else value.encode("utf-8")


def auth_crammd5_verify(
    username: str | bytes,
    password: str | bytes,
    challenge: str | bytes,
    /,
) -> bytes:
    """Answer a CRAM-MD5 challenge (RFC 2195).

    Args:
        username: the user name.
        password: the shared secret, the HMAC-MD5 key.
        challenge: the base64 text of the server's ``334`` reply.

    Returns:
        base64 of ``username``, a space and the lower-case hex HMAC-MD5 of the decoded
        challenge.

    Raises:
        SMTPAuthenticationError: the challenge is not base64 (code 334, the challenge's own).
        UnicodeEncodeError: a ``str`` credential cannot be encoded as UTF-8.
    """
    user = _octets(username)
    secret = _octets(password)
    try:
        nonce = base64.b64decode(challenge)
    except (binascii.Error, ValueError) as exc:
        msg = f"the server's CRAM-MD5 challenge is not base64: {challenge!r}"
        raise SMTPAuthenticationError(SMTPStatus.auth_continue, msg) from exc
    digest = hmac.new(secret, nonce, "md5").hexdigest()
    return base64.b64encode(user + b" " + digest.encode("ascii"))


def auth_plain_encode(username: str | bytes, password: str | bytes, /) -> bytes:
    """Build the PLAIN response (RFC 4616) with an empty authorisation identity.

    Returns:
        base64 of ``NUL username NUL password``.

    Raises:
        UnicodeEncodeError: a ``str`` credential cannot be encoded as UTF-8.
    """
    return base64.b64encode(b"\x00" + _octets(username) + b"\x00" + _octets(password))


def auth_login_encode(username: str | bytes, password: str | bytes, /) -> tuple[bytes, bytes]:
    """Build the two LOGIN responses: the user name, then the password.

    Returns:
        ``(base64 of username, base64 of password)``.

    Raises:
        UnicodeEncodeError: a ``str`` credential cannot be encoded as UTF-8.
    """
    return base64.b64encode(_octets(username)), base64.b64encode(_octets(password))


def auth_xoauth2_encode(username: str | bytes, access_token: str | bytes, /) -> bytes:
    """Build the XOAUTH2 initial response (Google's and Microsoft's OAuth 2.0 SASL variant).

    Returns:
        base64 of ``user=<username> ^A auth=Bearer <token> ^A ^A``, where ``^A`` is byte 1.

    Raises:
        UnicodeEncodeError: a ``str`` credential cannot be encoded as UTF-8.
    """
    user, token = _octets(username), _octets(access_token)
    return base64.b64encode(b"user=" + user + b"\x01auth=Bearer " + token + b"\x01\x01")
