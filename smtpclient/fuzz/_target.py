"""Where the fuzzer connects, and the rule that keeps it on this machine.

Fuzzing a server sends it malformed and hostile input by the thousand: done to
someone else's server, it is an attack.  A :class:`Target` therefore refuses
a host that resolves to anything but loopback addresses unless the caller says
``allow_remote=True`` (the command line's ``--allow-remote``), meaning: this
server is mine, or I have permission to test it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import final

__all__ = ["RemoteTargetError", "Target", "is_loopback"]


class RemoteTargetError(ValueError):
    """The target is not on loopback and remote targets were not allowed."""


def is_loopback(host: str) -> bool:
    """True if every address ``host`` resolves to is a loopback address.

    Raises:
        OSError: the name does not resolve (``socket.gaierror``).
    """
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    infos = socket.getaddrinfo(literal, None, proto=socket.IPPROTO_TCP)
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(address).split("%", 1)[0]).is_loopback for address in addresses
    )


@final
@dataclass(frozen=True, slots=True)
class Target:
    """A server to fuzz: a host and port.

    Args:
        host: a name or an address (``[::1]`` is accepted for IPv6).
        port: the TCP port.
        allow_remote: allow a host that is not on loopback.

    Raises:
        RemoteTargetError: the host resolves to an address that is not
            loopback and ``allow_remote`` is false.
        OSError: the host does not resolve.
        ValueError: the port is not 1 to 65535.
    """

    host: str
    port: int
    allow_remote: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1 to 65535: {self.port}")
        if not self.allow_remote and not is_loopback(self.host):
            raise RemoteTargetError(
                f"{self.host} is not a loopback address: fuzzing a server you do not "
                "own is an attack; pass allow_remote=True (--allow-remote) only for "
                "a server you may test"
            )

    @classmethod
    def parse(cls, text: str, *, default_port: int = 25, allow_remote: bool = False) -> Target:
        """A target from ``HOST[:PORT]`` (``[::1]:2525`` for IPv6).

        Raises:
            ValueError: the text is not ``HOST[:PORT]``; as the constructor.
        """
        host, port = text, str(default_port)
        if text.startswith("["):
            end = text.find("]")
            if end < 0 or text[end + 1 : end + 2] not in ("", ":"):
                raise ValueError(f"not HOST[:PORT]: {text!r}")
            host, rest = text[1:end], text[end + 2 :]
            port = rest or port
        elif text.count(":") == 1:
            host, port = text.split(":")
        elif ":" in text:
            try:  # a bare IPv6 address, with no port
                ipaddress.IPv6Address(text)
            except ValueError:
                raise ValueError(f"not HOST[:PORT]: {text!r}") from None
        if not host or not port.isdigit():
            raise ValueError(f"not HOST[:PORT]: {text!r}")
        return cls(host, int(port), allow_remote)

    @property
    def address(self) -> str:
        """``host:port`` as the command line takes it (IPv6 in brackets)."""
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port}"

    def connect(self, timeout: float) -> socket.socket:
        """Open a TCP connection within ``timeout`` seconds.

        Raises:
            OSError: refused, unreachable, timed out.
        """
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return socket.create_connection((host, self.port), timeout)
