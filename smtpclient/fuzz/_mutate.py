"""Session generation: valid sessions from a small grammar, and mutations of known ones.

Every choice is drawn from one :class:`random.Random`, so a seed gives the
same sessions for the same feedback.  Mutators take a session and return a
new one (steps are immutable); :func:`~._steps.normalize` then keeps it
something the runner can match replies to.

The mutators (AFLNet's idea, on SMTP's vocabulary): byte flips; long lines
around 512, 1000 and 1001 octets and up to 64 KiB; NUL, CR and LF injected
into a line; case changes; a step repeated, swapped, deleted or inserted from
the dictionary; odd addresses and parameters; pipelined groups; hostile
message content (bare LF, ``\\n.\\n`` smuggling); a session spliced from two;
and a tail (a bare CR or LF, a partial line, STARTTLS) at the end.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Final

from ._seeds import (
    ADDRESSES,
    COMMANDS,
    CONTENTS,
    HOSTILE_CONTENTS,
    LONG_LINE_LENGTHS,
    PARAMS,
    TAILS,
)
from ._steps import Step, content, group, is_clean, line, normalize, raw

__all__ = ["MUTATORS", "Generator"]

_INTERESTING_BYTES: Final = b'\x00\r\n\t \x7f\x80\xff:<>@."\\'
_ADDRESS: Final = re.compile(rb"<[^<>]*>")
Mutator = Callable[["Generator", list[Step], Sequence[Step]], list[Step]]


class Generator:
    """Makes sessions: valid ones, and mutants of given ones.

    Args:
        rng: the random source (seed it for reproducible runs).
        recipients: addresses the sessions use for RCPT (``{rcpt}`` in the
            seeds and the dictionary), without angle brackets.
    """

    def __init__(self, rng: random.Random, recipients: Sequence[str]) -> None:
        if not recipients:
            raise ValueError("at least one recipient is needed")
        self.rng = rng
        self.recipients = tuple(recipients)

    # -- helpers -----------------------------------------------------------------------

    def rcpt(self) -> str:
        """One of the recipients."""
        return self.rng.choice(self.recipients)

    def _fill(self, text: str) -> str:
        return text.replace("{rcpt}", self.rcpt())

    def command(self) -> Step:
        """A line from the dictionary."""
        return line(self._fill(self.rng.choice(COMMANDS)))

    def message(self, hostile: bool = False) -> Step:
        """A content step: an ordinary message, or a hostile one."""
        pool = HOSTILE_CONTENTS if hostile else CONTENTS
        return content(self.rng.choice(pool).replace(b"{rcpt}", self.rcpt().encode()))

    # -- valid sessions ----------------------------------------------------------------

    def valid(self) -> tuple[Step, ...]:
        """A session that follows RFC 5321: hello, then transactions and 'any time' commands."""
        rng = self.rng
        steps = [line(rng.choice(("EHLO fuzz.example", "HELO fuzz.example", "EHLO [127.0.0.1]")))]
        for _ in range(rng.randint(0, 3)):
            roll = rng.random()
            if roll < 0.6:
                steps.extend(self._transaction())
            elif roll < 0.8:
                steps.append(line(rng.choice(("NOOP", "RSET", "VRFY postmaster", "HELP"))))
            else:
                steps.append(line(rng.choice(("EHLO fuzz.example", "HELO fuzz.example"))))
        return normalize(steps)

    def _transaction(self) -> list[Step]:
        rng = self.rng
        mail = "MAIL FROM:<sender@example.org>"
        if rng.random() < 0.3:
            mail += " " + rng.choice(("SIZE=100", "BODY=8BITMIME", "SIZE=20 BODY=7BIT"))
        rcpts = [f"RCPT TO:<{self.rcpt()}>" for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            return [group((mail, *rcpts, "DATA")), self.message()]
        steps = [line(mail), *(line(r) for r in rcpts)]
        if rng.random() < 0.2:
            return [*steps, line("RSET")]
        return [*steps, line("DATA"), self.message()]

    # -- mutation ----------------------------------------------------------------------

    def mutate(
        self, steps: Sequence[Step], other: Sequence[Step] = (), *, start: int = 0
    ) -> tuple[Step, ...]:
        """One to four mutations of ``steps``, at positions from ``start`` on where possible.

        ``other`` is a second session for splicing.  The result is normalized.
        """
        rng = self.rng
        out = list(steps)
        for _ in range(rng.randint(1, 4)):
            mutator = rng.choice(MUTATORS)
            out = mutator(self, out, other) if out else [self.command()]
            if start and len(out) > start and rng.random() < 0.8:
                # Keep the prefix that reached the state being fuzzed.
                out = list(steps[:start]) + out[start:]
        return normalize(out) or (self.command(),)

    def pick(self, steps: Sequence[Step], kinds: tuple[str, ...] = ("line",)) -> int | None:
        """The index of a random step of one of ``kinds``, or ``None``."""
        found = [i for i, s in enumerate(steps) if s.kind in kinds]
        return self.rng.choice(found) if found else None


# -- the mutators --------------------------------------------------------------------------


def _replace(steps: list[Step], index: int, new: Step) -> list[Step]:
    return [*steps[:index], new, *steps[index + 1 :]]


def _as_step(data: bytes) -> Step:
    """``data`` (one line, no CRLF) as a line step, or raw with one reply if it is not clean."""
    if is_clean(data) or b"\r" in data or b"\n" in data:
        return line(data)
    return raw(data + b"\r\n", 1)


def flip(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Change one to three bytes of a line (to random or interesting values)."""
    index = gen.pick(steps, ("line", "raw"))
    if index is None:
        return steps
    step = steps[index]
    data = bytearray(step.data)
    if not data:
        return steps
    rng = gen.rng
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(data))
        if rng.random() < 0.5:
            data[pos] = rng.choice(_INTERESTING_BYTES)
        else:
            data[pos] ^= 1 << rng.randrange(8)
    if step.kind == "raw":
        return _replace(steps, index, raw(bytes(data), None))
    return _replace(steps, index, _as_step(bytes(data)))


def lengthen(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Pad a line (inside its address if it has one) to a length around a limit."""
    index = gen.pick(steps)
    if index is None:
        return steps
    rng = gen.rng
    data = steps[index].data
    total = rng.choice(LONG_LINE_LENGTHS) + rng.choice((0, 0, -1, 1))
    pad = max(total - 2 - len(data), 0)
    match = _ADDRESS.search(data)
    filler = bytes([rng.choice(b"aaaaaaaa.-_+x@")]) * pad if rng.random() < 0.3 else b"a" * pad
    if match is not None and rng.random() < 0.8:
        at = data.find(b"@", match.start(), match.end())
        cut = at if at >= 0 else match.end() - 1
        data = data[:cut] + filler + data[cut:]
    else:
        data = data + b" " + filler[1:] if pad else data
    return _replace(steps, index, _as_step(data))


def inject(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Put a NUL, CR, LF or CRLF inside a line."""
    index = gen.pick(steps)
    if index is None:
        return steps
    rng = gen.rng
    data = steps[index].data
    pos = rng.randint(0, len(data))
    data = data[:pos] + rng.choice((b"\0", b"\0", b"\r", b"\n", b"\r\n", b"\x1b")) + data[pos:]
    return _replace(steps, index, _as_step(data))


def recase(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Change the case of a line's letters."""
    index = gen.pick(steps)
    if index is None:
        return steps
    rng = gen.rng
    data = steps[index].data
    how = rng.random()
    if how < 0.4:
        new = data.lower()
    elif how < 0.6:
        new = data.swapcase()
    else:
        new = bytes(c ^ 0x20 if _is_letter(c) and rng.random() < 0.5 else c for c in data)
    return _replace(steps, index, _as_step(new))


def _is_letter(octet: int) -> bool:
    return 0x41 <= octet <= 0x5A or 0x61 <= octet <= 0x7A


def repeat(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Repeat a step (a few times, or many: RCPT past the server's recipient limit)."""
    if not steps:
        return steps
    rng = gen.rng
    index = rng.randrange(len(steps))
    times = rng.choice((1, 1, 2, 3, 30))
    return [*steps[: index + 1], *[steps[index]] * times, *steps[index + 1 :]]


def swap(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Swap two steps."""
    if len(steps) < 2:
        return steps
    i, j = gen.rng.sample(range(len(steps)), 2)
    out = list(steps)
    out[i], out[j] = out[j], out[i]
    return out


def delete(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Remove a step."""
    if len(steps) < 2:
        return steps
    index = gen.rng.randrange(len(steps))
    return [*steps[:index], *steps[index + 1 :]]


def insert(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Insert a dictionary command."""
    index = gen.rng.randint(0, len(steps))
    return [*steps[:index], gen.command(), *steps[index:]]


def oddity(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Give a MAIL or RCPT line an odd address, or add an odd parameter."""
    found = [i for i, s in enumerate(steps) if s.kind == "line" and s.verb in ("MAIL", "RCPT")]
    rng = gen.rng
    if not found:
        return [*steps, line(f"RCPT TO:{gen._fill(rng.choice(ADDRESSES))}")]
    index = rng.choice(found)
    data = steps[index].data
    if rng.random() < 0.5:
        address = gen._fill(rng.choice(ADDRESSES)).encode()
        match = _ADDRESS.search(data)
        data = data[: match.start()] + address + data[match.end() :] if match else data + address
    else:
        data = data + b" " + rng.choice(PARAMS).encode()
    return _replace(steps, index, _as_step(data))


def pipeline(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Write two to five consecutive clean lines at once (a pipelined group)."""
    rng = gen.rng
    starts = [i for i, s in enumerate(steps) if s.kind == "line" and is_clean(s.data)]
    if not starts:
        return steps
    start = rng.choice(starts)
    end = start
    while end < len(steps) and end - start < rng.randint(2, 5):
        if steps[end].kind != "line" or not is_clean(steps[end].data):
            break
        end += 1
    if end - start < 2:
        return steps
    return [*steps[:start], group(s.data for s in steps[start:end]), *steps[end:]]


def hostile_content(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """Replace a message's content with hostile content, or add a message that has it."""
    index = gen.pick(steps, ("content",))
    if index is not None:
        return _replace(steps, index, gen.message(hostile=True))
    return [
        *steps,
        line("MAIL FROM:<sender@example.org>"),
        line(f"RCPT TO:<{gen.rcpt()}>"),
        line("DATA"),
        gen.message(hostile=True),
    ]


def splice(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """The start of this session, then the end of another."""
    if not other:
        return steps
    rng = gen.rng
    return [*steps[: rng.randint(0, len(steps))], *other[rng.randint(0, len(other)) :]]


def tail(gen: Generator, steps: list[Step], other: Sequence[Step]) -> list[Step]:
    """End the session with a step whose reply count is unknown."""
    rng = gen.rng
    return [*steps[: rng.randint(1, len(steps))], rng.choice(TAILS)]


#: Every mutator; :meth:`Generator.mutate` picks among them uniformly.
MUTATORS: Final[tuple[Mutator, ...]] = (
    flip,
    lengthen,
    lengthen,
    inject,
    recase,
    repeat,
    swap,
    delete,
    insert,
    insert,
    oddity,
    oddity,
    pipeline,
    hostile_content,
    splice,
    tail,
)
