"""docs/custom-transport.md: its code is short, and it sends a message over STARTTLS.

The test runs the guide's code block as it is written (no copy of it lives
here), against aiosmtpd on loopback that requires STARTTLS, with a trustme
certificate for ``localhost``.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path
from typing import Any

import trustme

from tests.servers import ContentKeeper, running_controller, server_tls_context
from transports._stream import AsyncByteStream

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "custom-transport.md"


def guide_code() -> str:
    """The guide's python code blocks, joined in order."""
    text = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)
    assert blocks, "the guide has no python code block"
    return "\n".join(blocks)


def load_guide() -> dict[str, Any]:
    """Run the guide's code as a module that is not ``__main__``; return its namespace."""
    namespace: dict[str, Any] = {"__name__": "custom_transport_guide"}
    exec(compile(guide_code(), str(GUIDE), "exec"), namespace)
    return namespace


def test_guide_code_is_under_100_lines() -> None:
    assert len(guide_code().splitlines()) < 100


def test_guide_sends_a_message_through_its_own_stream_and_tls_stream(ca: trustme.CA) -> None:
    guide = load_guide()
    assert issubclass(guide["OwnStream"], AsyncByteStream)
    handler = ContentKeeper()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    # require_starttls: aiosmtpd refuses MAIL in the clear, so a message that
    # arrives went through TLSStream.
    with running_controller(
        handler,
        tls_context=server_tls_context(ca),
        require_starttls=True,
        server_hostname="localhost",
    ) as controller:
        result = asyncio.run(guide["main"]("127.0.0.1", controller.port, context, "localhost"))
    assert result.accepted == ("b@example.org",)
    assert handler.contents == [b"Subject: hi\r\n\r\nhello\r\n"]
