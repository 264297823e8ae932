"""What the harnesses share: reading a fuzz input's header, and cutting bytes into chunks.

The harnesses do not use atheris' ``FuzzedDataProvider``, so that the pytest
replay of the seeds runs without atheris.  Each input starts with a small
header (documented in each harness) read with :class:`Header`; the rest of the
input is the payload (server bytes, message content, command arguments).
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Mapping
from itertools import pairwise

from smtp_core import Connection, LocalProtocolError, State

__all__ = [
    "MAX_SPLITS",
    "Header",
    "bytewise",
    "check_refusal",
    "freeze",
    "pack_splits",
    "split_at",
]

#: At most this many split points per input (the count is a 5-bit field).
MAX_SPLITS = 31


class Header:
    """Consumes the leading bytes of a fuzz input; reads past the end give zeros."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def byte(self) -> int:
        """The next byte, or 0 when the input is used up."""
        if self._pos >= len(self._data):
            return 0
        value = self._data[self._pos]
        self._pos += 1
        return value

    def u16(self) -> int:
        """The next two bytes as a little-endian number (missing bytes count as 0)."""
        low = self.byte()
        return low | (self.byte() << 8)

    def splits(self, count: int) -> list[int]:
        """``count`` raw split offsets (map them onto a payload with :func:`split_at`)."""
        return [self.u16() for _ in range(count)]

    def rest(self) -> bytes:
        """Everything after the header: the payload."""
        rest = self._data[self._pos :]
        self._pos = len(self._data)
        return rest


def pack_splits(points: list[int]) -> bytes:
    """The header bytes of a split count (low 5 bits) and ``points``, for seed files."""
    points = points[:MAX_SPLITS]
    return bytes([len(points)]) + b"".join(struct.pack("<H", p & 0xFFFF) for p in points)


def split_at(data: bytes, raw_points: list[int]) -> list[bytes]:
    """Cut ``data`` at ``raw_points`` (each taken modulo ``len(data) + 1``).

    Returns the non-empty pieces in order; their concatenation is ``data``.
    """
    points = sorted({p % (len(data) + 1) for p in raw_points} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points) if b > a]


def bytewise(data: bytes) -> list[bytes]:
    """``data`` one byte at a time."""
    return [data[i : i + 1] for i in range(len(data))]


def freeze(obj: object, depth: int = 0) -> object:
    """A comparable copy of ``obj``'s whole state, attributes private or not.

    Used to check that a refused ``send`` leaves the connection exactly as it
    was, without naming the engine's private attributes (they change).
    """
    if depth > 8:
        raise AssertionError(f"object nested too deep to freeze: {obj!r}")
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, enum.Enum)):
        return obj
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, (list, tuple, deque)):
        return (type(obj).__name__, tuple(freeze(item, depth + 1) for item in obj))
    if isinstance(obj, Mapping):
        return (
            type(obj).__name__,
            tuple(sorted((repr(k), freeze(v, depth + 1)) for k, v in obj.items())),
        )
    if isinstance(obj, (set, frozenset)):
        return (type(obj).__name__, tuple(sorted(repr(item) for item in obj)))
    names: list[str] = []
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    names.extend(getattr(obj, "__dict__", {}))
    return (
        type(obj).__name__,
        tuple(
            (name, freeze(getattr(obj, name), depth + 1))
            for name in sorted(set(names))
            if hasattr(obj, name) and not name.startswith("__")
        ),
    )


def check_refusal(before: object, conn: Connection, exc: LocalProtocolError) -> None:
    """``send`` refused: the connection is as it was (``before = freeze(conn)``).

    The one documented exception (``LocalProtocolError``'s docstring): the
    connection may move to ``ERROR`` if the exception's message says so.
    """
    if conn.state is State.ERROR and "ERROR state" in str(exc):
        return
    after = freeze(conn)
    assert after == before, f"refused send ({exc}) changed the connection: {after} != {before}"
