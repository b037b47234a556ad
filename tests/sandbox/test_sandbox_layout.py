"""The sandbox layout rules, read with ``ast``: no import cycle, no product app, no module over 400 lines.

Every import counts: top-level and inside functions, ``from . import x``, and the string given to
``importlib.import_module("...")``. An import of a package counts as an import of its ``__init__``;
``from package import name`` counts as an import of ``package.name`` when that is a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

SANDBOX = Path(__file__).resolve().parents[2] / "sandbox"
PRODUCT_APPS = ("accounts", "plans", "billing", "fraud", "config")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(SANDBOX.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SANDBOX.rglob("*.py"))}


def imported_names(path: Path, name: str) -> set[str]:
    """Every module name ``path`` (module ``name``) imports, absolute."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {}
    for name, path in known.items():
        edges[name] = {imported for imported in imported_names(path, name) if imported in known and imported != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_the_sandbox():
    assert cycles(graph()) == []


def test_the_sandbox_imports_no_product_app():
    offending = {
        name: sorted(imported for imported in imported_names(path, name) if imported.split(".")[0] in PRODUCT_APPS)
        for name, path in modules().items()
    }
    assert {name: found for name, found in offending.items() if found} == {}


def test_no_sandbox_module_is_over_400_lines():
    lengths = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_the_checker_sees_function_level_and_importlib_imports(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text(
        "import importlib\n"
        "def f():\n"
        "    from sandbox.core import store\n"
        "    return importlib.import_module('sandbox.billing.clock')\n"
    )
    assert {"sandbox.core", "sandbox.core.store", "sandbox.billing.clock"} <= imported_names(source, "probe")
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
