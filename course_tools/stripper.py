"""The solution stripper: exercise markers in, stubs out, as an nbconvert preprocessor.

Exercise convention (nbgrader's markers, plus a title comment)::

    # Exercise 1: Same padding
    def same_padding(kernel_size):
        ### BEGIN SOLUTION
        return kernel_size // 2
        ### END SOLUTION

An exercise starts at a comment line ``# Exercise N: <title>`` (or ``# Exercise: <title>``) in a code cell;
exercises are numbered in the order these comments appear in the notebook (a written number must match
that order). Every solution region belongs to the latest exercise comment above it, in the same cell or an
earlier one, so one exercise may have several regions in several cells. In the student version each region
is replaced, at the indentation of its ``### BEGIN SOLUTION`` line, by::

        # YOUR CODE HERE
        raise NotImplementedError("Exercise 1: Same padding: not done yet. ...")

A student may skip any exercise. A region's first line may be a comment ``# Reference: <line>``: one line of
code that takes the package's answer instead (``same_padding = models.same_padding``). The stub's message
then ends with that line and says where it goes: in place of the ``raise`` line for a region at the cell's
top level, in place of the whole ``def``/``class`` for a region inside one. The comment is part of the
solution region, so students see the line only in the message.

Regions must hold whole statements (not part of an expression), so that the stub is valid Python.

Markdown cells may hold solution regions too (a written answer, say); each becomes one line,
:data:`MARKDOWN_STUB`, at the indentation of its ``### BEGIN SOLUTION`` line. They need no exercise comment.

A line that looks like a marker but is not exactly one (``## BEGIN SOLUTION``, ``### Begin Solution``,
``### END SOLUTION (answer)``) is an error: left as it is, it would publish the answer it was meant to hide.

:class:`StripSolutions` does this to a whole notebook as an nbconvert ``Preprocessor`` (as nbgrader's
``ClearSolutions`` does), and :func:`student_version` runs it after nbconvert's own
``ClearOutputPreprocessor``: the student version of a solution notebook.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor, Preprocessor
from traitlets import Unicode

from course_utils.solution_markers import (
    BEGIN_LINE,
    BEGIN_MARKER,
    END_LINE,
    END_MARKER,
    EXERCISE_LINE,
    REFERENCE_LINE,
    REFERENCE_PREFIX,
    lines_in_solution_regions,
)

__all__ = ["BEGIN_MARKER", "END_MARKER", "MARKDOWN_STUB", "REFERENCE_PREFIX", "STUB_COMMENT", "MarkerError",
           "StripSolutions", "solution_lines", "strip_markdown_solutions", "strip_solutions", "stub_message",
           "student_version"]

STUB_COMMENT = "# YOUR CODE HERE"
#: What a solution region of a markdown cell becomes in the student version.
MARKDOWN_STUB = "*Your answer here.*"

# Anything that a reader would take for a marker: any number of #, any case, words run together, text after.
_NEAR_MARKER = re.compile(r"^\s*(?:#+|<!--|\*\*|__)\s*(?:BEGIN|END)[\s_-]*SOLUTIONS?(?![A-Za-z0-9])", re.IGNORECASE)
# Metadata written when a notebook runs; it describes outputs, so student versions drop it with them.
_EXECUTION_NOTEBOOK_METADATA = ("papermill", "widgets")


class MarkerError(ValueError):
    """A solution marker is misplaced (nested BEGIN, END without BEGIN, a missing END) or only nearly a marker."""


# --------------------------------------------------------------------------------------------------------
# Solution regions of one cell
# --------------------------------------------------------------------------------------------------------


def stub_message(label: str, reference: str | None = None, nested: bool = False) -> str:
    """The stub's message: the exercise and, with ``reference``, the one line that skips it.

    ``nested``: the stub sits inside a ``def`` or ``class``, so the line replaces that whole definition.
    """
    if not reference:
        return label
    where = ("replace the exercise's whole def/class block by this line" if nested
             else "replace this raise line by this line")
    return (f"{label}: not done yet. Write your code in place of this raise line. To skip the exercise, "
            f"{where}, which takes the course package's answer; the rest of the notebook then runs:\n"
            f"{reference}")


def _stub(indent: str, label: str, reference: str | None = None) -> list[str]:
    message = json.dumps(stub_message(label, reference, nested=bool(indent)), ensure_ascii=False)
    return [f"{indent}{STUB_COMMENT}\n", f"{indent}raise NotImplementedError({message})\n"]


def _strip(source: str, label: str | None, exercise_label: Callable[[str], str | None],
           where: str, markdown: bool = False) -> tuple[str, str | None]:
    """Replace each solution region of ``source``; return the new source and the exercise label in force.

    ``label`` is the exercise in force when the cell starts; ``exercise_label(line)`` returns the label that
    an exercise comment line starts (``None`` for other lines). In a code cell a region becomes a stub that
    raises ``NotImplementedError``; with ``markdown=True`` it becomes one line, :data:`MARKDOWN_STUB`.
    """
    lines = source.splitlines(keepends=True)
    output: list[str] = []
    begin_line: int | None = None
    indent = ""
    reference: str | None = None

    def error(message: str) -> MarkerError:
        return MarkerError(f"{where}{f' ({label})' if label else ''}: {message}")

    for index, line in enumerate(lines):
        text = line.rstrip("\r\n")
        begin = BEGIN_LINE.match(text)
        if begin:
            if begin_line is not None:
                raise error(f"nested {BEGIN_MARKER} on line {index + 1} (the region opened on line "
                            f"{begin_line + 1} has no {END_MARKER} before it)")
            if label is None and not markdown:
                raise error(f"the solution region on line {index + 1} has no '# Exercise N: <title>' "
                            "comment above it (in this cell or an earlier one)")
            begin_line, indent, reference = index, begin.group("indent"), None
        elif END_LINE.match(text):
            if begin_line is None:
                raise error(f"{END_MARKER} on line {index + 1} without {BEGIN_MARKER}")
            output.extend([f"{indent}{MARKDOWN_STUB}\n"] if markdown else _stub(indent, label or "", reference))
            begin_line = None
        elif _NEAR_MARKER.match(text):
            raise error(f"line {index + 1}, {text.strip()!r}, looks like a solution marker but is not one, so the "
                        f"answer would be published: write exactly '{BEGIN_MARKER}' or '{END_MARKER}' (three #, "
                        "capitals, nothing after)")
        elif not markdown and begin_line is not None and index == begin_line + 1 and REFERENCE_LINE.match(text):
            reference = REFERENCE_LINE.match(text).group("line")
        elif begin_line is None:
            label = exercise_label(text) or label
            output.append(line)
        elif not markdown and EXERCISE_LINE.match(text):
            raise error(f"exercise comment on line {index + 1} inside a solution region")
    if begin_line is not None:
        raise error(f"{BEGIN_MARKER} on line {begin_line + 1} has no {END_MARKER}")
    result = "".join(output)
    if not source.endswith("\n") and result.endswith("\n"):
        result = result[:-1]
    return result, label


def strip_solutions(source: str, exercise_name: str) -> str:
    """Return ``source`` with every solution region replaced by a stub raising ``NotImplementedError``.

    ``exercise_name`` is the stub's message, for example ``"Exercise 2: Same padding"``. The stub keeps
    the indentation of the ``### BEGIN SOLUTION`` line. Misplaced markers raise :class:`MarkerError`.
    """
    return _strip(source, exercise_name, lambda line: None, where="cell")[0]


def strip_markdown_solutions(source: str, where: str = "markdown cell") -> str:
    """Return markdown ``source`` with each solution region replaced by one line, :data:`MARKDOWN_STUB`.

    The line keeps the indentation of the ``### BEGIN SOLUTION`` line (so an answer inside a list item stays
    in the item). Misplaced markers raise :class:`MarkerError` naming ``where``.
    """
    return _strip(source, None, lambda line: None, where=where, markdown=True)[0]


def solution_lines(source: str) -> list[str]:
    """The non-blank lines inside solution regions of ``source``, stripped of surrounding spaces."""
    return [line.strip() for line in lines_in_solution_regions(source) if line.strip()]


def _student_cell_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The cell metadata a student version keeps: the tags, and Jupyter's display switches when they are flags.

    Anything else (notes, grading data, answers an author tucked away) is dropped.
    """
    kept: dict[str, Any] = {}
    tags = metadata.get("tags")
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        kept["tags"] = list(tags)
    for key in ("collapsed", "editable", "deletable", "scrolled"):
        if isinstance(metadata.get(key), bool) or (key == "scrolled" and metadata.get(key) == "auto"):
            kept[key] = metadata[key]
    jupyter = metadata.get("jupyter")
    if isinstance(jupyter, dict):
        hidden = {key: value for key, value in jupyter.items()
                  if key in ("source_hidden", "outputs_hidden") and isinstance(value, bool)}
        if hidden:
            kept["jupyter"] = hidden
    return kept


# --------------------------------------------------------------------------------------------------------
# A whole notebook: the preprocessor
# --------------------------------------------------------------------------------------------------------


class StripSolutions(Preprocessor):
    """An nbconvert preprocessor that turns a solution notebook's cells into the student version's.

    Solution regions become stubs (in markdown and raw cells one line, :data:`MARKDOWN_STUB`), the exercises
    numbered in the order of their comments across the notebook. Cell metadata keeps only the tags and
    Jupyter's display switches and attachments (images pasted into markdown) are removed: both could carry an
    answer. The notebook metadata a run writes (papermill records, widget state) is dropped; outputs are left
    to nbconvert's ``ClearOutputPreprocessor``. Errors are :class:`MarkerError` naming ``notebook_name``, the
    cell and the exercise.
    """

    notebook_name = Unicode("notebook", help="The notebook's name in error messages.").tag(config=True)

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict[str, Any]
                   ) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
        """Strip every cell of ``nb`` in place, counting the exercises from 1."""
        for key in _EXECUTION_NOTEBOOK_METADATA:
            nb.metadata.pop(key, None)
        self._exercises_seen = 0
        self._exercise_in_force: str | None = None
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell: nbformat.NotebookNode, resources: dict[str, Any], index: int
                        ) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
        """The student version of one cell (``index``: its place in the notebook, for error messages)."""
        cell.metadata = nbformat.NotebookNode(_student_cell_metadata(cell.get("metadata", {})))
        cell.pop("attachments", None)
        where = f"{self.notebook_name}, cell {index}"
        if cell.cell_type in ("markdown", "raw"):
            cell.source = strip_markdown_solutions(cell.source, where)
        elif cell.cell_type == "code":
            cell.source, self._exercise_in_force = _strip(
                cell.source, self._exercise_in_force, lambda line: self._exercise_label(line, where), where)
        return cell, resources

    def _exercise_label(self, line: str, where: str) -> str | None:
        """``"Exercise 3: <title>"`` when ``line`` starts the next exercise, else ``None``."""
        match = EXERCISE_LINE.match(line)
        if not match:
            return None
        self._exercises_seen += 1
        written = match.group("number")
        if written is not None and int(written) != self._exercises_seen:
            raise MarkerError(f"{where}: '{line.strip()}' is exercise {self._exercises_seen} in order; "
                              "renumber the exercise comments")
        return f"Exercise {self._exercises_seen}: {match.group('title')}"


def student_version(nb: nbformat.NotebookNode, notebook_name: str = "notebook") -> nbformat.NotebookNode:
    """Return the student version of a solution notebook (the input is not changed).

    nbconvert's ``ClearOutputPreprocessor`` clears code outputs and execution counts (keeping Jupyter's
    display switches), then :class:`StripSolutions` replaces the solution regions and cleans the metadata.
    The rest of the markdown, cell ids and the notebook's kernel metadata stay identical. Errors name
    ``notebook_name``, the cell and exercise.
    """
    student, resources = copy.deepcopy(nb), {}
    for preprocessor in (ClearOutputPreprocessor(remove_metadata_fields=set()),
                         StripSolutions(notebook_name=notebook_name)):
        student, resources = preprocessor.preprocess(student, resources)
    return student
