"""Commands: one small immutable object per SMTP verb, checked when built.

A command that exists is safe to put on the wire: every constructor refuses
CR, LF and NUL in any argument and, unless built with ``strict=False``, checks
the RFC 5321 syntax of its addresses, names and parameters.  What depends on
the server (SMTPUTF8, SIZE) or on the session (order of commands) is checked
later, by :meth:`Connection.send`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import ClassVar, final

from ._commandbase import BaseCommand
from ._errors import LocalProtocolError
from ._validation import check_address, check_domain, check_params, check_safe, check_verb

__all__ = [
    "Auth",
    "AuthResponse",
    "BaseCommand",
    "Bdat",
    "Command",
    "CommandLine",
    "Content",
    "Data",
    "Ehlo",
    "EndOfContent",
    "Expn",
    "Helo",
    "Help",
    "Lhlo",
    "Mail",
    "Noop",
    "Quit",
    "Rcpt",
    "Rset",
    "StartTLS",
    "Unchecked",
    "Vrfy",
]

# RFC 5321 §4.5.3.1.4 sets 512 octets for a command line, and lets each SMTP
# extension raise it for the parameters it adds (RFC 3461's ORCPT alone may
# carry 500).  This bound is the engine's, applied in every mode, so that no
# caller can make a line a server would cut in two.
MAX_COMMAND_LINE = 2048
# RFC 4954 §4: "the maximum line length of an AUTH command (and of a client
# response) is 12288 octets", room for OAuth tokens and Kerberos tickets.
MAX_AUTH_LINE = 12288


@final
@dataclass(frozen=True, slots=True)
class Ehlo(BaseCommand):
    """``EHLO <name>`` (RFC 5321 §4.1.1.1): greet and ask for the extensions."""

    name: str
    strict: bool = True
    VERB: ClassVar[str] = "EHLO"

    def __post_init__(self) -> None:
        check_domain("EHLO name", self.name, self.strict)

    def arguments(self, lowercase: bool = False) -> str:
        return self.name

    def line(self, lowercase: bool = False) -> str:
        return f"{self._verb_lower if lowercase else self.VERB} {self.name}"


@final
@dataclass(frozen=True, slots=True)
class Helo(BaseCommand):
    """``HELO <name>`` (RFC 5321 §4.1.1.1): greet without extensions."""

    name: str
    strict: bool = True
    VERB: ClassVar[str] = "HELO"

    def __post_init__(self) -> None:
        check_domain("HELO name", self.name, self.strict)

    def arguments(self, lowercase: bool = False) -> str:
        return self.name

    def line(self, lowercase: bool = False) -> str:
        return f"{self._verb_lower if lowercase else self.VERB} {self.name}"


@final
@dataclass(frozen=True, slots=True)
class Lhlo(BaseCommand):
    """``LHLO <name>`` (RFC 2033 §4.1): the LMTP greeting, answered like EHLO."""

    name: str
    strict: bool = True
    VERB: ClassVar[str] = "LHLO"

    def __post_init__(self) -> None:
        check_domain("LHLO name", self.name, self.strict)

    def arguments(self, lowercase: bool = False) -> str:
        return self.name

    def line(self, lowercase: bool = False) -> str:
        return f"{self._verb_lower if lowercase else self.VERB} {self.name}"


@final
@dataclass(frozen=True, slots=True)
class Mail(BaseCommand):
    """``MAIL FROM:<sender> [params]`` (RFC 5321 §4.1.1.2): start a transaction.

    Args:
        sender: the reverse-path without angle brackets; ``""`` is the null
            reverse-path ``<>`` used for bounces.
        params: ESMTP parameters as ``"KEYWORD"`` or ``"KEYWORD=value"``
            strings, written in the order given.
        strict: check the RFC 5321 address and parameter syntax (safety checks
            are made either way).

    Raises:
        LocalProtocolError: on CR/LF/NUL, bad syntax or an over-long path.
    """

    sender: str
    params: tuple[str, ...] = ()
    strict: bool = True
    VERB: ClassVar[str] = "MAIL"
    ends_group: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_address("MAIL sender", self.sender, self.strict, null_ok=True)
        check_params("MAIL", self.params, self.strict)

    def arguments(self, lowercase: bool = False) -> str:
        head = "from:" if lowercase else "FROM:"
        return " ".join((f"{head}<{self.sender}>", *self.params))

    def has_non_ascii(self) -> bool:
        return not (self.sender.isascii() and "".join(self.params).isascii())


@final
@dataclass(frozen=True, slots=True)
class Rcpt(BaseCommand):
    """``RCPT TO:<recipient> [params]`` (RFC 5321 §4.1.1.3): add one recipient.

    Args:
        recipient: the forward-path without angle brackets (``"Postmaster"``
            alone is allowed, §4.1.1.3).
        params: ESMTP parameters, as for :class:`Mail`.
        strict: check the RFC 5321 syntax.

    Raises:
        LocalProtocolError: on CR/LF/NUL, bad syntax or an over-long path.
    """

    recipient: str
    params: tuple[str, ...] = ()
    strict: bool = True
    VERB: ClassVar[str] = "RCPT"
    ends_group: ClassVar[bool] = False

    def __post_init__(self) -> None:
        recipient = self.recipient
        if isinstance(recipient, str) and recipient.lower() == "postmaster":
            check_safe("RCPT recipient", recipient)  # §4.1.1.3: <Postmaster> needs no domain
        else:
            check_address("RCPT recipient", recipient, self.strict, null_ok=False)
        if self.params != ():  # most RCPTs have none
            check_params("RCPT", self.params, self.strict)

    def arguments(self, lowercase: bool = False) -> str:
        head = "to:" if lowercase else "TO:"
        return " ".join((f"{head}<{self.recipient}>", *self.params))

    def line(self, lowercase: bool = False) -> str:
        # BaseCommand.line, without its three calls: one per recipient.
        head = "rcpt to:<" if lowercase else "RCPT TO:<"
        if self.params:
            return " ".join((f"{head}{self.recipient}>", *self.params))
        return f"{head}{self.recipient}>"

    def has_non_ascii(self) -> bool:
        return not (self.recipient.isascii() and "".join(self.params).isascii())


@final
@dataclass(frozen=True, slots=True)
class Data(BaseCommand):
    """``DATA`` (RFC 5321 §4.1.1.4): the server answers 354, then content follows."""

    VERB: ClassVar[str] = "DATA"


@final
@dataclass(frozen=True, slots=True)
class Rset(BaseCommand):
    """``RSET`` (RFC 5321 §4.1.1.5): abort the current transaction."""

    VERB: ClassVar[str] = "RSET"
    ends_group: ClassVar[bool] = False


@final
@dataclass(frozen=True, slots=True)
class Noop(BaseCommand):
    """``NOOP [string]`` (RFC 5321 §4.1.1.9): ask for a 250 and nothing else."""

    argument: str = ""
    VERB: ClassVar[str] = "NOOP"

    def __post_init__(self) -> None:
        check_safe("NOOP argument", self.argument)

    def arguments(self, lowercase: bool = False) -> str:
        return self.argument


@final
@dataclass(frozen=True, slots=True)
class Vrfy(BaseCommand):
    """``VRFY <string>`` (RFC 5321 §4.1.1.6): ask whether a user or mailbox exists."""

    argument: str
    VERB: ClassVar[str] = "VRFY"

    def __post_init__(self) -> None:
        check_safe("VRFY argument", self.argument)
        if not self.argument:
            raise LocalProtocolError("VRFY needs an argument")

    def arguments(self, lowercase: bool = False) -> str:
        return self.argument


@final
@dataclass(frozen=True, slots=True)
class Expn(BaseCommand):
    """``EXPN <string>`` (RFC 5321 §4.1.1.7): ask for the members of a list."""

    argument: str
    VERB: ClassVar[str] = "EXPN"

    def __post_init__(self) -> None:
        check_safe("EXPN argument", self.argument)
        if not self.argument:
            raise LocalProtocolError("EXPN needs an argument")

    def arguments(self, lowercase: bool = False) -> str:
        return self.argument


@final
@dataclass(frozen=True, slots=True)
class Help(BaseCommand):
    """``HELP [string]`` (RFC 5321 §4.1.1.8)."""

    argument: str = ""
    VERB: ClassVar[str] = "HELP"

    def __post_init__(self) -> None:
        check_safe("HELP argument", self.argument)

    def arguments(self, lowercase: bool = False) -> str:
        return self.argument


@final
@dataclass(frozen=True, slots=True)
class Quit(BaseCommand):
    """``QUIT`` (RFC 5321 §4.1.1.10): the server answers 221 and closes."""

    VERB: ClassVar[str] = "QUIT"


@final
@dataclass(frozen=True, slots=True)
class StartTLS(BaseCommand):
    """``STARTTLS`` (RFC 3207): after the 220 the driver starts TLS."""

    VERB: ClassVar[str] = "STARTTLS"

    def line(self, lowercase: bool = False) -> str:
        # smtplib lower-cases every verb but this one: it sends
        # ``docmd("STARTTLS")``, so "as smtplib does" means upper case here.
        return self.VERB


@final
@dataclass(frozen=True, slots=True)
class Command(BaseCommand):
    """A command the engine has no class for (private extensions, RFC 5321 §4.1.5).

    Its reply never changes the connection's state, and it ends a pipelined
    group, because the engine cannot know what it does.  Verbs that change
    the session's state (MAIL, RCPT, DATA, BDAT, EHLO, HELO, LHLO, STARTTLS,
    AUTH, RSET, QUIT) are refused: they have their own classes, whose checks a
    generic command must not bypass (a STARTTLS sent this way would skip the
    response-injection check, a MAIL the address checks).

    Args:
        name: the verb; letters, digits and ``-``.
        args: the text after the verb, if any.
    """

    name: str
    args: str = ""

    def __post_init__(self) -> None:
        check_safe("command verb", self.name)
        check_safe("command argument", self.args)
        check_verb(self.name)

    def line(self, lowercase: bool = False) -> str:
        return f"{self.name} {self.args}" if self.args else self.name

    def arguments(self, lowercase: bool = False) -> str:
        return self.args

    @property
    def verb(self) -> str:
        """The verb as given, upper-cased."""
        return self.name.upper()


@final
@dataclass(frozen=True, slots=True)
class CommandLine(BaseCommand):
    """A whole command line, written exactly as the caller gave it (smtplib's ``docmd``).

    For faces that imitate clients which leave the judgement to the server:
    only CR, LF and NUL are refused here, and only a connection made with
    ``permissive=True`` sends it.  The engine reads the verb (the first word)
    so the reply still means what it should: a ``MAIL``, ``RCPT``, ``DATA``,
    ``EHLO``, ``RSET``, ``STARTTLS``, ``AUTH`` or ``QUIT`` line moves the state
    as its typed command would, any other verb keeps it, and a line sent while
    an AUTH exchange awaits a response is that response.

    Args:
        text: the line without CRLF (``""`` is an empty line).
        recipient: for a ``RCPT`` line, the address it names, kept with the
            reply (LMTP pairs each verdict with it); ``None``: the text between
            the first ``<`` and the last ``>``.
    """

    text: str
    recipient: str | None = None
    VERB: ClassVar[str] = "<line>"

    def __post_init__(self) -> None:
        check_safe("command line", self.text)
        if self.recipient is not None:
            check_safe("RCPT recipient", self.recipient)

    @property
    def verb(self) -> str:
        """The first word of the line, upper-cased (``""`` for an empty line)."""
        return self.text.split(" ", 1)[0].upper()

    def line(self, lowercase: bool = False) -> str:
        return self.text

    def arguments(self, lowercase: bool = False) -> str:
        return self.text.partition(" ")[2]

    def path(self) -> str:
        """The recipient of a ``RCPT`` line (see ``recipient``)."""
        if self.recipient is not None:
            return self.recipient
        text = self.text
        start, end = text.find("<"), text.rfind(">")
        return text[start + 1 : end] if 0 <= start < end else self.arguments()

    def params(self) -> tuple[str, ...]:
        """The words after the path of a ``MAIL`` or ``RCPT`` line (``SIZE=10``...)."""
        end = self.text.rfind(">")
        rest = self.text[end + 1 :] if end >= 0 else self.arguments().partition(" ")[2]
        return tuple(rest.split())


@final
@dataclass(frozen=True, slots=True)
class Auth(BaseCommand):
    """``AUTH <mechanism> [initial-response]`` (RFC 4954 §4).

    Args:
        mechanism: the SASL mechanism name, e.g. ``"SCRAM-SHA-256"``.
        initial_response: raw bytes sent base64-encoded on the same line
            (``=`` when empty), saving a round trip; ``None`` to wait for the
            server's first challenge.
    """

    mechanism: str
    initial_response: bytes | None = None
    VERB: ClassVar[str] = "AUTH"

    def __post_init__(self) -> None:
        check_safe("AUTH mechanism", self.mechanism)
        # RFC 4422 §3.1: sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT / "-" / "_"
        if not (1 <= len(self.mechanism) <= 20) or not all(
            c.isascii() and (c.isalnum() or c in "-_") for c in self.mechanism
        ):
            raise LocalProtocolError(f"AUTH mechanism is not a SASL name: {self.mechanism!r}")
        if self.initial_response is not None and not isinstance(self.initial_response, bytes):
            raise TypeError("AUTH initial response must be bytes")

    def arguments(self, lowercase: bool = False) -> str:
        if self.initial_response is None:
            return self.mechanism.upper()
        encoded = base64.b64encode(self.initial_response).decode("ascii") or "="
        return f"{self.mechanism.upper()} {encoded}"


@final
@dataclass(frozen=True, slots=True)
class AuthResponse(BaseCommand):
    """The client's answer to a ``334`` challenge during AUTH (RFC 4954 §4).

    Args:
        data: raw response bytes, sent base64-encoded on a line of their own.
        cancel: send ``*`` instead, abandoning the exchange (the server answers 501).
    """

    data: bytes = b""
    cancel: bool = False
    VERB: ClassVar[str] = "<AUTH response>"

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            raise TypeError("AUTH response must be bytes")

    def line(self, lowercase: bool = False) -> str:
        return "*" if self.cancel else base64.b64encode(self.data).decode("ascii")

    def __repr__(self) -> str:
        # The response carries credentials: never show them.
        return (
            "AuthResponse(<cancel>)" if self.cancel else f"AuthResponse(<{len(self.data)} bytes>)"
        )


@final
@dataclass(frozen=True, slots=True)
class Bdat(BaseCommand):
    """``BDAT <size> [LAST]`` and its chunk of the message (RFC 3030 CHUNKING).

    The connection writes the command line and the chunk together, with the
    size counted exactly.  Unless the transaction is BINARYMIME, line endings
    in the chunk are made CRLF first (across chunks, as for DATA); no
    dot-stuffing is done or needed.

    Args:
        data: the chunk (may be empty, typically for a final ``BDAT 0 LAST``).
        last: this chunk ends the message.
    """

    data: bytes | bytearray | memoryview
    last: bool = False
    VERB: ClassVar[str] = "BDAT"
    ends_group: ClassVar[bool] = False  # RFC 3030 §4.2: BDAT may be pipelined

    def __post_init__(self) -> None:
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise TypeError(f"BDAT data must be bytes, not {type(self.data).__name__}")

    def arguments(self, lowercase: bool = False) -> str:
        size = memoryview(self.data).nbytes
        return f"{size} LAST" if self.last else str(size)


@final
@dataclass(frozen=True, slots=True)
class Content(BaseCommand):
    """A piece of message content, sent after ``DATA`` drew ``354``.

    Content is given as it is; the connection's encoder turns every line
    ending into CRLF and dot-stuffs it (RFC 5321 §4.5.2), across calls.
    """

    data: bytes | bytearray | memoryview
    VERB: ClassVar[str] = "<content>"

    def __post_init__(self) -> None:
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise TypeError(f"content must be bytes, not {type(self.data).__name__}")


@final
@dataclass(frozen=True, slots=True)
class EndOfContent(BaseCommand):
    """The end of the message: the encoder writes ``.CRLF`` (after a CRLF if needed)."""

    VERB: ClassVar[str] = "<end of data>"


@final
@dataclass(frozen=True, slots=True)
class Unchecked(BaseCommand):
    """The pseudo-command that replies to :meth:`Connection.send_unchecked` pair with.

    It cannot be passed to ``send``: raw bytes go only through the loudly
    named ``send_unchecked``.
    """

    data: bytes
    VERB: ClassVar[str] = "<unchecked>"

    def line(self, lowercase: bool = False) -> str:
        return repr(self.data)
