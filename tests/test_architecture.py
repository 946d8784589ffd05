"""The layout: course_utils (what lessons import) never imports course_tools, and its modules form no cycle.

The imports are read from the source with ``ast`` (nothing is executed), including those inside functions:
an import deferred to call time is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("course_utils", "course_tools")


def module_files(root: Path, package: str) -> dict[str, Path]:
    """``{"course_utils.config": path, ..., "course_utils": path of __init__.py}`` for one package."""
    files = {}
    for path in sorted((root / package).glob("*.py")):
        files[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return files


def imported_modules(path: Path, module: str, known: set[str]) -> set[str]:
    """The modules ``path`` imports anywhere in its code, as dotted names (relative imports resolved).

    ``from package import name`` counts as an import of ``package.name`` when that is a module in ``known``,
    else as an import of ``package``.
    """
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in known else source)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Which modules of ``package`` each of its modules imports (edges inside the package only)."""
    files = module_files(root, package)
    known = set(files)
    return {module: {name for name in imported_modules(path, module, known) if name in known and name != module}
            for module, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None when the graph has none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once all its imports are checked
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def write_package(root: Path, modules: dict[str, str]) -> None:
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    for name, source in modules.items():
        (root / "pkg" / f"{name}.py").write_text(source)


def test_the_walker_sees_function_level_and_relative_imports_and_finds_cycles(tmp_path):
    write_package(tmp_path, {
        "a": "from pkg import b\n",
        "b": "def f():\n    from .c import g\n    return g\n",
        "c": "import os\n\ndef g():\n    import pkg.a\n",
        "d": "from pkg import a, something_in_init\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert graph["pkg.d"] == {"pkg.a", "pkg"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None


def test_course_utils_never_imports_course_tools():
    offenders = {}
    for module, path in module_files(ROOT, "course_utils").items():
        known = set(module_files(ROOT, "course_tools"))
        tools = sorted(name for name in imported_modules(path, module, known)
                       if name == "course_tools" or name.startswith("course_tools."))
        if tools:
            offenders[module] = tools
    assert offenders == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(package):
    graph = import_graph(ROOT, package)
    assert len(graph) > 3  # the walk found the modules
    assert find_cycle(graph) is None


def test_lessons_import_only_course_utils():
    for folder in ("solutions", "notebooks"):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            for cell in nbformat.read(str(path), as_version=4).cells:
                if cell.cell_type != "code":
                    continue
                for line in cell.source.splitlines():
                    words = line.split()
                    assert not (words[:1] in (["import"], ["from"]) and "course_tools" in line), \
                        f"{path.name} imports the maintainers' tools: {line.strip()}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_says_what_is_public(package):
    for module, path in module_files(ROOT, package).items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        declared = [node for node in tree.body if isinstance(node, ast.Assign)
                    and any(isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets)]
        assert declared, f"{module} has no __all__"
        names = ast.literal_eval(declared[0].value)
        defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        defined |= {target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(target, ast.Name)}
        defined |= {alias.asname or alias.name for node in tree.body
                    if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        if path.stem == "__init__":
            defined |= {name.rpartition(".")[2] for name in module_files(ROOT, package)}
        assert set(names) <= defined, f"{module}.__all__ names undefined {sorted(set(names) - defined)}"
