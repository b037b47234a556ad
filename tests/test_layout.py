"""The layout's rules, read from the source with `ast`: no import cycle, one-way arrows, no module over 400 lines.

Every import counts: top-level and function-level ones, relative ones, and `importlib.import_module("...")` string
literals, so a cycle cannot hide behind a lazy import. Migrations are not checked (Django writes their imports).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("outbox", "accounts", "plans", "billing", "fraud", "events", "config")
AREAS = (*PRODUCT, "sandbox")
MAX_LINES = 400


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (the longest known module the import names)
    path: Path
    line: int
    implicit: bool = False  # the package above an imported module, which Python imports first

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.source} -> {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for area in AREAS:
        for path in sorted((ROOT / area).rglob("*.py")):
            if "migrations" in path.relative_to(ROOT).parts:
                continue
            found[_module_name(path)] = path
    return found


def _known(name: str) -> str | None:
    """The longest prefix of a dotted name that is one of our modules (`a.b.func` -> `a.b`)."""
    known = modules()
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = package[: len(package) - (node.level - 1)]
            stem = ".".join([*base, node.module] if node.module else base)
        else:
            stem = node.module or ""
        # `from a import b` imports the module a.b when there is one, else the name b from a.
        return [f"{stem}.{alias.name}" if alias.name != "*" else stem for alias in node.names]
    if isinstance(node, ast.Call):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if called in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return [first.value]
    return []


@cache
def imports() -> tuple[Import, ...]:
    found: dict[tuple[str, str, int], Import] = {}
    known = modules()
    for module, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            for name in _imported_names(node, module, is_package):
                target = _known(name)
                if not target or target == module:
                    continue
                found.setdefault((module, target, node.lineno), Import(module, target, path, node.lineno))
                # Importing a.b.c runs a and a.b first: an arrow to each package above the target, except the
                # importer's own (already being imported when it runs).
                parts = target.split(".")
                for depth in range(1, len(parts)):
                    package = ".".join(parts[:depth])
                    if package in known and not (module == package or module.startswith(package + ".")):
                        above = Import(module, package, path, node.lineno, implicit=True)
                        found.setdefault((module, package, node.lineno), above)
    return tuple(found.values())


def _area(module: str) -> str:
    return module.split(".")[0]


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {module: set() for module in modules()}
    for imp in imports():
        graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def _billing_may_import_fraud(target: str) -> bool:
    # fraud's public services (and its demo seeding service); never its models or the scoring internals.
    if target == "fraud.services.scoring":
        return False
    return target == "fraud.services" or target.startswith("fraud.services.") or target == "fraud.demo"


def _accounts_may_import_fraud(target: str) -> bool:
    # accounts asks fraud one thing, at signup.
    return target in ("fraud.services", "fraud.services.signup")


def arrow_allowed(source: str, target: str) -> bool:
    src, dst = _area(source), _area(target)
    if src == dst or src == "config":
        return True
    if src == "sandbox" or dst == "sandbox":
        return False  # the sandbox is a tool beside the product: no arrow either way
    if src == "outbox":
        return False  # the bottom: every app writes to it, it knows none of them
    if dst == "outbox":
        return True
    if src == "events":
        return dst in ("accounts", "plans")  # the account-facing side of the outbox: nothing imports it
    if src == "plans":
        return False
    if src == "accounts":
        return dst == "plans" or (dst == "fraud" and _accounts_may_import_fraud(target))
    if src == "fraud":
        return dst in ("accounts", "plans")
    if src == "billing":
        return dst in ("accounts", "plans") or (dst == "fraud" and _billing_may_import_fraud(target))
    return False


@pytest.mark.parametrize("area", AREAS)
def test_no_import_cycle(area):
    found = [component for component in cycles() if any(_area(module) == area for module in component)]
    details = []
    for component in found:
        members = set(component)
        arrows = [str(imp) for imp in imports() if imp.source in members and imp.target in members]
        details.append("cycle: " + " <-> ".join(component) + "\n    " + "\n    ".join(arrows))
    assert not found, "\n".join(details)


@pytest.mark.parametrize("area", AREAS)
def test_arrows_between_apps_point_one_way(area):
    ours = [imp for imp in imports() if _area(imp.source) == area and not imp.implicit]
    forbidden = [str(imp) for imp in ours if not arrow_allowed(imp.source, imp.target)]
    assert not forbidden, "forbidden arrow:\n  " + "\n  ".join(forbidden)


@pytest.mark.parametrize("area", AREAS)
def test_no_module_over_400_lines(area):
    too_long = []
    for module, path in modules().items():
        if _area(module) != area:
            continue
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not too_long, f"over {MAX_LINES} lines:\n  " + "\n  ".join(too_long)


def test_the_checker_sees_lazy_and_importlib_imports():
    """The graph holds imports made inside functions and through importlib, or cycles could hide there."""
    assert len(modules()) > 100 and imports()
    tree = ast.parse('def f():\n    from . import b\n    importlib.import_module("accounts.models")\n')
    found = [name for node in ast.walk(tree) for name in _imported_names(node, "accounts.x", False)]
    assert found == ["accounts.b", "accounts.models"]
