"""The name a TLS certificate is checked against: never skipped, never guessed from an address.

``ssl.SSLContext.wrap_socket`` refuses a context that checks host names when no
name is given, but ``wrap_bio`` (what asyncio's ``start_tls``, trio, anyio and
:mod:`transports.tls` build on) does not: it verifies the certificate chain and
silently skips the name, accepting any trusted certificate.  Every driver
checks with :func:`check_server_hostname` before it starts TLS.
"""

from __future__ import annotations

import ipaddress
import ssl

__all__ = ["check_server_hostname", "is_ip_literal", "name_for"]


def check_server_hostname(context: ssl.SSLContext, server_hostname: str | None) -> None:
    """Refuse to start TLS without a name when ``context`` promises to check one.

    Raises:
        ValueError: ``context.check_hostname`` is on and ``server_hostname`` is empty.
    """
    if context.check_hostname and not server_hostname:
        raise ValueError(
            "server_hostname is required: the SSL context checks host names (check_hostname)"
        )


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address rather than a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def name_for(host: str, server_hostname: str | None) -> str | None:
    """``server_hostname``, else ``host`` when it is a name (an address names no certificate)."""
    if server_hostname is None and not is_ip_literal(host):
        return host
    return server_hostname
