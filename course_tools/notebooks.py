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

Markdown cells may hold solution regions too (a written answer, say); each becomes one line,
:data:`MARKDOWN_STUB`, at the indentation of its ``### BEGIN SOLUTION`` line. They need no exercise comment.
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

from course_utils import __version__, config
from course_utils.files import atomic_write

__all__ = ["BADGES_TAG", "BEGIN_MARKER", "BRANCH", "END_MARKER", "MARKDOWN_STUB", "PARAMETERS_TAG",
           "REFERENCE_PREFIX", "SETUP_TAG", "STUB_COMMENT", "MarkerError", "Parameter", "badges_markdown", "build",
           "check", "leaked_solution_lines", "notebook_url", "read_notebook", "read_parameters", "release_tag",
           "set_repository_url", "setup_cell_source", "show_parameters", "solution_lines", "solution_notebooks",
           "strip_markdown_solutions", "strip_solutions", "stub_message", "student_version", "sync_template_cells",
           "write_notebook"]

BEGIN_MARKER = "### BEGIN SOLUTION"
END_MARKER = "### END SOLUTION"
STUB_COMMENT = "# YOUR CODE HERE"
#: What a solution region of a markdown cell becomes in the student version.
MARKDOWN_STUB = "*Your answer here.*"

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
        begin = _BEGIN.match(text)
        if begin:
            if begin_line is not None:
                raise error(f"nested {BEGIN_MARKER} on line {index + 1} (the region opened on line "
                            f"{begin_line + 1} has no {END_MARKER} before it)")
            if label is None and not markdown:
                raise error(f"the solution region on line {index + 1} has no '# Exercise N: <title>' "
                            "comment above it (in this cell or an earlier one)")
            begin_line, indent, reference = index, begin.group("indent"), None
        elif _END.match(text):
            if begin_line is None:
                raise error(f"{END_MARKER} on line {index + 1} without {BEGIN_MARKER}")
            output.extend([f"{indent}{MARKDOWN_STUB}\n"] if markdown else _stub(indent, label or "", reference))
            begin_line = None
        elif not markdown and begin_line is not None and index == begin_line + 1 and _REFERENCE.match(text):
            reference = _REFERENCE.match(text).group("line")
        elif begin_line is None:
            label = exercise_label(text) or label
            output.append(line)
        elif not markdown and _EXERCISE.match(text):
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

    Solution regions become stubs (in markdown cells, one line :data:`MARKDOWN_STUB`), code outputs and
    execution counts are cleared, and the metadata a run writes (execution times, papermill records, widget
    state) is dropped with them. The rest of the markdown, cell ids, tags and all other metadata stay
    identical. Errors name ``notebook_name``, the cell and exercise.
    """
    student = copy.deepcopy(nb)
    for key in _EXECUTION_NOTEBOOK_METADATA:
        student.metadata.pop(key, None)
    count = 0
    current: str | None = None
    for index, cell in enumerate(student.cells):
        for key in _EXECUTION_CELL_METADATA:
            cell.metadata.pop(key, None)
        where = f"{notebook_name}, cell {index}"
        if cell.cell_type == "markdown":
            cell.source = strip_markdown_solutions(cell.source, where)
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None

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
def _set_up_course(repository="{repository}", ref="{ref}", version="{version}"):
    import importlib
    import importlib.metadata
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    class SetUpFailed(Exception):
        def _render_traceback_(self):  # Jupyter shows this line instead of a traceback
            return [f"SetUpFailed: {{self}}"]

    # PyTorch's CPU threads spin while they wait for each other; on a busy laptop a descheduled thread then
    # stalls its partner at every operation. Passive waiting avoids that; it only works before torch is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    on_colab = "google.colab" in sys.modules
    # The course's rule for "are we on Kaggle" is course_utils.config.on_kaggle(); this cell runs before the
    # package is installed, so it repeats the same condition.
    on_kaggle = "KAGGLE_KERNEL_RUN_TYPE" in os.environ
    if not (on_colab or on_kaggle):
        print("Set-up: not on Colab or Kaggle, nothing to do (install the course with `pip install -e .`).")
        return
    platform = "Colab" if on_colab else "Kaggle"
    # A workshop kit (`course prefetch --kit`): the folder in $COURSE_KIT, else one attached under Kaggle's input.
    kit = Path(os.environ["COURSE_KIT"]).expanduser() if os.environ.get("COURSE_KIT") else None
    inputs = Path(os.environ.get("COURSE_KAGGLE_INPUT", "/kaggle/input"))
    if kit is None and on_kaggle:
        found = [path for depth in ("", "*/", "*/*/", "*/*/*/")
                 for path in sorted(inputs.glob(depth + "course-kit.json"))]
        kit = found[0].parent if found else None
    if kit is not None and not (kit / "course-kit.json").is_file():
        raise SetUpFailed(f"COURSE_KIT={{kit}} is not a workshop kit (no course-kit.json): fix the path or unset it.")
    try:
        installed = importlib.metadata.version("course-utils")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed == version:
        print(f"Set-up ({{platform}}): the course package {{version}} is already installed.")
    else:
        if kit is not None:
            source = f"the workshop kit in {{kit}}"
            pip = ["--no-index", "--find-links", str(kit / "wheels"), f"course-utils=={{version}}"]
            advice = "rebuild the kit with `course prefetch --kit` from this version of the course"
        else:
            source = f"{{repository}} at {{ref}}"
            pip = [f"course-utils @ git+{{repository}}@{{ref}}"]
            advice = ("switch Settings -> Internet on, or attach the workshop kit as input" if on_kaggle
                      else "check the repository URL and that it has the tag or commit " + ref)
        print(f"Set-up ({{platform}}): installing the course package {{version}} from {{source}} ...")
        result = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                                 "--retries", "1", *pip], capture_output=True, text=True)
        if result.returncode != 0:
            log = Path(tempfile.gettempdir()) / "course-setup-pip.log"
            log.write_text(result.stdout + result.stderr)
            print(f"Set-up ({{platform}}) failed: pip could not install the course from {{source}}; {{advice}} "
                  f"(pip's log: {{log}}).")
            raise SetUpFailed("the course package is not installed; see the line above.")
        importlib.invalidate_caches()
    from course_utils import config
    # Data and weights: from the kit, or on Kaggle from anything attached under the input folder (for example
    # what `course prefetch` cached), linked into the caches the lessons read (read-only inputs stay as they are).
    roots = [kit] if kit is not None else [inputs] if on_kaggle else []
    data = config.default_data_dir()
    try:
        import torch
        hub = Path(torch.hub.get_dir()) / "checkpoints"  # honours TORCH_HOME and XDG_CACHE_HOME
    except ImportError:
        hub = None
    for root in roots:
        for depth in ("", "*/", "*/*/", "*/*/*/"):
            for name in ("gtsrb", "oxford-iiit-pet"):
                for found in sorted(root.glob(depth + name)):
                    if found.is_dir() and any(found.iterdir()) and not (data / name).exists():
                        data.mkdir(parents=True, exist_ok=True)
                        (data / name).symlink_to(found, target_is_directory=True)
                        print(f"Set-up ({{platform}}): using the data set in {{found}}")
            for found in sorted(root.glob(depth + "checkpoints/*.pth")) if hub is not None else []:
                if found.stat().st_size > 0 and not (hub / found.name).exists():
                    hub.mkdir(parents=True, exist_ok=True)
                    (hub / found.name).symlink_to(found)
                    print(f"Set-up ({{platform}}): using the weights {{found}}")
    print(f"Set-up ({{platform}}): data in {{data}}, outputs in {{config.default_output_dir('')}}")
    try:
        gpu = torch.cuda.is_available()
        device = f"cuda ({{torch.cuda.get_device_name(0)}})" if gpu else "cpu (switch on a GPU runtime)"
    except Exception:  # the lesson reports the device again once it starts
        device = "unknown"
    profile = os.environ.get("COURSE_PROFILE") or "chosen automatically (full with a GPU, else offline)"
    print(f"Set-up ({{platform}}): device {{device}}; profile {{profile}}")


_set_up_course()
del _set_up_course
'''


def _owner_and_repository(url: str | None = None) -> str:
    """``owner/name`` of a GitHub repository URL (default: ``config.REPOSITORY_URL``)."""
    path = urlparse(url or config.REPOSITORY_URL).path.strip("/")
    return path[:-4] if path.endswith(".git") else path


def release_tag(version: str = __version__) -> str:
    """The git tag the set-up cell installs the course from: ``v`` and the package version (``v0.1.0``)."""
    return f"v{version}"


def setup_cell_source() -> str:
    """The source of the set-up cell (tag ``setup``): ``config.REPOSITORY_URL`` at :func:`release_tag`.

    On Colab or Kaggle it installs the course package unless this version is already installed: from a
    workshop kit when it finds one (``$COURSE_KIT``, else ``course-kit.json`` under ``/kaggle/input``, or
    ``$COURSE_KAGGLE_INPUT`` for tests), with no package index; otherwise from the repository at the release
    tag. A failed install prints one sentence (what failed, what to do, where pip's log is) and stops the
    notebook with a one-line error. It then links the data sets and weights of the kit (on Kaggle, of
    anything attached) into the lessons' caches. Elsewhere it does nothing. Before the install it needs only
    the standard library.
    """
    return _SETUP_TEMPLATE.format(repository=config.REPOSITORY_URL, ref=release_tag(),
                                  version=__version__).rstrip("\n")


_GITHUB_URL = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_REPOSITORY_LINE = re.compile(r'^REPOSITORY_URL = "[^"]*"$', re.MULTILINE)


def set_repository_url(url: str) -> Path:
    """Point the course at another repository (a fork): rewrite ``REPOSITORY_URL`` in ``config.py``.

    ``url`` must be a GitHub address, ``https://github.com/<owner>/<name>``, because the badges open the
    notebooks through GitHub. The running process uses the new URL at once, so a ``build`` that follows
    rewrites every badge and set-up cell with it. Returns the path of the rewritten ``config.py``.
    """
    url = url.strip().removesuffix("/").removesuffix(".git")
    if not _GITHUB_URL.match(url):
        raise ValueError(f"--repository {url!r} is not a GitHub repository address: use "
                         "https://github.com/<owner>/<name>, the fork's page on GitHub.")
    path = Path(config.__file__)
    text = path.read_text(encoding="utf-8")
    if len(_REPOSITORY_LINE.findall(text)) != 1:
        raise ValueError(f"{path} has no single line 'REPOSITORY_URL = \"...\"' to rewrite; restore it first.")
    with atomic_write(path) as temporary:
        temporary.write_text(_REPOSITORY_LINE.sub(f'REPOSITORY_URL = "{url}"', text), encoding="utf-8")
    config.REPOSITORY_URL = url
    return path


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
    """Solution lines found in the student notebook more often than outside the solution regions.

    Code and markdown cells both count: a line of a markdown answer that reaches students is a leak too.
    """
    kinds = ("code", "markdown")
    allowed: Counter[str] = Counter()
    secret: set[str] = set()
    for cell in solution.cells:
        if cell.cell_type not in kinds:
            continue
        hidden = solution_lines(cell.source)
        secret.update(hidden)
        allowed.update(line.strip() for line in cell.source.splitlines() if line.strip())
        allowed.subtract(hidden)
        stubs = _stub("", "") if cell.cell_type == "code" else [MARKDOWN_STUB]
        allowed.update(stub.strip() for stub in stubs if stub.strip())
    seen: Counter[str] = Counter(
        line.strip() for cell in student.cells if cell.cell_type in kinds
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
    """The parameters of a notebook's cell tagged ``parameters``, in order, as papermill infers them.

    A thin wrapper over :func:`papermill.inspect_notebook` (the inspection behind ``papermill
    --help-notebook``); an empty list when the notebook has no parameters cell.
    """
    from papermill import inspect_notebook  # papermill is slow to import

    return [Parameter(p["name"], p["inferred_type_name"], p["default"], p["help"])
            for p in inspect_notebook(str(notebook_path)).values()]


def show_parameters(notebook_path: str | Path, lesson: str) -> int:
    """Print a lesson's parameters with papermill's ``--help-notebook`` layout; 1 without a parameters cell.

    The usage line shows how to set them with ``course run``.
    """
    import click
    from papermill.inspection import display_notebook_help

    command = click.Command("course run", options_metavar=f"{lesson} [-p NAME VALUE]...")
    with click.Context(command, info_name="course run") as context:
        return display_notebook_help(context, str(notebook_path), None)
