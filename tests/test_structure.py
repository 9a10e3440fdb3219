"""The code's shape: the engine's floors, its public face, and what ships."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import nst

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("nst", "handler", "nst_server")  # what the wheel and the model archive carry


def modules(package: str) -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text()) for path in sorted((ROOT / package).glob("*.py"))
    }


def imported(tree: ast.Module, package: str) -> list[tuple[str, list[str]]]:
    """Every import of ``tree`` (``TYPE_CHECKING`` blocks and function bodies included) as
    (module, names): ``from .job import Job`` in ``package`` gives ("nst.job", ["Job"])."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level:
                base = package if not node.module else f"{package}.{node.module}"
                found.append((base, names))
            else:
                found.append((node.module or "", names))
    return found


def engine_graph() -> dict[str, set[str]]:
    """nst's modules -> the nst modules each imports (``from . import x`` counts as x)."""
    trees = modules("nst")
    graph: dict[str, set[str]] = {name: set() for name in trees}
    for name, tree in trees.items():
        for module, names in imported(tree, "nst"):
            if module == "nst":
                graph[name] |= {n for n in names if n in trees}
            elif module.startswith("nst."):
                graph[name].add(module.split(".")[1])
    graph.pop("__init__")
    return {name: deps - {"__init__"} for name, deps in graph.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph``, or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_circle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_in_the_engine():
    graph = engine_graph()
    assert "job" in graph["gate"] and "pyramid" in graph["job"]  # the graph is read
    assert cycle(graph) is None


def test_the_adapter_uses_only_the_engines_public_names():
    exported = set(nst.__all__)
    for name, tree in modules("handler").items():
        for module, names in imported(tree, "handler"):
            if module == "nst" or module.startswith("nst."):
                assert module == "nst", f"handler/{name}.py imports {module}"
                assert set(names) <= exported, f"handler/{name}.py: {set(names) - exported}"


def test_every_exported_name_exists():
    for name in nst.__all__:
        assert hasattr(nst, name), name


def test_no_document_generator_ships():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]  # with subpackages (nst_server.jobs)
    assert {package.split(".")[0] for package in packages} == set(RUNTIME)
    for package in packages:
        folder = package.replace(".", "/")
        for name, tree in modules(folder).items():
            for module, _ in imported(tree, package):
                assert not module.startswith("docgen"), f"{folder}/{name}.py imports {module}"
            text = (ROOT / folder / f"{name}.py").read_text()
            assert '/ "docs"' not in text and "docs/openapi" not in text, f"{folder}/{name}.py"


def names_used(packages: tuple[str, ...]) -> set[str]:
    """Every name and attribute the modules of ``packages`` use or import."""
    used = set()
    for package in packages:
        for tree in modules(package).values():
            for node in ast.walk(tree):
                if isinstance(node, ast.Name):
                    used.add(node.id)
                elif isinstance(node, ast.Attribute):
                    used.add(node.attr)
                elif isinstance(node, ast.alias):
                    used.add(node.name.split(".")[-1])
    return used


def test_every_engine_function_has_a_caller_beyond_the_tests():
    """A function, class or method of nst/ that only tests call looks live but is not."""
    used = names_used((*RUNTIME, "docgen", "bench"))
    unused = []
    for name, tree in modules("nst").items():
        for node in tree.body:
            defs = [node]
            if isinstance(node, ast.ClassDef):
                defs += [n for n in node.body if isinstance(n, ast.FunctionDef)]
            for d in defs:
                is_def = isinstance(d, ast.FunctionDef | ast.ClassDef)
                if is_def and not d.name.startswith("__") and d.name not in used:
                    unused.append(f"nst/{name}.py: {d.name}")
    assert not unused


def test_the_engines_tour_lists_every_module_above_what_it_imports():
    """docs/engine.md walks the modules floor by floor: each after everything it imports."""
    text = (ROOT / "docs/engine.md").read_text()
    tour = text[text.index("## Modules") : text.index("## Making the figure")]
    order: list[str] = []
    for name in re.findall(r"`nst/(\w+)\.py`", tour):
        if name not in order:
            order.append(name)
    graph = engine_graph()
    assert set(order) == set(graph) - {"__main__"}
    for position, name in enumerate(order):
        later = graph[name] & set(order[position + 1 :])
        assert not later, f"nst/{name}.py imports {sorted(later)}, listed after it"


def test_what_runs_beside_the_workers_never_imports_torch(tmp_path):
    """``nst-server start`` with its archive built, ``nst-build-mar --packed-in`` (each pod
    start with a mounted model-config), the probes, and the jobs API with the request parsing
    it checks submissions with: ``import torch`` costs over a second of each start and, in a
    long-lived service, about 0.5 GB resident beside the workers."""
    import subprocess
    import sys

    code = (
        "import sys, nst, nst_server.control, nst_server.healthcheck, nst_server.jobs.service\n"
        "from nst_server import mar\n"
        f"print(mar.main(['--packed-in', {str(tmp_path)!r}]), nst.MAX_STYLES,"
        " sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "8", "[]"]  # no archive there: 1; the limits: no torch
