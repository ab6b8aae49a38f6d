"""The layers of docs/architecture.md, checked on the source: lower layers never import higher ones, the science
cores import nothing of portaflow's orchestration, no import cycles, no private name imported across modules.

Read with the standard library's `ast`, so every import counts for the layers, including those inside functions
(a lazy import is still a dependency) and under `if TYPE_CHECKING:`. Cycles are checked twice: through the
imports that run when a module is imported (with the packages above each target), and through every import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from testlib import ROOT

SRC = ROOT / "src"
PACKAGE = SRC / "portaflow"

LEVEL_0 = ("portaflow", "portaflow.errors", "portaflow.units", "portaflow.commands", "portaflow.hashing",
           "portaflow.gctools", "portaflow.gpuprobe", "portaflow.shipped", "portaflow.safetext", "portaflow.addresses")
"""Helpers every layer may use; they import nothing of portaflow but each other."""

LAYERS: dict[str, int] = {
    **dict.fromkeys(LEVEL_0, 0),
    "portaflow.spec": 1,
    "portaflow.plan": 2,
    "portaflow.containers": 3,
    "portaflow.schedulers": 4,
    "portaflow.engines": 5,
    **dict.fromkeys(("portaflow.driver", "portaflow.preflight", "portaflow.progress", "portaflow.compare", "portaflow.sitecheck",
                     "portaflow.crate", "portaflow.report", "portaflow.exchange"), 6),
    "portaflow.matrix": 7,
    **dict.fromkeys(("portaflow.cli", "portaflow.__main__", "portaflow.cwl_runner"), 8),
}
"""The stack, bottom up: a module may import its own level and the levels below it."""

RUNTIME = "portaflow.runtime"
CORES = "portaflow.cores"
EXAMPLES = "portaflow.examples"
BESIDE: dict[str, tuple[str, ...]] = {
    RUNTIME: (*LEVEL_0, "portaflow.spec", "portaflow.plan", RUNTIME, CORES, EXAMPLES),
    CORES: (*LEVEL_0, CORES),
    EXAMPLES: (*LEVEL_0, EXAMPLES),
}
"""Beside the stack, what each may import. `runtime` runs inside jobs (it may call the cores and examples, never
the orchestration above the plan); `cores` and `examples` are plain libraries a step calls."""

RUNTIME_FROM_LEVEL = LAYERS["portaflow.schedulers"]
"""The levels that may import `runtime` (its contract: environment variable names, labels, the entry point)."""

KNOWN_VIOLATIONS: set[tuple[str, str]] = set()
"""(importer, imported) pairs that break the layers today, in files being rewritten into scheduler adapters; the
test fails when one of them no longer happens, so that it is removed from here. Empty it; never add to it."""

KNOWN_PRIVATE_IMPORTS: set[tuple[str, str]] = set()
"""(importing file, private name imported) pairs, in or into files being rewritten; same rule as above."""

KNOWN_CYCLES: set[frozenset[str]] = set()
"""Groups of modules that import each other through imports inside functions; same rule as above."""


@dataclass(frozen=True)
class Import:
    importer: str  # module name
    path: Path
    line: int
    imported: str  # module name (a package's __init__ counts as the package)
    names: tuple[str, ...]  # names taken from it by `from ... import`
    module_level: bool  # runs when the importer is imported (not in a function, not under TYPE_CHECKING)
    type_only: bool = False  # under TYPE_CHECKING: for annotations only, never run

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, module_level: bool, type_only: bool = False):
    """Every import node under `node`, with whether it runs at import time and whether it is for annotations only."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, module_level, type_only
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, False, type_only)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), False, True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), module_level, type_only)
        else:
            yield from _walk(child, module_level, type_only)


def _resolve(importer: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports_of(name: str, path: Path) -> list[Import]:
    found = []
    for node, module_level, type_only in _walk(ast.parse(path.read_text(), str(path)), True):
        if isinstance(node, ast.Import):
            targets = [(alias.name, ()) for alias in node.names]
        else:
            base = _resolve(name, path, node)
            # `from package import module` imports the module; `from module import name` imports from the module
            submodules = [a.name for a in node.names if f"{base}.{a.name}" in MODULES]
            targets = [(f"{base}.{sub}", ()) for sub in submodules]
            rest = tuple(a.name for a in node.names if a.name not in submodules)
            if rest or not submodules:
                targets.append((base, rest))
        for target, names in targets:
            if target == "portaflow" or target.startswith("portaflow."):
                found.append(Import(name, path, node.lineno, target, names, module_level, type_only))
    return found


IMPORTS: list[Import] = [imp for name, path in MODULES.items() for imp in imports_of(name, path)]


def _owner(name: str, table) -> str | None:
    """The longest entry of `table` that is `name` or a package above it (`portaflow` itself, the package's
    `__init__`, stands for that module only, not for everything under it)."""
    best = None
    for key in table:
        covers = name == key or (key != "portaflow" and name.startswith(key + "."))
        if covers and (best is None or len(key) > len(best)):
            best = key
    return best


def _group(name: str) -> str | None:
    return _owner(name, [*LAYERS, *BESIDE])


def forbidden(imp: Import) -> str | None:
    """Why this import breaks the layers, or None."""
    src, dst = _group(imp.importer), _group(imp.imported)
    if src is None or dst is None:
        return f"{imp.importer if src is None else imp.imported} is in no layer: add it to LAYERS or BESIDE (and docs/architecture.md)"
    if src in BESIDE:
        allowed = BESIDE[src]
        if _owner(imp.imported, allowed) is None:
            return f"{src} may import only {', '.join(allowed)}"
        return None
    if dst == RUNTIME:
        return None if LAYERS[src] >= RUNTIME_FROM_LEVEL else f"{src} (level {LAYERS[src]}) may not import {RUNTIME}"
    if dst in BESIDE:
        return f"{src} may not import {dst}: only runtime, tests and benchmarks call the science cores and examples"
    if LAYERS[dst] > LAYERS[src]:
        return f"{src} (level {LAYERS[src]}) may not import {dst} (level {LAYERS[dst]})"
    return None


def test_every_module_is_in_a_layer():
    missing = sorted(name for name in MODULES if _group(name) is None)
    assert not missing, f"modules in no layer (add them to LAYERS or BESIDE, and to docs/architecture.md): {missing}"


def test_lower_layers_never_import_higher_ones():
    problems, seen = [], set()
    for imp in IMPORTS:
        reason = forbidden(imp)
        if reason is None:
            continue
        pair = (imp.importer, imp.imported)
        seen.add(pair)
        if pair not in KNOWN_VIOLATIONS:
            problems.append(f"{imp.where()}: {imp.importer} imports {imp.imported}: {reason}")
    assert not problems, "imports against docs/architecture.md's layers:\n" + "\n".join(problems)
    fixed = sorted(KNOWN_VIOLATIONS - seen)
    assert not fixed, f"no longer violated, remove from KNOWN_VIOLATIONS: {fixed}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def module_level_edges() -> dict[str, set[str]]:
    """importer -> modules its import runs: the target, and the packages above the target the importer is not in
    (importing `a.b.c` runs `a/__init__` and `a/b/__init__` first)."""
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if not imp.module_level:
            continue
        parts = imp.imported.split(".")
        for i in range(1, len(parts) + 1):
            target = ".".join(parts[:i])
            if target in MODULES and target != imp.importer and not imp.importer.startswith(target + "."):
                edges.setdefault(imp.importer, set()).add(target)
    return edges


def test_no_module_level_import_cycles():
    cycles = _cycles(module_level_edges())
    assert not cycles, "modules that import each other at import time:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_import_cycles_even_through_lazy_imports():
    """An import inside a function only hides a cycle: the two modules still cannot be understood (or moved)
    one without the other. Imports under TYPE_CHECKING are left out: they name a type for annotations (an adapter
    and the RunContext it is given name each other) and never run."""
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.imported in MODULES and imp.imported != imp.importer and not imp.type_only:
            edges.setdefault(imp.importer, set()).add(imp.imported)
    cycles = {frozenset(c) for c in _cycles(edges)}
    new = sorted(sorted(c) for c in cycles - KNOWN_CYCLES)
    assert not new, "modules that import each other (some inside functions):\n" + "\n".join(" <-> ".join(c) for c in new)
    fixed = sorted(sorted(c) for c in KNOWN_CYCLES - cycles)
    assert not fixed, f"no longer a cycle, remove from KNOWN_CYCLES: {fixed}"


def test_no_private_names_imported_across_modules():
    problems, seen = [], set()
    files = [path for folder in (PACKAGE, ROOT / "tests", ROOT / "benchmarks", ROOT / "scripts") for path in folder.rglob("*.py")]
    for path in sorted(files):
        name = module_name(path) if path.is_relative_to(PACKAGE) else ""
        for imp in imports_of(name, path):
            for private in (n for n in imp.names if n.startswith("_") and not n.startswith("__")):
                key = (str(path.relative_to(ROOT)), f"{imp.imported}.{private}")
                seen.add(key)
                if key not in KNOWN_PRIVATE_IMPORTS:
                    problems.append(f"{imp.where()}: imports private {imp.imported}.{private}: make it public or move it")
    assert not problems, "\n".join(problems)
    fixed = sorted(KNOWN_PRIVATE_IMPORTS - seen)
    assert not fixed, f"no longer imported, remove from KNOWN_PRIVATE_IMPORTS: {fixed}"


# The checks themselves, on made-up imports: each must see what it is there to see.

def _imp(importer: str, imported: str) -> Import:
    return Import(importer, PACKAGE / "x.py", 1, imported, (), True)


@pytest.mark.parametrize("importer, imported, allowed", [
    ("portaflow.spec.site", "portaflow.errors", True),
    ("portaflow.spec.site", "portaflow.plan.model", False),
    ("portaflow.plan.planner", "portaflow.engines.base", False),
    ("portaflow.schedulers.slurm", "portaflow.runtime.dask_jobs", True),
    ("portaflow.containers", "portaflow.runtime.call", False),
    ("portaflow.schedulers.slurm", "portaflow.driver", False),
    ("portaflow.driver", "portaflow.preflight", True),
    ("portaflow.matrix", "portaflow.cores.gpu", False),
    ("portaflow.matrix", "portaflow.gpuprobe", True),
    ("portaflow.cores.radio.gpu", "portaflow.gpuprobe", True),
    ("portaflow.cores.hep.reduce", "portaflow.spec.workflow", False),
    ("portaflow.cores.hep.reduce", "portaflow.examples.wordfreq", False),
    ("portaflow.runtime.call", "portaflow.cores.hep.steps", True),
    ("portaflow.runtime.dask_pods", "portaflow.schedulers.kubernetes", False),
    ("portaflow.cli", "portaflow.matrix", True),
    ("portaflow.newthing", "portaflow.errors", False),
])
def test_layer_rule(importer, imported, allowed):
    assert (forbidden(_imp(importer, imported)) is None) == allowed


def test_cycles_are_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_relative_and_type_checking_are_read(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("from typing import TYPE_CHECKING\n"
                    "from portaflow import driver\n"
                    "from .gridding import get_backend\n"
                    "if TYPE_CHECKING:\n    from portaflow.plan.model import Plan\n"
                    "def f():\n    import portaflow.engines.base\n")
    found = {(i.imported, i.names, i.module_level) for i in imports_of("portaflow.cores.radio.steps", path)}
    assert found == {("portaflow.driver", (), True), ("portaflow.cores.radio.gridding", ("get_backend",), True),
                     ("portaflow.plan.model", ("Plan",), False), ("portaflow.engines.base", (), False)}
