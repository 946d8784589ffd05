"""``course build`` writes only what it wrote before, and the repository address is data of the repository built.

A student's edited notebook is kept as a backup, notebooks build did not write (Jupyter's ``-Copy1``, a
student's own) are never deleted, the solutions folder is refused as output, and ``--repository`` rewrites
one line of the ``pyproject.toml`` beside ``solutions/``: never Python source, never another checkout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell
from test_notebooks import EXERCISES, lesson_notebook

from course_tools.cli import main
from course_tools.notebooks import GENERATED_KEY, BuildError, build, check, repository_url, set_repository_url

ROOT = Path(__file__).resolve().parents[1]
ADDRESS = "https://github.com/our-school/transfer-course"
PYPROJECT = f'[project]\nname = "course-utils"\n\n[project.urls]\nRepository = "{ADDRESS}"  # the fork\n'


def make_repository(root: Path) -> tuple[Path, Path]:
    """A course repository: pyproject.toml with its address, two solution notebooks, no student notebooks."""
    solutions, notebooks = root / "solutions", root / "notebooks"
    solutions.mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    nbformat.write(lesson_notebook(EXERCISES), str(solutions / "01_demo.ipynb"))
    nbformat.write(lesson_notebook("z = 1"), str(solutions / "02_other.ipynb"))
    return solutions, notebooks


def files_and_digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def answer(notebook: Path, text: str) -> None:
    """What a student does: write an answer in place of the first stub (else below the last cell), and save."""
    nb = nbformat.read(str(notebook), 4)
    stubs = [cell for cell in nb.cells if "raise NotImplementedError" in cell.source]
    if stubs:
        stubs[0].source = stubs[0].source.replace("# YOUR CODE HERE", text, 1)
    else:
        nb.cells[-1].source += "\n" + text
    nbformat.write(nb, str(notebook))


# --------------------------------------------------------------------------------------------------------
# Where build may write
# --------------------------------------------------------------------------------------------------------


def test_build_refuses_the_solutions_folder_as_output(tmp_path, capsys):
    solutions, _ = make_repository(tmp_path)
    before = files_and_digests(solutions)
    (tmp_path / "alias").symlink_to(solutions, target_is_directory=True)
    for output in (solutions, tmp_path / "alias", tmp_path / "solutions" / ".." / "solutions"):
        assert main(["build", "--solutions", str(solutions), "--notebooks", str(output)]) == 2
        err = capsys.readouterr().err
        assert f"--notebooks {output} is the solutions folder" in err and len(err.splitlines()) == 1
    assert files_and_digests(solutions) == before
    assert check(solutions, solutions) == [f"--notebooks {solutions} is the solutions folder {solutions}: the "
                                           "student versions would replace the solutions; write them to another "
                                           "folder (default notebooks)."]


def test_build_refuses_a_link_or_folder_in_place_of_a_student_notebook(tmp_path):
    solutions, notebooks = make_repository(tmp_path)
    notebooks.mkdir()
    elsewhere = tmp_path / "mine.ipynb"
    elsewhere.write_text("my own notes")
    (notebooks / "01_demo.ipynb").symlink_to(elsewhere)
    with pytest.raises(BuildError, match=r"01_demo.ipynb is not a regular file"):
        build(solutions, notebooks)
    assert elsewhere.read_text() == "my own notes" and not (notebooks / "02_other.ipynb").exists()
    (notebooks / "01_demo.ipynb").unlink()
    (notebooks / "01_demo.ipynb").mkdir()
    with pytest.raises(BuildError, match="not a regular file"):
        build(solutions, notebooks)


# --------------------------------------------------------------------------------------------------------
# A student's work is kept
# --------------------------------------------------------------------------------------------------------


def test_a_students_edited_notebook_is_kept_as_a_backup(tmp_path, capsys):
    solutions, notebooks = make_repository(tmp_path)
    build(solutions, notebooks)
    answer(notebooks / "01_demo.ipynb", "padding = kernel_size // 2  # my answer")
    edited = (notebooks / "01_demo.ipynb").read_bytes()
    problems = check(solutions, notebooks)
    assert problems == [f"{notebooks / '01_demo.ipynb'}: changed since course build wrote it (or not written by "
                        "it); `course build` keeps it as 01_demo.backup-<date>-<time>.ipynb, then writes a fresh "
                        "one."]
    capsys.readouterr()

    assert main(["build", "--solutions", str(solutions), "--notebooks", str(notebooks)]) == 0  # check's advice

    (backup,) = notebooks.glob("01_demo.backup-*.ipynb")
    assert backup.read_bytes() == edited  # the answer is safe
    assert "my answer" not in (notebooks / "01_demo.ipynb").read_text()
    out = capsys.readouterr().out
    assert f"{notebooks / '01_demo.ipynb'} was changed since course build wrote it" in out and str(backup) in out
    # The backup is the student's, not the course's: later builds leave it alone, check names it.
    assert build(solutions, notebooks) == [] and backup.read_bytes() == edited
    assert check(solutions, notebooks) == [f"{backup}: not a student notebook of {solutions}; course build leaves "
                                           f"it alone (move it out of {notebooks} before publishing)."]


def test_a_run_notebook_and_a_damaged_one_are_kept_too(tmp_path):
    solutions, notebooks = make_repository(tmp_path)
    build(solutions, notebooks)
    ran = nbformat.read(str(notebooks / "02_other.ipynb"), 4)
    ran.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="a result I want\n")]
    nbformat.write(ran, str(notebooks / "02_other.ipynb"))
    (notebooks / "01_demo.ipynb").write_text('{"cells": [ half a notebook')

    build(solutions, notebooks)

    backups = {path.name.split(".")[0]: path.read_text() for path in notebooks.glob("*.backup-*.ipynb")}
    assert "a result I want" in backups["02_other"] and backups["01_demo"] == '{"cells": [ half a notebook'
    assert check(solutions, notebooks)[:0] == [] and nbformat.read(str(notebooks / "01_demo.ipynb"), 4).cells


def test_an_unchanged_student_notebook_is_updated_in_place(tmp_path):
    solutions, notebooks = make_repository(tmp_path)
    build(solutions, notebooks)
    solution = nbformat.read(str(solutions / "02_other.ipynb"), 4)
    solution.cells.append(new_code_cell("print('new in this version')"))
    nbformat.write(solution, str(solutions / "02_other.ipynb"))

    assert build(solutions, notebooks) == [notebooks / "02_other.ipynb"]  # no backup: nobody changed it

    student = nbformat.read(str(notebooks / "02_other.ipynb"), 4)
    assert student.cells[-1].source == "print('new in this version')"
    assert student.metadata[GENERATED_KEY]["generated_from"] == "02_other.ipynb"
    assert sorted(path.name for path in notebooks.iterdir()) == ["01_demo.ipynb", "02_other.ipynb"]


def test_a_notebook_written_before_builds_recorded_themselves_is_updated_without_a_backup(tmp_path):
    solutions, notebooks = make_repository(tmp_path)
    build(solutions, notebooks)
    for path in notebooks.iterdir():  # as the earlier course build wrote them: no record in the metadata
        nb = nbformat.read(str(path), 4)
        del nb.metadata[GENERATED_KEY]
        nbformat.write(nb, str(path))
    set_repository_url("https://github.com/new-owner/course", solutions)  # the templates change as well

    build(solutions, notebooks)

    assert sorted(path.name for path in notebooks.iterdir()) == ["01_demo.ipynb", "02_other.ipynb"]
    assert check(solutions, notebooks) == []


# --------------------------------------------------------------------------------------------------------
# Nothing build did not write is deleted
# --------------------------------------------------------------------------------------------------------


def test_build_deletes_only_unchanged_notebooks_it_wrote(tmp_path):
    solutions, notebooks = make_repository(tmp_path)
    nbformat.write(lesson_notebook("y = 2"), str(solutions / "03_dropped.ipynb"))
    nbformat.write(lesson_notebook("y = 3"), str(solutions / "04_dropped_but_answered.ipynb"))
    build(solutions, notebooks)
    shutil.copy(notebooks / "01_demo.ipynb", notebooks / "01_demo-Copy1.ipynb")  # Jupyter's "Duplicate"
    nbformat.write(lesson_notebook("my_experiment = 1"), str(notebooks / "my_work.ipynb"))
    answer(notebooks / "04_dropped_but_answered.ipynb", "my_answer = 3")
    (notebooks / "notes.txt").write_text("mine")
    (solutions / "03_dropped.ipynb").unlink()
    (solutions / "04_dropped_but_answered.ipynb").unlink()
    theirs = {name: digest for name, digest in files_and_digests(notebooks).items()
              if name not in ("01_demo.ipynb", "02_other.ipynb", "03_dropped.ipynb")}
    problems = check(solutions, notebooks)
    assert f"{notebooks / '03_dropped.ipynb'}: no solution {solutions / '03_dropped.ipynb'}; `course build` " \
           "removes it (it wrote it, and nobody changed it since)." in problems
    assert sum("course build leaves it alone" in problem for problem in problems) == 3  # Copy1, mine, answered

    changed = build(solutions, notebooks)

    assert changed == [notebooks / "03_dropped.ipynb"] and not (notebooks / "03_dropped.ipynb").exists()
    assert {name: digest for name, digest in files_and_digests(notebooks).items()
            if name not in ("01_demo.ipynb", "02_other.ipynb")} == theirs


# --------------------------------------------------------------------------------------------------------
# The repository address: data of the repository being built
# --------------------------------------------------------------------------------------------------------


def test_the_address_comes_from_the_pyproject_beside_solutions(tmp_path):
    solutions, notebooks = make_repository(tmp_path)
    build(solutions, notebooks)
    for folder in (solutions, notebooks):
        nb = nbformat.read(str(folder / "01_demo.ipynb"), 4)
        assert f'repository="{ADDRESS}"' in nb.cells[1].source
        assert "github/our-school/transfer-course/blob/main/notebooks/01_demo.ipynb" in nb.cells[0].source
    # Solutions outside any repository (no pyproject.toml beside them) take the address of this checkout.
    scratch = tmp_path / "scratch"
    shutil.copytree(solutions, scratch / "solutions")
    build(scratch / "solutions", scratch / "notebooks")
    setup = nbformat.read(str(scratch / "notebooks" / "01_demo.ipynb"), 4).cells[1].source
    assert f'repository="{repository_url(ROOT)}"' in setup and ADDRESS not in setup


def test_build_repository_rewrites_one_line_of_the_pyproject_beside_solutions(tmp_path, monkeypatch):
    solutions, notebooks = make_repository(tmp_path / "course")
    fork = "https://github.com/my-school/tl-course"
    monkeypatch.chdir(tmp_path / "course")  # where a maintainer runs it
    assert main(["build", "--repository", fork + ".git/"]) == 0
    assert (tmp_path / "course" / "pyproject.toml").read_text() == PYPROJECT.replace(ADDRESS, fork)  # comment kept
    for folder in (solutions, notebooks):
        text = (folder / "01_demo.ipynb").read_text()
        assert fork in text and ADDRESS not in text


def test_build_repository_with_solutions_elsewhere_rewrites_the_pyproject_beside_them(tmp_path, monkeypatch):
    solutions, notebooks = make_repository(tmp_path / "course")
    fork = "https://github.com/my-school/tl-course"
    monkeypatch.chdir(tmp_path)  # not the repository: nothing here may change
    assert main(["build", "--solutions", str(solutions), "--notebooks", str(notebooks), "--repository", fork]) == 0
    assert (tmp_path / "course" / "pyproject.toml").read_text() == PYPROJECT.replace(ADDRESS, fork)
    assert fork in (notebooks / "01_demo.ipynb").read_text()


@pytest.mark.parametrize("address", [
    "https://github.com/../..", "https://github.com/owner/..", "https://github.com/owner/a..b",
    "https://gitlab.com/owner/name", "http://github.com/owner/name", "https://github.com/owner",
    'https://github.com/owner/name"; import os', "https://github.com/-owner/name", "https://github.com/o/n/extra",
])
def test_a_repository_address_that_is_not_a_github_repository_is_refused(address, tmp_path, capsys, monkeypatch):
    solutions, notebooks = make_repository(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["build", "--solutions", str(solutions), "--notebooks", str(notebooks),
                 "--repository", address]) == 2
    assert "is not a GitHub repository address" in capsys.readouterr().err
    assert (tmp_path / "pyproject.toml").read_text() == PYPROJECT and not notebooks.exists()


def test_an_address_in_the_pyproject_is_checked_before_it_reaches_a_notebook(tmp_path, capsys):
    solutions, notebooks = make_repository(tmp_path)
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.replace(ADDRESS, 'https://github.com/a/b\\"); import os #'))
    assert main(["build", "--solutions", str(solutions), "--notebooks", str(notebooks)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'pyproject.toml'}" in err and len(err.splitlines()) == 1 and not notebooks.exists()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"has no single 'Repository = .*' line under \[project.urls\]"):
        build(solutions, notebooks)


def test_a_clone_built_with_the_course_imported_from_another_checkout_leaves_that_checkout_alone(tmp_path):
    other = tmp_path / "other-checkout"  # where the course package is imported from
    for name in ("course_utils", "course_tools"):
        shutil.copytree(ROOT / name, other / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", other / "pyproject.toml")
    clone = tmp_path / "clone"  # the repository being built
    solutions, notebooks = make_repository(clone)
    before = files_and_digests(other)
    fork = "https://github.com/my-fork/transfer-course"
    # Python's own bytecode cache is not a change to that checkout's files: left out, whatever the caller's setting
    environment = {**os.environ, "PYTHONPATH": str(other), "PYTHONDONTWRITEBYTECODE": "1"}
    script = ("import course_tools, sys; from course_tools.cli import main; print(course_tools.__file__); "
              f"sys.exit(main(['build', '--repository', {fork!r}]))")

    result = subprocess.run([sys.executable, "-c", script], cwd=clone, env=environment, capture_output=True,
                            text=True, timeout=300)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(other / "course_tools"))  # the other checkout's code ran
    assert files_and_digests(other) == before  # ... and that checkout is untouched
    assert f'Repository = "{fork}"' in (clone / "pyproject.toml").read_text()
    assert fork in (notebooks / "01_demo.ipynb").read_text() and fork in (solutions / "02_other.ipynb").read_text()
    assert not list(clone.rglob("*.py"))


def test_markdown_and_set_up_cells_carry_nothing_but_the_checked_address(tmp_path):
    solutions, notebooks = make_repository(tmp_path)
    solution = nbformat.read(str(solutions / "02_other.ipynb"), 4)
    solution.cells.insert(4, new_markdown_cell("Read more at https://example.org"))
    nbformat.write(solution, str(solutions / "02_other.ipynb"))
    build(solutions, notebooks)
    source = nbformat.read(str(notebooks / "02_other.ipynb"), 4).cells[1].source
    compile(source, "<setup>", "exec")
    assert source.count(ADDRESS) == 1
