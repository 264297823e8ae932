"""Print the closing line of the CI run: tests run per Python, from pytest's JUnit files."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main() -> int:
    """Print one line of counts per Python; non-zero exit if any test failed."""
    reports = sorted(Path(".nox/junit").glob("*.xml"))
    if not reports:
        print("summary: no test reports found in .nox/junit", file=sys.stderr)
        return 1
    parts, failed = [], 0
    for report in reports:
        suite = ET.parse(report).getroot()  # noqa: S314 - our own pytest's output
        suite = suite if suite.tag == "testsuite" else suite[0]
        tests, fail, err, skip = (
            int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")
        )
        failed += fail + err
        parts.append(
            f"Python {report.stem}: {tests - fail - err - skip} passed, "
            f"{fail + err} failed, {skip} skipped"
        )
    cpython = Path(".nox/junit/smtplib_suite.json")
    if cpython.exists():
        counts = json.loads(cpython.read_text(encoding="utf-8"))
        failed += counts["failed"]
        parts.append(
            f"CPython test_smtplib on smtpclient: {counts['passed']} passed, "
            f"{counts['failed']} failed"
        )
    print("tests run — " + "; ".join(parts))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
