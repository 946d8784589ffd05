"""Solution notebooks in, student notebooks out: exercise markers, the set-up cell, badges, build and check.

A maintainer edits only the notebooks in ``solutions/``. ``course build`` then

1. rewrites the cell tagged ``setup`` (installs the package on Colab and Kaggle) and the markdown cell tagged
   ``badges`` ("Open in Colab", "Open in Kaggle") from the templates below, so the repository URL lives in
   one place (:data:`course_utils.config.REPOSITORY_URL`);
2. writes the student version of each notebook to ``notebooks/``: every solution region becomes a stub,
   outputs are cleared, everything else is kept.

``course check`` says what ``course build`` would change, and whether any solution line leaked.

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
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

import nbformat

from course_utils import config
from course_utils.files import atomic_write

BEGIN_MARKER = "### BEGIN SOLUTION"
END_MARKER = "### END SOLUTION"
STUB_COMMENT = "# YOUR CODE HERE"
#: The comment, first in a solution region, that names the one line taking the package's answer instead.
REFERENCE_PREFIX = "# Reference:"
#: Branch the badges open.
BRANCH = "main"
#: Tags of the cells that ``course build`` rewrites from templates, and of the parameters cell.
SETUP_TAG = "setup"
BADGES_TAG = "badges"
PARAMETERS_TAG = "parameters"

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)###\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^[ \t]*###\s*END SOLUTION\s*$")
_REFERENCE = re.compile(r"^[ \t]*#\s*Reference:\s*(?P<line>\S.*?)\s*$")
_EXERCISE = re.compile(r"^\s*#\s*Exercise(?:\s+(?P<number>\d+))?\s*:\s*(?P<title>\S.*?)\s*$")
# Metadata written when a notebook runs; it describes outputs, so student versions drop it with them.
_EXECUTION_CELL_METADATA = ("execution", "papermill")
_EXECUTION_NOTEBOOK_METADATA = ("papermill", "widgets")


class MarkerError(ValueError):
    """A solution marker is misplaced: nested BEGIN, END without BEGIN, or a missing END."""


class Parameter(NamedTuple):
    """One entry of a notebook's ``parameters`` cell, as ``papermill --help-notebook`` shows it.

    ``type`` and ``default`` are source text (``"int"``, ``"'gtsrb'"``); ``type`` is ``"None"`` when the
    line has no annotation.
    """

    name: str
    type: str
    default: str
    help: str


# --------------------------------------------------------------------------------------------------------
# Solution regions
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
           where: str) -> tuple[str, str | None]:
    """Replace each solution region of ``source``; return the new source and the exercise label in force.

    ``label`` is the exercise in force when the cell starts; ``exercise_label(line)`` returns the label that
    an exercise comment line starts (``None`` for other lines).
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
        begin = _BEGIN.match(text)
        if begin:
            if begin_line is not None:
                raise error(f"nested {BEGIN_MARKER} on line {index + 1} (the region opened on line "
                            f"{begin_line + 1} has no {END_MARKER} before it)")
            if label is None:
                raise error(f"the solution region on line {index + 1} has no '# Exercise N: <title>' "
                            "comment above it (in this cell or an earlier one)")
            begin_line, indent, reference = index, begin.group("indent"), None
        elif _END.match(text):
            if begin_line is None:
                raise error(f"{END_MARKER} on line {index + 1} without {BEGIN_MARKER}")
            output.extend(_stub(indent, label or "", reference))
            begin_line = None
        elif begin_line is not None and index == begin_line + 1 and _REFERENCE.match(text):
            reference = _REFERENCE.match(text).group("line")
        elif begin_line is None:
            label = exercise_label(text) or label
            output.append(line)
        elif _EXERCISE.match(text):
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


def solution_lines(source: str) -> list[str]:
    """The non-blank lines inside solution regions of ``source``, stripped of surrounding spaces."""
    found: list[str] = []
    inside = False
    for line in source.splitlines():
        if _BEGIN.match(line):
            inside = True
        elif _END.match(line):
            inside = False
        elif inside and line.strip():
            found.append(line.strip())
    return found


def student_version(nb: nbformat.NotebookNode, notebook_name: str = "notebook") -> nbformat.NotebookNode:
    """Return the student version of a solution notebook (the input is not changed).

    Solution regions become stubs, code outputs and execution counts are cleared, and the metadata a run
    writes (execution times, papermill records, widget state) is dropped with them. Markdown cells, cell
    ids, tags and all other metadata stay identical. Errors name ``notebook_name``, the cell and exercise.
    """
    student = copy.deepcopy(nb)
    for key in _EXECUTION_NOTEBOOK_METADATA:
        student.metadata.pop(key, None)
    count = 0
    current: str | None = None
    for index, cell in enumerate(student.cells):
        for key in _EXECUTION_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        where = f"{notebook_name}, cell {index}"

        def exercise_label(line: str, where: str = where) -> str | None:
            nonlocal count
            match = _EXERCISE.match(line)
            if not match:
                return None
            count += 1
            written = match.group("number")
            if written is not None and int(written) != count:
                raise MarkerError(f"{where}: '{line.strip()}' is exercise {count} in order; "
                                  "renumber the exercise comments")
            return f"Exercise {count}: {match.group('title')}"

        cell.source, current = _strip(cell.source, current, exercise_label, where)
    return student


# --------------------------------------------------------------------------------------------------------
# The set-up cell and the badges (templates; the repository URL comes from config.REPOSITORY_URL)
# --------------------------------------------------------------------------------------------------------

_SETUP_TEMPLATE = '''\
# Set-up: on Colab and Kaggle this installs the course package; on your own machine it does nothing.
# (Written by `course build` from course_tools/notebooks.py: edit the template there, not here.)
def _set_up_course(repository="{repository}"):
    import importlib.util
    import os
    import subprocess
    import sys
    from pathlib import Path

    on_colab = "google.colab" in sys.modules
    on_kaggle = "KAGGLE_KERNEL_RUN_TYPE" in os.environ
    if not (on_colab or on_kaggle):
        print("Set-up: not on Colab or Kaggle, nothing to do (install the course with `pip install -e .`).")
        return
    platform = "Colab" if on_colab else "Kaggle"
    if importlib.util.find_spec("course_utils") is None:
        print(f"Set-up ({{platform}}): installing the course package from {{repository}} ...")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", f"git+{{repository}}"], check=True)
        importlib.invalidate_caches()
    else:
        print(f"Set-up ({{platform}}): the course package is already installed.")
    if on_kaggle:
        # Data added to the notebook ("Add Input") is read-only under /kaggle/input; link what `course
        # prefetch` cached there (data sets, torch hub weights) into the writable caches the lessons use.
        data = Path(os.environ.setdefault("COURSE_DATA_DIR", "/kaggle/working/data"))
        os.environ.setdefault("COURSE_OUTPUT_DIR", "/kaggle/working/outputs")
        hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
        for depth in ("", "*/", "*/*/", "*/*/*/"):
            for name in ("gtsrb", "oxford-iiit-pet"):
                for found in sorted(Path("/kaggle/input").glob(depth + name)):
                    if found.is_dir() and not (data / name).exists():
                        data.mkdir(parents=True, exist_ok=True)
                        (data / name).symlink_to(found, target_is_directory=True)
                        print(f"Set-up (Kaggle): using the data set in {{found}}")
            for found in sorted(Path("/kaggle/input").glob(depth + "checkpoints/*.pth")):
                if not (hub / found.name).exists():
                    hub.mkdir(parents=True, exist_ok=True)
                    (hub / found.name).symlink_to(found)
                    print(f"Set-up (Kaggle): using the weights {{found}}")
        print(f"Set-up (Kaggle): data in {{data}}, outputs in {{os.environ['COURSE_OUTPUT_DIR']}}")
    try:
        import torch
        gpu = torch.cuda.is_available()
        device = f"cuda ({{torch.cuda.get_device_name(0)}})" if gpu else "cpu (switch on a GPU runtime)"
    except Exception:  # the lesson reports the device again once it starts
        device = "unknown"
    profile = os.environ.get("COURSE_PROFILE") or "chosen automatically (full with a GPU, else offline)"
    print(f"Set-up ({{platform}}): device {{device}}; profile {{profile}}")


_set_up_course()
del _set_up_course
'''


def _owner_and_repository(url: str = config.REPOSITORY_URL) -> str:
    """``owner/name`` of a GitHub repository URL."""
    path = urlparse(url).path.strip("/")
    return path[:-4] if path.endswith(".git") else path


def setup_cell_source() -> str:
    """The source of the set-up cell (tag ``setup``), generated from ``config.REPOSITORY_URL``.

    On Colab or Kaggle it pip-installs the course from the repository unless ``course_utils`` is already
    importable; on Kaggle it also uses data and weights attached under ``/kaggle/input`` and the working
    folder for outputs; it prints what it did. Elsewhere it does nothing. It needs only the standard library.
    """
    return _SETUP_TEMPLATE.format(repository=config.REPOSITORY_URL).rstrip("\n")


def notebook_url(lesson: str) -> str:
    """The GitHub address of a lesson's student notebook."""
    return f"https://github.com/{_owner_and_repository()}/blob/{BRANCH}/notebooks/{lesson}.ipynb"


def badges_markdown(lesson: str) -> str:
    """Markdown for the "Open in Colab" and "Open in Kaggle" badges of a lesson's student notebook."""
    colab = f"https://colab.research.google.com/github/{_owner_and_repository()}/blob/{BRANCH}/notebooks/{lesson}.ipynb"
    kaggle = f"https://kaggle.com/kernels/welcome?src={notebook_url(lesson)}"
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})\n"
        f"[![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({kaggle})"
    )


def _tagged(nb: nbformat.NotebookNode, tag: str) -> list[Any]:
    return [cell for cell in nb.cells if tag in cell.get("metadata", {}).get("tags", [])]


def sync_template_cells(nb: nbformat.NotebookNode, lesson: str) -> bool:
    """Rewrite the ``setup`` and ``badges`` cells of ``nb`` from their templates; whether any changed."""
    changed = False
    for tag, source in ((SETUP_TAG, setup_cell_source()), (BADGES_TAG, badges_markdown(lesson))):
        for cell in _tagged(nb, tag):
            if cell.source != source:
                cell.source = source
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
# build and check
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


def _same(nb: nbformat.NotebookNode, path: Path) -> bool:
    return path.is_file() and read_notebook(path) == nb


def build(solutions_dir: str | Path = "solutions", notebooks_dir: str | Path = "notebooks") -> list[Path]:
    """Regenerate the student notebooks from the solution notebooks; return the files changed.

    Set-up and badges cells of the solutions are rewritten from the templates (each solution is written only
    when it changed), each student version is written only when it differs, and student notebooks without a
    solution are removed. A second ``build`` returns an empty list.
    """
    solutions_dir, notebooks_dir = Path(solutions_dir), Path(notebooks_dir)
    changed: list[Path] = []
    expected: set[str] = set()
    for path in solution_notebooks(solutions_dir):
        nb = read_notebook(path)
        if _add_missing_ids(nb) | sync_template_cells(nb, path.stem):
            changed.append(write_notebook(nb, path))
        student = student_version(nb, notebook_name=str(path))
        target = notebooks_dir / path.name
        expected.add(path.name)
        if not _same(student, target):
            changed.append(write_notebook(student, target))
    for stale in sorted(notebooks_dir.glob("*.ipynb")):
        if stale.name not in expected:
            stale.unlink()
            changed.append(stale)
    return changed


def leaked_solution_lines(solution: nbformat.NotebookNode, student: nbformat.NotebookNode) -> list[str]:
    """Solution lines found in the student notebook's code more often than outside the solution regions."""
    allowed: Counter[str] = Counter()
    secret: set[str] = set()
    for cell in solution.cells:
        if cell.cell_type != "code":
            continue
        hidden = solution_lines(cell.source)
        secret.update(hidden)
        allowed.update(line.strip() for line in cell.source.splitlines() if line.strip())
        allowed.subtract(hidden)
        allowed.update(stub.strip() for stub in _stub("", "") if stub.strip())
    seen: Counter[str] = Counter(
        line.strip() for cell in student.cells if cell.cell_type == "code"
        for line in cell.source.splitlines() if line.strip() in secret
    )
    return sorted(line for line, number in seen.items() if number > max(allowed[line], 0))


def check(solutions_dir: str | Path = "solutions", notebooks_dir: str | Path = "notebooks") -> list[str]:
    """What is out of step between ``solutions/`` and ``notebooks/``, one sentence each; empty when in sync.

    Reports set-up or badges cells that differ from the templates, missing cell ids, misplaced markers,
    student notebooks missing, out of date or without a solution, and solution lines leaked into them.
    """
    solutions_dir, notebooks_dir = Path(solutions_dir), Path(notebooks_dir)
    problems: list[str] = []
    names: set[str] = set()
    for path in solution_notebooks(solutions_dir):
        names.add(path.name)
        nb = read_notebook(path)
        for tag in (SETUP_TAG, BADGES_TAG, PARAMETERS_TAG):
            if not _tagged(nb, tag):
                problems.append(f"{path}: no cell tagged '{tag}'.")
        if _add_missing_ids(nb):
            problems.append(f"{path}: cells without ids; run `course build`.")
        if sync_template_cells(nb, path.stem):
            problems.append(f"{path}: the set-up or badges cell differs from its template; "
                            "run `course build`.")
        try:
            student = student_version(nb, notebook_name=str(path))
        except MarkerError as error:
            problems.append(f"{error}.")
            continue
        target = notebooks_dir / path.name
        if not target.is_file():
            problems.append(f"{target}: missing; run `course build`.")
            continue
        if not _same(student, target):
            problems.append(f"{target}: out of date with {path}; run `course build`.")
        leaked = leaked_solution_lines(nb, read_notebook(target))
        if leaked:
            problems.append(f"{target}: {len(leaked)} solution line(s) leaked, e.g. {leaked[0]!r}.")
    for extra in sorted(notebooks_dir.glob("*.ipynb")):
        if extra.name not in names:
            problems.append(f"{extra}: no solution {solutions_dir / extra.name}; run `course build`.")
    return problems


# --------------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------------


def read_parameters(notebook_path: str | Path) -> list[Parameter]:
    """The parameters of a notebook's cell tagged ``parameters``, parsed by papermill itself.

    The same names, types, defaults and help texts that ``papermill --help-notebook`` prints; an empty list
    when the notebook has no parameters cell.
    """
    from papermill.translators import papermill_translators  # papermill is slow to import

    nb = read_notebook(notebook_path)
    cells = _tagged(nb, PARAMETERS_TAG)
    if not cells:
        return []
    kernel = nb.metadata.get("kernelspec", {})
    language = kernel.get("language") or nb.metadata.get("language_info", {}).get("name") or "python"
    translator = papermill_translators.find_translator(kernel.get("name") or "python3", language)
    return [Parameter(p.name, p.inferred_type_name, p.default, p.help) for p in translator.inspect(cells[0])]


def format_parameter(parameter: Parameter) -> str:
    """One parameter as ``papermill --help-notebook`` prints it: ``  NAME: type (default X)  help``."""
    type_name = "Unknown type" if parameter.type == "None" else parameter.type
    definition = f"  {parameter.name}: {type_name} (default {parameter.default})"
    if len(definition) > 30:
        return f"{definition}\n{34 * ' '}{parameter.help}" if parameter.help else definition
    return f"{definition:<34}{parameter.help}"
