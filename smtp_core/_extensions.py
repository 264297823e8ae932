"""The server's EHLO/LHLO keywords, parsed once into a typed, read-only view."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import final

__all__ = ["Extensions"]


@final
class Extensions(Mapping[str, str]):
    """What the server advertised: upper-case keyword -> parameter text.

    RFC 5321 §4.1.1.1: each line after the first of a 250 reply to EHLO is
    ``ehlo-keyword *( SP ehlo-param )``.  Keywords are case-insensitive, so
    they are stored upper-cased; parameters are kept verbatim (joined by one
    space).  Unknown keywords are kept, so ``"XFOO" in extensions`` works for
    any of them; the properties give typed access to the ones the engine uses.
    """

    __slots__ = ("_items", "_lines")
    _lines: tuple[bytes, ...]  # set only by from_ehlo_lines, until parsed

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        # Keys are upper-cased here too, or a caller's {"size": ...} could never
        # be looked up (every lookup upper-cases its keyword).
        self._items: dict[str, str] = {k.upper(): v for k, v in (items or {}).items()}

    @classmethod
    def from_ehlo_lines(cls, lines: tuple[bytes, ...]) -> Extensions:
        """Build the view from the text lines of a 250 EHLO reply (first line skipped).

        Lines that are not a keyword (empty, or not starting with a letter or
        digit) are ignored: they can only be decoration, and a server's odd
        line must not cost the whole session.

        A keyword given twice keeps its first parameters, except ``AUTH``:
        every ``AUTH`` line adds its mechanisms, and so does the pre-standard
        ``AUTH=LOGIN PLAIN`` line (from drafts of RFC 2554, still sent by old
        Microsoft Exchange and Lotus Domino servers), as smtplib does.
        """
        # Parsed on first use (see _parse_on_first_use): a session that only greets
        # and quits never reads them, and parsing is most of an EHLO reply's cost.
        extensions = cls.__new__(cls)
        extensions._lines = lines
        return extensions

    def __getitem__(self, keyword: str) -> str:
        if not isinstance(keyword, str):
            # KeyError, not AttributeError, so that Mapping.get() answers None.
            raise KeyError(keyword)
        return self._items[keyword.upper()]

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Extensions({self._items!r})"

    @property
    def pipelining(self) -> bool:
        """PIPELINING (RFC 2920)."""
        return "PIPELINING" in self._items

    @property
    def size(self) -> int | None:
        """The SIZE limit in octets (RFC 1870); ``0`` means no fixed limit; ``None`` if absent."""
        if "SIZE" not in self._items:
            return None
        value = self._items["SIZE"]
        # isascii(): "²".isdigit() is True but int("²") raises ValueError, and
        # the text comes from the server.
        return int(value) if value.isascii() and value.isdigit() else 0

    @property
    def smtputf8(self) -> bool:
        """SMTPUTF8 (RFC 6531)."""
        return "SMTPUTF8" in self._items

    @property
    def eightbitmime(self) -> bool:
        """8BITMIME (RFC 6152)."""
        return "8BITMIME" in self._items

    @property
    def starttls(self) -> bool:
        """STARTTLS (RFC 3207)."""
        return "STARTTLS" in self._items

    @property
    def auth(self) -> frozenset[str]:
        """The SASL mechanisms of AUTH (RFC 4954), upper-cased; empty if absent."""
        return frozenset(self._items.get("AUTH", "").upper().split())

    @property
    def chunking(self) -> bool:
        """CHUNKING, i.e. BDAT (RFC 3030)."""
        return "CHUNKING" in self._items

    @property
    def enhanced_status_codes(self) -> bool:
        """ENHANCEDSTATUSCODES (RFC 2034)."""
        return "ENHANCEDSTATUSCODES" in self._items

    @property
    def dsn(self) -> bool:
        """DSN (RFC 3461)."""
        return "DSN" in self._items

    @property
    def binarymime(self) -> bool:
        """BINARYMIME (RFC 3030); usable only with CHUNKING."""
        return "BINARYMIME" in self._items

    @property
    def requiretls(self) -> bool:
        """REQUIRETLS (RFC 8689)."""
        return "REQUIRETLS" in self._items

    @property
    def deliverby(self) -> int | None:
        """DELIVERBY's minimum by-time in seconds (RFC 2852).

        ``0`` if the server gave none, ``None`` if it does not offer DELIVERBY.
        """
        if "DELIVERBY" not in self._items:
            return None
        value = self._items["DELIVERBY"]
        return int(value) if value.isascii() and value.isdigit() else 0

    @property
    def mt_priority(self) -> str | None:
        """MT-PRIORITY's policy name (RFC 6710), ``""`` if none given, ``None`` if absent."""
        return self._items.get("MT-PRIORITY")


def _parse_ehlo_lines(lines: tuple[bytes, ...]) -> dict[str, str]:
    """Upper-case keyword -> parameters, from the lines of a 250 EHLO reply."""
    items: dict[str, str] = {}
    auth: list[str] = []
    # One decode for the whole reply, split back into lines: a reply line
    # cannot hold "\n" (the reader refuses control characters).
    for text in b"\n".join(lines[1:]).decode("utf-8", "replace").split("\n"):
        keyword, _, params = text.strip().partition(" ")
        if not keyword[:1].isalnum() or not keyword.isascii():
            continue
        upper = keyword.upper()
        if upper == "AUTH" or upper.startswith("AUTH="):
            found = [keyword[5:], *params.split()]
            auth += [m for m in found if m and m not in auth]
            items.setdefault("AUTH", "")
            continue
        if upper not in items:
            items[upper] = " ".join(params.split()) if params else ""
    if auth:
        items["AUTH"] = " ".join(auth)
    return items


def _parse_on_first_use(self: Extensions, name: str) -> dict[str, str]:
    """``Extensions.__getattr__``: runs only while the ``_items`` slot is empty."""
    if name != "_items":
        raise AttributeError(name)
    self._items = _parse_ehlo_lines(self._lines)
    return self._items


# Set here rather than in the class body, where mypy would take it as a
# promise that every attribute name exists (and stop catching typos).
setattr(Extensions, "__getattr__", _parse_on_first_use)  # noqa: B010
