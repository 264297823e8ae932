"""Argument checks: what every command constructor calls before it exists.

:func:`check_safe` refuses CR, LF and NUL (and text with no UTF-8 form) in
every mode; the others check, when the command is strict, the RFC 5321
syntax and lengths of addresses, domains and ESMTP parameters, and the verb
of a generic command.  Each returns nothing or raises ``LocalProtocolError``
(``TypeError`` for a value of the wrong type).

``_commands`` imports :func:`check_safe` and calls it by that global name, so
patching ``_commands.check_safe`` (as tests/test_fuzz_seeds.py does) reaches
the commands that call it directly; the checks in this module call their own.
"""

from __future__ import annotations

from ._abnf import ADDRESS_LITERAL, DOMAIN, ESMTP_PARAM, FORBIDDEN_CHARS, MAILBOX, VERB
from ._errors import LocalProtocolError

__all__ = [
    "MAX_DOMAIN_LENGTH",
    "MAX_LOCAL_PART_LENGTH",
    "MAX_PATH_LENGTH",
    "STATEFUL_VERBS",
    "check_address",
    "check_domain",
    "check_params",
    "check_safe",
    "check_verb",
]

# RFC 5321 §4.5.3.1.3: "The maximum total length of a reverse-path or
# forward-path is 256 octets (including the punctuation and element
# separators)."  §4.5.3.1.1: local-part 64 octets; §4.5.3.1.2: domain 255.
MAX_PATH_LENGTH = 256
MAX_LOCAL_PART_LENGTH = 64
MAX_DOMAIN_LENGTH = 255


def check_safe(what: str, value: str) -> None:
    """Refuse CR, LF and NUL anywhere in ``value`` (every mode, every command).

    Raises:
        LocalProtocolError: naming ``what`` and showing the value.
        TypeError: if ``value`` is not a ``str``.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if FORBIDDEN_CHARS.search(value):
        raise LocalProtocolError(f"{what} contains CR, LF or NUL: {value!r}")
    if not value.isascii():
        # A lone surrogate ("\udc80", what os.fsdecode makes of a bad byte)
        # has no UTF-8 form: without this check the strict length checks
        # raised UnicodeEncodeError, and a strict=False command was built that
        # no line could carry.
        try:
            value.encode()
        except UnicodeEncodeError:
            raise LocalProtocolError(f"{what} is not encodable as UTF-8: {value!r}") from None


def check_address(what: str, address: str, strict: bool, *, null_ok: bool) -> None:
    if strict and type(address) is str and address.isascii():
        # The usual address, checked in one regex match: in ASCII the mailbox
        # grammar admits no control character (so no CR, LF or NUL), and one
        # character is one octet.
        match = MAILBOX.fullmatch(address)
        if match is not None and len(address) + 2 <= MAX_PATH_LENGTH:
            if match.end("local") > MAX_LOCAL_PART_LENGTH:
                raise LocalProtocolError(
                    f"{what} local part is longer than {MAX_LOCAL_PART_LENGTH} octets: {address!r}"
                )
            return
    check_safe(what, address)
    if not strict:
        if "<" in address or ">" in address:
            raise LocalProtocolError(f"{what} contains '<' or '>': {address!r}")
        return
    if address == "" and null_ok:
        return  # the null reverse-path "<>" (RFC 5321 §4.5.5)
    match = MAILBOX.fullmatch(address)
    if match is None:
        raise LocalProtocolError(f"{what} is not an RFC 5321 mailbox: {address!r}")
    if len(address.encode()) + 2 > MAX_PATH_LENGTH:
        raise LocalProtocolError(f"{what} is longer than {MAX_PATH_LENGTH - 2} octets: {address!r}")
    if len(match["local"].encode()) > MAX_LOCAL_PART_LENGTH:
        raise LocalProtocolError(
            f"{what} local part is longer than {MAX_LOCAL_PART_LENGTH} octets: {address!r}"
        )


def check_params(what: str, params: tuple[str, ...], strict: bool) -> None:
    if not isinstance(params, tuple):
        raise TypeError(f"{what} parameters must be a tuple of str")
    for param in params:
        check_safe(f"{what} parameter", param)
        if param == "" or " " in param:
            raise LocalProtocolError(f"{what} parameter is empty or contains a space: {param!r}")
        if strict and ESMTP_PARAM.fullmatch(param) is None:
            raise LocalProtocolError(f"{what} parameter is not keyword[=value]: {param!r}")


def check_domain(what: str, name: str, strict: bool) -> None:
    check_safe(what, name)
    if name == "" or " " in name:
        raise LocalProtocolError(f"{what} is empty or contains a space: {name!r}")
    if not strict:
        return
    if ADDRESS_LITERAL.fullmatch(name) is None and DOMAIN.fullmatch(name) is None:
        raise LocalProtocolError(f"{what} is neither a domain nor an address literal: {name!r}")
    if len(name.encode()) > MAX_DOMAIN_LENGTH:
        raise LocalProtocolError(f"{what} is longer than {MAX_DOMAIN_LENGTH} octets: {name!r}")


# Verbs whose replies move the state table; Command refuses them.
STATEFUL_VERBS = frozenset(
    {"MAIL", "RCPT", "DATA", "BDAT", "EHLO", "HELO", "LHLO", "STARTTLS", "AUTH", "RSET", "QUIT"}
)


def check_verb(name: str) -> None:
    """Refuse a generic command's verb that is not a verb or that has its own class."""
    if VERB.fullmatch(name) is None:
        raise LocalProtocolError(f"command verb is not letters, digits and '-': {name!r}")
    if name.upper() in STATEFUL_VERBS:
        raise LocalProtocolError(
            f"{name.upper()} changes the session's state: use its own command class"
        )
