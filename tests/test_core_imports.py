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


# smtp_core's own modules import one another one way only: the graph of its
# relative imports has no cycle.  Every import counts, including those under
# ``if TYPE_CHECKING:`` and those nested in functions: moving an import into a
# function hides a cycle from the interpreter, not from the reader.
#
# The layers, bottom to top; a module imports only from layers below its own
# (test_core_layering).  A new module takes the lowest layer that fits.
LAYERS: tuple[tuple[str, ...], ...] = (
    # Import nothing of the engine's.  _commandbase holds BaseCommand and _abnf
    # holds enhanced_status so that the events can sit below the errors.
    ("_abnf", "_commandbase", "_extensions", "_saslprep", "_state", "_timeouts"),
    ("_events",),  # Greeting, Reply, ConnectionClosed
    ("_errors",),  # ReplyError names the events in its annotations
    ("_data", "_replies", "_saslbase", "_validation", "_xtext"),
    ("_commands", "_scram", "_transcript"),
    ("_records", "_sasl"),
    ("_checks",),  # defines TLSPolicy, which _connection re-exports
    ("_connection",),
    ("_procedures",),
    ("pool",),  # the pool's scheduler: decisions on top of the procedures' results
    ("__init__",),
)


def core_imports(source: str, package: str = "smtp_core") -> set[str]:
    """The modules of ``package`` that ``source`` (one of its files) imports anywhere."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:  # from ._x import y, from ._x.y import z
                found.add(node.module.split(".")[0])
            else:  # from . import _x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] == package:  # from smtp_core._x import y, from smtp_core import _x
                found.update(parts[1:2] or [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package and len(parts) > 1:  # import smtp_core._x
                    found.add(parts[1])
    return found


def core_import_graph() -> dict[str, set[str]]:
    """Each module of smtp_core (by file stem) and the modules of smtp_core it imports."""
    modules = {path.stem for path in CORE_FILES}
    return {
        path.stem: core_imports(path.read_text(encoding="utf-8")) & modules for path in CORE_FILES
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle is not None:
            return cycle
    return None


def test_core_imports_have_no_cycle() -> None:
    graph = core_import_graph()
    assert {"_connection", "_errors", "_events"} <= graph.keys()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in smtp_core: " + " -> ".join(cycle or ())


def test_core_layering() -> None:
    graph = core_import_graph()
    layer_of = {module: index for index, layer in enumerate(LAYERS) for module in layer}
    assert sorted(layer_of) == sorted(graph), "LAYERS must list every module once"
    assert sum(map(len, LAYERS)) == len(layer_of), "LAYERS must list every module once"
    upward = sorted(
        f"{module} imports {imported}"
        for module, imports in graph.items()
        for imported in imports
        if layer_of[imported] >= layer_of[module]
    )
    assert not upward, upward


def test_graph_scanner_sees_type_checking_and_nested_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from ._a import x\n"
        "from . import _b, _c\n"
        "from .._d import y\n"
        "from smtp_core._e import z\n"
        "from smtp_core import _f\n"
        "import smtp_core._g\n"
        "import smtp_core\n"
        "if TYPE_CHECKING:\n"
        "    from ._h import T\n"
        "def f():\n"
        "    from ._i.sub import w\n"
    )
    assert core_imports(source) == {"_a", "_b", "_c", "_e", "_f", "_g", "_h", "_i"}


def test_find_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"b"}}) == ["b", "b"]
    assert find_cycle({"a": {"c"}, "b": {"c"}, "c": {"d"}, "d": {"b"}}) == ["c", "d", "b", "c"]
