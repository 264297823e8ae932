"""Peak memory of a client against the hostile servers that try to exhaust it (issue 11).

A server that never ends a line, a reply, or an AUTH exchange is an attack on the
client's memory: each face must give up within the engine's bounds (a reply line
of at most ``MAX_REPLY_LINE_LENGTH`` octets, a reply of at most
``MAX_REPLY_LINES`` lines), not buffer what the server sends.  The hostile
servers send up to 64 MiB (``tests.hostile_kit.ENDLESS_CAP``) before they stop
by themselves, so a client that buffered would grow by tens of MiB.

Each measurement is one fresh child process for one face: it imports the face,
runs a benign session (``accepts-everything``, so the code paths and their
imports are warm), then runs the hostile cases one after the other: before
each it resets the process's peak resident set size to the current one
(``/proc/self/clear_refs``), after it reads the peak (``VmHWM``).  The peak's
growth over the RSS before the case is the memory the case cost.  The
hostile server runs in the child too (a thread), so its own buffers are counted:
that only makes the bound stricter.

Run it to print the table (one child per face and case, about a minute)::

    python -m tests.hostile_rss            # every face, each case in its own child
    python -m tests.hostile_rss --faces engine-blocking,smtplib

``tests/test_hostile_rss.py`` runs one child per face over all the cases and
checks the growth stays under :data:`BOUND_KIB`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.hostile_faces import Face

__all__ = ["BASELINE_CASE", "BOUND_KIB", "NAIVE", "WORST_CASES", "measure", "run_child"]

#: The cases that push the most bytes at the client, or make it answer forever.
WORST_CASES = (
    "greeting-endless-line",
    "ehlo-endless-multiline",
    "ehlo-enormous-line",
    "mail-endless-line",
    "auth-challenge-endless-line",
    "auth-challenges-forever",
)
#: The benign session each child runs first, so the baseline is warm.
BASELINE_CASE = "accepts-everything"
#: The most the peak RSS may grow over the RSS before a case: the engine holds
#: at most one reply (256 lines of 2,048 octets, 512 KiB) and a receive buffer,
#: a TLS session its buffers.  Measured on 2026-12-04: at most 924 KiB (the
#: engine on asyncio, an endless AUTH challenge inside implicit TLS).  4 MiB leaves room
#: for the allocator; a client that kept an endless reply grows 64 MiB.
BOUND_KIB = 4 * 1024

ROOT = Path(__file__).resolve().parent.parent

#: A pretend face that keeps every byte the server sends until it stops: what a
#: client without the engine's bounds would do.  It shows the measurement has
#: teeth: the same servers make it grow far past :data:`BOUND_KIB`.
NAIVE = "naive-buffering"


def _status_kib(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` (the peak) of this process, in KiB, from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> None:
    """Make the peak (``VmHWM``) the current RSS again (Linux 4.0+: clear_refs 5).

    Without it, the peak of the warm-up would hide any growth below it.  First
    the C heap gives back what earlier cases freed (glibc's ``malloc_trim``):
    pages freed but kept resident would be reused by the next case unseen (a
    client that buffered 64 MiB in one case showed 4 MiB in the next).
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: growth may hide
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _naive_face() -> Face:
    """:data:`NAIVE` as a face: connect, keep everything until the server goes quiet."""
    import socket

    from tests.hostile_faces import Face, Outcome, Plan
    from tests.hostile_kit import HOST, Certificates

    def run(plan: Plan, port: int, certificates: Certificates) -> Outcome:
        kept = []
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(b"EHLO naive.example\r\n")
            while True:
                try:
                    chunk = sock.recv(1 << 20)
                except TimeoutError:
                    break
                if not chunk:
                    break
                kept.append(chunk)
        return Outcome("delivered" if kept else "closed", detail=f"{sum(map(len, kept))} octets")

    return Face(NAIVE, "naive", run, lambda plan: plan.tls in ("none", "starttls"))


def run_child(face_name: str, case_names: Sequence[str]) -> dict[str, object]:
    """In the child: a warm session, then each case's growth of the peak RSS.

    Returns ``{"baseline": KiB (the RSS after the warm session), "growth": {case:
    KiB}, "kinds": {case: outcome kind}, "capped": [cases whose endless step ran
    to its cap]}``.
    """
    from tests.hostile_cases import CASES
    from tests.hostile_faces import FACES
    from tests.hostile_kit import Certificates, HostileServer

    face = _naive_face() if face_name == NAIVE else next(f for f in FACES if f.name == face_name)
    by_name = {case.name: case for case in CASES}
    growth: dict[str, int] = {}
    kinds: dict[str, str] = {}
    capped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        certificates = Certificates(os.path.join(tmp, "ca.pem"))

        def play(name: str) -> None:
            case = by_name[name]
            implicit = case.implicit_cert if case.plan.tls == "implicit" else None
            with HostileServer(case.script, certificates, implicit_tls=implicit) as server:
                kinds[name] = face.run(case.plan, server.port, certificates).kind
                server.wait(timeout=5.0)
            if server.endless_capped:
                capped.append(name)

        play(BASELINE_CASE)
        gc.collect()
        baseline = _status_kib("VmRSS")
        for name in case_names:
            if face.supports(by_name[name].plan):
                _reset_peak()
                # Each case from the same footing: its peak over the RSS before it.
                before = _status_kib("VmRSS")
                play(name)
                growth[name] = _status_kib("VmHWM") - before
    return {"baseline": baseline, "growth": growth, "kinds": kinds, "capped": capped}


def measure(face_name: str, case_names: Sequence[str], timeout: float = 120.0) -> dict[str, object]:
    """Run :func:`run_child` in a fresh interpreter and return its report."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.hostile_rss", "--child", face_name, *case_names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child for {face_name} failed ({done.returncode}):\n{done.stderr}")
    report: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return report


def _table(faces: Sequence[str]) -> str:
    """One child per face and case: each case's growth alone, in KiB."""
    rows = ["| face | " + " | ".join(WORST_CASES) + " |", "|---|" + "--:|" * len(WORST_CASES)]
    for face in faces:
        cells = []
        for case in WORST_CASES:
            report = measure(face, [case])
            grown = report["growth"]
            assert isinstance(grown, dict)
            if case not in grown:
                cells.append("n/a")
                continue
            growth = int(grown[case])
            capped = case in list(report["capped"])  # type: ignore[call-overload]
            cells.append(f"{growth:,}" + (" (read to the cap!)" if capped else ""))
        rows.append(f"| {face} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``--child FACE CASE...`` (the child's side) or the table for ``--faces``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", metavar="FACE")
    parser.add_argument("--faces", help="comma-separated face names (default: all)")
    parser.add_argument("cases", nargs="*")
    args = parser.parse_args(argv)
    if args.child:
        json.dump(run_child(args.child, args.cases), sys.stdout)
        sys.stdout.write("\n")
        return 0
    from tests.hostile_faces import FACES

    faces = args.faces.split(",") if args.faces else [f.name for f in FACES]
    sys.stdout.write(
        f"Peak RSS growth over a warm baseline ({BASELINE_CASE}), KiB, one child per cell; "
        f"bound {BOUND_KIB:,} KiB\n\n{_table(faces)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
