"""The header's time comes from the stored run: ``course build`` writes it from the cells' recorded times."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_tools.header_time import stored_run_seconds, sync_time_line
from course_tools.notebooks import build, check

HEADER = ("# Lesson 9\n\n**Time:** measured by hand on some day while other jobs ran: 241 s (an idle machine is "
          "faster). A busy laptop takes longer; the results record `seconds`.\n\n**Next:** lesson 10.")


def timed(source: str, start: str, end: str) -> nbformat.NotebookNode:
    return new_code_cell(source, metadata={"execution": {"iopub.execute_input": start, "shell.execute_reply": end}})


def lesson(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell(HEADER), *cells])


def test_the_first_sentence_is_the_stored_run_and_the_rest_of_the_paragraph_stays():
    nb = lesson(timed("a = 1", "2026-12-02T10:00:00.000000Z", "2026-12-02T10:00:01.500000Z"),
                new_code_cell("print('not run')"),  # no recorded times: ignored
                timed("b = 2", "2026-12-02T10:01:40.000000Z", "2026-12-02T10:02:04.400000Z"))
    assert stored_run_seconds(nb) == 124.4
    assert sync_time_line(nb)
    header = nb.cells[0].source
    assert "took 2 min 4 s with the `offline` profile" in header and "241 s" not in header
    assert "A busy laptop takes longer; the results record `seconds`.\n\n**Next:** lesson 10." in header
    assert not sync_time_line(nb)  # a second build changes nothing


def test_a_notebook_without_a_stored_run_keeps_its_header():
    nb = lesson(new_code_cell("a = 1"))
    assert stored_run_seconds(nb) is None and not sync_time_line(nb)
    assert nb.cells[0].source == HEADER


def test_build_writes_the_time_into_solution_and_student_and_check_notices_a_stale_one(tmp_path):
    solutions, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    nb = lesson(timed("a = 1", "2026-12-02T10:00:00Z", "2026-12-02T10:00:42Z"))
    nb.cells.insert(1, new_code_cell("", metadata={"tags": ["setup"]}))
    nb.cells.insert(1, new_markdown_cell("", metadata={"tags": ["badges"]}))
    nb.cells.insert(1, new_code_cell("SEED = 0", metadata={"tags": ["parameters"]}))
    nbformat.write(nb, str(solutions / "09_lesson.ipynb"))
    build(solutions, notebooks, verbose=False)
    for folder in (solutions, notebooks):
        assert "took 42 s" in nbformat.read(str(folder / "09_lesson.ipynb"), 4).cells[0].source
    assert check(solutions, notebooks) == []
    rerun = nbformat.read(str(solutions / "09_lesson.ipynb"), 4)  # executed again: another time
    rerun.cells[-1].metadata["execution"]["shell.execute_reply"] = "2026-12-02T10:01:00Z"
    nbformat.write(rerun, str(solutions / "09_lesson.ipynb"))
    assert any("the header's time from the stored run" in problem for problem in check(solutions, notebooks))
