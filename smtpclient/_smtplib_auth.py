"""The ``smtplib`` facade's AUTH: ``login()``, ``auth()`` and the ``auth_*`` authobjects.

:class:`AuthMixin` runs smtplib's SASL protocol (an ``authobject`` answering
each challenge) over the engine's AUTH commands, and SCRAM through the
engine's login procedure.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from smtp_core import Auth, AuthResponse, CramMD5, Plain, ReplyError, mechanism_for, procedures

from ._errors import SMTPAuthenticationError, SMTPException, SMTPNotSupportedError
from ._smtplib_commands import CommandsMixin

__all__ = ["AuthMixin"]

#: smtplib's bound on challenges in :meth:`SMTP.auth`.
_MAXCHALLENGE = 5
_LOGIN_PREFERENCE = ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")


def _utf8(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8") if isinstance(value, str) else value


class AuthMixin(CommandsMixin):
    """smtplib's AUTH methods: :meth:`login`, :meth:`auth` and its ``auth_*`` helpers."""

    # -- AUTH --------------------------------------------------------------------------

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
            SMTPAuthenticationError: any other final reply.
            SMTPException: the server keeps challenging ("infinite loop").
        """
        # smtplib sends AUTH even before EHLO; RFC 4954 needs EHLO first.
        self.ehlo_or_helo_if_needed()
        mechanism = mechanism.upper()
        initial = authobject() if initial_response_ok else None
        if initial is not None:
            code, resp = self._command(Auth(mechanism, _utf8(initial)))
            self._auth_challenge_count = 1
        else:
            code, resp = self._command(Auth(mechanism))
            self._auth_challenge_count = 0
        while code == 334:
            self._auth_challenge_count += 1
            challenge = base64.decodebytes(resp)
            code, resp = self._command(AuthResponse(_utf8(authobject(challenge))))
            if self._auth_challenge_count > _MAXCHALLENGE:
                raise SMTPException(
                    "Server AUTH mechanism infinite loop. Last response: " + repr((code, resp))
                )
        if code in (235, 503):
            return code, resp
        raise SMTPAuthenticationError(code, resp)

    def auth_cram_md5(self, challenge: bytes | None = None) -> bytes | None:
        """CRAM-MD5 (RFC 2195) for :meth:`auth`; the password goes through SASLprep."""
        if challenge is None:
            return None
        return CramMD5(self.user, self.password).respond(challenge)

    def auth_plain(self, challenge: bytes | None = None) -> bytes:
        """PLAIN (RFC 4616) for :meth:`auth`."""
        return Plain(self.user, self.password).initial_response()

    def auth_login(self, challenge: bytes | None = None) -> str:
        """LOGIN for :meth:`auth`: the user name first, then the password."""
        if challenge is None or self._auth_challenge_count < 2:
            return self.user
        return self.password

    def login(
        self, user: str, password: str, *, initial_response_ok: bool = True
    ) -> tuple[int, bytes]:
        """Log in with the best mechanism both sides support.

        SCRAM-SHA-256 and SCRAM-SHA-1 (the server's signature verified) are
        tried first when offered, then smtplib's order: CRAM-MD5, PLAIN, LOGIN.

        Raises:
            SMTPNotSupportedError: the server has no AUTH.
            SMTPException: no mechanism in common.
            SMTPAuthenticationError: every mechanism tried was refused.
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
                    code, resp = self._scram(method)
                else:
                    authobject = getattr(self, "auth_" + method.lower().replace("-", "_"))
                    code, resp = self.auth(
                        method, authobject, initial_response_ok=initial_response_ok
                    )
                if code in (235, 503):
                    return code, resp
            except SMTPAuthenticationError as exc:
                last = exc
        assert last is not None
        raise last

    def _scram(self, method: str) -> tuple[int, bytes]:
        """SCRAM through the engine's login procedure (it needs state between steps)."""
        assert self._conn is not None
        mechanism = mechanism_for(method, self.user, self.password)
        self._conn.lowercase_commands = True
        try:
            reply = self._run(procedures.login(self._conn, mechanism))
        except ReplyError as refused:
            code, resp = self._reply_tuple(refused.reply)
            if code == 503:
                return code, resp
            raise SMTPAuthenticationError(code, resp) from None
        return self._reply_tuple(reply)
