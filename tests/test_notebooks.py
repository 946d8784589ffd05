"""Exercise markers, student versions, build/check, the set-up cell, badges and parameters."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import io
import json
import subprocess
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest
from helpers import python_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

from course_tools.notebooks import (
    MARKDOWN_STUB,
    MarkerError,
    Parameter,
    badges_markdown,
    build,
    check,
    read_parameters,
    repository_url,
    setup_cell_source,
    strip_solutions,
    student_version,
)
from course_utils import __version__

PARAMETERS = (
    "PROFILE = None  # full, offline or smoke\n"
    "EPOCHS: int = 3  # passes over the training set\n"
    'DATASET = "synthetic-signs"  # data set name\n'
    "LEARNING_RATE = 1e-3\n"
    "CLASSES = [\n    'stop',\n    'give_way',\n]  # classes to keep\n"
)

EXERCISES = (
    "# Exercise 1: Same padding\n"
    "def same_padding(kernel_size):\n"
    "    if kernel_size % 2 == 0:\n"
    "        ### BEGIN SOLUTION\n"
    "        raise ValueError('odd kernels only')\n"
    "        ### END SOLUTION\n"
    "    ### BEGIN SOLUTION\n"
    "    secret_padding = kernel_size // 2\n"
    "    return secret_padding\n"
    "    ### END SOLUTION\n"
    "\n"
    "# Exercise 2: Channels\n"
    "### BEGIN SOLUTION\n"
    "channels_secret = 3\n"
    "### END SOLUTION\n"
    "print(channels_secret)"
)


def lesson_notebook(*code: str) -> nbformat.NotebookNode:
    """A small solution notebook: badges, set-up, parameters and the given code cells, with outputs."""
    nb = python_notebook([
        new_markdown_cell("old badges", metadata={"tags": ["badges"]}),
        new_code_cell("print('old set-up')", metadata={"tags": ["setup"]}),
        new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        new_markdown_cell("### Exercise 1\nWrite `same_padding`."),
    ])
    for number, source in enumerate(code, start=1):
        timing = {"iopub.status.idle": "2024-01-01T00:00:00Z"}
        cell = new_code_cell(source, execution_count=number, metadata={"execution": timing, "scrolled": True})
        cell.outputs = [new_output("stream", name="stdout", text="hello\n")]
        nb.cells.append(cell)
    nb.metadata["papermill"] = {"duration": 1.0}
    return nb


def test_strip_solutions_keeps_indentation_and_replaces_every_region():
    stripped = strip_solutions(EXERCISES, "Exercise 7: Padding")
    lines = stripped.splitlines()
    assert '        raise NotImplementedError("Exercise 7: Padding")' in lines
    assert '    raise NotImplementedError("Exercise 7: Padding")' in lines
    assert 'raise NotImplementedError("Exercise 7: Padding")' in lines
    for hidden in ("secret_padding", "channels_secret = 3", "odd kernels only", "SOLUTION"):
        assert hidden not in stripped
    assert lines[-1] == "print(channels_secret)"  # code after the last region is kept, no newline added
    compile(stripped, "<stub>", "exec")


def test_student_version_numbers_exercises_and_names_them():
    solution = lesson_notebook(EXERCISES,
                               "# Exercise 3: Head\n### BEGIN SOLUTION\nhead = 1\n### END SOLUTION\n",
                               "### BEGIN SOLUTION\nmore = 2\n### END SOLUTION\n")
    student = student_version(solution)
    sources = [cell.source for cell in student.cells]
    assert sources[4].count('NotImplementedError("Exercise 1: Same padding")') == 2
    assert 'NotImplementedError("Exercise 2: Channels")' in sources[4]
    assert 'NotImplementedError("Exercise 3: Head")' in sources[5]
    # a region in a later cell belongs to the latest exercise above it
    assert sources[6] == '# YOUR CODE HERE\nraise NotImplementedError("Exercise 3: Head")\n'


def test_a_reference_line_lets_the_student_skip_the_exercise():
    source = ("# Exercise 1: Same padding\n"
              "def same_padding(kernel_size):\n"
              "    ### BEGIN SOLUTION\n"
              "    # Reference: same_padding = models.same_padding\n"
              "    return kernel_size // 2\n"
              "    ### END SOLUTION\n"
              "\n"
              "# Exercise 2: Channels\n"
              "### BEGIN SOLUTION\n"
              "# Reference: channels = models.CHANNELS\n"
              "channels = 3\n"
              "### END SOLUTION\n"
              "print(channels)\n")
    student = student_version(lesson_notebook(source))
    code = student.cells[4].source
    compile(code, "<stub>", "exec")
    assert "# Reference" not in code and "return kernel_size // 2" not in code
    raises = [line for line in code.splitlines() if "raise NotImplementedError(" in line]
    messages = [ast.literal_eval(line.strip()[len("raise NotImplementedError("):-1]) for line in raises]
    assert raises[0].startswith("    ") and not raises[1].startswith(" ")
    assert messages[0].startswith("Exercise 1: Same padding: not done yet.")
    assert "whole def/class" in messages[0] and messages[0].endswith("\nsame_padding = models.same_padding")
    assert "replace this raise line" in messages[1] and messages[1].endswith("\nchannels = models.CHANNELS")
    # following the second message: the rest of the cell runs
    skipped = code.replace(raises[1], "channels = 3")
    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(compile(skipped, "<skipped>", "exec"), {})
    assert printed.getvalue() == "3\n"


def test_student_version_clears_outputs_and_keeps_everything_else():
    solution = lesson_notebook(EXERCISES, "x = 1")
    original = json.loads(json.dumps(solution))
    student = student_version(solution)
    assert json.loads(json.dumps(solution)) == original  # the input is left alone
    assert "papermill" not in student.metadata
    assert student.metadata.kernelspec == solution.metadata.kernelspec
    for before, after in zip(solution.cells, student.cells, strict=True):
        assert after.id == before.id and after.cell_type == before.cell_type
        if before.cell_type == "markdown":
            assert after == before
            continue
        assert after.outputs == [] and after.execution_count is None
        assert "execution" not in after.metadata
        assert {k: v for k, v in after.metadata.items()} == {k: v for k, v in before.metadata.items()
                                                             if k != "execution"}
    assert student.cells[5].source == "x = 1"


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("# Exercise 1: A\n### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "nested"),
        ("# Exercise 1: A\nx = 1\n### END SOLUTION\n", "without ### BEGIN SOLUTION"),
        ("# Exercise 1: A\n### BEGIN SOLUTION\nx = 1\n", "has no ### END SOLUTION"),
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "has no '# Exercise N: <title>' comment"),
        ("# Exercise 2: A\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "is exercise 1 in order"),
    ],
)
def test_malformed_markers_name_the_notebook_and_cell(source, words):
    with pytest.raises(MarkerError) as caught:
        student_version(lesson_notebook("y = 0", source), notebook_name="solutions/07_demo.ipynb")
    message = str(caught.value)
    assert "solutions/07_demo.ipynb, cell 5" in message
    assert words in message


def test_marker_error_names_the_exercise():
    source = "# Exercise 1: Same padding\n### BEGIN SOLUTION\nx = 1\n"
    with pytest.raises(MarkerError, match=r"cell 4 \(Exercise 1: Same padding\)"):
        student_version(lesson_notebook(source), notebook_name="nb.ipynb")


MARKDOWN_ANSWER = (
    "**Question.** Why does the frozen backbone train faster?\n"
    "### BEGIN SOLUTION\n"
    "Only the head's weights get gradients: secret markdown answer.\n"
    "\n"
    "The backbone's activations can even be cached.\n"
    "### END SOLUTION\n"
    "1. And with more data?\n"
    "   ### BEGIN SOLUTION\n"
    "   Fine-tuning catches up: second secret.\n"
    "   ### END SOLUTION\n"
    "Next section."
)


def test_markdown_solution_regions_become_one_stub_line_each():
    solution = lesson_notebook("x = 1")
    solution.cells.insert(4, new_markdown_cell(MARKDOWN_ANSWER))
    student = student_version(solution)
    assert student.cells[4].source == (
        "**Question.** Why does the frozen backbone train faster?\n"
        f"{MARKDOWN_STUB}\n"
        "1. And with more data?\n"
        f"   {MARKDOWN_STUB}\n"  # stays inside the list item
        "Next section."
    )
    assert solution.cells[4].source == MARKDOWN_ANSWER  # the input is left alone
    assert student.cells[3] == solution.cells[3]  # markdown without regions is kept as it is


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "nested"),
        ("answer\n### END SOLUTION", "without ### BEGIN SOLUTION"),
        ("### BEGIN SOLUTION\nanswer", "has no ### END SOLUTION"),
    ],
)
def test_malformed_markers_in_markdown_name_the_notebook_and_cell(source, words):
    solution = lesson_notebook("x = 1")
    solution.cells.insert(4, new_markdown_cell(source))
    with pytest.raises(MarkerError) as caught:
        student_version(solution, notebook_name="solutions/07_demo.ipynb")
    assert "solutions/07_demo.ipynb, cell 4" in str(caught.value) and words in str(caught.value)


def test_setup_cell_is_stdlib_python_that_does_nothing_off_colab_and_kaggle(monkeypatch):
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    source = setup_cell_source()
    assert "git+{repository}@{ref}" in source and f'repository="{repository_url()}"' in source
    calls = []
    monkeypatch.setattr("subprocess.run", lambda *args, **kwargs: calls.append(args))
    output = io.StringIO()
    with redirect_stdout(output):
        exec(compile(source, "<setup>", "exec"), {"__name__": "__main__"})
    assert calls == []
    assert "nothing to do" in output.getvalue()


@pytest.mark.parametrize("installed, installs", [(None, True), ("0.0.1", True), (__version__, False)])
def test_setup_cell_installs_on_kaggle_unless_this_version_is_installed(installed, installs, monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setenv("COURSE_KAGGLE_INPUT", str(tmp_path / "input"))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("COURSE_KIT", raising=False)
    calls = []

    def pip(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    def version(name):
        if installed is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr("subprocess.run", pip)
    monkeypatch.setattr("importlib.metadata.version", version)
    with redirect_stdout(io.StringIO()) as output:
        exec(compile(setup_cell_source(), "<setup>", "exec"), {})
    if installs:
        assert calls and calls[0][-1] == f"course-utils @ git+{repository_url()}@v{__version__}"
        assert f"installing the course package {__version__}" in output.getvalue()
    else:
        assert calls == [] and f"the course package {__version__} is already installed" in output.getvalue()


def test_setup_cell_is_the_real_python_file_with_the_course_values_filled_in(monkeypatch, capsys):
    from course_tools import setup_cell_code

    source = setup_cell_source()
    function = inspect.getsource(setup_cell_code._set_up_course)
    definition, body = function.split("\n", 1)
    assert definition == ('def _set_up_course(repository="https://github.com/<owner>/<name>", ref="v<version>", '
                          'version="<version>"):')  # the file's defaults ...
    assert (f'def _set_up_course(repository="{repository_url()}", ref="v{__version__}", version="{__version__}"):\n'
            f"{body}") in source  # ... replaced in the cell, the body copied as it is
    assert source.endswith("\n\n\n_set_up_course()\ndel _set_up_course") and "{{" not in source
    # Imported, the function behaves as the cell does: off Colab and Kaggle it does nothing.
    for name in ("KAGGLE_KERNEL_RUN_TYPE", "COURSE_KIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("subprocess.run", lambda *args, **kwargs: pytest.fail("pip called"))
    setup_cell_code._set_up_course(repository_url(), f"v{__version__}", __version__)
    assert "nothing to do" in capsys.readouterr().out


def test_the_set_up_cell_is_collapsed_in_solutions_and_student_notebooks(tmp_path):
    solutions, notebooks = make_course(tmp_path)
    original = nbformat.read(str(solutions / "02_other.ipynb"), 4)
    original.cells[1].metadata["jupyter"] = {"outputs_hidden": True}
    nbformat.write(original, str(solutions / "02_other.ipynb"))
    build(solutions, notebooks)
    for folder in (solutions, notebooks):
        setup = nbformat.read(str(folder / "01_demo.ipynb"), 4).cells[1]
        assert setup.metadata == {"tags": ["setup"], "jupyter": {"source_hidden": True}}, folder
    setup = nbformat.read(str(notebooks / "02_other.ipynb"), 4).cells[1]
    assert setup.metadata["jupyter"] == {"outputs_hidden": True, "source_hidden": True}  # the rest kept
    assert check(solutions, notebooks) == [] and build(solutions, notebooks) == []

    shown = nbformat.read(str(solutions / "01_demo.ipynb"), 4)
    shown.cells[1].metadata["jupyter"]["source_hidden"] = False
    nbformat.write(shown, str(solutions / "01_demo.ipynb"))
    assert check(solutions, notebooks) == [f"{solutions / '01_demo.ipynb'}: the set-up or badges cell differs from "
                                           "its template, or the header's time from the stored run; run "
                                           "`course build`."]


def test_badges_point_at_the_student_notebook():
    text = badges_markdown("02_feature_extraction")
    repository = repository_url().removeprefix("https://github.com/")
    assert (f"https://colab.research.google.com/github/{repository}/blob/main/notebooks/"
            "02_feature_extraction.ipynb") in text
    assert (f"https://kaggle.com/kernels/welcome?src=https://github.com/{repository}/blob/main/notebooks/"
            "02_feature_extraction.ipynb") in text
    assert "colab-badge.svg" in text and "open-in-kaggle.svg" in text


def make_course(root: Path) -> tuple[Path, Path]:
    solutions, notebooks = root / "solutions", root / "notebooks"
    solutions.mkdir()
    nbformat.write(lesson_notebook(EXERCISES), str(solutions / "01_demo.ipynb"))
    nbformat.write(lesson_notebook("z = 1"), str(solutions / "02_other.ipynb"))
    return solutions, notebooks


def test_build_then_check_round_trip(tmp_path):
    solutions, notebooks = make_course(tmp_path)
    assert len(check(solutions, notebooks)) >= 2  # template cells out of date, student notebooks missing
    nbformat.write(lesson_notebook("z = 9"), str(solutions / "99_gone.ipynb"))
    build(solutions, notebooks)
    (solutions / "99_gone.ipynb").unlink()  # a lesson removed: its student notebook, written by build, goes too
    assert check(solutions, notebooks) == [f"{notebooks / '99_gone.ipynb'}: no solution {solutions / '99_gone.ipynb'}; "
                                           "`course build` removes it (it wrote it, and nobody changed it since)."]

    changed = build(solutions, notebooks)
    assert changed == [notebooks / "99_gone.ipynb"]
    assert sorted(p.name for p in notebooks.iterdir()) == ["01_demo.ipynb", "02_other.ipynb"]
    assert check(solutions, notebooks) == []
    assert build(solutions, notebooks) == []  # nothing left to do, nothing rewritten

    synced = nbformat.read(str(solutions / "01_demo.ipynb"), 4)
    assert synced.cells[0].source == badges_markdown("01_demo")
    assert synced.cells[1].source == setup_cell_source()
    assert synced.cells[4].outputs  # solutions keep their outputs

    synced.cells[4].source += "\nprint('changed')"
    nbformat.write(synced, str(solutions / "01_demo.ipynb"))
    problems = check(solutions, notebooks)
    assert problems == [f"{notebooks / '01_demo.ipynb'}: out of date with {solutions / '01_demo.ipynb'}; "
                        "run `course build`."]
    build(solutions, notebooks)
    assert check(solutions, notebooks) == []


def test_check_reports_leaked_solution_lines(tmp_path):
    solutions, notebooks = make_course(tmp_path)
    build(solutions, notebooks)
    student = nbformat.read(str(notebooks / "01_demo.ipynb"), 4)
    student.cells[4].source += "\n    secret_padding = kernel_size // 2"
    nbformat.write(student, str(notebooks / "01_demo.ipynb"))
    problems = check(solutions, notebooks)
    assert any("leaked" in problem and "secret_padding = kernel_size // 2" in problem for problem in problems)


def test_check_reports_solution_text_leaked_into_student_markdown(tmp_path):
    solutions, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    solution = lesson_notebook("x = 1")
    solution.cells.insert(4, new_markdown_cell(MARKDOWN_ANSWER))
    nbformat.write(solution, str(solutions / "01_a.ipynb"))
    build(solutions, notebooks)
    student = nbformat.read(str(notebooks / "01_a.ipynb"), 4)
    assert "secret" not in student.cells[4].source
    assert check(solutions, notebooks) == []

    student.cells[4].source += "\n\nOnly the head's weights get gradients: secret markdown answer."
    nbformat.write(student, str(notebooks / "01_a.ipynb"))
    problems = check(solutions, notebooks)
    assert any("1 solution line(s) leaked" in problem and "secret markdown answer" in problem
               for problem in problems)


def test_leak_check_ignores_lines_that_also_appear_outside_solutions(tmp_path):
    solutions, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    source = "# Exercise 1: A\ndef f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
    nbformat.write(lesson_notebook(source + "def g():\n    return 1"), str(solutions / "01_a.ipynb"))
    build(solutions, notebooks)
    assert check(solutions, notebooks) == []


def test_check_reports_markers_and_missing_tags(tmp_path):
    solutions, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    nb = lesson_notebook("# Exercise 1: A\n### BEGIN SOLUTION\nx = 1\n")
    nb.cells[1].metadata["tags"] = []
    nbformat.write(nb, str(solutions / "01_bad.ipynb"))
    problems = check(solutions, notebooks)
    assert any("no cell tagged 'setup'" in problem for problem in problems)
    assert any("01_bad.ipynb, cell 4" in problem and "has no ### END SOLUTION" in problem
               for problem in problems)
    with pytest.raises(MarkerError, match="01_bad.ipynb, cell 4"):
        build(solutions, notebooks)


def test_read_parameters_gives_names_types_defaults_and_help_in_order(tmp_path):
    path = tmp_path / "lesson.ipynb"
    nbformat.write(lesson_notebook("x = 1"), str(path))
    parameters = read_parameters(path)
    assert [p.name for p in parameters] == ["PROFILE", "EPOCHS", "DATASET", "LEARNING_RATE", "CLASSES"]
    assert parameters[0] == Parameter("PROFILE", "None", "None", "full, offline or smoke")
    assert parameters[1] == Parameter("EPOCHS", "int", "3", "passes over the training set")
    assert parameters[2].default == '"synthetic-signs"'
    assert parameters[3] == Parameter("LEARNING_RATE", "None", "1e-3", "")
    assert parameters[4].default.replace(" ", "").replace("\n", "") == "['stop','give_way',]"
    assert parameters[4].help == "classes to keep"


def test_read_parameters_of_a_notebook_without_parameters_cell_is_empty(tmp_path):
    nb = lesson_notebook("EPOCHS = 3")
    nb.cells[2].metadata["tags"] = []
    path = tmp_path / "lesson.ipynb"
    nbformat.write(nb, str(path))
    assert read_parameters(path) == []


# --------------------------------------------------------------------------------------------------------
# Answer leaks: markers that are nearly right, answers copied into markdown, metadata and attachments
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["## BEGIN SOLUTION", "### Begin Solution", "### BEGIN SOLUTION (answer)",
                                    "#### BEGIN SOLUTION", "# BEGIN_SOLUTION", "### END SOLUTION (answer)",
                                    "    ### end solution"])
@pytest.mark.parametrize("kind", ["code", "markdown"])
def test_a_nearly_right_marker_is_an_error_naming_notebook_and_cell(marker, kind, tmp_path):
    exact_end = "### END SOLUTION" if "END" not in marker.upper() else "### BEGIN SOLUTION"
    lines = ([marker, "answer = 42", exact_end] if "BEGIN" in marker.upper()
             else [exact_end, "answer = 42", marker])
    source = "\n".join(["# Exercise 1: A", *lines] if kind == "code" else lines)
    solution = lesson_notebook("x = 1")
    solution.cells.insert(4, new_code_cell(source) if kind == "code" else new_markdown_cell(source))
    with pytest.raises(MarkerError, match=r"solutions/07_demo\.ipynb, cell 4.*looks like a solution marker"):
        student_version(solution, notebook_name="solutions/07_demo.ipynb")

    solutions, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    nbformat.write(solution, str(solutions / "07_demo.ipynb"))
    problems = check(solutions, notebooks)
    assert any("07_demo.ipynb, cell 4" in problem and repr(marker.strip()) in problem for problem in problems)
    with pytest.raises(MarkerError):
        build(solutions, notebooks)
    assert not notebooks.exists()  # nothing published


def test_exact_markers_and_words_that_only_mention_them_are_fine():
    solution = lesson_notebook("# Exercise 1: A\n###BEGIN SOLUTION\nanswer = 42\n### END SOLUTION   \n"
                               "print('the solution begins here')  # BEGINNING: solutions vary")
    solution.cells.insert(4, new_markdown_cell("Begin solutions with a plan.\n# Solution notes\n"))
    student = student_version(solution)
    assert "answer = 42" not in student.cells[5].source and "# Solution notes" in student.cells[4].source


def test_cell_metadata_and_attachments_are_cleared_in_the_student_version():
    solution = lesson_notebook("x = 1")
    picture = {"answer.png": {"image/png": "iVBORw0KGgo="}}
    solution.cells.insert(4, new_markdown_cell("![](attachment:answer.png)", attachments=picture,
                                               metadata={"answer": "secret in metadata", "tags": ["hint"],
                                                         "jupyter": {"source_hidden": True, "note": "secret"}}))
    solution.cells[5].metadata.update({"solution": "x = 1 because secret", "editable": False,
                                       "scrolled": "secret"})
    student = student_version(solution)
    assert "attachments" not in student.cells[4] and "secret" not in json.dumps(student)
    assert student.cells[4].metadata == {"tags": ["hint"], "jupyter": {"source_hidden": True}}
    assert student.cells[5].metadata == {"editable": False}
    assert student.cells[2].metadata == {"tags": ["parameters"]}  # what papermill and build need stays


@pytest.mark.parametrize("hint", [
    "Hint: the answer is `secret_padding = kernel_size // 2`.",  # inline code
    "Hint: write secret_padding=kernel_size//2 and you are done.",  # in a sentence, spaces differ
    "```python\n    secret_padding = kernel_size // 2\n```",  # a code block
])
def test_check_finds_solution_lines_copied_into_markdown(hint, tmp_path):
    solutions, notebooks = make_course(tmp_path)
    solution = nbformat.read(str(solutions / "01_demo.ipynb"), 4)
    solution.cells[3].source += "\n\n" + hint
    nbformat.write(solution, str(solutions / "01_demo.ipynb"))

    build(solutions, notebooks)  # build copies markdown outside solution regions as it is

    problems = check(solutions, notebooks)
    assert f"{notebooks / '01_demo.ipynb'}: 1 solution line(s) leaked, e.g. " \
           "'secret_padding = kernel_size // 2'." in problems


def test_markdown_tagged_as_a_hint_and_code_lines_public_elsewhere_are_not_leaks(tmp_path):
    solutions, notebooks = make_course(tmp_path)
    solution = nbformat.read(str(solutions / "01_demo.ipynb"), 4)
    solution.cells.insert(4, new_markdown_cell("Steps: `secret_padding = kernel_size // 2`, then return it.",
                                               metadata={"tags": ["solution-hint"]}))
    # A line of a solution region that the notebook also shows as code outside the regions is public.
    solution.cells.append(new_code_cell("def padding_again(secret_padding):\n    return secret_padding"))
    solution.cells.append(new_markdown_cell("`padding_again` ends with `return secret_padding`."))
    nbformat.write(solution, str(solutions / "01_demo.ipynb"))
    build(solutions, notebooks)
    assert check(solutions, notebooks) == []

    solution.cells[4].metadata["tags"] = []  # the same text, not declared a hint: a leak
    nbformat.write(solution, str(solutions / "01_demo.ipynb"))
    build(solutions, notebooks)
    assert any("solution line(s) leaked" in problem for problem in check(solutions, notebooks))
