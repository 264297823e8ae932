"""xtext (RFC 3461 §4), the encoding of ENVID and ORCPT values in DSN parameters.

xtext = *( xchar / hexchar )
xchar = any ASCII CHAR between "!" (33) and "~" (126) inclusive,
        except for "+" and "=".
hexchar = ASCII "+" immediately followed by two upper case hexadecimal digits
"""

from __future__ import annotations

import re

from ._errors import RemoteProtocolError

__all__ = ["xtext_decode", "xtext_encode"]

_HEXCHAR = re.compile(rb"\+([0-9A-F]{2})")
_XTEXT = re.compile(rb"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")


def xtext_encode(value: str | bytes) -> str:
    """Encode ``value`` (UTF-8 for ``str``) as xtext: ``"a+b=c d"`` -> ``"a+2Bb+3Dc+20d"``."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return "".join(
        chr(byte) if 33 <= byte <= 126 and byte not in (0x2B, 0x3D) else f"+{byte:02X}"
        for byte in data
    )


def xtext_decode(text: str | bytes) -> bytes:
    """Decode xtext back to bytes.

    Raises:
        RemoteProtocolError: ``text`` is not xtext (it comes from a server's DSN).
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    if _XTEXT.fullmatch(data) is None:
        raise RemoteProtocolError(f"not xtext (RFC 3461 §4): {data!r}")
    return _HEXCHAR.sub(lambda match: bytes([int(match[1], 16)]), data)
