"""SASL client mechanisms for SMTP AUTH (RFC 4954), as small sans-I/O objects.

Theory of operation
-------------------
A mechanism object knows one exchange with one set of credentials.  It never
sees base64 or SMTP reply codes: the AUTH procedure decodes each ``334``
challenge and encodes each response, and this module deals in raw bytes only.

1. ``initial_response()`` gives the bytes to send with ``AUTH NAME <base64>``
   (RFC 4954 §4), or ``None`` when the server must speak first.  A procedure
   that finds the command line would then be too long sends ``AUTH NAME``
   alone and answers the server's empty ``334`` challenge with those same
   bytes, without calling ``respond``.
2. ``respond(challenge)`` answers each ``334`` challenge.  When it raises, the
   exchange cannot go on: the procedure cancels it with a ``*`` line
   (RFC 4954 §4) and reports the error.
3. ``finish()`` is called on ``235``: it raises unless the mechanism is
   ``done``, which for SCRAM means the server has proved that it knows the
   password.  SMTP's ``235`` carries no "additional data with success", so a
   SCRAM server sends its final message as one more ``334`` challenge and the
   client answers it with an empty response (RFC 4422 §4); ``respond`` handles
   that, and ``finish(server_final)`` exists for protocols that do carry it.

Who is to blame
---------------
:class:`LocalSASLError` (a :class:`LocalProtocolError`) comes from constructors
and from calls out of order: credentials SASLprep refuses, an empty user name
or password where the mechanism's grammar needs one, control characters in a
token.  :class:`RemoteSASLError` (a :class:`RemoteProtocolError`) comes from
``respond`` and ``finish``: a challenge that breaks the mechanism's grammar or
comes out of turn, a SCRAM server nonce that does not extend ours, an
iteration count outside the accepted range, a server signature that does not
verify, or a SCRAM ``e=`` error.  Neither changes a :class:`Connection`; the
procedure decides.  Plain misuse (an unknown mechanism name, a missing
password) raises ``ValueError`` or ``TypeError``.

Layout
------
The common ground (the errors, credential checks, :class:`SASLMechanism` and
the client-first base) lives in :mod:`smtp_core._saslbase`, the SCRAM family
in :mod:`smtp_core._scram`; this module holds PLAIN, LOGIN, CRAM-MD5, XOAUTH2,
OAUTHBEARER and the choice of mechanism, and re-exports every public name of
the other two, so ``smtp_core._sasl`` still offers all of them.

No message ever shows a password or a token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Sequence
from typing import ClassVar, Final, final

from ._saslbase import (
    LocalSASLError,
    RemoteSASLError,
    SASLError,
    SASLMechanism,
    _ClientFirst,
    _no_controls,
    _prepared,
    _saslname,
    _text,
)
from ._scram import MAX_SCRAM_ITERATIONS, MIN_SCRAM_ITERATIONS, ScramSHA1, ScramSHA256, _Scram

__all__ = [
    "MAX_SCRAM_ITERATIONS",
    "MIN_SCRAM_ITERATIONS",
    "PASSWORD_MECHANISMS",
    "TOKEN_MECHANISMS",
    "CramMD5",
    "LocalSASLError",
    "Login",
    "OAuthBearer",
    "Plain",
    "RemoteSASLError",
    "SASLError",
    "SASLMechanism",
    "ScramSHA1",
    "ScramSHA256",
    "XOAuth2",
    "choose_mechanism",
    "mechanism_for",
]

#: The password mechanisms :func:`choose_mechanism` tries, strongest first.
PASSWORD_MECHANISMS: Final = ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")
#: The bearer-token mechanisms, the standard one (RFC 7628) first.
TOKEN_MECHANISMS: Final = ("OAUTHBEARER", "XOAUTH2")

# RFC 6750 §2.1 b64token is stricter; any visible ASCII is accepted here, which
# still keeps the ^A separators of XOAUTH2 and OAUTHBEARER out of a token.
_VCHARS = re.compile(r"[\x21-\x7e]+")


def _bearer_token(token: str) -> bytes:
    if not isinstance(token, str):
        raise TypeError(f"token must be str, not {type(token).__name__}")
    if not _VCHARS.fullmatch(token):
        raise LocalSASLError("token is empty or holds characters other than visible ASCII")
    return token.encode()


@final
class Plain(_ClientFirst):
    """PLAIN (RFC 4616): ``authzid NUL authcid NUL passwd`` in one message.

    The user name and password are prepared with SASLprep, as RFC 4616 §4
    recommends; the authorization identity is sent as given.

    Args:
        username: the authentication identity (authcid).
        password: the password.
        authzid: the identity to act as, or ``None`` (or ``""``) to act as
            ``username``.

    Raises:
        LocalSASLError: SASLprep refuses the user name or password or leaves
            either empty (RFC 4616 §2: ``1*SAFE``), or ``authzid`` holds NUL.
    """

    __slots__ = ()
    name = "PLAIN"

    def __init__(self, username: str, password: str, *, authzid: str | None = None) -> None:
        zid = b"" if authzid is None else _text("authzid", authzid)
        if b"\0" in zid:
            raise LocalSASLError(f"authzid contains NUL: {authzid!r}")
        user = _prepared("username", username)
        secret = _prepared("password", password)
        super().__init__(b"\0".join((zid, user, secret)))

    def _next(self, challenge: bytes) -> bytes:
        raise self._unexpected(challenge)


@final
class Login(SASLMechanism):
    """LOGIN (draft-murchison-sasl-login): the user name, then the password.

    The challenge texts (usually ``Username:`` and ``Password:``) are not read:
    servers word them differently, so the first challenge gets the user name
    and the second the password.  Credentials are sent as UTF-8, unprepared,
    since no standard says otherwise.

    Args:
        username: the user name.
        password: the password.
        initial_username: send the user name as the initial response, as
            smtplib does; the default waits for the server's first challenge,
            which every server accepts.

    Raises:
        LocalSASLError: a credential holds a lone surrogate (no UTF-8 form).
        TypeError: a credential is not a ``str``.
    """

    __slots__ = ("_initial_username", "_messages", "_step")
    name = "LOGIN"

    def __init__(self, username: str, password: str, *, initial_username: bool = False) -> None:
        self._messages = (_text("username", username), _text("password", password))
        self._initial_username = initial_username
        self._step = 0

    def initial_response(self) -> bytes | None:
        """Give the user name if ``initial_username`` was set, else ``None``."""
        if not self._initial_username:
            return None
        if self._step:
            raise LocalSASLError("LOGIN: initial_response() after the exchange started")
        self._step = 1
        return self._messages[0]

    def respond(self, challenge: bytes) -> bytes:
        """Give the user name, then the password; a third challenge raises."""
        if self._step == 2:
            raise self._unexpected(challenge)
        self._step += 1
        return self._messages[self._step - 1]

    @property
    def done(self) -> bool:
        """Whether the password has been given out."""
        return self._step == 2


@final
class CramMD5(SASLMechanism):
    """CRAM-MD5 (RFC 2195): the user name and a hex HMAC-MD5 of the challenge.

    The password is the HMAC key, prepared with SASLprep; the user name is
    sent as UTF-8.

    Args:
        username: the user name.
        password: the password.

    Raises:
        LocalSASLError: SASLprep refuses the password or leaves it empty.
    """

    __slots__ = ("_key", "_responded", "_user")
    name = "CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        self._user = _text("username", username)
        self._key = _prepared("password", password)
        self._responded = False

    def initial_response(self) -> bytes | None:
        """Give ``None``: the server speaks first."""
        return None

    def respond(self, challenge: bytes) -> bytes:
        """Answer the one challenge with ``user SP hex-digest``.

        Raises:
            RemoteSASLError: the challenge is empty or is not the first.
        """
        if self._responded or not challenge:
            raise self._unexpected(challenge)
        self._responded = True
        digest = hmac.new(self._key, challenge, hashlib.md5).hexdigest()
        return self._user + b" " + digest.encode("ascii")

    @property
    def done(self) -> bool:
        """Whether the response has been given out."""
        return self._responded


class _Bearer(_ClientFirst):
    """The two token mechanisms: one message, then one optional error challenge."""

    __slots__ = ("_error",)
    _error_reply: ClassVar[bytes]

    def __init__(self, first: bytes) -> None:
        super().__init__(first)
        self._error: bytes | None = None

    @property
    def error_challenge(self) -> bytes | None:
        """The server's error challenge (a JSON document), if it sent one."""
        return self._error

    def _next(self, challenge: bytes) -> bytes:
        if self._error is not None:
            raise self._unexpected(challenge)
        self._error = challenge
        return self._error_reply


@final
class XOAuth2(_Bearer):
    """XOAUTH2 (Google, Microsoft): ``user=U ^A auth=Bearer T ^A ^A``.

    A failed token draws a challenge holding a JSON error, kept as
    :attr:`error_challenge`; the protocol requires an empty response, after
    which the server sends the final failure reply.

    Args:
        username: the account's user name (usually its e-mail address).
        token: the OAuth 2.0 access token.

    Raises:
        LocalSASLError: the user name holds control characters, or the token
            is empty or holds characters other than visible ASCII.
    """

    __slots__ = ()
    name = "XOAUTH2"
    _error_reply = b""

    def __init__(self, username: str, token: str) -> None:
        user = _no_controls("username", username)
        super().__init__(b"user=" + user + b"\x01auth=Bearer " + _bearer_token(token) + b"\x01\x01")


@final
class OAuthBearer(_Bearer):
    """OAUTHBEARER (RFC 7628 §3.1): a GS2 header, then ``key=value ^A`` pairs.

    ``username``, when given, becomes the header's authorization identity
    (``n,a=user,``); ``host`` and ``port`` are sent when given.  A failed token
    draws an error challenge (JSON, kept as :attr:`error_challenge`), answered
    with a single ``^A`` as RFC 7628 §3.2.2 requires.

    Args:
        username: the authorization identity, or ``None`` (or ``""``) to leave
            it out.
        token: the OAuth 2.0 access token.
        host: the server's host name, or ``None``.
        port: the server's port, or ``None``.

    Raises:
        LocalSASLError: control characters in the user name, a host that is
            not visible ASCII, or a token that is empty or not visible ASCII.
        ValueError: a port outside 1 to 65535.
    """

    __slots__ = ()
    name = "OAUTHBEARER"
    _error_reply = b"\x01"

    def __init__(
        self,
        username: str | None,
        token: str,
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        header = b"n," + (b"" if not username else b"a=" + _saslname("username", username)) + b","
        pairs = b""
        if host is not None:
            if not _VCHARS.fullmatch(host):
                raise LocalSASLError(f"host is empty or not visible ASCII: {host!r}")
            pairs += b"host=" + host.encode() + b"\x01"
        if port is not None:
            if not 1 <= port <= 65535:
                raise ValueError(f"port must be 1 to 65535, not {port!r}")
            pairs += b"port=%d\x01" % port
        token_pair = b"auth=Bearer " + _bearer_token(token) + b"\x01"
        super().__init__(header + b"\x01" + pairs + token_pair + b"\x01")


_PASSWORD_CLASSES: Final[dict[str, type[Plain | Login | CramMD5 | ScramSHA1 | ScramSHA256]]] = {
    cls.name: cls for cls in (ScramSHA256, ScramSHA1, CramMD5, Plain, Login)
}


def choose_mechanism(
    advertised: Collection[str],
    preference: Sequence[str] | None = None,
    *,
    token: bool = False,
) -> str | None:
    """Pick the first mechanism of ``preference`` that the server advertises.

    Args:
        advertised: the mechanisms of the server's AUTH keyword, in any case.
        preference: mechanism names, best first; ``None`` means
            :data:`PASSWORD_MECHANISMS`, or :data:`TOKEN_MECHANISMS` if
            ``token`` is true.
        token: whether the caller holds a bearer token rather than a password.
            Token mechanisms are chosen only then, password mechanisms only
            otherwise: names of the other kind in ``preference`` are skipped.

    Returns:
        The chosen name, upper-cased, or ``None`` when nothing matches.

    Raises:
        ValueError: ``preference`` names a mechanism this module lacks.
        TypeError: ``preference`` is a single string.
    """
    if isinstance(preference, str):
        raise TypeError("preference must be a sequence of names, not a str")
    kind = TOKEN_MECHANISMS if token else PASSWORD_MECHANISMS
    offered = {name.upper() for name in advertised}
    for name in kind if preference is None else preference:
        wanted = name.upper()
        if wanted not in PASSWORD_MECHANISMS and wanted not in TOKEN_MECHANISMS:
            raise ValueError(f"no client mechanism named {name!r}")
        if wanted in kind and wanted in offered:
            return wanted
    return None


def mechanism_for(
    name: str,
    username: str,
    password: str | None = None,
    *,
    token: str | None = None,
    authzid: str | None = None,
    host: str | None = None,
    port: int | None = None,
    min_iterations: int = MIN_SCRAM_ITERATIONS,
) -> SASLMechanism:
    """Build the mechanism called ``name`` for these credentials.

    Args:
        name: a mechanism name, in any case.
        username: the user name (for OAUTHBEARER, the authorization identity;
            an empty one is left out).
        password: the password, for the password mechanisms.
        token: the bearer token, for XOAUTH2 and OAUTHBEARER; these never use
            a password.
        authzid: an authorization identity, for PLAIN and SCRAM.
        host: the server's host name, sent by OAUTHBEARER only.
        port: the server's port, sent by OAUTHBEARER only.
        min_iterations: the lowest SCRAM iteration count accepted.

    Returns:
        A fresh mechanism object, ready for :meth:`SASLMechanism.initial_response`.

    Raises:
        ValueError: no such mechanism, no password for a password mechanism,
            no token for a token mechanism, or an ``authzid`` the mechanism
            cannot carry.
        LocalSASLError: the credentials themselves are refused (see each class).
    """
    wanted = name.upper()
    if wanted in TOKEN_MECHANISMS:
        if token is None:
            raise ValueError(f"{wanted} needs a token (a password is never sent as one)")
        if authzid is not None:
            raise ValueError(f"{wanted} carries no separate authzid")
        if wanted == "XOAUTH2":
            return XOAuth2(username, token)
        return OAuthBearer(username, token, host=host, port=port)
    cls = _PASSWORD_CLASSES.get(wanted)
    if cls is None:
        raise ValueError(f"no client mechanism named {name!r}")
    if password is None:
        raise ValueError(f"{wanted} needs a password")
    if issubclass(cls, _Scram):
        return cls(username, password, authzid=authzid, min_iterations=min_iterations)
    if issubclass(cls, Plain):
        return Plain(username, password, authzid=authzid)
    if authzid is not None:
        raise ValueError(f"{wanted} carries no authzid")
    return cls(username, password)
