"""SASLprep (RFC 4013): the stringprep profile for user names and passwords.

SASLprep is a profile of stringprep (RFC 3454), whose tables the standard
library ships as :mod:`stringprep`.  The four steps, in the order RFC 3454 §3
runs them:

1. **Map** (RFC 4013 §2.1): "non-ASCII space characters [StringPrep, C.1.2]
   that can be mapped to SPACE (U+0020)" are, and "the 'commonly mapped to
   nothing' characters [StringPrep, B.1]" are removed.
2. **Normalise** (§2.2): Unicode normalization form KC.
3. **Prohibit** (§2.3): tables C.1.2, C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7,
   C.8 and C.9.
4. **Check bidi** (§2.4, by way of RFC 3454 §6): a string holding a
   right-to-left character (table D.1) must hold no left-to-right one (D.2),
   and must begin and end with a right-to-left character.

Unassigned code points (table A.1) are allowed in "queries" and prohibited in
"stored strings" (RFC 4013 §2.5, RFC 3454 §7); a client's credentials are
queries, so they are allowed unless the caller asks otherwise.

stringprep is pinned to Unicode 3.2, so the normalisation uses the Unicode 3.2
database too (``unicodedata.ucd_3_2_0``, as :mod:`encodings.idna` does): a
character unassigned in 3.2 (every emoji, for one) passes through unchanged
instead of being normalised by rules stringprep never knew.
"""

from __future__ import annotations

import stringprep
import unicodedata
from collections.abc import Callable

__all__ = ["SASLprepError", "saslprep"]


class SASLprepError(ValueError):
    """A string holds a character SASLprep prohibits, or breaks its bidi rules.

    The message names the code point and its position, never the string: the
    string may be a password.
    """


# RFC 4013 §2.3, in the RFC's order, with the names RFC 3454 gives the tables.
_PROHIBITED: tuple[tuple[Callable[[str], bool], str], ...] = (
    (stringprep.in_table_c12, "non-ASCII space character (C.1.2)"),
    (stringprep.in_table_c21, "ASCII control character (C.2.1)"),
    (stringprep.in_table_c22, "non-ASCII control character (C.2.2)"),
    (stringprep.in_table_c3, "private use character (C.3)"),
    (stringprep.in_table_c4, "non-character code point (C.4)"),
    (stringprep.in_table_c5, "surrogate code (C.5)"),
    (stringprep.in_table_c6, "character inappropriate for plain text (C.6)"),
    (stringprep.in_table_c7, "character inappropriate for canonical representation (C.7)"),
    (stringprep.in_table_c8, "change display property or deprecated character (C.8)"),
    (stringprep.in_table_c9, "tagging character (C.9)"),
)


def _describe(what: str, position: int, char: str) -> str:
    return f"{what} holds U+{ord(char):04X} at position {position}"


def saslprep(text: str, *, allow_unassigned: bool = True, what: str = "string") -> str:
    """Prepare a user name or password with SASLprep (RFC 4013).

    Args:
        text: the string as the user typed it.
        allow_unassigned: allow code points unassigned in Unicode 3.2, as
            RFC 3454 §7 does for "queries" (the default, right for a client's
            credentials); ``False`` applies the "stored strings" rule.
        what: what the string is, for error messages ("password"); the string
            itself never appears in a message.

    Returns:
        The prepared string, which may be empty (a string of B.1 characters
        maps to nothing); callers whose grammar needs a non-empty value check.
        Printable ASCII comes back unchanged without further work.

    Raises:
        SASLprepError: a prohibited or (if not allowed) unassigned code point
            after mapping and normalisation, or a bidi rule broken.
        TypeError: if ``text`` is not a ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"{what} must be str, not {type(text).__name__}")
    if text.isascii() and text.isprintable():
        # Nothing in B.1, C.1.2 or any prohibited table is printable ASCII,
        # NFKC leaves it alone, and ASCII letters are never right-to-left.
        return text
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in text
        if not stringprep.in_table_b1(char)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for position, char in enumerate(prepared):
        for in_table, name in _PROHIBITED:
            if in_table(char):
                raise SASLprepError(f"{_describe(what, position, char)}, a prohibited {name}")
        if not allow_unassigned and stringprep.in_table_a1(char):
            raise SASLprepError(
                f"{_describe(what, position, char)}, unassigned in Unicode 3.2 (A.1)"
            )
    # RFC 3454 §6.  Rule 1 (C.8 prohibited) was checked with the other tables.
    if any(stringprep.in_table_d1(char) for char in prepared):
        for position, char in enumerate(prepared):
            if stringprep.in_table_d2(char):
                raise SASLprepError(
                    f"{_describe(what, position, char)}, a left-to-right character"
                    " in a right-to-left string (RFC 3454 §6)"
                )
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise SASLprepError(
                f"{what} holds right-to-left characters but does not begin and end"
                " with one (RFC 3454 §6)"
            )
    return prepared
