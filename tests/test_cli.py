"""The ``course`` command: exit codes and what it prints, on small fixture lessons."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from helpers import python_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

from course_tools import prefetch as prefetch_module
from course_tools.cli import main

PARAMETERS = (
    "PROFILE = None  # full, offline or smoke\n"
    "EPOCHS: int = 2  # passes over the training set\n"
    "ARCH = 'resnet18'  # backbone: resnet18, resnet34, resnet50 or efficientnet_lite0\n"
    "OUTPUT_DIR = None  # where results go\n"
)


def write_lesson(folder: Path, name: str, fail: bool = False) -> None:
    """A fixture lesson with badges, set-up and parameters cells, an exercise and metrics.json."""
    python_notebook([
        new_markdown_cell("", metadata={"tags": ["badges"]}),
        new_code_cell("", metadata={"tags": ["setup"]}),
        new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        new_code_cell("# Exercise 1: Double\ndef double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n"
                      "    ### END SOLUTION"),
        new_code_cell("raise RuntimeError('out of memory')" if fail else "assert double(EPOCHS) > EPOCHS"),
        new_code_cell("import json, pathlib\npathlib.Path(OUTPUT_DIR, 'metrics.json').write_text(json.dumps("
                      "{'profile': PROFILE, 'arch': ARCH, 'epochs': EPOCHS, 'val_accuracy': 0.75}))"),
    ], folder, name)


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course folder with a failing lesson 1 and a good lesson 2; the tests run inside it."""
    write_lesson(tmp_path / "solutions", "01_broken", fail=True)
    write_lesson(tmp_path / "solutions", "02_good")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    return tmp_path


def test_build_and_check(course, capsys):
    assert main(["check"]) == 1
    assert "notebooks/01_broken.ipynb: missing" in capsys.readouterr().out
    assert main(["build"]) == 0
    assert "wrote notebooks/02_good.ipynb" in capsys.readouterr().out
    assert main(["check"]) == 0
    assert main(["build"]) == 0 and "Everything up to date." in capsys.readouterr().out

    nb = nbformat.read("solutions/02_good.ipynb", 4)
    nb.cells[3].source = nb.cells[3].source.replace("2 * x", "x + x")  # inside the solution region
    nbformat.write(nb, "solutions/02_good.ipynb")
    assert main(["check"]) == 0  # the student version does not change
    nb.cells[4].source += "\nprint('done')"
    nbformat.write(nb, "solutions/02_good.ipynb")
    capsys.readouterr()
    assert main(["check"]) == 1
    assert "notebooks/02_good.ipynb: out of date" in capsys.readouterr().out


@pytest.mark.notebooks
def test_run_reports_the_failing_lesson_and_cell_and_runs_the_others(course, capsys):
    status = main(["run", "--profile", "smoke", "-p", "EPOCHS", "3", "--output", "out", "--quiet"])
    assert status == 1
    out = capsys.readouterr().out
    assert "1 of 2 lesson(s) passed" in out
    assert ("01_broken: cell 4 (In [4]: raise RuntimeError('out of memory')) failed: RuntimeError: "
            "out of memory") in out
    report = (course / "out" / "report.md").read_text()
    assert "| 02_good | passed | smoke |  | resnet18 | validation accuracy 75.0% |" in report
    assert (course / "out" / "02_good" / "02_good.ipynb").is_file()
    assert (course / "out" / "01_broken" / "01_broken.html").is_file()


@pytest.mark.notebooks
def test_stop_on_failure_skips_the_rest(course, capsys):
    assert main(["run", "1", "02_good", "--profile", "smoke", "--output", "out", "--stop-on-failure",
                 "--quiet"]) == 1
    assert "skipped: not run: an earlier lesson failed" in capsys.readouterr().out
    assert not (course / "out" / "02_good" / "02_good.ipynb").exists()
    assert "| 02_good | skipped |" in (course / "out" / "report.md").read_text()


def test_unknown_lesson_or_parameter_is_refused_before_anything_runs(course, capsys):
    assert main(["run", "--profile", "smoke", "-p", "EPOCS", "3", "--output", "out"]) == 2
    error = capsys.readouterr().err
    assert "Unknown parameter 'EPOCS'" in error and "valid names are ARCH, EPOCHS" in error
    assert main(["run", "9", "--output", "out"]) == 2
    assert "Unknown lesson '9': choose one of 01_broken, 02_good" in capsys.readouterr().err
    assert not (course / "out").exists()


def test_params_shows_each_parameter_and_how_to_set_it(course, capsys):
    assert main(["params", "2"]) == 0
    out = capsys.readouterr().out
    assert "Usage: course run 02_good [-p NAME VALUE]..." in out
    assert "Parameters inferred for notebook 'solutions/02_good.ipynb':" in out
    assert "  EPOCHS: int (default 2)         passes over the training set" in out
    assert "  PROFILE: Unknown type (default None)" in out  # no annotation
    assert "01_broken" not in out


def test_params_of_a_lesson_without_parameters_cell_exits_1(course, capsys):
    nb = nbformat.read("solutions/01_broken.ipynb", 4)
    nb.cells[2].metadata["tags"] = []
    nbformat.write(nb, "solutions/01_broken.ipynb")
    assert main(["params"]) == 1
    out = capsys.readouterr().out
    assert "No cell tagged 'parameters'" in out and "EPOCHS: int (default 2)" in out


def test_prefetch_without_network_fails_with_a_clear_message(course, monkeypatch, capsys):
    monkeypatch.setattr(prefetch_module, "has_network", lambda url, timeout=3.0: False)
    assert main(["prefetch", "--dataset", "pets", "--data-dir", "data"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("course prefetch: error: No network: cannot reach www.robots.ox.ac.uk")
    assert len(error.splitlines()) == 1
    assert main(["prefetch"]) == 2
