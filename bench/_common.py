"""Shared helpers for the benchmarks: timing, tables, test data, the smtp-sink.

Not a benchmark itself.  Every script puts the repository root on ``sys.path``
(so ``smtp_core``, ``smtpclient`` and ``tests._postfix`` import from this tree)
and prints a markdown report headed by the command line that produced it.
"""

from __future__ import annotations

import gc
import hashlib
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
LOCAL_NAME = "bench.test"
SENDER = "sender@example.com"
RECIPIENT = "rcpt@example.com"


# -- report ---------------------------------------------------------------------------


def versions() -> str:
    found = [f"Python {platform.python_version()} ({sys.executable})"]
    for dist in ("smtpclient", "aiosmtplib", "smtpproto"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} (not installed)")
    return ", ".join(found)


def header(
    title: str,
    note: str = "Machine shared with other work: figures are best-of-N and still noisy.",
) -> None:
    """Print the title, the exact command line, the environment and the tree measured."""
    argv = [os.path.relpath(sys.argv[0], Path.cwd()), *sys.argv[1:]]
    print(f"## {title}\n")
    print(f"    $ python {shlex.join(argv)}\n")
    print(f"- {versions()}")
    print(f"- {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()})")
    print(f"- library measured: {tree_state()}")
    print(f"- load average at start (1/5/15 min): {loadavg()}")
    print(f"- {note}\n")


def footer() -> None:
    print(f"Load average at end (1/5/15 min): {loadavg()}")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a markdown table; numbers are right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in cells) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        out = []
        for i, v in enumerate(values):
            out.append(v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]))
        return "| " + " | ".join(out) + " |"

    print(line(list(headers)))
    print(
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if n else ("-" * (w + 2))
            for w, n in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    for row in cells:
        print(line(row))
    print()


def _is_number(text: str) -> bool:
    stripped = text.rstrip("x%").replace(",", "").replace(" ", "")
    if stripped in ("", "-", "n/a"):
        return True
    try:
        float(stripped)
    except ValueError:
        return False
    return True


def ratio(ours: float, theirs: float) -> str:
    """``ours / theirs`` as ``0.42x``."""
    if theirs == 0:
        return "n/a"
    return f"{ours / theirs:.2f}x"


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def tree_state() -> str:
    """The git commit, whether the library's files differ from it, and their digest.

    Others edit the library while benchmarks run; the digest of the ``.py``
    files of ``smtp_core``, ``transports`` and ``smtpclient`` ties a figure to
    the code it measured.
    """
    digest = hashlib.sha256()
    for package in ("smtp_core", "transports", "smtpclient"):
        for path in sorted((ROOT / package).glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "status",
                "--porcelain",
                "--",
                "smtp_core",
                "transports",
                "smtpclient",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "unknown", ""
    state = "with uncommitted changes" if dirty else "clean"
    return f"git {head} ({state}), library sources sha256 {digest.hexdigest()[:12]}"


# -- timing ---------------------------------------------------------------------------


def time_calls(
    run: Callable[[Any], object],
    setup: Callable[[], Any],
    *,
    min_time: float,
) -> float:
    """Seconds per call of ``run(setup())``; only ``run`` is timed.

    Calls are repeated until ``min_time`` seconds of ``run`` were measured.
    The garbage collector stays on (as in real use), but a collection is
    forced before the measurement starts.
    """
    gc.collect()
    total = 0.0
    calls = 0
    clock = time.perf_counter
    while total < min_time or calls < 3:
        state = setup()
        t0 = clock()
        run(state)
        total += clock() - t0
        calls += 1
    return total / calls


def best_of(
    candidates: dict[str, tuple[Callable[[Any], object], Callable[[], Any]]],
    *,
    repeats: int,
    min_time: float,
) -> dict[str, float]:
    """Best seconds per call for each candidate; the candidates take turns."""
    results: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, (run, setup) in candidates.items():
            results[name].append(time_calls(run, setup, min_time=min_time))
    return {name: min(times) for name, times in results.items()}


def summary(times: Sequence[float]) -> tuple[float, float]:
    """(best, median)."""
    return min(times), statistics.median(times)


# -- test data ------------------------------------------------------------------------


def small_message(index: int = 0) -> bytes:
    """A typical small message (about 600 bytes, CRLF, no leading dots)."""
    body = b"".join(
        b"This is line %d of a short notification message, nothing unusual.\r\n" % i
        for i in range(8)
    )
    return (
        b"From: Sender <sender@example.com>\r\n"
        b"To: Recipient <rcpt@example.com>\r\n"
        b"Subject: benchmark message %d\r\n"
        b"Message-ID: <%d.bench@example.com>\r\n"
        b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"\r\n" % (index, index)
    ) + body


def big_message(size: int) -> bytes:
    """``size`` bytes of ASCII text full of bare LFs and lines starting with '.'.

    Lines end in LF (55 %), CRLF (40 %) or a bare CR (5 %); one line in five
    starts with a dot.  A block of about 60 KiB (not a power of two, so the
    256 KiB chunk boundaries fall in different places) is repeated; the last
    byte is an LF.
    """
    rng = random.Random(2024)
    words = [b"lorem", b"ipsum", b"dolor", b"sit", b"amet", b"smtp", b"data", b"x"]
    lines = []
    for _ in range(1000):
        text = b" ".join(rng.choice(words) for _ in range(rng.randrange(2, 14)))
        if rng.random() < 0.2:
            text = b"." + text
        roll = rng.random()
        ending = b"\n" if roll < 0.55 else b"\r\n" if roll < 0.95 else b"\r"
        lines.append(text + ending)
    block = b"".join(lines)
    head = b"From: sender@example.com\r\nTo: rcpt@example.com\r\nSubject: big\r\n\r\n"
    count = -(-(size - len(head)) // len(block))
    return (head + block * count)[: size - 1] + b"\n"


def reference_encode(data: bytes) -> bytes:
    """The plain C-level pass the brief names as the target (no leading-dot fix)."""
    return (
        data.replace(b"\r\n", b"\n")
        .replace(b"\r", b"\n")
        .replace(b"\n.", b"\n..")
        .replace(b"\n", b"\r\n")
    )


# -- smtp-sink ------------------------------------------------------------------------


def _import_postfix_helpers() -> types.ModuleType:
    """``tests._postfix`` imports pytest for its fixture; stub it if absent."""
    try:
        import pytest  # noqa: F401, PLC0415
    except ImportError:
        stub = types.ModuleType("pytest")
        stub.fixture = lambda *a, **k: lambda f: f  # type: ignore[attr-defined]
        stub.fail = lambda *a, **k: None  # type: ignore[attr-defined]
        sys.modules["pytest"] = stub
    from tests import _postfix  # noqa: PLC0415

    return _postfix


def smtp_sink() -> Any:
    """An unstarted ``SmtpSink`` (postfix's C sink on 127.0.0.1, a free port)."""
    return _import_postfix_helpers().SmtpSink()


def sink_binary() -> str:
    return str(_import_postfix_helpers().smtp_sink_path())
