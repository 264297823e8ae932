"""Steps: what the fuzzer sends in one session, and which of them have a known reply count.

A session is a tuple of :class:`Step`.  Each step is written to the server
in one ``sendall`` and is one ``C:`` record of the saved transcript:

``line``
    One command line, without its CRLF.  If it is clean (UTF-8, no CR, LF or
    NUL, short enough for the engine) it goes through the engine as a
    :class:`smtp_core.CommandLine` on a permissive connection, so the engine
    follows the session's state; otherwise it goes through
    ``send_unchecked`` as raw bytes.
``group``
    Several clean command lines written at once (RFC 2920 pipelining).
``raw``
    Bytes sent exactly as they are, through ``send_unchecked``, with the
    number of replies they should draw (``None``: unknown).
``content``
    Message content after a ``354``, written exactly as it is, its own end
    marker included.

A step whose reply count cannot be known (a CR or LF inside a line, a raw
step that says so, content whose end marker is not where it should be, a BDAT
line, a group with DATA before its last line or with STARTTLS, AUTH or BDAT in
it) is a *tail* step: it may only come last in a session, and the fuzzer then
closes with QUIT read leniently.  :func:`normalize` enforces that, and the
bounds on a session's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, final

from smtp_core import MAX_COMMAND_LINE

__all__ = [
    "MAX_SESSION_BYTES",
    "MAX_STEPS",
    "Kind",
    "Step",
    "content",
    "group",
    "is_clean",
    "line",
    "normalize",
    "raw",
]

Kind = Literal["line", "group", "raw", "content"]

#: The most steps one session holds (the QUIT that closes it not counted).
MAX_STEPS: Final = 40
#: The most bytes the steps of one session hold together.
MAX_SESSION_BYTES: Final = 256 * 1024

# Verbs after which nothing in the same write can be matched to its reply:
# DATA's 354 turns later lines into content, STARTTLS's 220 into TLS,
# AUTH's 334 into a SASL response, BDAT's size into message bytes.
_GROUP_BREAKERS: Final = frozenset({b"STARTTLS", b"AUTH", b"BDAT"})
_END_OF_DATA: Final = b"\r\n.\r\n"


@final
@dataclass(frozen=True, slots=True)
class Step:
    """One write of a session (see the module docstring for the kinds).

    Attributes:
        kind: ``"line"``, ``"group"``, ``"raw"`` or ``"content"``.
        data: the line (no CRLF) for ``line``; the raw bytes for ``raw``; the
            content with its end marker for ``content``; for ``group`` the
            lines joined by CRLF, without the last CRLF.
        replies: for ``raw`` only, the replies the bytes should draw
            (``None``: unknown, which makes the step a tail step).

    Raises:
        ValueError: a field does not fit the kind.
    """

    kind: Kind
    data: bytes
    replies: int | None = 1

    def __post_init__(self) -> None:
        if self.kind not in ("line", "group", "raw", "content"):
            raise ValueError(f"unknown step kind: {self.kind!r}")
        if not isinstance(self.data, bytes):
            raise TypeError(f"step data must be bytes, not {type(self.data).__name__}")
        if self.kind == "raw":
            if self.replies is not None and not 0 <= self.replies <= 64:
                raise ValueError(f"a raw step draws 0 to 64 replies, not {self.replies}")
        elif self.replies != 1:
            raise ValueError(f"only a raw step says how many replies it draws: {self.replies}")
        if self.kind == "group" and not all(is_clean(x) for x in self.lines):
            raise ValueError(f"every line of a group must be clean: {self.data[:80]!r}")

    @property
    def lines(self) -> tuple[bytes, ...]:
        """The command lines of a ``line`` or ``group`` step (``()`` for the others)."""
        if self.kind == "line":
            return (self.data,)
        if self.kind == "group":
            return tuple(self.data.split(b"\r\n"))
        return ()

    @property
    def wire(self) -> bytes:
        """The bytes this step puts on the wire."""
        if self.kind in ("line", "group"):
            return self.data + b"\r\n"
        return self.data

    @property
    def verb(self) -> str:
        """The first word of the (first) line, upper-cased; ``"<raw>"`` or ``"<content>"``."""
        if self.kind == "content":
            return "<content>"
        if self.kind == "raw":
            return "<raw>"
        return _verb(self.data)

    @property
    def tail(self) -> bool:
        """True if nothing can follow this step: its reply count is unknown."""
        if self.kind == "raw":
            return self.replies is None
        if self.kind == "content":
            return not content_ends_once(self.data)
        verbs = [_verb(x) for x in self.lines]
        if self.kind == "line":
            # BDAT's size swallows what follows.  (STARTTLS alone on its line
            # has one reply; the engine ends the session if it is 220.)
            return verbs[0] == "BDAT" or _has_line_break(self.data)
        # A group: DATA may only end it; STARTTLS, AUTH and BDAT may not be in it.
        return "DATA" in verbs[:-1] or any(v.encode() in _GROUP_BREAKERS for v in verbs)


def _verb(data: bytes) -> str:
    return data.split(b" ", 1)[0].decode("ascii", "replace").upper()


def _has_line_break(data: bytes) -> bool:
    return b"\r" in data or b"\n" in data


def is_clean(data: bytes) -> bool:
    """True if ``data`` can be one :class:`smtp_core.CommandLine` (the engine follows it)."""
    if b"\r" in data or b"\n" in data or b"\0" in data or len(data) + 2 > MAX_COMMAND_LINE:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def content_ends_once(data: bytes) -> bool:
    """True if ``data`` ends with CRLF.CRLF and holds no earlier end of data.

    The CRLF of the DATA line counts: content that starts with ``.\\r\\n``
    ends there.
    """
    return (b"\r\n" + data).find(_END_OF_DATA) == len(data) - 3


def line(text: bytes | str) -> Step:
    """A ``line`` step (``str`` is encoded as UTF-8)."""
    return Step("line", text.encode() if isinstance(text, str) else text)


def group(lines: Iterable[bytes | str]) -> Step:
    """A ``group`` step: several clean lines written together."""
    return Step("group", b"\r\n".join(x.encode() if isinstance(x, str) else x for x in lines))


def raw(data: bytes, replies: int | None = 1) -> Step:
    """A ``raw`` step: ``data`` as it is, drawing ``replies`` replies (``None``: unknown)."""
    return Step("raw", data, replies)


def content(data: bytes) -> Step:
    """A ``content`` step: message bytes after a 354, with their end marker."""
    return Step("content", data)


def normalize(steps: Sequence[Step]) -> tuple[Step, ...]:
    """Make ``steps`` a session the runner can match replies to.

    Returns:
        The steps up to and including the first tail step, at most
        :data:`MAX_STEPS` of them and :data:`MAX_SESSION_BYTES` together;
        a ``line`` step that is not clean but has no line break inside is
        kept (it is sent raw, expecting one reply).
    """
    out: list[Step] = []
    size = 0
    for step in steps:
        size += len(step.data)
        if len(out) >= MAX_STEPS or (size > MAX_SESSION_BYTES and out):
            break
        out.append(step)
        if step.tail:
            break
    return tuple(out)
