"""The project's layering: no import circle among the modules of dcgan/, serving/, components/ and pipeline/ (every
import counts, also those inside functions and under TYPE_CHECKING); the packages import each other only downwards
(dcgan ← serving ← components ← pipeline, with the rules of FORBIDDEN) and serving's rooms likewise (SERVING_ROOMS);
and every module imports in a fresh interpreter in dependency order."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys

import pytest
from conftest import REPO

PACKAGES = ("dcgan", "serving", "components", "pipeline")  # bottom to top

# What each package must never import (a module, or anything below it). pipeline/ may import everything.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "dcgan": ("tfx", "apache_beam", "kfp", "serving", "components", "pipeline"),  # the ML library, usable on its own
    "serving": ("tfx", "apache_beam", "kfp", "components", "pipeline", "dcgan.train"),  # the online side
    "components": ("pipeline",),  # TFX components: thin glue the pipeline assembles
    "pipeline": (),
}

# serving/'s rooms and the rooms each may import besides itself and SERVING_SHARED (docs/architecture.md).
SERVING_ROOMS: dict[str, tuple[str, ...]] = {
    "serving.client": (),
    "serving.model_server": ("serving.client",),  # the infra check queries the server it starts
    "serving.client_cli": ("serving.client", "serving.model_server"),  # `models status --config` reads the config
    "serving.project_cli": ("serving.client",),
    "serving.rollout": ("serving.client", "serving.model_server"),
    "serving.studio": ("serving.client", "serving.rollout"),  # the canary label's name
}
SERVING_SHARED = ("serving", "serving.errors", "serving.tensors", "serving.http_body", "serving.config_store")

# dcgan/directions/, bottom to top: each file imports only those before it (the package's docstring lists them).
DIRECTIONS = ("config", "kinds", "store", "labels", "classifiers", "effect", "grading", "compute", "report")
HEAVY = ("tensorflow", "keras")  # a dcgan.directions file imports these only inside the functions that need them


@dataclasses.dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # a project module, or the dotted name of anything else
    path: str  # file and line of the import statement, relative to the repository
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.target}"


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _modules() -> dict[str, str]:
    out = {}
    for package in PACKAGES:
        for root, _dirs, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    out[_module_name(path)] = path
    return out


def _imports(path: str, name: str, modules: dict[str, str]) -> list[Import]:
    """Every import of the module at `path`, anywhere in its body; a project target is the project module it names
    (`from serving import config` → serving.config), anything else keeps its dotted name."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    rel = os.path.relpath(path, REPO)
    out = []
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
            if target.split(".")[0] in PACKAGES:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target == name:
                    continue
            out.append(Import(name, target, rel, node.lineno))
    return out


def _all_imports() -> tuple[dict[str, str], list[Import]]:
    modules = _modules()
    return modules, [i for name, path in sorted(modules.items()) for i in _imports(path, name, modules)]


def _graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], Import]]:
    """Project module → the project modules it imports; and the first import statement of each edge."""
    modules, imports = _all_imports()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    where: dict[tuple[str, str], Import] = {}
    for i in imports:
        if i.target in modules:
            graph[i.module].add(i.target)
            where.setdefault((i.module, i.target), i)
    return graph, where


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
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
        for w in sorted(graph[v]):
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


def _circle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One shortest import circle through the first module of a strongly connected component (breadth first)."""
    start, members = component[0], set(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in parents:
                    parents[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no circle through {start} in {component}")  # pragma: no cover - Tarjan found one


def _describe_circles(graph: dict[str, set[str]], where: dict[tuple[str, str], Import]) -> list[str]:
    out = []
    for component in _components(graph):
        circle = _circle(graph, component)
        steps = [str(where[a, b]) for a, b in zip(circle, circle[1:])]
        also = f" (modules in this tangle: {', '.join(component)})" if len(component) > len(circle) - 1 else ""
        out.append(" → ".join(circle) + also + "\n      " + "\n      ".join(steps))
    return out


def _matches(target: str, rule: str) -> bool:
    return target == rule or target.startswith(rule + ".")


def _dependency_order(graph: dict[str, set[str]], names: list[str]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(v: str) -> None:
        if v in seen:
            return
        seen.add(v)
        for w in sorted(graph[v]):
            visit(w)
        order.append(v)

    for v in names:
        visit(v)
    return order


# -- the whole project ------------------------------------------------------------------------------------------------
def test_no_import_circle_anywhere_in_the_project():
    graph, where = _graph()
    for known in ("dcgan.run", "dcgan.train", "serving.client", "serving.studio.app", "components.trainer_module",
                  "pipeline.pipeline"):
        assert known in graph, f"the import graph misses {known}: does it read every package?"
    circles = _describe_circles(graph, where)
    assert not circles, "import circles (every import counts, also lazy ones inside functions):\n  " + \
        "\n  ".join(circles)


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_lies_below_them(package):
    _, imports = _all_imports()
    bad = [str(i) for i in imports if i.module.split(".")[0] == package
           and any(_matches(i.target, rule) for rule in FORBIDDEN[package])]
    assert not bad, f"{package}/ must not import {', '.join(FORBIDDEN[package])}:\n  " + "\n  ".join(bad)


def _room(module: str) -> str:
    if module in SERVING_SHARED:
        return "shared"
    rooms = [room for room in SERVING_ROOMS if _matches(module, room)]
    assert rooms, f"{module} is in no room of serving/: add it to SERVING_ROOMS or SERVING_SHARED (and docs)"
    return rooms[0]


def test_serving_rooms_import_only_the_rooms_they_may():
    modules, imports = _all_imports()
    assert {_room(m) for m in modules if m.split(".")[0] == "serving"} == {"shared", *SERVING_ROOMS}
    bad = []
    for i in imports:
        if i.module.split(".")[0] == "serving" and i.target in modules and i.target.split(".")[0] == "serving":
            room, target = _room(i.module), _room(i.target)
            if target not in (room, "shared") and (room == "shared" or target not in SERVING_ROOMS[room]):
                bad.append(f"{i} (room {room} may import {', '.join(SERVING_ROOMS.get(room, ())) or 'no room'})")
    assert not bad, "serving/ rooms importing rooms they may not:\n  " + "\n  ".join(bad)


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_interpreter_in_dependency_order():
    """One interpreter for the whole project (cheap): the packages bottom to top, and every module after the modules
    it imports, so each of dcgan/ is imported before anything above it is loaded."""
    graph, _ = _graph()
    order = _dependency_order(graph, sorted(graph, key=lambda m: (PACKAGES.index(m.split(".")[0]), m)))
    code = ("import importlib, sys, traceback\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except BaseException:\n"
            "        sys.exit(f'importing {name} failed:\\n' + traceback.format_exc())\n"
            "print('ok')")
    proc = subprocess.run([sys.executable, "-c", code, *order], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


# -- inside dcgan/ ----------------------------------------------------------------------------------------------------
def test_the_library_layers_point_down():
    """model at the bottom; the run module over it; train / export / metrics / visualize on top, none of them
    reaching into the training loop."""
    graph, where = _graph()
    assert "dcgan.train" not in graph["dcgan.run"] and "dcgan.run" in graph["dcgan.train"]
    assert not {"dcgan.run", "dcgan.train"} & graph["dcgan.model"]
    for name, deps in graph.items():
        if name.startswith("dcgan.") and name not in ("dcgan.train", "dcgan.cli"):
            assert "dcgan.train" not in deps, f"{where[name, 'dcgan.train']}: the training loop; use dcgan.run"


def test_the_directions_package_layers_point_down():
    """dcgan/directions/ is a package of the files DIRECTIONS names, each importing only the files before it (never
    the package itself, whose __init__ re-exports them all), and none imports TensorFlow or Keras at module level:
    reading a directions file stays light (the studio)."""
    modules, imports = _all_imports()
    assert modules.get("dcgan.directions", "").endswith(os.path.join("directions", "__init__.py")), \
        "dcgan.directions must be a package (dcgan/directions/__init__.py)"
    found = {m for m in modules if m.startswith("dcgan.directions.")}
    assert found == {f"dcgan.directions.{name}" for name in DIRECTIONS}, \
        "dcgan/directions/ holds other files than DIRECTIONS names: place each in the order (and the package docstring)"
    rank = {f"dcgan.directions.{name}": i for i, name in enumerate(DIRECTIONS)}
    bad = [str(i) for i in imports if i.module in rank and _matches(i.target, "dcgan.directions")
           and not (i.target in rank and rank[i.target] < rank[i.module])]
    assert not bad, f"dcgan/directions/ files import only those before them ({' < '.join(DIRECTIONS)}):\n  " + \
        "\n  ".join(bad)
    heavy = []
    for name in ("dcgan.directions", *rank):
        path = modules[name]
        for node in ast.parse(open(path).read(), path).body:  # module level only: not inside functions or classes
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = [node.module or ""]
            else:
                continue
            heavy += [f"{os.path.relpath(path, REPO)}:{node.lineno} imports {t}" for t in targets
                      if any(_matches(t, h) for h in HEAVY)]
    assert not heavy, "dcgan/directions/ imports TensorFlow/Keras at module level:\n  " + "\n  ".join(heavy)
