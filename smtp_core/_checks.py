"""The checks of a command against the session's mode and the server's extensions.

:class:`_ServerChecks` is a mixin of :class:`~smtp_core._connection.Connection`:
``send`` calls these methods before it produces a command line, and each one
raises :class:`~smtp_core._errors.LocalProtocolError` for what the mode (SMTP
or LMTP, the TLS policy) or the extensions the server advertised do not allow.
"""

from __future__ import annotations

from typing import Literal, cast

from ._commands import Auth, BaseCommand, Ehlo, Helo, Lhlo, Mail, Rcpt
from ._errors import LocalProtocolError
from ._extensions import Extensions
from ._records import _Transaction
from ._state import Input

__all__ = ["_CHECKED_AGAINST_SERVER", "_PARAM_NEEDS", "TLSPolicy", "_ServerChecks", "_parse_params"]

#: How a connection treats TLS; see :class:`~smtp_core._connection.Connection`.
#: Defined here, below the connection, so that the mixin can name it without
#: importing the module it is mixed into; ``_connection`` re-exports it.
TLSPolicy = Literal["required", "opportunistic", "none"]

# ESMTP parameters of MAIL and the extension each needs (RFC 5321 §4.1.1.11:
# a client must not use a parameter the server did not advertise).
_PARAM_NEEDS = {
    "SIZE": "SIZE",  # RFC 1870
    "BODY": "8BITMIME",  # RFC 6152; BODY=BINARYMIME is checked on its own (RFC 3030)
    "SMTPUTF8": "SMTPUTF8",  # RFC 6531
    "RET": "DSN",  # RFC 3461
    "ENVID": "DSN",
    "NOTIFY": "DSN",
    "ORCPT": "DSN",
    "AUTH": "AUTH",  # RFC 4954 §5: MAIL FROM ... AUTH=<mailbox>
    "REQUIRETLS": "REQUIRETLS",  # RFC 8689
    "MT-PRIORITY": "MT-PRIORITY",  # RFC 6710
    "BY": "DELIVERBY",  # RFC 2852
}
# The inputs _check_against_server has something to check for (RCPT is checked in send).
_CHECKED_AGAINST_SERVER = frozenset(
    {Input.MAIL, Input.HELLO, Input.DATA, Input.AUTH, Input.STARTTLS, Input.OTHER}
)


def _parse_params(params: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for param in params:
        keyword, _, value = param.partition("=")
        parsed[keyword.upper()] = value
    return parsed


class _ServerChecks:
    """The checks ``Connection.send`` runs against the mode and the server's extensions."""

    # Set by Connection.__init__ (and kept up to date by the connection).
    lmtp: bool
    tls_policy: TLSPolicy
    auth_in_clear: bool
    _tls_active: bool
    _authenticated: bool
    _extensions: Extensions
    _tx: _Transaction

    def _check_against_server(self, command: BaseCommand, inp: Input) -> None:
        """Refuse what the mode or the server's extensions do not allow."""
        if inp is Input.MAIL:
            self._check_mail(cast(Mail, command))
        elif inp is Input.HELLO:
            name = cast(Ehlo | Helo | Lhlo, command).name
            if type(command) is Lhlo:
                if not self.lmtp:
                    raise LocalProtocolError("LHLO is LMTP only: send EHLO or HELO")
            elif self.lmtp:
                raise LocalProtocolError(f"{command.verb} is not LMTP: send LHLO (RFC 2033 §4.1)")
            if not name.isascii():
                raise LocalProtocolError(
                    f"{command.verb} name must be ASCII (use the IDNA A-label): {name!r}"
                )
        elif inp is Input.DATA:
            if self._tx.binary:
                raise LocalProtocolError("BODY=BINARYMIME content must be sent with BDAT, not DATA")
        elif inp is Input.AUTH:
            self._check_auth(cast(Auth, command))
        elif inp is Input.STARTTLS:
            if not self._extensions.starttls:
                # RFC 3207 §4: a client sends STARTTLS only to a server that offers it.
                raise LocalProtocolError("STARTTLS was not offered by the server")
        elif command.has_non_ascii() and not self._extensions.smtputf8:  # Input.OTHER
            raise LocalProtocolError(
                f"non-ASCII {command.verb} needs SMTPUTF8, which the server did not offer"
            )

    def _check_mail(self, command: Mail) -> None:
        extensions = self._extensions
        if self.tls_policy == "required" and not self._tls_active:
            raise LocalProtocolError("MAIL refused: the TLS policy is 'required' and TLS is off")
        params = self._check_params_offered(command)
        body = params.get("BODY", "").upper()
        if body == "BINARYMIME" and not (extensions.chunking and "BINARYMIME" in extensions):
            raise LocalProtocolError("BODY=BINARYMIME needs BINARYMIME and CHUNKING")
        size = params.get("SIZE", "")
        limit = extensions.size
        if size.isascii() and size.isdigit() and limit and int(size) > limit:
            raise LocalProtocolError(
                f"message of {size} octets is over the server's SIZE limit of {limit}"
            )
        if command.has_non_ascii() and "SMTPUTF8" not in params:
            raise LocalProtocolError(
                f"non-ASCII MAIL needs the SMTPUTF8 parameter (RFC 6531): {command.sender!r}"
            )

    def _check_tls_for_auth(self) -> None:
        if not self._tls_active and (self.tls_policy == "required" or not self.auth_in_clear):
            raise LocalProtocolError(
                "AUTH refused: TLS is off (start TLS, or opt in with auth_in_clear=True)"
            )

    def _check_auth(self, command: Auth) -> None:
        self._check_tls_for_auth()
        if self._authenticated:
            raise LocalProtocolError("AUTH refused: already authenticated (RFC 4954 §4)")
        if command.mechanism.upper() not in self._extensions.auth:
            offered = " ".join(sorted(self._extensions.auth)) or "none"
            raise LocalProtocolError(
                f"AUTH {command.mechanism.upper()} was not offered (offered: {offered})"
            )

    def _check_params_offered(self, command: Mail | Rcpt) -> dict[str, str]:
        params = _parse_params(command.params)
        for keyword in params:
            needed = _PARAM_NEEDS.get(keyword)
            if keyword == "BODY" and params[keyword].upper() in ("7BIT", "BINARYMIME"):
                continue  # 7BIT needs nothing; BINARYMIME is checked by the caller
            if needed is not None and needed not in self._extensions:
                raise LocalProtocolError(
                    f"{command.verb} parameter {keyword} needs {needed}, "
                    "which the server did not offer"
                )
        return params
