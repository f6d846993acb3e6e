"""No import circles among the project's modules (issue 36), and none introduced later.

Every import counts: module-level ones, those deferred into a function, and those under
``if TYPE_CHECKING`` -- a deferred import hides a circle from Python, not from a reader. ``from pkg
import name`` depends on the module ``pkg.name`` when it is one, else on ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def modules(root: Path, prefix: str | None) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's __init__) for every .py file under ``root``. ``prefix`` None:
    flat names (benchmarks/: each study's folder is put on sys.path and its modules import each other, and
    shared.py, by file name), one folder level below ``root``, parity/ apart (its own flat namespace)."""
    if prefix is None:
        files = [p for p in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")) if p.parent.name != "parity"]
        names = [p.stem for p in files]
        assert len(set(names)) == len(names), f"two benchmark modules share a name: {sorted(names)}"
        return {p.stem: (p, False) for p in files}
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(([prefix] if prefix else []) + parts)] = (p, is_pkg)
    return out


def import_graph(root: Path, prefix: str | None) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in the file)."""
    mods = modules(root, prefix)
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                subs = {f"{mod}.{a.name}" for a in node.names}
                deps.update(s for s in subs if s in mods)
                if any(s not in mods for s in subs):  # a name defined in mod itself
                    deps.add(mod)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


@pytest.mark.parametrize(
    "root, prefix",
    # benchmarks' scripts and the parity harness's modules import each other by flat names (sys.path)
    [(REPO / "src" / "jeat", "jeat"), (REPO / "benchmarks", None), (REPO / "benchmarks" / "parity", "")],
    ids=["package", "benchmarks", "parity"],
)
def test_no_import_cycles(root, prefix: str | None):
    graph = import_graph(root, prefix)
    assert len(graph) > 10, "the walker found no modules: it would prove nothing"
    assert cycles(graph) == []


def test_the_walker_finds_a_cycle_through_a_deferred_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import a\n")
    (pkg / "sub" / "a.py").write_text("from ..b import thing\n")
    (pkg / "b.py").write_text("thing = 1\n\ndef f():\n    from .sub.a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import y\n")
    (pkg / "d.py").write_text("from .c import z\n")
    assert cycles(import_graph(pkg, "pkg")) == [["pkg.b", "pkg.sub.a"], ["pkg.c", "pkg.d"]]
