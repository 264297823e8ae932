"""The ``smtpclient`` command line (``python -m smtpclient``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from ._cli import run  # noqa: PLC0415 - keeps "import smtpclient" light

    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
