"""The library's layering: `dcgan/` has no import cycle (every import counts, also those inside functions and under
TYPE_CHECKING), never imports the pipeline machinery, and its modules import in a fresh interpreter in dependency
order."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from conftest import REPO

DCGAN = os.path.join(REPO, "dcgan")
FORBIDDEN = ("tfx", "apache_beam", "serving", "components", "pipeline", "kfp")


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _modules() -> dict[str, str]:
    out = {}
    for root, _dirs, files in os.walk(DCGAN):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                out[_module_name(path)] = path
    return out


def _imports(path: str, name: str, modules: dict[str, str]) -> tuple[set[str], set[str]]:
    """(dcgan modules imported, top-level packages imported) by the module at `path`, anywhere in its body."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    inner, outer = set(), set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            if target.split(".")[0] == "dcgan":
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    inner.add(target)
            else:
                outer.add(target.split(".")[0])
    return inner, outer


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = _modules()
    graph, external = {}, {}
    for name, path in modules.items():
        graph[name], external[name] = _imports(path, name, modules)
    return graph, external


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_library_has_no_import_cycle():
    graph, _ = _graph()
    assert "dcgan.run" in graph and "dcgan.train" in graph
    assert _cycles(graph) == [], "import cycles inside dcgan/ (every import counts, also lazy ones)"


def test_the_library_never_imports_the_pipeline_machinery_or_serving():
    _, external = _graph()
    bad = {name: sorted(set(pkgs) & set(FORBIDDEN)) for name, pkgs in external.items() if set(pkgs) & set(FORBIDDEN)}
    assert bad == {}, f"dcgan/ modules importing pipeline machinery or serving: {bad}"


def test_the_layers_point_down():
    """model at the bottom; the run module over it; train / export / metrics / visualize on top, none of them
    reaching into the training loop."""
    graph, _ = _graph()
    assert "dcgan.train" not in graph["dcgan.run"] and "dcgan.run" in graph["dcgan.train"]
    assert not {"dcgan.run", "dcgan.train"} & graph["dcgan.model"]
    for name, deps in graph.items():
        if name not in ("dcgan.train", "dcgan.cli"):
            assert "dcgan.train" not in deps, f"{name} imports the training loop; use dcgan.run"


def test_every_library_module_imports_in_a_fresh_interpreter_in_dependency_order():
    graph, _ = _graph()
    order: list[str] = []
    seen: set[str] = set()

    def visit(v: str) -> None:
        if v in seen:
            return
        seen.add(v)
        for w in sorted(graph[v]):
            visit(w)
        order.append(v)

    for v in sorted(graph):
        visit(v)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok')"
    proc = subprocess.run([sys.executable, "-c", code, *order], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
