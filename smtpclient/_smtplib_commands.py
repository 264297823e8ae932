"""The ``smtplib`` facade's SMTP verbs: EHLO/HELO, RSET, NOOP, DATA, VRFY, EXPN, STARTTLS...

:class:`CommandsMixin` adds smtplib's one-command methods to
:class:`~smtpclient._smtplib_session.SessionBase`.  Each writes smtplib's
own line and returns the server's reply; ``mail()`` and ``rcpt()`` are in
``smtpclient._smtplib`` itself, next to ``quoteaddr`` which they look up
there at call time.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import sys
import warnings

from smtp_core import (
    Content,
    EndOfContent,
    Greeting,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    State,
)

from ._errors import (
    SMTPDataError,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from ._smtplib_helpers import OLDSTYLE_AUTH, _addr_only, _fix_eols
from ._smtplib_session import SessionBase

__all__ = ["CommandsMixin"]

_FEATURE = re.compile(r"(?P<feature>[A-Za-z0-9][A-Za-z0-9\-]*) ?")


def _features(ehlo_text: bytes) -> dict[str, str]:
    """smtplib's ``esmtp_features`` of an EHLO reply's text (its parsing rules, exactly).

    Keywords lower-cased; ``AUTH`` lines (and old ``AUTH=`` ones) collected
    into one value, each preceded by a space, as smtplib does.
    """
    features: dict[str, str] = {}
    for line in ehlo_text.decode("latin-1").split("\n")[1:]:
        old_auth = OLDSTYLE_AUTH.match(line)
        if old_auth:
            features["auth"] = features.get("auth", "") + " " + old_auth.group(1)
            continue
        match = _FEATURE.match(line)
        if match:
            feature = match.group("feature").lower()
            params = line[match.end("feature") :].strip()
            if feature == "auth":
                features["auth"] = features.get("auth", "") + " " + params
            else:
                features[feature] = params
    return features


class CommandsMixin(SessionBase):
    """smtplib's command methods (everything but MAIL, RCPT, AUTH and sending mail)."""

    #: The text of the last successful EHLO, until :attr:`esmtp_features` is first read.
    _unparsed_ehlo: bytes | None = None
    _esmtp_features: dict[str, str]

    def _forget_hello(self) -> None:
        self.helo_resp = self.ehlo_resp = None
        self._esmtp_features = {}
        self._unparsed_ehlo = None
        self.does_esmtp = False

    # -- the commands ------------------------------------------------------------------

    def helo(self, name: str = "") -> tuple[int, bytes]:
        """Send HELO; sets ``helo_resp``."""
        code, msg = self._docmd(self._line("helo", name or self.local_hostname))
        self.helo_resp = msg
        return code, msg

    def ehlo(self, name: str = "") -> tuple[int, bytes]:
        """Send EHLO (LHLO for LMTP); sets ``ehlo_resp``, ``esmtp_features``, ``does_esmtp``."""
        self._esmtp_features = {}
        self._unparsed_ehlo = None
        code, msg = self._docmd(self._line(self.ehlo_msg, name or self.local_hostname))
        self.ehlo_resp = msg
        if code != 250:
            return code, msg
        self.does_esmtp = True
        # Parsed when first read: a session that only says EHLO never pays for it.
        self._unparsed_ehlo = msg
        return code, msg

    @property
    def esmtp_features(self) -> dict[str, str]:
        """What the last EHLO advertised: lower-case keyword -> parameters (smtplib's)."""
        text = self._unparsed_ehlo
        if text is not None:
            self._unparsed_ehlo = None
            self._esmtp_features = _features(text)
        return self._esmtp_features

    @esmtp_features.setter
    def esmtp_features(self, features: dict[str, str]) -> None:
        self._unparsed_ehlo = None
        self._esmtp_features = features

    def has_extn(self, opt: str) -> bool:
        """True if the server advertised extension ``opt`` (any case)."""
        return opt.lower() in self.esmtp_features

    def help(self, args: str = "") -> bytes:
        """Send HELP and return the reply text."""
        return self._docmd(self._line("help", args))[1]

    def rset(self) -> tuple[int, bytes]:
        """Send RSET."""
        self.command_encoding = "ascii"
        return self.docmd("rset")

    def _rset(self) -> None:
        # smtplib's quiet RSET: a failure here must not hide the real error.
        with contextlib.suppress(SMTPServerDisconnected):
            self.rset()

    def noop(self) -> tuple[int, bytes]:
        """Send NOOP."""
        return self.docmd("noop")

    def data(self, msg: str | bytes) -> tuple[int, bytes]:
        """Send DATA and the message (line endings made CRLF, dots stuffed).

        In LMTP every per-recipient reply is read (``lmtp_replies``); the
        first is returned.

        Raises:
            SMTPDataError: DATA was not answered with 354.
        """
        code, repl = self.docmd("data")
        if code != 354:
            raise SMTPDataError(code, repl)
        verdicts = self._content(msg)
        if self._lmtp:
            self.lmtp_replies = {
                recipient: self._reply_tuple(reply) for recipient, reply in verdicts
            }
        return self._reply_tuple(verdicts[0][1])

    def _content(self, msg: str | bytes) -> list[tuple[str, Reply | Greeting]]:
        """Write the message after a 354 and read the verdicts on it.

        Returns:
            One ``(recipient, reply)`` per accepted recipient in LMTP (RFC 2033
            §4.2: every reply is read, so the session stays in step), in the
            order of the RCPTs; in SMTP the one reply, with ``""``.
        """
        if isinstance(msg, str):
            msg = _fix_eols(msg).encode("ascii")
        if not msg:
            msg = b"\r\n"  # smtplib ends an empty message with a line end too
        conn = self._engine()
        try:
            data = conn.send(Content(msg)) + conn.send(EndOfContent())
        except (LocalProtocolError, RemoteProtocolError) as exc:
            self._fail(exc)
        self.send(data)
        if not self._lmtp:
            return [("", self._read())]
        accepted = conn.accepted_recipients or ("",)
        verdicts = [(accepted[0], self._read())]
        while conn.awaiting:
            verdicts.append((accepted[len(verdicts)], self._read()))
        # A 421 ends the verdicts (the server is closing): the recipients left
        # without one were not delivered to; the 421 is their answer too.
        last = verdicts[-1][1]
        verdicts.extend((recipient, last) for recipient in accepted[len(verdicts) :])
        return verdicts

    def verify(self, address: str) -> tuple[int, bytes]:
        """Send VRFY."""
        return self._docmd(self._line("vrfy", _addr_only(address)))

    vrfy = verify

    def expn(self, address: str) -> tuple[int, bytes]:
        """Send EXPN."""
        return self._docmd(self._line("expn", _addr_only(address)))

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

    def _starttls(self, context: ssl.SSLContext | None) -> tuple[int, bytes]:
        """smtplib's ``starttls``, verifying the server's certificate unless told not to.

        Unlike smtplib, a missing ``context`` means ``ssl.create_default_context()``:
        the certificate chain and the host name are checked.

        Raises:
            SMTPNotSupportedError: the server did not offer STARTTLS.
            SMTPResponseException: the server refused it (not 220), as smtplib.
            ssl.SSLError: the handshake failed (the connection is closed).
        """
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("starttls"):
            raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
        code, reply = self.docmd("STARTTLS")
        if code != 220:
            conn = self._conn
            if conn is not None and conn.state is State.TLS:
                # Another 2yz: the server now waits for a handshake that
                # smtplib's caller will not start; nothing more can be said
                # in the clear.
                self.close()
            raise SMTPResponseException(code, reply)
        self._wrap_tls(context if context is not None else ssl.create_default_context())
        self._forget_hello()
        return code, reply

    if sys.version_info >= (3, 12):

        def starttls(self, *, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
            """Switch the session to TLS (RFC 3207), verifying the certificate by default.

            Returns ``(220, text)``; see the module's README for the differences.
            """
            return self._starttls(context)

    else:

        def starttls(
            self,
            keyfile: str | None = None,
            certfile: str | None = None,
            context: ssl.SSLContext | None = None,
        ) -> tuple[int, bytes]:
            """Switch the session to TLS (RFC 3207), verifying the certificate by default.

            ``keyfile``/``certfile`` (a client certificate) are this Python's
            smtplib signature: deprecated, and exclusive with ``context``.
            """
            return self._starttls(_legacy_context(keyfile, certfile, context))


def _legacy_context(
    keyfile: str | None, certfile: str | None, context: ssl.SSLContext | None
) -> ssl.SSLContext | None:
    """smtplib 3.10/3.11's ``keyfile``/``certfile`` checks, on a verifying context."""
    if context is not None and keyfile is not None:
        raise ValueError("context and keyfile arguments are mutually exclusive")
    if context is not None and certfile is not None:
        raise ValueError("context and certfile arguments are mutually exclusive")
    if keyfile is None and certfile is None:
        return context
    warnings.warn(
        "keyfile and certfile are deprecated, use a custom context instead",
        DeprecationWarning,
        3,
    )
    created = ssl.create_default_context()
    if certfile is not None:
        created.load_cert_chain(certfile, keyfile)
    return created
