"""The layout: the import contracts of ``pyproject.toml`` (course_utils never imports course_tools, no import cycle
inside a package, course_utils in the README's layers) checked by import-linter; what lessons import; ``__all__``.

import-linter reads every import from the source, including those inside functions: an import deferred to call
time is still a dependency.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
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


def lint_imports(folder: Path) -> subprocess.CompletedProcess:
    """Run import-linter's ``lint-imports`` on the course in ``folder`` (its pyproject.toml, its packages)."""
    command = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(command if command.exists() else shutil.which("lint-imports")), "--no-cache"],
                          cwd=folder, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_contracts_catch_imports_inside_functions_up_the_layers_into_the_tools_and_in_a_cycle(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    additions = {
        "course_utils/config.py": "def _late():\n    from course_utils import backbones\n    return backbones\n",
        "course_utils/files.py": "def _tools():\n    import course_tools.badges\n",
        "course_tools/badges.py": "def _late():\n    from course_tools import parameters\n    return parameters\n",
        "course_tools/parameters.py": "from course_tools import badges as _badges\n",
    }
    for name, code in additions.items():
        with open(tmp_path / name, "a", encoding="utf-8") as file:
            file.write("\n\n" + code)
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    report = " ".join(result.stdout.split())
    assert "0 kept, 3 broken" in report
    assert "course_utils.config -> course_utils.backbones" in report
    assert "course_utils.files -> course_tools.badges" in report
    assert "No cycles are allowed in course_tools" in report


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
