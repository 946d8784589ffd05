"""The ``course`` command's errors: a missing package of the tools' extra and a usage error are one line (exit 2);
anything else is a bug, shown with its traceback (exit 1)."""

from __future__ import annotations

import importlib
import sys

import pytest
from helpers import python_notebook
from nbformat.v4 import new_code_cell

from course_tools import cli, notebooks
from course_tools.cli import USAGE_ERRORS, is_usage_error, main
from course_tools.repository import repository_url


@pytest.fixture
def course(tmp_path, monkeypatch):
    """An empty course folder (a ``solutions/`` folder) to run the command in."""
    (tmp_path / "solutions").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_missing_tools_package_is_one_line_naming_the_extra(course, monkeypatch, capsys):
    # A plain install without the extra: importing nbformat fails, as it would on that machine.
    monkeypatch.setitem(sys.modules, "nbformat", None)
    for name in [name for name in sys.modules if name.startswith("course_tools.") and name != "course_tools.cli"]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["build"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert lines[0].startswith("course build: error: the package 'nbformat' is not installed")
    assert 'pip install "course-utils[tools]"' in lines[0]


def test_the_missing_package_advice_names_the_top_level_package():
    advice = cli.missing_package_advice("nbconvert.preprocessors")
    assert "'nbconvert'" in advice and "preprocessors" not in advice and cli.TOOLS_EXTRA in advice


def test_a_missing_module_of_the_course_itself_is_a_bug(course, monkeypatch, capsys):
    def broken_build(*args, **kwargs):
        importlib.import_module("course_tools.no_such_module")

    monkeypatch.setattr(notebooks, "build", broken_build)
    assert main(["build"]) == 1
    error = capsys.readouterr().err
    assert "Traceback" in error and "course_tools.no_such_module" in error and "bug in the course" in error


def test_a_bug_deep_inside_shows_its_traceback_and_exits_1(course, monkeypatch, capsys):
    def broken_build(*args, **kwargs):
        raise ValueError("an index went wrong deep inside")

    monkeypatch.setattr(notebooks, "build", broken_build)
    assert main(["build"]) == 1
    error = capsys.readouterr().err
    assert "Traceback (most recent call last)" in error and "broken_build" in error
    assert "ValueError: an index went wrong deep inside" in error
    assert _error_lines(error)[-1].startswith("course build: internal error: this is a bug in the course")
    assert _error_lines(error)[-1].endswith(f"{repository_url()}/issues")  # where to report it


@pytest.mark.parametrize("error", [
    notebooks.BuildError("notebooks/01.ipynb was changed: run course build"),
    FileNotFoundError("No folder at photos"),
])
def test_a_usage_error_is_one_line_and_exits_2(course, monkeypatch, capsys, error):
    def refusing_build(*args, **kwargs):
        raise error

    monkeypatch.setattr(notebooks, "build", refusing_build)
    assert main(["build"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert lines == [f"course build: error: {error}"]


def test_a_parameter_value_of_the_wrong_type_is_a_usage_error(course, capsys):
    python_notebook([new_code_cell("EPOCHS: int = 2  # passes", metadata={"tags": ["parameters"]})],
                    course / "solutions", "01_lesson")
    assert main(["run", "-p", "EPOCHS", "many", "--output", "out"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert lines == ["course run: error: Parameter EPOCHS expects int (default 2), got 'many'."]
    assert not (course / "out").exists()


@pytest.mark.parametrize("name", USAGE_ERRORS)
def test_every_usage_error_named_is_an_exception_class_of_the_course(name):
    module, _, class_name = name.rpartition(".")
    kind = getattr(importlib.import_module(module), class_name)
    assert isinstance(kind, type) and issubclass(kind, Exception)
    assert is_usage_error(kind("message"))

    class Narrower(kind):
        pass

    assert is_usage_error(Narrower("message"))


def test_plain_exceptions_are_not_usage_errors_but_os_errors_are():
    assert not is_usage_error(ValueError("x")) and not is_usage_error(RuntimeError("x"))
    assert not is_usage_error(KeyError("x")) and not is_usage_error(TypeError("x"))
    assert is_usage_error(PermissionError("x")) and is_usage_error(FileNotFoundError("x"))


def test_a_device_this_machine_lacks_is_a_usage_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "model.pt"), str(tmp_path), "--device", "no-such-device"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("course predict: error: --device no-such-device:")
