"""Solution notebooks in, student notebooks out: exercise markers, the set-up cell, badges, build and check.

A maintainer edits only the notebooks in ``solutions/``. ``course build`` then

1. rewrites the cell tagged ``setup`` (installs the package on Colab and Kaggle) and the markdown cell tagged
   ``badges`` ("Open in Colab", "Open in Kaggle") from the templates below, with the repository address of
   the course being built: data, not code, in one place, the ``Repository`` entry of ``[project.urls]`` in
   the ``pyproject.toml`` beside ``solutions/`` (:func:`repository_url`);
2. writes the student version of each notebook to ``notebooks/``: every solution region becomes a stub,
   outputs, cell metadata (tags aside) and attachments are cleared, everything else is kept. Each student
   notebook records in its metadata (:data:`GENERATED_KEY`) which solution it came from and a digest of what
   was written, so that a later build overwrites or removes only notebooks it wrote and nobody changed
   since: a changed one is first copied to ``<name>.backup-<date>-<time>.ipynb``, files it did not write
   are never touched.

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

A line that looks like a marker but is not exactly one (``## BEGIN SOLUTION``, ``### Begin Solution``,
``### END SOLUTION (answer)``) is an error: left as it is, it would publish the answer it was meant to hide.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import nbformat

from course_utils import __version__
from course_utils.files import atomic_write

__all__ = ["BADGES_TAG", "BEGIN_MARKER", "BRANCH", "END_MARKER", "GENERATED_KEY", "HINT_TAG", "MARKDOWN_STUB",
           "PARAMETERS_TAG", "REFERENCE_PREFIX", "SETUP_TAG", "STUB_COMMENT", "BuildError", "MarkerError", "Parameter",
           "badges_markdown", "build", "check", "checked_repository_url", "content_digest", "leaked_solution_lines",
           "mark_generated", "notebook_url", "read_notebook", "read_parameters", "release_tag", "repository_url",
           "set_repository_url", "setup_cell_source", "show_parameters", "solution_lines", "solution_notebooks",
           "strip_markdown_solutions", "strip_solutions", "stub_message", "student_version", "sync_template_cells",
           "unchanged_since_build", "write_notebook"]

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
#: Tag of a markdown cell that shows solution lines on purpose (the steps of a loop the exercise assembles):
#: ``course check`` does not call them leaked there.
HINT_TAG = "solution-hint"

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)###\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^[ \t]*###\s*END SOLUTION\s*$")
# Anything that a reader would take for a marker: any number of #, any case, words run together, text after.
_NEAR_MARKER = re.compile(r"^\s*(?:#+|<!--|\*\*|__)\s*(?:BEGIN|END)[\s_-]*SOLUTIONS?(?![A-Za-z0-9])", re.IGNORECASE)
_REFERENCE = re.compile(r"^[ \t]*#\s*Reference:\s*(?P<line>\S.*?)\s*$")
_EXERCISE = re.compile(r"^\s*#\s*Exercise(?:\s+(?P<number>\d+))?\s*:\s*(?P<title>\S.*?)\s*$")
# Metadata written when a notebook runs; it describes outputs, so student versions drop it with them.
_EXECUTION_NOTEBOOK_METADATA = ("papermill", "widgets")


class MarkerError(ValueError):
    """A solution marker is misplaced (nested BEGIN, END without BEGIN, a missing END) or only nearly a marker."""


class BuildError(ValueError):
    """``course build`` cannot write where it was asked to without destroying something it did not write."""


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
        elif _NEAR_MARKER.match(text):
            raise error(f"line {index + 1}, {text.strip()!r}, looks like a solution marker but is not one, so the "
                        f"answer would be published: write exactly '{BEGIN_MARKER}' or '{END_MARKER}' (three #, "
                        "capitals, nothing after)")
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


def student_version(nb: nbformat.NotebookNode, notebook_name: str = "notebook") -> nbformat.NotebookNode:
    """Return the student version of a solution notebook (the input is not changed).

    Solution regions become stubs (in markdown and raw cells, one line :data:`MARKDOWN_STUB`), code outputs
    and execution counts are cleared, and the metadata a run writes (papermill records, widget state) is
    dropped with them. Cell metadata keeps only the tags and Jupyter's display switches, and attachments
    (images pasted into markdown) are removed: both could carry an answer. The rest of the markdown, cell ids
    and the notebook's kernel metadata stay identical. Errors name ``notebook_name``, the cell and exercise.
    """
    student = copy.deepcopy(nb)
    for key in _EXECUTION_NOTEBOOK_METADATA:
        student.metadata.pop(key, None)
    count = 0
    current: str | None = None
    for index, cell in enumerate(student.cells):
        cell.metadata = nbformat.NotebookNode(_student_cell_metadata(cell.get("metadata", {})))
        cell.pop("attachments", None)
        where = f"{notebook_name}, cell {index}"
        if cell.cell_type in ("markdown", "raw"):
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
# The set-up cell's template (the repository address and the version are filled in by setup_cell_source)
# --------------------------------------------------------------------------------------------------------

_SETUP_TEMPLATE = '''\
# Set-up: on Colab, Kaggle or with a workshop kit ($COURSE_KIT) this installs the course; else it does nothing.
# (Written by `course build` from course_tools/notebooks.py: edit the template there, not here.)
def _set_up_course(repository="{repository}", ref="{ref}", version="{version}"):
    import hashlib
    import importlib
    import importlib.metadata
    import io
    import json
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    import zipfile
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
    # A workshop kit (`course prefetch --kit`): the folder in $COURSE_KIT, on any Jupyter; else, on Kaggle, the
    # first one attached under the input folder that was built for this version of the course.
    chosen = os.environ.get("COURSE_KIT", "").strip()
    if not (on_colab or on_kaggle or chosen):
        print("Set-up: not on Colab or Kaggle and no COURSE_KIT set, nothing to do (install the course with "
              "`pip install -e .`).")
        return
    platform = "Colab" if on_colab else "Kaggle" if on_kaggle else "Jupyter"
    advice = f"rebuild the kit with `course prefetch --kit` from version {{version}} of the course"
    inputs = Path(os.environ.get("COURSE_KAGGLE_INPUT", "/kaggle/input"))
    if chosen:
        folders = [Path(chosen).expanduser()]
        if not (folders[0] / "course-kit.json").is_file():
            raise SetUpFailed(f"COURSE_KIT={{chosen}} is not a workshop kit (no course-kit.json): fix the path or "
                              "unset it.")
    else:
        folders = [path.parent for depth in ("", "*/", "*/*/", "*/*/*/")
                   for path in sorted(inputs.glob(depth + "course-kit.json"))] if on_kaggle else []
    kit = manifest = None
    problems = []
    for folder in folders:
        listing = folder / "course-kit.json"
        try:
            found = json.loads(listing.read_text(encoding="utf-8"))
            if not (isinstance(found.get("wheels"), list) and isinstance(found.get("files"), dict)):
                raise ValueError("no list of wheels and their SHA-256")
        except (OSError, ValueError, AttributeError) as error:
            problems.append(f"{{listing}} is not a kit manifest ({{error}}): {{advice}}.")
            continue
        if found.get("version") != version:
            problems.append(f"the kit in {{folder}} is for course version {{found.get('version')}}, these notebooks "
                            f"are version {{version}}: attach a kit of version {{version}}, or {{advice}}.")
            continue
        kit, manifest = folder, found
        break
    if kit is None and problems:
        raise SetUpFailed(problems[0] if len(problems) == 1 else
                          f"none of the {{len(problems)}} kits attached fits: " + " ".join(problems))
    verified = {{}}  # the kit's wheels, read once and checked against its manifest's SHA-256
    if kit is not None:
        files, listing = manifest["files"], kit / "course-kit.json"
        for name, digest in files.items():
            if not (isinstance(name, str) and isinstance(digest, str) and not name.startswith("/")
                    and ".." not in name.split("/")):
                raise SetUpFailed(f"{{listing}} lists {{name!r}}, which is not a file of the kit: {{advice}}.")
        missing = [name for name in files if not (kit / name).is_file()]
        if missing:
            raise SetUpFailed(f"the kit in {{kit}} lacks {{len(missing)}} of the files course-kit.json lists, first "
                              f"{{missing[0]}} (deleted, or not uploaded): nothing was installed; {{advice}}.")

        def checked(name):
            data = (kit / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != files.get(name):
                raise SetUpFailed(f"{{kit / name}} does not match the SHA-256 recorded in course-kit.json (changed or "
                                  f"damaged since the kit was built): nothing was installed; {{advice}}.")
            return data

        for name in manifest["wheels"]:
            if not (isinstance(name, str) and name.endswith(".whl") and Path(name).name == name
                    and not name.startswith(".")):
                raise SetUpFailed(f"{{listing}} lists {{name!r}}, which is not a wheel's name: {{advice}}.")
            verified[name] = checked("wheels/" + name)
        # The course wheel must be the version the manifest names: a manifest edited to another version is noticed.
        course = [name for name in verified if name.startswith("course_utils-")]
        try:
            with zipfile.ZipFile(io.BytesIO(verified[course[0]])) as archive:
                text = archive.read(next(item for item in archive.namelist()
                                         if item.endswith(".dist-info/METADATA"))).decode("utf-8")
            built = next(line[8:].strip() for line in text.splitlines() if line.startswith("Version:"))
        except (IndexError, StopIteration, KeyError, ValueError, zipfile.BadZipFile):
            raise SetUpFailed(f"{{listing}} lists no readable course wheel: {{advice}}.") from None
        if built != version:
            raise SetUpFailed(f"{{listing}} says course version {{version}}, but its course wheel {{course[0]}} is "
                              f"version {{built}} (the manifest was edited): {{advice}}.")
    try:
        installed = importlib.metadata.version("course-utils")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed == version:
        print(f"Set-up ({{platform}}): the course package {{version}} is already installed.")
    else:
        wheelhouse = None
        if kit is not None:
            source = f"the workshop kit in {{kit}}"
            # Only the checked bytes are installed: copied to a folder of their own.
            wheelhouse = Path(tempfile.mkdtemp(prefix="course-kit-wheels-"))
            for name, data in verified.items():
                (wheelhouse / name).write_bytes(data)
            pip = ["--no-index", "--find-links", str(wheelhouse), f"course-utils=={{version}}"]
        else:
            source = f"{{repository}} at {{ref}}"
            pip = [f"course-utils @ git+{{repository}}@{{ref}}"]
            advice = ("switch Settings -> Internet on, or attach the workshop kit as input" if on_kaggle
                      else "check the repository URL and that it has the tag or commit " + ref)
        print(f"Set-up ({{platform}}): installing the course package {{version}} from {{source}} ...")
        result = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                                 "--no-color", "--retries", "1", *pip], capture_output=True, text=True)
        if wheelhouse is not None:
            shutil.rmtree(wheelhouse, ignore_errors=True)
        if result.returncode != 0:
            log = Path(tempfile.gettempdir()) / "course-setup-pip.log"
            log.write_text(result.stdout + result.stderr)
            errors = [line[6:].strip() for line in (result.stderr + result.stdout).splitlines()
                      if line.startswith("ERROR:")]
            reason = f" ({{errors[-1]}})" if errors and kit is not None else ""
            print(f"Set-up ({{platform}}) failed: pip could not install the course from {{source}}{{reason}}; "
                  f"{{advice}} (pip's log: {{log}}).")
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
    for name in manifest["files"] if kit is not None else []:
        if name.startswith("checkpoints/"):
            checked(name)  # weights are loaded with torch.load: only the kit's own
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
    # Results of earlier lessons the kit carries, where each lesson looks for them (never over a lesson's own).
    carried = manifest.get("results") if kit is not None else None
    placed = []
    for lesson in carried if isinstance(carried, dict) else {{}}:
        target = config.default_output_dir(lesson)
        names = [name for name in ("test_outcomes.json", "metrics.json") if f"results/{{lesson}}/{{name}}" in files]
        if lesson not in config.LESSONS or any((target / name).exists() for name in names):
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in names:  # metrics.json last: a lesson's results are there once it is
            (target / name).write_bytes(checked(f"results/{{lesson}}/{{name}}"))
        placed.append(lesson[:2])
    if placed:
        print(f"Set-up ({{platform}}): the kit's results of lessons {{', '.join(placed)}} "
              f"({{', '.join(sorted(set(carried.values())))}} profile) are in {{config.default_output_dir('')}}")
    print(f"Set-up ({{platform}}): data in {{data}}, outputs in {{config.default_output_dir('')}}")
    try:
        gpu = torch.cuda.is_available()
        device = f"cuda ({{torch.cuda.get_device_name(0)}})" if gpu else "cpu (switch on a GPU runtime)"
    except Exception:  # the lesson reports the device again once it starts
        gpu, device = False, "unknown"
    # The profile: the kit's manifest says which ones it serves with no network.
    served = manifest.get("profiles") if kit is not None else None
    asked = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if isinstance(served, list) and (asked or ("full" if gpu else "offline")) not in served:
        if asked:
            print(f"Set-up ({{platform}}): COURSE_PROFILE={{asked}}, but this kit serves {{', '.join(served)}}: the "
                  "lessons will try to download what it lacks; set COURSE_PROFILE=offline, or build the kit with "
                  "`course prefetch --kit DIR --profile full`.")
        else:
            os.environ["COURSE_PROFILE"] = "offline"
            print(f"Set-up ({{platform}}): this kit serves the offline profile (no GTSRB or ResNet weights in it), so "
                  "COURSE_PROFILE=offline despite the GPU; for the full profile build the kit with "
                  "`course prefetch --kit DIR --profile full`.")
    profile = os.environ.get("COURSE_PROFILE") or "chosen automatically (full with a GPU, else offline)"
    print(f"Set-up ({{platform}}): device {{device}}; profile {{profile}}")


_set_up_course()
del _set_up_course
'''


# --------------------------------------------------------------------------------------------------------
# The repository address: data in the pyproject.toml of the course being built, never Python source
# --------------------------------------------------------------------------------------------------------

# GitHub's rules: an owner is letters, digits and single hyphens; a repository name letters, digits, ".", "_", "-".
_GITHUB_URL = re.compile(r"^https://github\.com/(?P<owner>[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38})/"
                         r"(?P<name>[A-Za-z0-9._-]{1,100})$")
# The [project.urls] table of a pyproject.toml (up to the next table), and its Repository = "..." line.
_URLS_TABLE = re.compile(r"^\[project\.urls\][ \t]*(?:#[^\n]*)?$(?P<body>.*?)(?=^[ \t]*\[|\Z)",
                         re.MULTILINE | re.DOTALL)
_REPOSITORY_ENTRY = re.compile(r'^(?P<key>[ \t]*"?Repository"?[ \t]*=[ \t]*)"(?P<url>[^"\n]*)"'
                               r'(?P<rest>[ \t]*(?:#.*)?)$', re.MULTILINE)
_PROJECT_FILE = "pyproject.toml"


def checked_repository_url(url: str, where: str = "--repository") -> str:
    """``url`` as ``https://github.com/<owner>/<name>`` (a trailing ``/`` or ``.git`` dropped), else ValueError.

    The badges open the notebooks through GitHub, so only a GitHub address will do; ``where`` names the value
    in the error (the option, or the file it was read from).
    """
    cleaned = url.strip().removesuffix("/").removesuffix(".git") if isinstance(url, str) else ""
    match = _GITHUB_URL.match(cleaned)
    if not match or ".." in match.group("name") or match.group("name") == ".":
        raise ValueError(f"{where} {url!r} is not a GitHub repository address: use "
                         "https://github.com/<owner>/<name>, the fork's page on GitHub.")
    return cleaned


def _course_checkout() -> Path:
    """The checkout these tools run from: the folder above ``course_tools/``."""
    return Path(__file__).resolve().parents[1]


def _repository_entry(path: Path) -> tuple[str, int, re.Match[str]]:
    """A ``pyproject.toml``'s text, and its one ``Repository = "..."`` line of ``[project.urls]`` (with the
    line's offset in the text)."""
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{path} is not a regular file: the course's repository address lives in the "
                         "pyproject.toml of the course repository, under [project.urls].")
    text = path.read_text(encoding="utf-8")
    entries = [(table.start("body"), entry) for table in _URLS_TABLE.finditer(text)
               for entry in _REPOSITORY_ENTRY.finditer(table.group("body"))]
    if len(entries) != 1:
        raise ValueError(f"{path} has no single 'Repository = \"https://github.com/<owner>/<name>\"' line under "
                         "[project.urls]: add it there (the address course build writes into every notebook).")
    offset, entry = entries[0]
    return text, offset, entry


def repository_url(root: str | Path | None = None) -> str:
    """The GitHub address of the course repository ``root``: ``Repository`` in its ``pyproject.toml``.

    ``root`` is the folder that holds ``solutions/``. When it has no ``pyproject.toml`` (solutions copied to
    a scratch folder), the address is read from the checkout these tools run from; it is only ever written
    by :func:`set_repository_url`, into the repository being built.
    """
    folder = Path(root) if root is not None else _course_checkout()
    if not (folder / _PROJECT_FILE).exists() and not (folder / _PROJECT_FILE).is_symlink():
        folder = _course_checkout()
    path = folder / _PROJECT_FILE
    _, _, entry = _repository_entry(path)
    return checked_repository_url(entry.group("url"), where=f"{path}: Repository")


def _repository_root(solutions_dir: str | Path) -> Path:
    """The course repository being built: the folder holding ``solutions_dir`` (as given, links not followed)."""
    return Path(os.path.abspath(solutions_dir)).parent


def set_repository_url(url: str, solutions_dir: str | Path = "solutions") -> Path:
    """Point the course at another repository (a fork): rewrite its address in the repository being built.

    That is the ``Repository`` line under ``[project.urls]`` in the ``pyproject.toml`` beside
    ``solutions_dir``, and only that line: no Python source, no other checkout (the one the course package
    is imported from may be another). ``url`` must be ``https://github.com/<owner>/<name>``. A ``build`` of
    the same ``solutions_dir`` that follows writes every badge and set-up cell with it. Returns the file.
    """
    url = checked_repository_url(url)
    path = _repository_root(solutions_dir) / _PROJECT_FILE
    if not path.exists() and not path.is_symlink():
        raise ValueError(f"No {_PROJECT_FILE} in {path.parent}: --repository rewrites the address of the course "
                         f"repository that holds {solutions_dir}; run it in a clone of the course.")
    text, offset, entry = _repository_entry(path)
    line = f'{entry.group("key")}"{url}"{entry.group("rest")}'
    updated = text[:offset + entry.start()] + line + text[offset + entry.end():]
    with atomic_write(path) as temporary:
        temporary.write_text(updated, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------------
# The set-up cell and the badges
# --------------------------------------------------------------------------------------------------------


def release_tag(version: str = __version__) -> str:
    """The git tag the set-up cell installs the course from: ``v`` and the package version (``v0.1.0``)."""
    return f"v{version}"


def setup_cell_source(repository: str | None = None) -> str:
    """The source of the set-up cell (tag ``setup``): the course from ``repository`` at :func:`release_tag`.

    ``repository`` defaults to :func:`repository_url` of the checkout these tools run from. On Colab or
    Kaggle the cell installs the course package unless this version is already installed: from a workshop
    kit when it finds one (``$COURSE_KIT``, else ``course-kit.json`` under ``/kaggle/input``, or
    ``$COURSE_KAGGLE_INPUT`` for tests), with no package index and only wheels whose SHA-256 matches the
    kit's manifest (a changed wheel stops the cell, named); otherwise from the repository at the release
    tag. A failed install prints one sentence (what failed, what to do, where pip's log is) and stops the
    notebook with a one-line error. It then links the data sets and weights of the kit (on Kaggle, of
    anything attached) into the lessons' caches. Elsewhere it does nothing. It needs only the standard
    library before the install.
    """
    repository = checked_repository_url(repository) if repository is not None else repository_url()
    return _SETUP_TEMPLATE.format(repository=repository, ref=release_tag(), version=__version__).rstrip("\n")


def _owner_and_name(repository: str | None) -> str:
    """``owner/name`` of a GitHub repository address (default: :func:`repository_url`)."""
    url = checked_repository_url(repository) if repository is not None else repository_url()
    return url.removeprefix("https://github.com/")


def notebook_url(lesson: str, repository: str | None = None) -> str:
    """The GitHub address of a lesson's student notebook."""
    return f"https://github.com/{_owner_and_name(repository)}/blob/{BRANCH}/notebooks/{lesson}.ipynb"


def badges_markdown(lesson: str, repository: str | None = None) -> str:
    """Markdown for the "Open in Colab" and "Open in Kaggle" badges of a lesson's student notebook."""
    colab = (f"https://colab.research.google.com/github/{_owner_and_name(repository)}/blob/{BRANCH}/notebooks/"
             f"{lesson}.ipynb")
    kaggle = f"https://kaggle.com/kernels/welcome?src={notebook_url(lesson, repository)}"
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})\n"
        f"[![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({kaggle})"
    )


def _tagged(nb: nbformat.NotebookNode, tag: str) -> list[Any]:
    return [cell for cell in nb.cells if tag in cell.get("metadata", {}).get("tags", [])]


def sync_template_cells(nb: nbformat.NotebookNode, lesson: str, repository: str | None = None) -> bool:
    """Rewrite the ``setup`` and ``badges`` cells of ``nb`` from their templates; whether any changed."""
    templates = ((SETUP_TAG, setup_cell_source(repository)), (BADGES_TAG, badges_markdown(lesson, repository)))
    changed = False
    for tag, source in templates:
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
    repository = repository_url(_repository_root(solutions_dir))
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
    repository = repository_url(_repository_root(solutions_dir))
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
            problems.append(f"{path}: the set-up or badges cell differs from its template; run `course build`.")
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
