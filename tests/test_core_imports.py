"""smtp_core does no I/O and reads no clock: proven by scanning its own files.

``sys.modules`` proves nothing (socket, time and threading are loaded at
interpreter start), so every import statement of every file is read with
``ast``, including imports nested in functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import smtp_core

FORBIDDEN = {
    "socket",
    "ssl",
    "asyncio",
    "select",
    "selectors",
    "threading",
    "time",
    "logging",
    "trio",
    "anyio",
    "_thread",
    "subprocess",
    "multiprocessing",
    "concurrent",
}
CORE_FILES = sorted(Path(smtp_core.__file__).parent.glob("*.py"))


def imported_modules(source: str) -> set[str]:
    """Top-level names of every module imported anywhere in ``source``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            found.add("__import__")  # dynamic imports would hide from this scan
    return found


def test_core_files_found() -> None:
    names = {path.name for path in CORE_FILES}
    assert {"__init__.py", "_connection.py", "_replies.py", "_data.py"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_no_io_clock_or_thread_imports(path: Path) -> None:
    imported = imported_modules(path.read_text(encoding="utf-8"))
    assert not imported & (FORBIDDEN | {"__import__", "importlib"}), path.name


def test_scanner_sees_nested_and_from_imports() -> None:
    source = "def f():\n    import socket\nfrom time import monotonic\nimport os.path\n"
    assert imported_modules(source) == {"socket", "time", "os"}
