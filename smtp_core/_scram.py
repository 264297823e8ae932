"""SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding.

The mechanisms are driven as :mod:`smtp_core._sasl` describes, which
re-exports every public name defined here.  SMTP's ``235`` carries no
"additional data with success", so the server's final message arrives as one
more ``334`` challenge, which ``respond`` verifies and answers with an empty
response; ``finish(server_final)`` verifies it for protocols that carry it.

No message ever shows a password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import ClassVar, Final, final

from ._saslbase import RemoteSASLError, _ClientFirst, _prepared, _saslname

__all__ = [
    "MAX_SCRAM_ITERATIONS",
    "MIN_SCRAM_ITERATIONS",
    "ScramSHA1",
    "ScramSHA256",
]

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
