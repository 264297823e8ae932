"""The ``smtplib`` facade's SMTP verbs: EHLO/HELO, RSET, NOOP, DATA, VRFY, EXPN, STARTTLS...

:class:`CommandsMixin` adds smtplib's one-command methods to
:class:`~smtpclient._smtplib_session.SessionBase`.  ``mail()`` and ``rcpt()``
are in ``smtpclient._smtplib`` itself, next to ``quoteaddr`` which they look
up there at call time.
"""

from __future__ import annotations

import contextlib
import ssl

from smtp_core import Content, EndOfContent, Expn, Help, ReplyError, Vrfy, procedures

from ._errors import (
    SMTPDataError,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPServerDisconnected,
)
from ._smtplib_helpers import _DATA, _NOOP, _RSET, _addr_only, _fix_eols, _hello_command
from ._smtplib_session import SessionBase

__all__ = ["CommandsMixin"]


class CommandsMixin(SessionBase):
    """smtplib's command methods (everything but MAIL, RCPT, AUTH and sending mail)."""

    # -- the commands ------------------------------------------------------------------

    def helo(self, name: str = "") -> tuple[int, bytes]:
        """Send HELO; sets ``helo_resp``."""
        name = name or self.local_hostname
        self._line("helo", name)
        code, msg = self._command(_hello_command("helo", name))
        self.helo_resp = msg
        return code, msg

    def ehlo(self, name: str = "") -> tuple[int, bytes]:
        """Send EHLO (LHLO for LMTP); sets ``ehlo_resp``, ``esmtp_features``, ``does_esmtp``."""
        self._esmtp_features = {}
        self._ehlo_extensions = None
        name = name or self.local_hostname
        self._line(self.ehlo_msg, name)
        hello = _hello_command("lhlo" if self._lmtp else "ehlo", name)
        code, msg = self._command(hello)
        self.ehlo_resp = msg
        if code != 250:
            return code, msg
        self.does_esmtp = True
        assert self._conn is not None
        # Copied into esmtp_features when first read: a session that only says
        # EHLO never pays for the dictionary.  Extensions is immutable (the
        # engine replaces it), so this is the EHLO's own view.
        self._ehlo_extensions = self._conn.extensions
        return code, msg

    @property
    def esmtp_features(self) -> dict[str, str]:
        """What the last EHLO advertised: lower-case keyword -> parameters (smtplib's)."""
        extensions = self._ehlo_extensions
        if extensions is not None:
            self._ehlo_extensions = None
            self._esmtp_features = {k.lower(): extensions[k] for k in extensions}
        return self._esmtp_features

    @esmtp_features.setter
    def esmtp_features(self, features: dict[str, str]) -> None:
        self._ehlo_extensions = None
        self._esmtp_features = features

    def has_extn(self, opt: str) -> bool:
        """True if the server advertised extension ``opt`` (any case)."""
        return opt.lower() in self.esmtp_features

    def help(self, args: str = "") -> bytes:
        """Send HELP and return the reply text."""
        self._line("help", args)
        return self._command(Help(args))[1]

    def rset(self) -> tuple[int, bytes]:
        """Send RSET."""
        self.command_encoding = "ascii"
        return self._command(_RSET)

    def _rset(self) -> None:
        # smtplib's quiet RSET: a failure here must not hide the real error.
        with contextlib.suppress(SMTPServerDisconnected):
            self.rset()

    def noop(self) -> tuple[int, bytes]:
        """Send NOOP."""
        return self._command(_NOOP)

    def data(self, msg: str | bytes) -> tuple[int, bytes]:
        """Send DATA and the message (line endings made CRLF, dots stuffed).

        Raises:
            SMTPDataError: DATA was not answered with 354.
        """
        code, repl = self._command(_DATA)
        if code != 354:
            raise SMTPDataError(code, repl)
        if isinstance(msg, str):
            msg = _fix_eols(msg).encode("ascii")
        assert self._conn is not None
        conn = self._conn
        data = self._run_send(lambda: conn.send(Content(msg)) + conn.send(EndOfContent()))
        self.send(data)
        replies = [self.getreply()]
        if self._lmtp:
            # RFC 2033: one reply per accepted recipient; read them all so the
            # session stays in step, and keep them for the caller.
            accepted = conn.accepted_recipients
            while conn.awaiting:
                replies.append(self.getreply())
            self.lmtp_replies = dict(zip(accepted, replies, strict=False))
        return replies[0]

    def verify(self, address: str) -> tuple[int, bytes]:
        """Send VRFY."""
        self._line("vrfy", _addr_only(address))
        return self._command(Vrfy(_addr_only(address)))

    vrfy = verify

    def expn(self, address: str) -> tuple[int, bytes]:
        """Send EXPN."""
        self._line("expn", _addr_only(address))
        return self._command(Expn(_addr_only(address)))

    def ehlo_or_helo_if_needed(self) -> None:
        """Say EHLO, or HELO if EHLO is refused, unless one was said already.

        Raises:
            SMTPHeloError: both were refused.
        """
        if self.helo_resp is not None or self.ehlo_resp is not None:
            return
        if not (200 <= self.ehlo()[0] <= 299):
            code, resp = self.helo()
            if not (200 <= code <= 299):
                raise SMTPHeloError(code, resp)

    # -- TLS ---------------------------------------------------------------------------

    def starttls(
        self,
        keyfile: str | None = None,
        certfile: str | None = None,
        context: ssl.SSLContext | None = None,
    ) -> tuple[int, bytes]:
        """Switch the session to TLS (RFC 3207), verifying the server's certificate.

        Unlike smtplib, a missing ``context`` means ``ssl.create_default_context()``:
        the certificate chain and the host name are checked.  Pass your own
        context to opt out.  Afterwards the EHLO state is forgotten, and the
        next command says EHLO again.

        Returns:
            ``(code, text)`` of the reply to STARTTLS (not 220: TLS was not started).

        Raises:
            SMTPNotSupportedError: the server did not offer STARTTLS.
            ssl.SSLError: the handshake failed (for example, an untrusted certificate).
        """
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("starttls"):
            raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
        if context is None:
            context = ssl.create_default_context()
            if certfile is not None:
                context.load_cert_chain(certfile, keyfile)
        driver = self._get_driver()
        assert self._conn is not None  # _get_driver checked it
        driver.ssl_context = context
        try:
            reply = self._run(procedures.starttls(self._conn))
        except ReplyError as refused:
            return self._reply_tuple(refused.reply)
        self.sock = driver.sock
        self.file = None
        self.helo_resp = self.ehlo_resp = None
        self.esmtp_features = {}
        self.does_esmtp = False
        return self._reply_tuple(reply)
