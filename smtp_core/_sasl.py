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

No message ever shows a password or a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import ClassVar, Final, final

from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._saslprep import SASLprepError, saslprep

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

# RFC 7677 §4: "the hash iteration-count announced by a server SHOULD be at
# least 4096".  A lower count makes a stolen exchange cheap to brute-force, so
# it is refused unless the caller lowers the floor.
MIN_SCRAM_ITERATIONS: Final = 4096
# Not in any RFC: the count is the server's to choose and costs the client CPU,
# so a hostile server could ask for 2**31 rounds.  A million PBKDF2 rounds take
# well under a second.
MAX_SCRAM_ITERATIONS: Final = 1_000_000

# RFC 5802 §7: printable = %x21-2B / %x2D-7E ;; Printable ASCII except ","
_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
# base64 = *base64-4 [base64-3 / base64-2], here with at least one group.
_B64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)"
# extensions = attr-val *("," attr-val);  attr-val = ALPHA "=" value;
# value = 1*value-char;  value-char = <UTF8-char except NUL, "=" and ",">
# Server messages are decoded with "surrogateescape", so a byte that is not
# UTF-8 becomes a lone surrogate, which no value-char matches.
_VALUE = r"[^\x00=,\ud800-\udfff]+"
_EXTENSIONS = rf"(?:,[A-Za-z]={_VALUE})*"
# server-first-message = [reserved-mext ","] nonce "," salt ","
#                        iteration-count ["," extensions]
# (reserved-mext is refused before this pattern is tried; the count is bounded
# at ten digits so that no string reaches int()'s digit limit.)
_SERVER_FIRST = re.compile(
    rf"r=(?P<nonce>{_NONCE.pattern}),s=(?P<salt>{_B64}),i=(?P<iterations>[1-9][0-9]{{0,9}})"
    + _EXTENSIONS
)
# server-final-message = (server-error / verifier) ["," extensions]
_SERVER_FINAL = re.compile(rf"(?:e=(?P<error>{_VALUE})|v=(?P<verifier>{_B64})){_EXTENSIONS}")
# RFC 6750 §2.1 b64token is stricter; any visible ASCII is accepted here, which
# still keeps the ^A separators of XOAUTH2 and OAUTHBEARER out of a token.
_VCHARS = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SASLError(ProtocolError):
    """Base class of the SASL errors (never raised itself)."""


class LocalSASLError(SASLError, LocalProtocolError):
    """The caller's credentials cannot be sent, or a mechanism was used out of order."""


class RemoteSASLError(SASLError, RemoteProtocolError):
    """The server's challenge breaks the mechanism, or the server failed to prove itself.

    Attributes:
        server_error: the value of a SCRAM ``e=`` attribute (``"invalid-proof"``,
            ...) when the server reported an error that way, else ``None``.
    """

    def __init__(self, message: str, server_error: str | None = None) -> None:
        super().__init__(message)
        self.server_error = server_error


def _text(what: str, value: str) -> bytes:
    """UTF-8 of a credential that needs no preparation."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    try:
        return value.encode()
    except UnicodeEncodeError:
        raise LocalSASLError(f"{what} is not encodable as UTF-8") from None


def _prepared(what: str, value: str) -> bytes:
    """UTF-8 of a credential after SASLprep, which must leave something."""
    try:
        prepared = saslprep(value, what=what)
    except SASLprepError as exc:
        raise LocalSASLError(f"refused by SASLprep (RFC 4013): {exc}") from None
    if not prepared:
        raise LocalSASLError(f"{what} is empty after SASLprep (RFC 4013)")
    return prepared.encode()


def _no_controls(what: str, value: str) -> bytes:
    """UTF-8 of an identity that may hold no control characters."""
    if _CONTROL.search(value):
        raise LocalSASLError(f"{what} contains a control character: {value!r}")
    return _text(what, value)


def _saslname(what: str, value: str) -> bytes:
    """RFC 5801 §4 saslname: "," and "=" escaped as "=2C" and "=3D"."""
    return _no_controls(what, value).replace(b"=", b"=3D").replace(b",", b"=2C")


def _bearer_token(token: str) -> bytes:
    if not isinstance(token, str):
        raise TypeError(f"token must be str, not {type(token).__name__}")
    if not _VCHARS.fullmatch(token):
        raise LocalSASLError("token is empty or holds characters other than visible ASCII")
    return token.encode()


class SASLMechanism(ABC):
    """One client side of one SASL exchange.

    Attributes:
        name: the mechanism's registered name, e.g. ``"PLAIN"`` (class attribute).
    """

    __slots__ = ()
    name: ClassVar[str]

    @abstractmethod
    def initial_response(self) -> bytes | None:
        """Give the raw bytes to send with ``AUTH NAME`` (RFC 4954 §4).

        Returns:
            The initial response, which the caller base64-encodes (an empty one
            goes on the wire as ``=``), or ``None`` when the server must send a
            challenge first.

        Raises:
            LocalSASLError: if the exchange has already started.
        """

    @abstractmethod
    def respond(self, challenge: bytes) -> bytes:
        """Answer one server challenge.

        Args:
            challenge: the decoded text of a ``334`` reply.

        Returns:
            The raw response, which the caller base64-encodes.

        Raises:
            RemoteSASLError: the challenge breaks the mechanism or comes out
                of turn; the exchange cannot go on and should be cancelled.
        """

    @property
    @abstractmethod
    def done(self) -> bool:
        """Whether the client has said all it has to say (and, for SCRAM, verified the server)."""

    def finish(self, server_final: bytes | None = None) -> None:
        """Check that the exchange may end now that the server reported success.

        Args:
            server_final: "additional data with success", for protocols that
                carry it; SMTP does not, so the AUTH procedure passes nothing.

        Raises:
            RemoteSASLError: the server reported success before the exchange
                was complete (for SCRAM, before proving it knows the password),
                or sent additional data the mechanism does not expect or that
                fails to verify.
        """
        if server_final is not None:
            self._server_final(server_final)
        if not self.done:
            raise RemoteSASLError(
                f"{self.name}: the server reported success before the exchange was complete"
            )

    def _server_final(self, data: bytes) -> None:
        raise RemoteSASLError(f"{self.name}: unexpected additional data with success: {data!r}")

    def _unexpected(self, challenge: bytes) -> RemoteSASLError:
        return RemoteSASLError(f"{self.name}: unexpected challenge {challenge!r}")


class _ClientFirst(SASLMechanism):
    """A mechanism whose client speaks first (RFC 4422 §5 "client-first")."""

    __slots__ = ("_first", "_started")

    def __init__(self, first: bytes) -> None:
        self._first = first
        self._started = False

    def initial_response(self) -> bytes:
        """Give the client's first message (see :meth:`SASLMechanism.initial_response`)."""
        if self._started:
            raise LocalSASLError(f"{self.name}: initial_response() after the exchange started")
        self._started = True
        return self._first

    def respond(self, challenge: bytes) -> bytes:
        """Answer one server challenge (see :meth:`SASLMechanism.respond`)."""
        if not self._started:
            # RFC 4422 §5: without an initial response, the server of a
            # client-first mechanism opens with an empty challenge.
            if challenge:
                raise RemoteSASLError(
                    f"{self.name}: the first challenge of a client-first mechanism"
                    f" must be empty, got {challenge!r}"
                )
            self._started = True
            return self._first
        return self._next(challenge)

    @property
    def done(self) -> bool:
        """Whether the client's message has been given out."""
        return self._started

    @abstractmethod
    def _next(self, challenge: bytes) -> bytes:
        """Answer a challenge that follows the client's first message."""


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


class _Scram(_ClientFirst):
    """SCRAM (RFC 5802) without channel binding, for one hash function."""

    __slots__ = (
        "_client_first_bare",
        "_gs2_header",
        "_max_iterations",
        "_min_iterations",
        "_nonce",
        "_password",
        "_server_signature",
        "_verified",
    )
    _hash: ClassVar[str]

    def __init__(
        self,
        username: str,
        password: str,
        *,
        authzid: str | None = None,
        nonce: str | None = None,
        min_iterations: int = MIN_SCRAM_ITERATIONS,
        max_iterations: int = MAX_SCRAM_ITERATIONS,
    ) -> None:
        if not 1 <= min_iterations <= max_iterations:
            raise ValueError(
                f"need 1 <= min_iterations <= max_iterations, not {min_iterations!r}"
                f" and {max_iterations!r}"
            )
        if nonce is None:
            nonce = secrets.token_urlsafe(24)  # RFC 5802 §5.1 r: printable, no ","
        elif not _NONCE.fullmatch(nonce):
            raise ValueError(f"nonce must be printable ASCII without ',': {nonce!r}")
        # RFC 5802 §5.1 n: the user name is prepared as a query string, and
        # escaped as a saslname.  §2.2 treats the password as a "stored
        # string", which would forbid code points unassigned in Unicode 3.2;
        # like the user name it is prepared as a query here, since 3.2 lacks
        # every character added since 2002 and a server that stored such a
        # password can only have prepared it leniently.
        user = _prepared("username", username).replace(b"=", b"=3D").replace(b",", b"=2C")
        zid = b"" if not authzid else b"a=" + _saslname("authzid", authzid)
        self._password = _prepared("password", password)
        self._gs2_header = b"n," + zid + b","
        self._nonce = nonce
        self._client_first_bare = b"n=" + user + b",r=" + nonce.encode()
        self._min_iterations = min_iterations
        self._max_iterations = max_iterations
        self._server_signature: bytes | None = None
        self._verified = False
        super().__init__(self._gs2_header + self._client_first_bare)

    @property
    def done(self) -> bool:
        """Whether the server signature has been verified."""
        return self._verified

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._hash).digest()

    def _next(self, challenge: bytes) -> bytes:
        if self._server_signature is None:
            return self._client_final(challenge)
        self._check_server_final(challenge)
        return b""

    def _server_final(self, data: bytes) -> None:
        if self._server_signature is None:
            super()._server_final(data)
        self._check_server_final(data)

    def _client_final(self, server_first: bytes) -> bytes:
        """RFC 5802 §3: check server-first-message and compute the proof."""
        if server_first.startswith(b"m="):
            raise RemoteSASLError(
                f"{self.name}: the server requires an extension we do not know: {server_first!r}"
            )
        text = server_first.decode("utf-8", "surrogateescape")
        # RFC 5802 sends e= in the final message only; erratum 5271 (reported,
        # not verified) lets a server fail at once with it instead of a nonce.
        error = _SERVER_FINAL.fullmatch(text)
        if error is not None and error["error"] is not None:
            raise self._server_error(error["error"])
        match = _SERVER_FIRST.fullmatch(text)
        if match is None:
            raise RemoteSASLError(f"{self.name}: malformed server-first-message {server_first!r}")
        nonce = match["nonce"]
        if not nonce.startswith(self._nonce):
            raise RemoteSASLError(
                f"{self.name}: the server nonce {nonce!r} does not extend ours {self._nonce!r}"
            )
        iterations = int(match["iterations"])
        if not self._min_iterations <= iterations <= self._max_iterations:
            raise RemoteSASLError(
                f"{self.name}: iteration count {iterations} is outside the accepted"
                f" {self._min_iterations} to {self._max_iterations} (RFC 7677 §4)"
            )
        salt = base64.b64decode(match["salt"])
        salted = hashlib.pbkdf2_hmac(self._hash, self._password, salt, iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = b"c=" + base64.b64encode(self._gs2_header) + b",r=" + nonce.encode("ascii")
        auth_message = b",".join((self._client_first_bare, server_first, without_proof))
        signature = self._hmac(stored_key, auth_message)
        proof = (int.from_bytes(client_key, "big") ^ int.from_bytes(signature, "big")).to_bytes(
            len(client_key), "big"
        )
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return without_proof + b",p=" + base64.b64encode(proof)

    def _server_error(self, error: str) -> RemoteSASLError:
        return RemoteSASLError(f"{self.name}: the server reports {error!r}", server_error=error)

    def _check_server_final(self, server_final: bytes) -> None:
        """RFC 5802 §3: the client "MUST verify" ServerSignature."""
        assert self._server_signature is not None
        if self._verified:
            raise self._unexpected(server_final)
        match = _SERVER_FINAL.fullmatch(server_final.decode("utf-8", "surrogateescape"))
        if match is None:
            raise RemoteSASLError(f"{self.name}: malformed server-final-message {server_final!r}")
        if match["error"] is not None:
            raise self._server_error(match["error"])
        if not hmac.compare_digest(base64.b64decode(match["verifier"]), self._server_signature):
            raise RemoteSASLError(
                f"{self.name}: the server signature does not verify: {server_final!r}"
            )
        self._verified = True


@final
class ScramSHA1(_Scram):
    """SCRAM-SHA-1 (RFC 5802), without channel binding.

    Args:
        username: the user name, prepared with SASLprep and escaped.
        password: the password, prepared with SASLprep.
        authzid: an authorization identity for the GS2 header, or ``None``.
        nonce: the client nonce; leave ``None`` for a fresh random one (tests
            pass the RFC's).
        min_iterations: the lowest iteration count accepted from the server.
        max_iterations: the highest, which bounds the CPU a server can cost us.

    Raises:
        LocalSASLError: SASLprep refuses the user name or password or leaves
            either empty, or ``authzid`` holds control characters.
        ValueError: a nonce with characters other than printable ASCII
            without ``,``, or iteration bounds out of order.
    """

    __slots__ = ()
    name = "SCRAM-SHA-1"
    _hash = "sha1"


@final
class ScramSHA256(_Scram):
    """SCRAM-SHA-256 (RFC 7677), without channel binding.

    Takes the same arguments, and raises the same errors, as :class:`ScramSHA1`.
    """

    __slots__ = ()
    name = "SCRAM-SHA-256"
    _hash = "sha256"


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
