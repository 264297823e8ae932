"""The common ground of the SASL mechanisms: errors, credential checks, base classes.

:mod:`smtp_core._sasl` describes how a mechanism object is driven and who is
to blame for each error, and re-exports the public names defined here.  The
private helpers (credential encoding, :class:`_ClientFirst`) serve the
mechanisms of :mod:`smtp_core._sasl` and :mod:`smtp_core._scram`.

No message ever shows a password or a token.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import ClassVar

from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._saslprep import SASLprepError, saslprep

__all__ = [
    "LocalSASLError",
    "RemoteSASLError",
    "SASLError",
    "SASLMechanism",
]

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
