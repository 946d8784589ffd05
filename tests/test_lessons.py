"""The lessons themselves: solutions executed, student notebooks in sync, leak-free, and runnable to their first stub.

Each solution notebook executes once per test session, through ``course run --profile smoke`` (the
``course_run`` fixture in conftest.py); the tests marked ``notebooks`` read what that run left. The student
notebooks (a different notebook: stubs instead of solutions) execute up to their first stub.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_tools import notebooks
from course_utils import config

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"
REQUIRED_PARAMETERS = (
    "PROFILE", "DATASET", "ARCH", "EPOCHS", "BATCH_SIZE", "IMAGE_SIZE", "SEED", "DATA_DIR", "OUTPUT_DIR",
)


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_every_lesson_has_a_solution_and_a_student_notebook():
    for lesson in config.LESSONS:
        assert (SOLUTIONS / f"{lesson}.ipynb").is_file(), f"solutions/{lesson}.ipynb is missing"
        assert (NOTEBOOKS / f"{lesson}.ipynb").is_file(), f"notebooks/{lesson}.ipynb is missing: run `course build`"


def test_student_notebooks_are_in_sync_and_leak_no_solution():
    problems = notebooks.check(SOLUTIONS, NOTEBOOKS)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("lesson", config.LESSONS)
def test_solution_notebook_follows_the_contract(lesson):
    nb = nbformat.read(SOLUTIONS / f"{lesson}.ipynb", as_version=4)
    tags = [tag for cell in nb.cells for tag in cell.metadata.get("tags", [])]
    for tag in ("setup", "badges", "parameters"):
        assert tags.count(tag) == 1, f"{lesson}: expected one cell tagged {tag!r}, found {tags.count(tag)}"

    parameters = {p.name: p for p in notebooks.read_parameters(SOLUTIONS / f"{lesson}.ipynb")}
    for name in REQUIRED_PARAMETERS:
        assert name in parameters, f"{lesson}: parameter {name} is missing"
        assert parameters[name].help.strip(), f"{lesson}: parameter {name} has no `# help` comment"

    exercises = [
        line for cell in _code_cells(nb) for line in cell.source.splitlines()
        if re.match(r"\s*#\s*Exercise\s+\d+\s*:", line)
    ]
    if lesson in config.APPENDIX_LESSONS:
        assert not exercises, f"{lesson}: an appendix without exercises, yet it has {exercises}"
    else:
        assert len(exercises) >= 3, f"{lesson}: {len(exercises)} exercises, the course asks for at least three"


@pytest.mark.parametrize("lesson", config.LESSONS)
def test_solution_notebook_is_executed_with_outputs_kept(lesson):
    nb = nbformat.read(SOLUTIONS / f"{lesson}.ipynb", as_version=4)
    code = [cell for cell in _code_cells(nb) if cell.source.strip()]
    unexecuted = [i for i, cell in enumerate(code) if cell.get("execution_count") is None]
    assert not unexecuted, f"{lesson}: code cells {unexecuted} have not been executed"
    errors = [o for cell in code for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{lesson}: the executed solution holds an error output"


@pytest.mark.notebooks
@pytest.mark.parametrize("lesson", [lesson for lesson in config.LESSONS if lesson not in config.APPENDIX_LESSONS])
def test_student_notebook_runs_up_to_its_first_exercise_stub(lesson, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("COURSE_DATA_DIR", os.environ.get("COURSE_DATA_DIR", str(tmp_path / "data")))
    nb = nbformat.read(NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
    first_stub = next(
        i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and "raise NotImplementedError(" in cell.source
    )
    raise_line = next(line.strip() for line in nb.cells[first_stub].source.splitlines()
                      if line.strip().startswith("raise NotImplementedError("))
    message = ast.literal_eval(raise_line[len("raise NotImplementedError("):-1])
    assert message.startswith("Exercise 1: "), f"{lesson}: the first stub is not Exercise 1"
    assert "To skip the exercise" in message, f"{lesson}: the first stub names no line that skips it"

    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    with pytest.raises(CellExecutionError) as raised:
        client.execute()

    failed = [
        i for i, cell in enumerate(nb.cells)
        if any(o.get("output_type") == "error" for o in cell.get("outputs", []))
    ]
    assert failed == [first_stub], f"{lesson}: cells {failed} failed, expected only the first stub {first_stub}"
    assert raised.value.ename == "NotImplementedError"
    assert message.splitlines()[0] in raised.value.evalue
    # the error output shows the message alone (environment.start_lesson's handler), not a traceback
    error = next(o for o in nb.cells[first_stub].outputs if o.get("output_type") == "error")
    shown = "\n".join(error["traceback"])
    assert shown.startswith("✏️ Exercise 1: ") and "Traceback" not in shown and "File " not in shown


def _report_rows(report: str) -> dict[str, list[str]]:
    """``{lesson: [status, profile, data set, backbone, key metrics, wall time]}`` from report.md's table."""
    rows = {}
    for line in report.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in config.LESSONS:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.notebooks
def test_course_run_passes_every_lesson_and_reports_each(course_run):
    report_file = course_run.output / "report.md"
    assert report_file.is_file(), f"course run (exit {course_run.exit_code}) wrote no report; log: {course_run.log}"
    report = report_file.read_text()
    assert course_run.exit_code == 0, f"{report}\nlog: {course_run.log}"
    rows = _report_rows(report)
    assert list(rows) == list(config.LESSONS)
    for lesson, (status, profile, dataset, arch, metrics, wall_time) in rows.items():
        assert (status, profile) == ("passed", "smoke"), f"{lesson}: {rows[lesson]}"
        expected = config.resolve("smoke", lesson=lesson)["dataset"]  # lesson 5 brings its own practice folder
        assert dataset == expected and arch, f"{lesson}: {rows[lesson]}"
        assert "accuracy" in metrics and wall_time, f"{lesson}: {rows[lesson]}"


@pytest.mark.notebooks
@pytest.mark.parametrize("lesson", config.LESSONS)
def test_executed_solution_has_no_error_output(course_run, lesson):
    executed = nbformat.read(course_run.output / lesson / f"{lesson}.ipynb", as_version=4)
    code = [cell for cell in _code_cells(executed) if cell.source.strip()]
    assert code and all(cell.get("execution_count") is not None for cell in code), f"{lesson}: not fully run"
    errors = [o for cell in code for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{lesson}: {errors[0].get('ename')}: {errors[0].get('evalue')}" if errors else ""


@pytest.mark.notebooks
@pytest.mark.parametrize("lesson", config.LESSONS)
def test_executed_solution_writes_its_metrics(course_run, lesson):
    from course_utils import results

    metrics = results.read_metrics(course_run.output / lesson)
    missing = [key for key in results.REQUIRED_KEYS if key not in metrics]
    assert not missing, f"{lesson}: metrics.json lacks {missing}"
    assert (metrics["lesson"], metrics["profile"]) == (lesson, "smoke")
    accuracies = {key: value for key, value in metrics.items() if key.endswith("accuracy")}
    assert accuracies and all(0.0 <= value <= 1.0 for value in accuracies.values()), f"{lesson}: {accuracies}"
