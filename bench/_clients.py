"""The clients the wire benchmarks drive, each behind the same two calls.

``prepare_send(client, address, *, sender, recipients, message, count)``
    one session: connect, EHLO, ``count`` x (MAIL, RCPT..., DATA, content), QUIT.
``prepare_cycle(client, address, count)``
    ``count`` x (connect, greeting, EHLO, QUIT, close).

Both do, outside any timing, what a client needs done before it starts (the raw
floor pre-encodes its bytes there) and return a function of no arguments that
runs the session(s).
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import socket
from collections.abc import Callable, Sequence

import _common
import aiosmtplib

import smtpclient
from smtp_core import DataEncoder

CLIENTS = ("smtpclient", "smtplib", "aiosmtplib", "raw floor")
TIMEOUT = 120.0

Address = tuple[str, int]


# -- the smtplib API (the standard library and our facade) ------------------------------


def _smtplib_like_send(
    module: object,
    address: Address,
    *,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    count: int,
) -> None:
    smtp = module.SMTP(address[0], address[1], local_hostname=_common.LOCAL_NAME, timeout=TIMEOUT)  # type: ignore[attr-defined]
    code, _ = smtp.ehlo()  # explicit, so a session of 0 messages still says EHLO
    assert code == 250
    for _ in range(count):
        refused = smtp.sendmail(sender, recipients, message)
        assert not refused, refused
    smtp.quit()


def _smtplib_like_cycle(module: object, address: Address, count: int) -> None:
    for _ in range(count):
        smtp = module.SMTP(
            address[0], address[1], local_hostname=_common.LOCAL_NAME, timeout=TIMEOUT
        )  # type: ignore[attr-defined]
        code, _ = smtp.ehlo()
        assert code == 250
        smtp.quit()


# -- aiosmtplib ------------------------------------------------------------------------


async def _aio_send(
    address: Address, sender: str, recipients: Sequence[str], message: bytes, count: int
) -> None:
    smtp = aiosmtplib.SMTP(
        hostname=address[0],
        port=address[1],
        local_hostname=_common.LOCAL_NAME,
        timeout=TIMEOUT,
        start_tls=False,
    )
    await smtp.connect()
    response = await smtp.ehlo()  # explicit, so a session of 0 messages still says EHLO
    assert response.code == 250
    for _ in range(count):
        refused, _ = await smtp.sendmail(sender, recipients, message)
        assert not refused, refused
    await smtp.quit()


async def _aio_cycle(address: Address, count: int) -> None:
    for _ in range(count):
        smtp = aiosmtplib.SMTP(
            hostname=address[0],
            port=address[1],
            local_hostname=_common.LOCAL_NAME,
            timeout=TIMEOUT,
            start_tls=False,
        )
        await smtp.connect()
        response = await smtp.ehlo()
        assert response.code == 250
        await smtp.quit()


# -- the raw floor ---------------------------------------------------------------------

_NEGATIVE = re.compile(rb"(?:^|\n)[45]")


def _read_lines(sock: socket.socket, lines: int) -> None:
    """Read until ``lines`` more CRLF-ended lines arrived; fail on 4yz/5yz.

    smtp-sink's replies to MAIL, RCPT, DATA and the end of data are one line each.
    """
    while lines > 0:
        data = sock.recv(65536)
        if not data or _NEGATIVE.search(data):
            raise RuntimeError(f"raw floor: unexpected reply {data[:200]!r}")
        lines -= data.count(b"\n")


def _read_reply(sock: socket.socket) -> None:
    """Read one (possibly multiline) reply: until a line with ``ddd SP`` ends."""
    buffer = b""
    while True:
        data = sock.recv(65536)
        if not data or _NEGATIVE.search(data):
            raise RuntimeError(f"raw floor: unexpected reply {data[:200]!r}")
        buffer += data
        if buffer.endswith(b"\r\n"):
            last = buffer.rfind(b"\n", 0, len(buffer) - 2) + 1
            if buffer[last + 3 : last + 4] == b" ":
                return


def encode_for_data(message: bytes) -> bytes:
    encoder = DataEncoder()
    return encoder.encode(message) + encoder.end()


def _raw_prepare_send(
    address: Address, sender: str, recipients: Sequence[str], message: bytes, count: int
) -> Callable[[], None]:
    ehlo = f"EHLO {_common.LOCAL_NAME}\r\n".encode()
    group = (
        f"MAIL FROM:<{sender}>\r\n".encode()
        + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in recipients)
        + b"DATA\r\n"
    )
    group_replies = len(recipients) + 2
    content = encode_for_data(message)

    def run() -> None:
        sock = socket.create_connection(address, TIMEOUT)
        try:
            _read_reply(sock)
            sock.sendall(ehlo)
            _read_reply(sock)
            for _ in range(count):
                # PIPELINING (RFC 2920): MAIL, the RCPTs and DATA in one write.
                sock.sendall(group)
                _read_lines(sock, group_replies)
                sock.sendall(content)
                _read_lines(sock, 1)
            sock.sendall(b"QUIT\r\n")
            _read_lines(sock, 1)
        finally:
            sock.close()

    return run


def _raw_cycle(address: Address, count: int) -> None:
    ehlo = f"EHLO {_common.LOCAL_NAME}\r\n".encode()
    for _ in range(count):
        sock = socket.create_connection(address, TIMEOUT)
        try:
            _read_reply(sock)
            sock.sendall(ehlo)
            _read_reply(sock)
            sock.sendall(b"QUIT\r\n")
            _read_lines(sock, 1)
        finally:
            sock.close()


# -- the two entry points --------------------------------------------------------------


def prepare_send(
    client: str,
    address: Address,
    *,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    count: int,
) -> Callable[[], None]:
    if client == "smtpclient":
        return lambda: _smtplib_like_send(
            smtpclient, address, sender=sender, recipients=recipients, message=message, count=count
        )
    if client == "smtplib":
        return lambda: _smtplib_like_send(
            smtplib, address, sender=sender, recipients=recipients, message=message, count=count
        )
    if client == "aiosmtplib":
        return lambda: asyncio.run(_aio_send(address, sender, recipients, message, count))
    if client == "raw floor":
        return _raw_prepare_send(address, sender, recipients, message, count)
    raise ValueError(client)


def prepare_cycle(client: str, address: Address, count: int) -> Callable[[], None]:
    if client == "smtpclient":
        return lambda: _smtplib_like_cycle(smtpclient, address, count)
    if client == "smtplib":
        return lambda: _smtplib_like_cycle(smtplib, address, count)
    if client == "aiosmtplib":
        return lambda: asyncio.run(_aio_cycle(address, count))
    if client == "raw floor":
        return lambda: _raw_cycle(address, count)
    raise ValueError(client)
