"""Send one real message to a real SMTP server started here, and show what happened.

``python -m smtpclient.demo`` starts aiosmtpd (``pip install 'smtpclient[demo]'``)
on a free loopback port, sends a message through :class:`smtpclient.SMTP`,
prints the session transcript (``C:`` client, ``S:`` server, byte-exact) and
the message exactly as the server received it, then stops the server.
"""

from __future__ import annotations

import email.message
import socket
import sys
from typing import Any

import smtpclient


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _Recorder:
    """aiosmtpd handler that keeps each message's envelope and bytes."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 2.0.0 Message accepted"


def _message() -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = "Demo Sender <sender@client.example>"
    msg["To"] = "Alice <alice@example.org>, bob@example.org"
    msg["Subject"] = "Hello from smtpclient"
    msg.set_content(
        "This message went through smtpclient's sans-I/O engine.\n"
        ".This line starts with a dot, so it was dot-stuffed on the wire.\n"
    )
    return msg


def main() -> int:
    """Run the demo; returns 0 when the server received the message intact."""
    try:
        from aiosmtpd.controller import Controller  # noqa: PLC0415 - optional dependency
    except ImportError:
        print("the demo needs aiosmtpd: pip install 'smtpclient[demo]'", file=sys.stderr)
        return 2
    recorder = _Recorder()
    port = _free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, server_hostname="demo.test")
    controller.start()
    transcript: list[tuple[str, bytes]] = []
    try:
        with smtpclient.SMTP(local_hostname="client.example", timeout=10) as smtp:
            smtp.trace = lambda direction, data: transcript.append((direction, data))
            smtp.connect("127.0.0.1", port)
            refused = smtp.send_message(_message())
    finally:
        controller.stop()
    print(f"== session transcript (aiosmtpd on 127.0.0.1:{port}) ==")
    for direction, data in transcript:
        for line in data.splitlines(keepends=True):
            print(("C: " if direction == "send" else "S: ") + repr(line)[2:-1])
    print("\n== message as the server received it ==")
    [(mail_from, rcpt_tos, content)] = recorder.received
    print(f"envelope: MAIL FROM <{mail_from}>, RCPT TO {', '.join(f'<{r}>' for r in rcpt_tos)}")
    sys.stdout.write(content.decode("utf-8", "replace"))
    print(f"\nrefused recipients: {refused or 'none'}; received {len(content)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
