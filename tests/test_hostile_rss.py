"""The servers that try to exhaust a client's memory cannot (issue 11): peak RSS per face.

One child process per face runs a warm benign session, then every case of
``tests.hostile_rss.WORST_CASES``; its peak resident set size may grow by at
most ``BOUND_KIB`` over the warm baseline.  A pretend client that keeps what it
reads grows far past the bound against the same servers, so the bound is not
one that any client would meet.
"""

from __future__ import annotations

import sys

import pytest

from tests.hostile_cases import CASES
from tests.hostile_faces import FACES, Face
from tests.hostile_rss import BOUND_KIB, NAIVE, WORST_CASES, measure

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="/proc/self/status and clear_refs are Linux's"
)


def _growth(report: dict[str, object]) -> dict[str, int]:
    growth = report["growth"]
    assert isinstance(growth, dict)
    return {case: int(kib) for case, kib in growth.items()}


@pytest.mark.parametrize("face", FACES, ids=[face.name for face in FACES])
def test_peak_memory_stays_bounded(face: Face) -> None:
    report = measure(face.name, WORST_CASES)
    growth = _growth(report)
    assert growth, f"{face.name} ran none of the cases"
    # Each face reports each case's documented outcome (as in test_hostile.py),
    # and never reads an endless reply to the server's cap.
    kinds = report["kinds"]
    assert isinstance(kinds, dict)
    cases = {case.name: case for case in CASES}
    for name in growth:
        assert kinds[name] in cases[name].expected(face).kinds, (name, kinds[name])
    assert report["capped"] == []
    worst = max(growth.values())
    assert worst <= BOUND_KIB, f"{face.name}: peak RSS grew by {worst:,} KiB: {growth}"


def test_a_client_that_buffers_would_fail_the_bound() -> None:
    report = measure(NAIVE, ["greeting-endless-line", "ehlo-endless-multiline"])
    growth = _growth(report)
    assert report["capped"] == ["greeting-endless-line", "ehlo-endless-multiline"]
    assert min(growth.values()) > 4 * BOUND_KIB, growth
