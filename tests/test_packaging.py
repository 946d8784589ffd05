"""The project's own set-up: packaging metadata, the conda environment and a cheap top-level import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    declared |= {_requirement_name(r) for r in project["optional-dependencies"]["dev"]}

    listed = _environment_packages((ROOT / "environment.yml").read_text()) - ENVIRONMENT_ONLY

    assert listed == declared, (
        f"environment.yml and pyproject.toml disagree: only in environment.yml {sorted(listed - declared)}, "
        f"only in pyproject.toml {sorted(declared - listed)}"
    )


def test_environment_yml_installs_the_project_itself():
    assert '-e ".[dev]"' in (ROOT / "environment.yml").read_text()


def test_torch_is_not_pinned_in_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        if _requirement_name(requirement) in {"torch", "torchvision"}:
            assert requirement.strip() in {"torch", "torchvision"}, f"{requirement} must stay unpinned"


def test_console_command_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["course"] == "course_tools.cli:main"


def test_importing_the_package_defers_heavy_libraries():
    code = (
        "import sys, course_utils, course_utils.config\n"
        "heavy = [m for m in ('torch', 'torchvision', 'timm', 'matplotlib', 'pandas') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"import course_utils pulled in {result.stdout.strip()}"
