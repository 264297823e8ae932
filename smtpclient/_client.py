"""``client_SMTP``: the step-by-step API of the project's founding document.

How each sentence of that document maps to Python:

* "If the creation is successful, 'connect success' will be returned":
  a constructor cannot return a value, so the constructor connects, reads the
  greeting and stores :data:`CONNECT_SUCCESS` (the string ``"connect
  success"``) in :attr:`client_SMTP.status`; :meth:`client_SMTP.connect`
  returns the same string; it is also logged at INFO on the
  ``smtpclient`` logger.
* "An exception will be thrown if it fails or times out": ``OSError`` (for
  example ``ConnectionRefusedError``, ``TimeoutError``) when no connection
  can be made, :class:`SMTPConnectError` when the server refuses the session.
* ``send_helo`` ... ``send_noop`` send one command each and return
  ``(code, text)`` as smtplib's methods do; a refusal is a return value, not
  an exception, so the step-by-step dialogue stays in the caller's hands.
* "send_quit: delete the object and disconnect the socket": QUIT is sent, the
  socket is closed, and every later call raises :class:`ClientClosedError`.
* ``sendmail(sender, recps, msg)`` sends the whole transaction (EHLO first if
  needed) and returns smtplib's dict of refused recipients.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ._errors import SMTPConnectError, SMTPServerDisconnected
from ._smtplib import SMTP

__all__ = ["CONNECT_SUCCESS", "ClientClosedError", "client_SMTP"]

log = logging.getLogger("smtpclient")

#: What a successful connection reports (:attr:`client_SMTP.status`).
CONNECT_SUCCESS = "connect success"


class ClientClosedError(SMTPServerDisconnected):
    """A ``client_SMTP`` method was called after ``send_quit``."""


class client_SMTP:
    """A connected SMTP client with one method per command.

    Args:
        host: the server's address.
        port: its port (25 if 0).
        local_hostname: the name for HELO/EHLO (default: this host's FQDN).
        source_address: ``(host, port)`` to bind the client socket to.
        timeout: seconds for the connection and for each reply.

    Raises:
        OSError: the connection failed or timed out.
        SMTPConnectError: the server's greeting was not 220.
    """

    def __init__(
        self,
        host: str,
        port: int = 25,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._smtp: SMTP | None = SMTP(
            local_hostname=local_hostname, timeout=timeout, source_address=source_address
        )
        self.host = host
        self.port = port
        self.status = self.connect()

    def connect(self) -> str:
        """Connect and read the greeting; returns ``"connect success"``.

        Raises:
            OSError: the connection failed or timed out.
            SMTPConnectError: the greeting was not 220.
        """
        smtp = self._client()
        code, message = smtp.connect(self.host, self.port)
        if code != 220:
            smtp.close()
            raise SMTPConnectError(code, message)
        log.info("%s (%s:%s)", CONNECT_SUCCESS, self.host, self.port)
        return CONNECT_SUCCESS

    def _client(self) -> SMTP:
        if self._smtp is None:
            raise ClientClosedError("this client_SMTP was closed by send_quit()")
        return self._smtp

    @property
    def smtp(self) -> SMTP:
        """The underlying smtplib-compatible :class:`SMTP` object."""
        return self._client()

    def send_helo(self) -> tuple[int, bytes]:
        """Send HELO; returns ``(code, text)``."""
        return self._client().helo()

    def send_ehlo(self) -> tuple[int, bytes]:
        """Send EHLO; returns ``(code, text)``; the extensions are in ``smtp.esmtp_features``."""
        return self._client().ehlo()

    def send_mail(self, sender: str) -> tuple[int, bytes]:
        """Send ``MAIL FROM:<sender>``; returns ``(code, text)``."""
        return self._client().mail(sender)

    def send_rcpt(self, recp: str) -> tuple[int, bytes]:
        """Send ``RCPT TO:<recp>``; returns ``(code, text)``."""
        return self._client().rcpt(recp)

    def send_data(self, msg: str | bytes) -> tuple[int, bytes]:
        """Send DATA and the message; returns the reply to the message.

        Raises:
            SMTPDataError: DATA was not answered with 354.
        """
        return self._client().data(msg)

    def send_vrfy(self, address: str) -> tuple[int, bytes]:
        """Send VRFY: ask whether ``address`` is valid; returns ``(code, text)``."""
        return self._client().verify(address)

    def send_rset(self) -> tuple[int, bytes]:
        """Send RSET: back to the state after HELO; returns ``(code, text)``."""
        return self._client().rset()

    def send_noop(self) -> tuple[int, bytes]:
        """Send NOOP: check the connection; returns ``(code, text)``."""
        return self._client().noop()

    def send_quit(self) -> tuple[int, bytes]:
        """Send QUIT and close; the object cannot be used afterwards.

        Returns:
            ``(code, text)`` of the reply to QUIT (``(-1, b"")`` if the server
            had already closed).
        """
        smtp = self._client()
        self._smtp = None
        try:
            return smtp.quit()
        except (SMTPServerDisconnected, OSError):
            return -1, b""
        finally:
            smtp.close()

    def sendmail(
        self, sender: str, recps: str | Sequence[str], msg: str | bytes
    ) -> dict[str, tuple[int, bytes]]:
        """Send a whole message; returns ``{recipient: (code, text)}`` for refused ones.

        Raises:
            SMTPRecipientsRefused: every recipient was refused.
            SMTPSenderRefused, SMTPDataError, SMTPHeloError: as smtplib.
        """
        return self._client().sendmail(sender, recps, msg)

    def __enter__(self) -> client_SMTP:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._smtp is not None:
            self.send_quit()
