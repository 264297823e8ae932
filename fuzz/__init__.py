"""Coverage-guided fuzz harnesses for the sans-I/O engine ``smtp_core``.

One module per entry point, ``fuzz_<name>.py``, each with a plain
``check(data: bytes) -> None`` that raises ``AssertionError`` (or lets an
undocumented exception escape) when its invariant breaks.  ``fuzz/run.py``
drives a harness with atheris; ``tests/test_fuzz_seeds.py`` replays every seed
in ``fuzz/seeds/<name>/`` through ``check`` without atheris.
"""

from __future__ import annotations

HARNESSES = ("replies", "session", "data", "commands", "facade")
