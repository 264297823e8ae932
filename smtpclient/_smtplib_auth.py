"""The ``smtplib`` facade's AUTH: ``login()``, ``auth()`` and the ``auth_*`` authobjects.

:class:`AuthMixin` runs smtplib's SASL protocol (an ``authobject`` answering
each challenge) with smtplib's own lines, and SCRAM through the engine's
login procedure.  Credentials are sent as UTF-8 after SASLprep (RFC 4013)
when SASLprep takes them, and as given otherwise (an empty password, a tab:
smtplib sends those, and development servers accept any credentials).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable

from smtp_core import (
    LocalProtocolError,
    RemoteProtocolError,
    ReplyError,
    SASLError,
    SASLMechanism,
    SASLprepError,
    mechanism_for,
    procedures,
    saslprep,
)

from ._errors import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPNotSupportedError,
    SMTPServerDisconnected,
)
from ._smtplib_commands import CommandsMixin
from ._smtplib_outcomes import reply_text

__all__ = ["AuthMixin"]

#: smtplib's bound on challenges in :meth:`SMTP.auth`.
_MAXCHALLENGE = 5
_LOGIN_PREFERENCE = ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")


def _utf8(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8") if isinstance(value, str) else value


def _prepared(value: str) -> str:
    """SASLprep of ``value`` where it applies, else ``value`` as smtplib would send it."""
    if value.isascii() and value.isprintable():
        return value  # SASLprep leaves printable ASCII as it is
    try:
        return saslprep(value)
    except SASLprepError:
        return value


class AuthMixin(CommandsMixin):
    """smtplib's AUTH methods: :meth:`login`, :meth:`auth` and its ``auth_*`` helpers."""

    user: str = ""
    password: str = ""

    def auth(
        self,
        mechanism: str,
        authobject: Callable[..., str | bytes | None],
        *,
        initial_response_ok: bool = True,
    ) -> tuple[int, bytes]:
        """Run one SASL exchange with smtplib's ``authobject`` protocol.

        ``authobject()`` (no argument) gives the initial response, or None;
        ``authobject(challenge)`` answers each decoded ``334`` challenge.
        Responses may be ``str`` (sent as UTF-8: non-ASCII credentials work,
        unlike smtplib, CPython gh-73936) or ``bytes``.

        Returns:
            ``(code, text)`` of the final reply (235, or 503 if already authenticated).

        Raises:
            SMTPAuthenticationError: any other final reply; or a challenge that
                is not base64 (code 334, after cancelling the exchange with ``*``).
            SMTPException: the server keeps challenging ("infinite loop").
        """
        mechanism = mechanism.upper()
        initial = authobject() if initial_response_ok else None
        if initial is not None:
            response = base64.b64encode(_utf8(initial)).decode("ascii")
            code, resp = self.docmd("AUTH", mechanism + " " + response)
            self._auth_challenge_count = 1
        else:
            code, resp = self.docmd("AUTH", mechanism)
            self._auth_challenge_count = 0
        while code == 334:
            self._auth_challenge_count += 1
            try:
                challenge = base64.decodebytes(resp)
            except binascii.Error:
                self._cancel_auth()
                raise SMTPAuthenticationError(code, resp) from None
            response = base64.b64encode(_utf8(authobject(challenge))).decode("ascii")
            code, resp = self.docmd(response)
            if self._auth_challenge_count > _MAXCHALLENGE:
                raise SMTPException(
                    "Server AUTH mechanism infinite loop. Last response: " + repr((code, resp))
                )
        if code in (235, 503):
            return code, resp
        raise SMTPAuthenticationError(code, resp)

    def _cancel_auth(self) -> None:
        # RFC 4954 §4: "*" abandons the exchange; the server answers 501.
        self.docmd("*")

    def auth_cram_md5(self, challenge: bytes | None = None) -> str | None:
        """CRAM-MD5 (RFC 2195) for :meth:`auth`, as smtplib (the password UTF-8)."""
        if challenge is None:
            return None
        password = _prepared(self.password).encode("utf-8")
        return self.user + " " + hmac.HMAC(password, challenge, "md5").hexdigest()

    def auth_plain(self, challenge: bytes | None = None) -> str:
        """PLAIN (RFC 4616) for :meth:`auth`."""
        return f"\0{_prepared(self.user)}\0{_prepared(self.password)}"

    def auth_login(self, challenge: bytes | None = None) -> str:
        """LOGIN for :meth:`auth`: the user name first, then the password."""
        if challenge is None or self._auth_challenge_count < 2:
            return _prepared(self.user)
        return _prepared(self.password)

    def login(
        self, user: str, password: str, *, initial_response_ok: bool = True
    ) -> tuple[int, bytes]:
        """Log in with the best mechanism both sides support.

        SCRAM-SHA-256 and SCRAM-SHA-1 (the server's signature verified) are
        tried first when offered, then smtplib's order: CRAM-MD5, PLAIN, LOGIN.

        Raises:
            SMTPNotSupportedError: the server has no AUTH.
            SMTPException: no mechanism in common.
            SMTPAuthenticationError: every mechanism tried was refused; or the
                server broke SCRAM (code -1; the connection is closed).
        """
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("auth"):
            raise SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        advertised = self.esmtp_features["auth"].upper().split()
        methods = [m for m in _LOGIN_PREFERENCE if m in advertised]
        if not methods:
            raise SMTPException("No suitable authentication method found.")
        self.user, self.password = user, password
        last: SMTPAuthenticationError | None = None
        for method in methods:
            try:
                if method.startswith("SCRAM-"):
                    try:
                        mechanism = mechanism_for(method, user, password)
                    except (SASLError, SASLprepError):
                        continue  # SASLprep refuses these credentials: SCRAM cannot carry them
                    code, resp = self._scram(mechanism)
                else:
                    authobject = getattr(self, "auth_" + method.lower().replace("-", "_"))
                    code, resp = self.auth(
                        method, authobject, initial_response_ok=initial_response_ok
                    )
                if code in (235, 503):
                    return code, resp
            except SMTPAuthenticationError as exc:
                if self.sock is None and (exc.smtp_code == -1 or method != methods[-1]):
                    # The session is over (a 421, or a server that broke SCRAM:
                    # R5).  smtplib would write the next mechanism's AUTH and
                    # find the close.
                    if exc.smtp_code == -1:
                        raise
                    raise SMTPServerDisconnected("Connection unexpectedly closed") from exc
                last = exc
        if last is None:
            raise SMTPException("No suitable authentication method found.")
        raise last

    def _scram(self, mechanism: SASLMechanism) -> tuple[int, bytes]:
        """SCRAM through the engine's login procedure (it keeps state between steps).

        R5: a server that breaks SCRAM (a bad signature, even after 235) may be
        an impostor; the session is closed.
        """
        try:
            reply = self._run(procedures.login(self._engine(), mechanism))
        except ReplyError as refused:
            code, resp = self._reply_tuple(refused.reply)
            if code == 503:
                return code, resp
            raise SMTPAuthenticationError(code, resp) from None
        except SMTPException as exc:
            cause = exc.__cause__
            if isinstance(cause, (RemoteProtocolError, LocalProtocolError)):
                raise SMTPAuthenticationError(-1, str(cause).encode()) from cause
            raise
        return reply.code, reply_text(reply)
