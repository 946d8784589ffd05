"""Solution notebooks in, student notebooks out: ``course build`` and ``course check``.

A maintainer edits only the notebooks in ``solutions/``. ``course build`` then

1. writes the first sentence of each header's ``**Time:**`` paragraph from the stored run's cell times
   (:mod:`course_tools.header_time`), and rewrites the cell tagged ``setup`` (installs the package on Colab and
   Kaggle; :mod:`course_tools.setup_cell`)
   and the markdown cell tagged ``badges`` ("Open in Colab", "Open in Kaggle"; :mod:`course_tools.badges`),
   with the repository address of the course being built: data, not code, in one place, the ``Repository``
   entry of ``[project.urls]`` in the ``pyproject.toml`` beside ``solutions/`` (:mod:`course_tools.repository`);
2. writes the student version of each notebook to ``notebooks/`` (:mod:`course_tools.stripper`): every
   solution region becomes a stub, outputs, cell metadata (tags and display switches aside) and attachments
   are cleared, everything else is kept. Each student notebook records in its metadata (:data:`GENERATED_KEY`)
   which solution it came from and a digest of what was written, so that a later build overwrites or removes
   only notebooks it wrote and nobody changed since: a changed one is first copied to
   ``<name>.backup-<date>-<time>.ipynb``, files it did not write are never touched.

``course check`` says what ``course build`` would change, and whether any solution line leaked.

The names of the modules above are importable from here too, as before the split.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import nbformat

from course_tools.badges import BADGES_TAG, BRANCH, badges_markdown, notebook_url
from course_tools.header_time import sync_time_line
from course_tools.parameters import PARAMETERS_TAG, Parameter, read_parameters, show_parameters
from course_tools.repository import checked_repository_url, course_root, repository_url, set_repository_url
from course_tools.setup_cell import SETUP_CELL_METADATA, SETUP_TAG, release_tag, setup_cell_source
from course_tools.stripper import (
    BEGIN_MARKER,
    END_MARKER,
    MARKDOWN_STUB,
    REFERENCE_PREFIX,
    STUB_COMMENT,
    MarkerError,
    solution_lines,
    strip_markdown_solutions,
    strip_solutions,
    stub_message,
    student_version,
)
from course_utils.files import atomic_write

__all__ = ["BADGES_TAG", "BEGIN_MARKER", "BRANCH", "END_MARKER", "GENERATED_KEY", "HINT_TAG", "MARKDOWN_STUB",
           "PARAMETERS_TAG", "REFERENCE_PREFIX", "SETUP_TAG", "STUB_COMMENT", "BuildError", "MarkerError", "Parameter",
           "badges_markdown", "build", "check", "checked_repository_url", "content_digest", "leaked_solution_lines",
           "mark_generated", "notebook_url", "read_notebook", "read_parameters", "release_tag", "repository_url",
           "set_repository_url", "setup_cell_source", "show_parameters", "solution_lines", "solution_notebooks",
           "strip_markdown_solutions", "strip_solutions", "stub_message", "student_version", "sync_template_cells",
           "unchanged_since_build", "write_notebook"]

#: Tag of a markdown cell that shows solution lines on purpose (the steps of a loop the exercise assembles):
#: ``course check`` does not call them leaked there.
HINT_TAG = "solution-hint"


class BuildError(ValueError):
    """``course build`` cannot write where it was asked to without destroying something it did not write."""


# --------------------------------------------------------------------------------------------------------
# The cells written from templates, and cell ids
# --------------------------------------------------------------------------------------------------------


def _tagged(nb: nbformat.NotebookNode, tag: str) -> list[Any]:
    return [cell for cell in nb.cells if tag in cell.get("metadata", {}).get("tags", [])]


def sync_template_cells(nb: nbformat.NotebookNode, lesson: str, repository: str | None = None) -> bool:
    """Rewrite the ``setup`` and ``badges`` cells of ``nb`` from their templates, and the header's time from the
    stored run (:mod:`course_tools.header_time`); whether any changed.

    The set-up cell also gets :data:`~course_tools.setup_cell.SETUP_CELL_METADATA` (its source hidden), the
    rest of its metadata kept.
    """
    templates = ((SETUP_TAG, setup_cell_source(repository)), (BADGES_TAG, badges_markdown(lesson, repository)))
    changed = sync_time_line(nb)
    for tag, source in templates:
        for cell in _tagged(nb, tag):
            if cell.source != source:
                cell.source = source
                changed = True
    for cell in _tagged(nb, SETUP_TAG):
        for key, settings in SETUP_CELL_METADATA.items():
            present = cell.metadata.get(key)
            merged = {**(present if isinstance(present, dict) else {}), **settings}
            if present != merged:
                cell.metadata[key] = merged
                changed = True
    return changed


def _add_missing_ids(nb: nbformat.NotebookNode) -> bool:
    """Give cells without an id one (nbformat 4.5), so student notebooks get the same ids; whether any did."""
    missing = any("id" not in cell for cell in nb.cells)
    if missing or nb.nbformat_minor < 5:
        nb.nbformat_minor = max(nb.nbformat_minor, 5)
        for cell in nb.cells:
            if "id" not in cell:
                cell.id = nbformat.corpus.words.generate_corpus_id()
    return missing


# --------------------------------------------------------------------------------------------------------
# Reading and writing notebooks
# --------------------------------------------------------------------------------------------------------


def solution_notebooks(solutions_dir: str | Path = "solutions") -> list[Path]:
    """The notebooks in ``solutions_dir`` (not in sub-folders), sorted by name."""
    return sorted(path for path in Path(solutions_dir).glob("*.ipynb") if not path.name.startswith("."))


def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    """Read a notebook as nbformat version 4."""
    return nbformat.read(str(path), as_version=4)


def write_notebook(nb: nbformat.NotebookNode, path: str | Path) -> Path:
    """Write ``nb`` to ``path`` atomically (a temporary file, then one rename) with nbformat's layout."""
    with atomic_write(path) as temporary:
        nbformat.write(nb, str(temporary))
    return Path(path)


# --------------------------------------------------------------------------------------------------------
# What build wrote: a record in each student notebook's metadata
# --------------------------------------------------------------------------------------------------------

#: The notebook metadata key where ``build`` records what it wrote:
#: ``{"generated_from": "<solution file name>", "sha256": <content_digest of what it wrote>}``.
GENERATED_KEY = "course"


def content_digest(nb: nbformat.NotebookNode) -> str:
    """SHA-256 of what a person can change in a notebook: each cell's type, source, outputs and attachments.

    Metadata that Jupyter rewrites on its own (kernel, language version, scroll state) is left out.
    """
    cells = [{"cell_type": cell.get("cell_type"), "source": cell.get("source"), "outputs": cell.get("outputs", []),
              "attachments": cell.get("attachments", {})} for cell in nb.get("cells", [])]
    return hashlib.sha256(json.dumps(cells, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def mark_generated(nb: nbformat.NotebookNode, solution_name: str) -> nbformat.NotebookNode:
    """Record in ``nb``'s metadata that ``build`` wrote it from ``solution_name``, with its content digest."""
    nb.metadata[GENERATED_KEY] = {"generated_from": solution_name, "sha256": content_digest(nb)}
    return nb


def unchanged_since_build(nb: nbformat.NotebookNode | None, file_name: str) -> bool:
    """Whether the notebook in file ``file_name`` is one ``build`` wrote there and nobody changed since.

    Its record must name the solution of the same file name (a copy such as Jupyter's ``-Copy1`` keeps the
    record of the notebook it copied, so it is not one) and its content must still match the digest.
    """
    metadata = nb.get("metadata") if isinstance(nb, dict) else None
    record = metadata.get(GENERATED_KEY) if isinstance(metadata, dict) else None
    return (isinstance(record, dict) and record.get("generated_from") == file_name
            and record.get("sha256") == content_digest(nb))


def _read_if_notebook(path: Path) -> nbformat.NotebookNode | None:
    """The notebook in ``path``, or ``None`` when it is not one that can be read (damaged, not JSON, ...)."""
    try:
        nb = read_notebook(path)
    except Exception:  # anything unreadable is treated as someone's file, never as the course's
        return None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not (isinstance(cells, list) and all(isinstance(cell, dict) for cell in cells)
            and isinstance(nb.get("metadata"), dict)):
        return None
    return nb


def _require_writable_target(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BuildError(f"{path} is not a regular file (a link, a folder or a device): course build writes only "
                         "notebooks it created; move it away, or choose another --notebooks folder.")


def _backup_path(path: Path) -> Path:
    """A new name beside ``path``: ``<name>.backup-<date>-<time>.ipynb`` (``-2``, ``-3``, ... if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, number = path.with_name(f"{path.stem}.backup-{stamp}{path.suffix}"), 1
    while candidate.exists() or candidate.is_symlink():
        number += 1
        candidate = path.with_name(f"{path.stem}.backup-{stamp}-{number}{path.suffix}")
    return candidate


def _back_up(path: Path) -> Path:
    """Copy ``path`` to a new :func:`_backup_path` (never over an existing file) and return the copy."""
    backup = _backup_path(path)
    with open(backup, "xb") as handle:
        handle.write(path.read_bytes())
    return backup


def _refuse_solutions_as_output(solutions_dir: Path, notebooks_dir: Path) -> None:
    same = notebooks_dir.resolve() == solutions_dir.resolve()
    if not same and notebooks_dir.exists() and solutions_dir.exists():
        same = os.path.samefile(notebooks_dir, solutions_dir)
    if same:
        raise BuildError(f"--notebooks {notebooks_dir} is the solutions folder {solutions_dir}: the student "
                         "versions would replace the solutions; write them to another folder (default notebooks).")


# --------------------------------------------------------------------------------------------------------
# build and check
# --------------------------------------------------------------------------------------------------------


class _Lesson(NamedTuple):
    """One solution notebook, its templates synced, and the student notebook build would write for it."""

    path: Path
    solution: nbformat.NotebookNode
    ids_added: bool
    templates_changed: bool
    student: nbformat.NotebookNode
    earlier_student_digest: str


def _lesson(path: Path, nb: nbformat.NotebookNode, repository: str) -> _Lesson:
    """Sync ``nb`` (read from ``path``) with the templates and make its marked student version."""
    # What a build before this one wrote from the solution as it is on disk (before its templates change).
    earlier = content_digest(student_version(nb, notebook_name=str(path)))
    ids_added = _add_missing_ids(nb)
    templates_changed = sync_template_cells(nb, path.stem, repository)
    student = mark_generated(student_version(nb, notebook_name=str(path)), path.name)
    return _Lesson(path, nb, ids_added, templates_changed, student, earlier)


def _written_by_build(existing: nbformat.NotebookNode | None, lesson: _Lesson, target: Path) -> bool:
    """Whether ``target`` holds a notebook build wrote and nobody changed (also one written before builds
    recorded themselves: its content is exactly a student version of the solution)."""
    if existing is None:
        return False
    return (unchanged_since_build(existing, target.name)
            or content_digest(existing) in (lesson.earlier_student_digest, content_digest(lesson.student)))


def build(solutions_dir: str | Path = "solutions", notebooks_dir: str | Path = "notebooks",
          verbose: bool = True) -> list[Path]:
    """Regenerate the student notebooks from the solution notebooks; return the files written or removed.

    Set-up and badges cells of the solutions are rewritten from the templates (each solution is written only
    when it changed), and each student version is written only when it differs. In ``notebooks_dir`` it
    overwrites or removes only notebooks it wrote and nobody changed since (:func:`unchanged_since_build`):
    a student notebook that was changed (a student's answers, outputs) is first copied to
    ``<name>.backup-<date>-<time>.ipynb``, with a line saying so (``verbose``); notebooks it did not write
    (Jupyter's ``-Copy1`` copies, a student's own) are left alone. The solutions folder is refused as
    ``notebooks_dir``. A second ``build`` returns an empty list.
    """
    solutions_dir, notebooks_dir = Path(solutions_dir), Path(notebooks_dir)
    _refuse_solutions_as_output(solutions_dir, notebooks_dir)
    repository = repository_url(course_root(solutions_dir))
    # Every student version first: a MarkerError stops the build before anything is written.
    lessons = [_lesson(path, read_notebook(path), repository) for path in solution_notebooks(solutions_dir)]
    for lesson in lessons:
        _require_writable_target(notebooks_dir / lesson.path.name)
    changed: list[Path] = []
    for lesson in lessons:
        if lesson.ids_added or lesson.templates_changed:
            changed.append(write_notebook(lesson.solution, lesson.path))
        target = notebooks_dir / lesson.path.name
        existing = _read_if_notebook(target) if target.exists() else None
        if existing is not None and existing == lesson.student:
            continue
        if target.exists() and not _written_by_build(existing, lesson, target):
            backup = _back_up(target)
            changed.append(backup)
            if verbose:
                print(f"{target} was changed since course build wrote it (or not written by it): kept as {backup}, "
                      "then wrote a fresh student notebook.")
        changed.append(write_notebook(lesson.student, target))
    expected = {lesson.path.name for lesson in lessons}
    for stale in sorted(notebooks_dir.glob("*.ipynb")):
        if stale.name not in expected and stale.is_file() and not stale.is_symlink() \
                and unchanged_since_build(_read_if_notebook(stale), stale.name):
            stale.unlink()
            changed.append(stale)
    return changed


def _is_hint(cell: nbformat.NotebookNode) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    return cell.get("cell_type") == "markdown" and isinstance(tags, list) and HINT_TAG in tags


_SHORT_LINE = 8  # solution lines shorter than this (without spaces) count only as whole lines, not inside text


def _without_spaces(text: str) -> str:
    return "".join(text.split())


def leaked_solution_lines(solution: nbformat.NotebookNode, student: nbformat.NotebookNode,
                          expected: nbformat.NotebookNode | None = None) -> list[str]:
    """Solution lines that ``student`` shows: the lines inside solution regions found in its cells.

    A line counts wherever it appears: as a whole line, or (when it is at least a few characters long) inside
    a sentence, inline code or a code block of markdown, spaces ignored. A line that the student version of
    ``solution`` (``expected``, made here when not given) also has in its code, outside the regions, is
    public: it leaks only when ``student``'s code has it more often. Any other line leaks wherever it is,
    a markdown hint written into the solution notebook too, except in markdown cells tagged
    :data:`HINT_TAG`, where the author shows solution lines on purpose.
    """
    kinds = ("code", "markdown", "raw")
    expected = expected if expected is not None else student_version(solution)
    secret: dict[str, str] = {}
    for cell in solution.cells:
        if cell.cell_type in kinds:
            for line in solution_lines(cell.source):
                secret.setdefault(_without_spaces(line), line)

    def occurrences(nb: nbformat.NotebookNode, cell_kinds: tuple[str, ...]) -> Counter[str]:
        sources = [cell.source for cell in nb.cells if cell.get("cell_type") in cell_kinds
                   and isinstance(cell.get("source"), str) and not _is_hint(cell)]
        lines = Counter(_without_spaces(line) for source in sources for line in source.splitlines())
        text = "\n".join(_without_spaces(source) for source in sources)
        return Counter({key: text.count(key) if len(key) >= _SHORT_LINE else lines[key] for key in secret if key})

    public, in_code, anywhere = occurrences(expected, ("code",)), occurrences(student, ("code",)), \
        occurrences(student, kinds)
    return sorted(line for key, line in secret.items()
                  if (in_code[key] > public[key] if public[key] else anywhere[key] > 0))


def check(solutions_dir: str | Path = "solutions", notebooks_dir: str | Path = "notebooks") -> list[str]:
    """What is out of step between ``solutions/`` and ``notebooks/``, one sentence each; empty when in sync.

    Reports set-up or badges cells that differ from the templates, missing cell ids, misplaced or
    nearly-right markers, student notebooks missing, out of date, changed since ``build`` wrote them or
    without a solution, other notebooks in ``notebooks_dir``, and solution lines leaked into student
    notebooks. Each sentence says what ``course build`` would do, which never loses anyone's work.
    """
    solutions_dir, notebooks_dir = Path(solutions_dir), Path(notebooks_dir)
    try:
        _refuse_solutions_as_output(solutions_dir, notebooks_dir)
    except BuildError as error:
        return [str(error)]
    repository = repository_url(course_root(solutions_dir))
    problems: list[str] = []
    names: set[str] = set()
    for path in solution_notebooks(solutions_dir):
        names.add(path.name)
        nb = read_notebook(path)
        for tag in (SETUP_TAG, BADGES_TAG, PARAMETERS_TAG):
            if not _tagged(nb, tag):
                problems.append(f"{path}: no cell tagged '{tag}'.")
        try:
            lesson = _lesson(path, nb, repository)
        except MarkerError as error:
            problems.append(f"{error}.")
            continue
        if lesson.ids_added:
            problems.append(f"{path}: cells without ids; run `course build`.")
        if lesson.templates_changed:
            problems.append(f"{path}: the set-up or badges cell differs from its template, or the header's time from "
                            "the stored run; run `course build`.")
        target = notebooks_dir / path.name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            problems.append(f"{target}: not a regular file; course build will not write there: move it away.")
            continue
        if not target.is_file():
            problems.append(f"{target}: missing; run `course build`.")
            continue
        existing = _read_if_notebook(target)
        if existing == lesson.student:
            pass
        elif _written_by_build(existing, lesson, target):
            problems.append(f"{target}: out of date with {path}; run `course build`.")
        else:
            problems.append(f"{target}: changed since course build wrote it (or not written by it); "
                            f"`course build` keeps it as {target.stem}.backup-<date>-<time>.ipynb, then writes a "
                            "fresh one.")
        leaked = leaked_solution_lines(nb, existing, lesson.student) if existing is not None else []
        if leaked:
            problems.append(f"{target}: {len(leaked)} solution line(s) leaked, e.g. {leaked[0]!r}.")
    for extra in sorted(notebooks_dir.glob("*.ipynb")):
        if extra.name in names:
            continue
        if extra.is_file() and not extra.is_symlink() and unchanged_since_build(_read_if_notebook(extra), extra.name):
            problems.append(f"{extra}: no solution {solutions_dir / extra.name}; `course build` removes it (it "
                            "wrote it, and nobody changed it since).")
        else:
            problems.append(f"{extra}: not a student notebook of {solutions_dir}; course build leaves it alone "
                            f"(move it out of {notebooks_dir} before publishing).")
    return problems
