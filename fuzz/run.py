"""Run one harness under atheris, or replay inputs through it without atheris.

Fuzz ``replies`` for ten minutes (new corpus entries and crashes go to a
scratch directory, never into the committed seeds)::

    python fuzz/run.py replies --seconds 600

Replay files (a crash artifact, a seed) through ``check`` and print what fails::

    python fuzz/run.py session --replay /tmp/smtp-fuzz/session/artifacts/crash-*

Arguments after ``--`` go to libFuzzer unchanged (e.g. ``-- -use_value_profile=1``).
``--skip NAME`` turns off a named invariant of the harness (its ``SKIP`` set),
to fuzz past a failure already reported; the seed replay never skips.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz import HARNESSES  # noqa: E402 - needs ROOT on sys.path

SEEDS = ROOT / "fuzz" / "seeds"
DICT = ROOT / "fuzz" / "smtp.dict"


def _replay(name: str, files: list[str]) -> int:
    module = importlib.import_module(f"fuzz.fuzz_{name}")
    failed = 0
    for file in files:
        data = Path(file).read_bytes()
        try:
            module.check(data)
        except Exception:
            failed += 1
            print(f"FAIL {file} ({len(data)} bytes): {data!r}")
            traceback.print_exc()
        else:
            print(f"ok   {file}")
    return 1 if failed else 0


def _fuzz(name: str, seconds: int, workdir: Path, extra: list[str], skip: list[str]) -> int:
    atheris: Any = importlib.import_module("atheris")
    # Instrument the library (not the harness) for coverage: the engine, and
    # for the facade harness the facade and the driver it runs on (twice the
    # coverage signal).  Nothing of them may be imported before this point.
    packages = ["smtp_core", "smtpclient", "transports"] if name == "facade" else ["smtp_core"]
    assert not any(package in sys.modules for package in packages)
    with atheris.instrument_imports(include=packages):
        module = importlib.import_module(f"fuzz.fuzz_{name}")
    check = module.check
    if skip:
        module.SKIP.update(skip)
        print("skipping invariants:", ", ".join(skip), flush=True)
    corpus = workdir / "corpus"
    artifacts = workdir / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0],
        str(corpus),  # new entries are written to the first directory only
        str(SEEDS / name),
        f"-max_total_time={seconds}",
        f"-max_len={module.MAX_LEN}",
        f"-artifact_prefix={artifacts}/",
        "-timeout=10",
        "-print_final_stats=1",
        *([f"-dict={DICT}"] if name in ("replies", "session", "facade") else []),
        *extra,
    ]
    print("libFuzzer arguments:", " ".join(argv[1:]), flush=True)

    def test_one_input(data: bytes) -> None:
        check(data)

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and fuzz or replay."""
    args = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in args:
        at = args.index("--")
        args, extra = args[:at], args[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("harness", choices=HARNESSES)
    parser.add_argument("--seconds", type=int, default=600, help="-max_total_time (600)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="scratch directory for corpus/ and artifacts/ (/tmp/smtp-fuzz/HARNESS)",
    )
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="run FILEs through check")
    parser.add_argument(
        "--skip", action="append", default=[], metavar="NAME", help="skip a named invariant"
    )
    ns = parser.parse_args(args)
    if ns.replay:
        return _replay(ns.harness, ns.replay)
    workdir = ns.workdir or Path("/tmp/smtp-fuzz") / ns.harness
    return _fuzz(ns.harness, ns.seconds, workdir, extra, ns.skip)


if __name__ == "__main__":
    sys.exit(main())
