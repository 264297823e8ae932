"""The whole check, on the oldest and newest supported Python: ruff, mypy, pytest.

Run ``python3 -m nox`` (README command 2 installs postfix first).  pyenv's
interpreters are found by their full paths, so no pyenv shim needs to be active.
"""

from __future__ import annotations

import glob
import os
import shutil

import nox

nox.options.sessions = ["lint", "tests", "smtplib_suite"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

OLDEST, NEWEST = "3.10", "3.13"


def _interpreter(version: str) -> str:
    """The newest pyenv interpreter of ``version``, else ``pythonX.Y`` on PATH."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(
        glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", "python")),
        key=lambda p: [int(x) for x in p.split("/")[-3].split(".") if x.isdigit()],
    )
    return found[-1] if found else shutil.which(f"python{version}") or f"python{version}"


@nox.session(python=_interpreter(NEWEST))
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy --strict on the library and the tests."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "--python-version", "3.10")
    session.run("mypy", "--python-version", "3.13")


@nox.session(python=[_interpreter(OLDEST), _interpreter(NEWEST)])
def tests(session: nox.Session) -> None:
    """pytest under -bb with branch coverage; smtp_core must stay at 100 %."""
    session.install("-e", ".[test]")
    env = {"HYPOTHESIS_PROFILE": "ci" if os.environ.get("CI") else "dev"}
    if session.python == _interpreter(OLDEST):
        # The pool's 10,000 messages per world through postfix take ~4 minutes
        # a Python; the newest runs them all, the oldest 1,000 (the same code).
        env["SMTPCLIENT_POOL_BULK"] = "1000"
    version = session.run(
        "python", "-c", "import platform; print(platform.python_version())", silent=True
    )
    junit = f".nox/junit/{str(version).strip()}.xml"
    session.run(
        "python",
        "-bb",
        "-m",
        "pytest",
        "--cov",
        "--cov-branch",
        "--cov-report=term",
        f"--junitxml={junit}",
        *session.posargs,
        env=env,
    )
    session.run("coverage", "report", "--include=smtp_core/*", "--fail-under=100")


@nox.session(python=False)
def smtplib_suite(session: nox.Session) -> None:
    """CPython's own test_smtplib with smtpclient in place of smtplib, on 3.10 and 3.13.

    The harness (tests/cpython_suite, vendored from the workplace) runs each
    interpreter's own Lib/test/test_smtplib.py; it needs no installation.
    """
    session.run(
        "bash",
        "tests/cpython_smtplib_suite.sh",
        "--json",
        ".nox/junit/smtplib_suite.json",
        "smtpclient",
        _interpreter(OLDEST),
        _interpreter(NEWEST),
        env={"PYTHONPATH": os.getcwd()},
        external=True,
    )
