"""The package's shape (ARCHITECTURE.md): no import cycle, modules one can read in a sitting, a header on each."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "docparse"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path) -> Iterator[str]:
    """Every docparse module `path` imports, anywhere in it: top level, inside functions, under
    TYPE_CHECKING (a cycle is a cycle to the reader even where Python would survive it)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from docparse.x import y`: y is a module when one is named so, else a name in docparse.x
            named = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [name if name in MODULES else node.module for name in named]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                yield name


GRAPH = {name: set(imported(path)) - {name} for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_back_what_imports_it() -> None:
    assert cycles(GRAPH) == []


def test_the_package_root_is_imported_by_nothing_inside_it() -> None:
    # docparse/__init__.py imports the API lazily; a module importing the root would close a loop through it
    assert sorted(name for name, deps in GRAPH.items() if "docparse" in deps and name != "docparse") == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_reads_in_one_sitting_under_a_one_line_header(name: str) -> None:
    text = MODULES[name].read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES, f"{name} is over {MAX_LINES} lines"
    doc = ast.get_docstring(ast.parse(text))
    assert text.startswith('"""') and doc, f"{name} has no docstring header"
    assert len(doc.splitlines()[0]) >= 20, f"{name}: the header's first line should say what lives there"


def importers(target: str) -> list[str]:
    return sorted(n for n, deps in GRAPH.items() if any(d == target or d.startswith(target + ".") for d in deps))


def test_nothing_imports_the_command_line() -> None:
    # the CLI is the only code that prints and exits: a library module importing it would inherit both
    assert [n for n in importers("docparse.cli") if not n.startswith("docparse.cli") and n != "docparse.__main__"] == []


def test_only_the_entry_points_sit_above_the_pipeline() -> None:
    assert [
        n for n in importers("docparse.pipeline") if n not in ("docparse.api",) and not n.startswith("docparse.cli")
    ] == []
    assert [n for n in importers("docparse.api") if n != "docparse" and not n.startswith("docparse.cli")] == []


def test_every_folder_is_a_package_that_an_install_ships() -> None:
    # setuptools' find_packages skips a folder without __init__.py: a wheel would lack its modules
    folders = {p.parent for p in PACKAGE.rglob("*.py")}
    assert sorted(str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").is_file()) == []
