"""The project's own set-up: packaging metadata, the conda environment and a cheap top-level import."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]

# conda-forge names that differ from the PyPI names used in pyproject.toml
CONDA_TO_PYPI = {"pytorch": "torch"}
# packages environment.yml needs that are not dependencies of the course itself
ENVIRONMENT_ONLY = {"python", "pip"}


def _requirement_name(requirement: str) -> str:
    for separator in "<>=!~[; ":
        requirement = requirement.split(separator)[0]
    return requirement.strip().lower()


def _environment_packages(text: str) -> set[str]:
    """The package names listed in environment.yml, conda and pip sections together."""
    names: set[str] = set()
    in_dependencies = False
    for raw in text.splitlines():
        line = raw.split("#")[0].rstrip()
        if not line.strip():
            continue
        if not raw.startswith(" "):
            in_dependencies = line.startswith("dependencies:")
            continue
        item = line.strip()
        if in_dependencies and item.startswith("- ") and not item.endswith(":"):
            entry = item[2:].strip()
            if entry.startswith("-e") or entry.startswith("."):
                continue  # the editable install of this project itself
            name = _requirement_name(entry)
            names.add(CONDA_TO_PYPI.get(name, name))
    return names


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _extra(project: dict, extra: str) -> set[str]:
    """The package names an extra installs, with the project's own extras it names (``course-utils[tools]``)
    expanded."""
    names: set[str] = set()
    for requirement in project["optional-dependencies"][extra]:
        name = _requirement_name(requirement)
        if name == project["name"]:
            for included in requirement.partition("[")[2].rstrip("]").split(","):
                names |= _extra(project, included.strip())
        else:
            names.add(name)
    return names


def _normalised(name: str) -> str:
    return name.lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = _project()
    declared = {_requirement_name(r) for r in project["dependencies"]} | _extra(project, "dev")

    listed = _environment_packages((ROOT / "environment.yml").read_text()) - ENVIRONMENT_ONLY

    assert listed == declared, (
        f"environment.yml and pyproject.toml disagree: only in environment.yml {sorted(listed - declared)}, "
        f"only in pyproject.toml {sorted(declared - listed)}"
    )


def test_environment_yml_installs_the_project_itself():
    assert '-e ".[dev]"' in (ROOT / "environment.yml").read_text()


def test_torch_is_not_pinned_in_the_package():
    for requirement in _project()["dependencies"]:
        if _requirement_name(requirement) in {"torch", "torchvision"}:
            assert requirement.strip() in {"torch", "torchvision"}, f"{requirement} must stay unpinned"


def test_the_declared_console_command_runs_the_course_command(capsys):
    module_name, _, function_name = _project()["scripts"]["course"].partition(":")
    command = getattr(importlib.import_module(module_name), function_name)
    with pytest.raises(SystemExit) as stopped:
        command(["--help"])
    assert stopped.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: course ") and all(name in shown for name in ("build", "check", "run", "predict"))


def _third_party_imports(package: str) -> set[str]:
    """The top-level modules outside the standard library and the course that ``package`` imports anywhere."""
    found: set[str] = set()
    for path in sorted((ROOT / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names
            and name not in ("course_utils", "course_tools", "__future__")}


def test_the_tools_extra_installs_every_package_the_course_command_imports():
    project = _project()
    declared = {_normalised(_requirement_name(r)) for r in project["dependencies"]}
    declared |= {_normalised(name) for name in _extra(project, "tools")}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module in _third_party_imports("course_tools"):
        names = {_normalised(name) for name in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = sorted(names)
    assert missing == {}, f"course_tools imports packages that neither the base nor the tools extra installs: {missing}"


def test_the_dev_extra_includes_the_tools():
    project = _project()
    assert _extra(project, "tools") <= _extra(project, "dev")


def test_importing_the_package_defers_heavy_libraries():
    code = (
        "import sys, course_utils, course_utils.config\n"
        "heavy = [m for m in ('torch', 'torchvision', 'timm', 'matplotlib', 'pandas') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"import course_utils pulled in {result.stdout.strip()}"
