"""The student notebooks run to the end when every exercise is skipped through the line its stub offers.

Each stub's message ends with one line that takes the course package's answer, and says where it goes: in
place of the raise line, or in place of the exercise's whole def/class block. :func:`skip_every_exercise`
follows those words literally, so a skip line that does not work, or a message that puts it in the wrong
place, fails here. The tests marked ``notebooks`` execute the generated ``notebooks/`` in the smoke profile.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import nbformat
import pytest
from helpers import python_notebook
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell

from course_tools.stripper import student_version
from course_utils import config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RAISE = "raise NotImplementedError("
#: The two places a stub's message can send its skip line (course_tools.stripper.stub_message).
INSTEAD_OF_BLOCK = "replace the exercise's whole def/class block by this line"
INSTEAD_OF_RAISE = "replace this raise line by this line"


def _stub_message(line: str) -> str:
    """The message of a stub's ``raise NotImplementedError("...")`` line."""
    text = line.strip()
    assert text.startswith(RAISE) and text.endswith(")"), f"not a stub line: {line!r}"
    return ast.literal_eval(text[len(RAISE):-1])


def _skip_cell(source: str) -> tuple[str, list[str]]:
    """``source`` with each stub replaced as its message says; also the skip lines used."""
    lines = source.splitlines()
    used: list[str] = []
    index = 0
    while index < len(lines):
        if not lines[index].strip().startswith(RAISE):
            index += 1
            continue
        message = _stub_message(lines[index])
        skip_line = message.splitlines()[-1].strip()
        assert "To skip the exercise" in message and skip_line, f"a stub names no skip line: {message!r}"
        used.append(skip_line)
        if INSTEAD_OF_RAISE in message:
            indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
            comment = index - 1 if index and lines[index - 1].strip() == "# YOUR CODE HERE" else index
            lines[comment:index + 1] = [indent + skip_line]
            index = comment + 1
            continue
        assert INSTEAD_OF_BLOCK in message, f"the message does not say where its line goes: {message!r}"
        tree = ast.parse("\n".join(lines))
        block = next((node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                      and node.lineno <= index + 1 <= node.end_lineno), None)
        assert block is not None, f"no def/class block around the stub {message.splitlines()[0]!r}"
        first = min([block.lineno, *(decorator.lineno for decorator in block.decorator_list)]) - 1
        lines[first:block.end_lineno] = [skip_line]
        index = first + 1
    return "\n".join(lines), used


def skip_every_exercise(nb: nbformat.NotebookNode) -> list[str]:
    """Replace every stub of a student notebook in place by its skip line; return the lines used, in order."""
    used: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "code" and RAISE in cell.source:
            cell.source, lines = _skip_cell(cell.source)
            used += lines
    return used


def test_skip_lines_go_where_the_stub_message_says():
    solution = python_notebook([
        new_code_cell("import math"),
        new_code_cell("# Exercise 1: Half\n@(lambda function: function)\ndef half(x):\n    \"\"\"Half of x.\"\"\"\n"
                      "    ### BEGIN SOLUTION\n    # Reference: half = lambda x: x / 2\n    return x / 2\n"
                      "    ### END SOLUTION\n\n\nassert half(4) == 2"),
        new_markdown_cell("### BEGIN SOLUTION\nA written answer.\n### END SOLUTION"),
        new_code_cell("# Exercise 2: Root\nclass Root:\n    def of(self, x):\n        ### BEGIN SOLUTION\n"
                      "        # Reference: Root = type('Root', (), {'of': lambda self, x: math.sqrt(x)})\n"
                      "        return math.sqrt(x)\n        ### END SOLUTION\n\n    def twice(self, x):\n"
                      "        ### BEGIN SOLUTION\n"
                      "        # Reference: Root = type('Root', (), {'of': lambda self, x: math.sqrt(x)})\n"
                      "        return 2 * x\n        ### END SOLUTION\n\n\nassert Root().of(9) == 3"),
        new_code_cell("# Exercise 3: Total\nvalues = [1, 2]\n### BEGIN SOLUTION\n# Reference: total = sum(values)\n"
                      "total = values[0] + values[1]\n### END SOLUTION\nassert total == 3"),
    ])
    student = student_version(solution)
    assert sum(cell.source.count(RAISE) for cell in student.cells) == 4
    used = skip_every_exercise(student)
    # Exercise 2's two stubs sit in one class: its skip line replaces the whole class, the second stub with it
    assert used == ["half = lambda x: x / 2", "Root = type('Root', (), {'of': lambda self, x: math.sqrt(x)})",
                    "total = sum(values)"]
    sources = [cell.source for cell in student.cells if cell.cell_type == "code"]
    assert sources[1] == "# Exercise 1: Half\nhalf = lambda x: x / 2\n\n\nassert half(4) == 2"
    assert sources[3] == "# Exercise 3: Total\nvalues = [1, 2]\ntotal = sum(values)\nassert total == 3"
    namespace: dict = {}
    for source in sources:
        exec(compile(source, "<cell>", "exec"), namespace)  # every cell runs, the asserts included
    assert namespace["total"] == 3


def test_a_stub_without_a_skip_line_is_named():
    with pytest.raises(AssertionError, match="names no skip line"):
        skip_every_exercise(python_notebook([new_code_cell('raise NotImplementedError("Exercise 1: Half")')]))


def run_with_every_exercise_skipped(student: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Execute a copy of ``student`` in ``folder``, every exercise skipped, in the smoke profile; assert that it
    ran to its last cell without an error."""
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(folder / "outputs"))
    monkeypatch.setenv("COURSE_DATA_DIR", os.environ.get("COURSE_DATA_DIR", str(folder / "data")))
    nb = nbformat.read(student, as_version=4)
    assert skip_every_exercise(nb), f"{student.name}: no exercise stub to skip"
    copy = folder / student.name
    nbformat.write(nb, copy)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute()  # a cell that fails raises CellExecutionError, naming the cell and the error
    code = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]
    errors = [output for cell in code for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors, f"{student.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}" if errors else ""
    assert code[-1].get("execution_count") is not None, f"{student.name}: the last cell did not run"
    assert all(cell.get("execution_count") is not None for cell in code), f"{student.name}: not every cell ran"


@pytest.mark.notebooks
@pytest.mark.slow  # five whole lessons: make integration (CI runs it), not make test
@pytest.mark.parametrize("lesson", [lesson for lesson in config.LESSONS if lesson not in config.APPENDIX_LESSONS])
def test_student_notebook_runs_to_the_end_with_every_exercise_skipped(lesson, tmp_path, monkeypatch):
    run_with_every_exercise_skipped(NOTEBOOKS / f"{lesson}.ipynb", tmp_path, monkeypatch)


def _exercise_blocks_not_used_in_their_cell(source: str) -> list[str]:
    """Names of the def/class blocks of a cell that hold a solution region but that the cell never uses after them.

    The stub inside such a block raises only where the block is first used: the ✏️ box would show under a later
    cell, not under the exercise.
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    unused = []
    for position, node in enumerate(tree.body):
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            continue
        if not any(line.strip() == "### BEGIN SOLUTION" for line in lines[node.lineno - 1:node.end_lineno]):
            continue
        later = ast.Module(body=tree.body[position + 1:], type_ignores=[])
        used = {name.id for name in ast.walk(later) if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Load)}
        if node.name not in used:
            unused.append(node.name)
    return unused


def test_a_block_unused_in_its_cell_is_found():
    assert _exercise_blocks_not_used_in_their_cell(
        "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n") == ["f"]
    assert _exercise_blocks_not_used_in_their_cell(
        "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n\ncheck(f)") == []


@pytest.mark.parametrize("lesson", config.LESSONS)
def test_each_exercise_stub_raises_in_its_own_cell(lesson):
    """A def/class exercise is used in its own cell (by its check, say), so an unsolved stub's ✏️ box shows under
    the exercise cell (issue 21: lesson 2's Exercise 3 showed it under the next cell)."""
    nb = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", as_version=4)
    unused = {cell.get("id"): names for cell in nb.cells if cell.cell_type == "code" and "### BEGIN SOLUTION" in
              cell.source for names in [_exercise_blocks_not_used_in_their_cell(cell.source)] if names}
    assert not unused, f"{lesson}: exercise blocks not used in their own cell: {unused}"
