"""``course run``: execute lessons with papermill, one output folder each, and write a report.

For every chosen lesson, in order, ``run_lessons`` executes ``solutions/<lesson>.ipynb`` into
``<output>/<lesson>/<lesson>.ipynb`` with the parameters ``PROFILE`` and ``OUTPUT_DIR`` set (plus the ones you
give), exports it to HTML beside it, and reads the ``metrics.json`` the lesson writes there. A failing cell
stops that lesson only (unless ``stop_on_failure``); one line names the lesson, the cell and the error.
Finally ``<output>/report.md`` and ``<output>/report.html`` hold one row per lesson.

Parameter names are checked against each notebook's ``parameters`` cell before anything runs (papermill
alone would only warn), and values typed on the command line are converted to the type of the default.

Stopping loses nothing: Ctrl+C, ``SIGTERM`` (a timeout, a cancelled CI job, ``docker stop``) and ``SIGHUP`` (a closed
terminal) all end the run the same way: the lesson that was running is marked interrupted and kept as far as it
ran, the report is written, and the exit status is 128 + the signal's number. A kernel that dies (killed for
lack of memory, most often) is reported with the cell it was running.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import html
import logging
import math
import os
import platform
import re
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course_tools import kernel_noise
from course_tools.notebooks import Parameter, read_notebook, read_parameters, write_notebook
from course_utils import config
from course_utils.files import write_text_atomic
from course_utils.results import METRICS_FILE, read_metrics

__all__ = ["CPU_WAIT_POLICY", "INTERRUPTED_EXIT_CODE", "KERNEL_FINISH_SECONDS", "KERNEL_QUIET_ARGUMENTS",
           "METRIC_WORDS", "PATH_PARAMETERS", "REPORT_COLUMNS", "REPORT_STYLE", "RESERVED_PARAMETERS", "STOP_SIGNALS",
           "WIDGET_VIEW", "LessonResult",
           "LessonSelectionError", "RunStopped", "Stopper", "absolute_paths", "available_lessons", "convert_value",
           "drop_widget_state", "export_html", "finding_lines", "interrupted_exit_code", "key_metrics",
           "lesson_parameters", "metric_name", "public_text", "report_rows", "require_solutions_dir",
           "resolve_lesson", "run_lesson", "run_lessons", "write_report"]

#: Parameters that ``run_lessons`` sets itself (from ``profile`` and ``output_dir``).
RESERVED_PARAMETERS = ("PROFILE", "OUTPUT_DIR")


class LessonSelectionError(ValueError):
    """A lesson name or a parameter that no chosen lesson knows."""


#: Exit status of a run stopped with Ctrl+C (128 + SIGINT), as shells report it.
INTERRUPTED_EXIT_CODE = 130

#: The signals that stop a run as Ctrl+C does: Ctrl+C itself, ``SIGTERM`` (timeouts, cancelled CI jobs,
#: ``docker stop``) and ``SIGHUP`` (the terminal was closed). Windows has only the first two.
STOP_SIGNALS: tuple[int, ...] = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                                      if hasattr(signal, name))

#: Parameters holding paths: a relative path means relative to the folder ``course run`` was started in
#: (the kernel itself runs in ``solutions/``).
PATH_PARAMETERS = ("DATASET", "DATA_DIR", "UNLABELED_DIR")


class RunStopped(KeyboardInterrupt):
    """``course run`` got one of the :data:`STOP_SIGNALS`; ``signal_number`` says which.

    A kind of ``KeyboardInterrupt``, so that everything that cleans up after Ctrl+C cleans up after it too.
    """

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


@dataclass
class LessonResult:
    """What happened to one lesson: ``status`` is ``passed``, ``failed``, ``interrupted`` or ``skipped``."""

    lesson: str
    status: str
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    notebook: Path | None = None
    html: Path | None = None
    signal_number: int | None = None  # for ``interrupted``: the signal that stopped the run


def interrupted_exit_code(result: LessonResult) -> int:
    """The exit status for a run that ``result``'s interruption stopped: 128 + the signal's number, as shells
    report it (130 for Ctrl+C, 143 for ``SIGTERM``, 129 for ``SIGHUP``)."""
    return 128 + (result.signal_number or signal.SIGINT)


# --------------------------------------------------------------------------------------------------------
# Choosing lessons and parameters
# --------------------------------------------------------------------------------------------------------


def require_solutions_dir(solutions_dir: str | Path) -> Path:
    """Return ``solutions_dir`` when it is a folder; else raise :class:`LessonSelectionError` naming it.

    Run outside the repository, ``course`` would otherwise find no notebooks and report success.
    """
    folder = Path(solutions_dir)
    if not folder.is_dir():
        raise LessonSelectionError(
            f"No solutions folder at {folder.absolute()}: run course from the course repository's root "
            "folder, or pass --solutions DIR.")
    return folder


def absolute_paths(parameters: dict[str, Any], base_dir: str | Path | None = None) -> dict[str, Any]:
    """Make the paths among ``parameters`` (:data:`PATH_PARAMETERS`) absolute: relative ones from ``base_dir``,
    ``~`` the home folder.

    ``base_dir`` defaults to the current folder (where ``course run`` was started). Data set names such as
    ``synthetic-signs`` stay names, unless a folder of that name exists in ``base_dir``.
    """
    from course_utils.config import DATASETS

    base = Path(base_dir) if base_dir is not None else Path.cwd()
    converted = dict(parameters)
    for name, value in parameters.items():
        if name.upper() not in PATH_PARAMETERS or not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if path.is_absolute():
            converted[name] = str(path)
            continue
        if name.upper() == "DATASET" and value in DATASETS and not (base / path).is_dir():
            continue
        converted[name] = str((base / path).absolute())
    return converted


def available_lessons(solutions_dir: str | Path = "solutions") -> list[str]:
    """The lessons in ``solutions_dir``, sorted: notebooks ``NN_<topic>.ipynb`` or in ``config.LESSONS``."""
    folder = Path(solutions_dir)
    numbered = {path.stem for path in folder.glob("*.ipynb") if re.match(r"\d+_", path.name)}
    listed = {lesson for lesson in config.LESSONS if (folder / f"{lesson}.ipynb").is_file()}
    return sorted(numbered | listed)


def resolve_lesson(name: str, lessons: Sequence[str]) -> str:
    """Find a lesson by full name (``01_cnn_from_scratch``), number (``01`` or ``1``), topic or file path."""
    name = Path(name).stem if name.endswith(".ipynb") else name
    if name in lessons:
        return name
    def number(lesson: str) -> int | None:
        prefix = lesson.split("_")[0]
        return int(prefix) if prefix.isdigit() else None

    matches = [lesson for lesson in lessons
               if (name.isdigit() and number(lesson) == int(name)) or lesson.split("_", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(lessons) or "(none found)"
    raise LessonSelectionError(f"Unknown lesson {name!r}: choose one of {choices}.")


_TYPE_WORD = re.compile(r"\b(bool|int|float|str)\b")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _declared_type(parameter: Parameter) -> type | None:
    """The type a parameter expects: from its annotation, else from its default value, else ``None``."""
    match = _TYPE_WORD.search(parameter.type) if parameter.type != "None" else None
    if match:
        return {"bool": bool, "int": int, "float": float, "str": str}[match.group(1)]
    try:
        default = ast.literal_eval(parameter.default)
    except (ValueError, SyntaxError):
        return None
    return type(default) if isinstance(default, (bool, int, float, str)) else None


def convert_value(value: Any, parameter: Parameter) -> Any:
    """Convert a value typed on the command line to the type of the parameter's default.

    Non-strings pass unchanged. ``"None"`` gives ``None``. Booleans accept true/false, yes/no, on/off, 1/0.
    Parameters whose default is ``None`` get the Python literal the text spells (``3`` -> 3), else the text.
    """
    if not isinstance(value, str):
        return value
    if value == "None":
        return None
    expected = _declared_type(parameter)
    text = value.strip()
    if expected is bool and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    if expected is str:
        return value
    if expected in (int, float):
        try:
            return expected(text)
        except ValueError:
            pass
    elif expected is None:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return value
    raise config.ParameterError(f"Parameter {parameter.name} expects {expected.__name__} (default "
                                f"{parameter.default}), got {value!r}.")


def lesson_parameters(lessons: Sequence[str], parameters: dict[str, Any],
                      solutions_dir: Path) -> dict[str, dict[str, Any]]:
    """Match ``parameters`` to each lesson's ``parameters`` cell; the converted values per lesson.

    A name is matched case-insensitively and passed to every lesson that declares it. A name that no chosen
    lesson declares, or a reserved one, raises :class:`LessonSelectionError` listing the valid names.
    """
    declared = {lesson: {p.name: p for p in read_parameters(solutions_dir / f"{lesson}.ipynb")}
                for lesson in lessons}
    valid = sorted({name for names in declared.values() for name in names} - set(RESERVED_PARAMETERS))
    per_lesson: dict[str, dict[str, Any]] = {lesson: {} for lesson in lessons}
    for name, value in parameters.items():
        if name.upper() in RESERVED_PARAMETERS:
            option = "--profile" if name.upper() == "PROFILE" else "--output"
            raise LessonSelectionError(f"Parameter {name} is set by course run itself; use {option}.")
        used = False
        for lesson, known in declared.items():
            spelled = next((key for key in known if key.upper() == name.upper()), None)
            if spelled is not None:
                per_lesson[lesson][spelled] = convert_value(value, known[spelled])
                used = True
        if not used:
            raise LessonSelectionError(f"Unknown parameter {name!r} for {', '.join(lessons)}: valid names "
                                       f"are {', '.join(valid) or '(none)'}.")
    return per_lesson


# --------------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------------


#: How PyTorch's CPU threads wait for each other in the lessons' kernels (``OMP_WAIT_POLICY``). With the default
#: (spinning), a thread that the operating system takes off a busy 2-core CPU stalls its partner at every
#: operation, and a cell that takes a second on an idle machine takes half a minute beside other work (figures in
#: benchmarks/README.md, "The offline course at the CPU's limit"). It only takes effect before torch is imported, so
#: it is set for the kernel here and, for Jupyter, in every lesson's set-up cell.
CPU_WAIT_POLICY = "PASSIVE"


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    """Set environment variables (the kernel inherits them) for the duration of a block."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: Kernel command-line options for ``course run``: only errors from the kernel's own log reach the terminal, and
#: not the closed-socket race of a stopped lesson (:mod:`course_tools.kernel_noise`, loaded as an IPython extension).
KERNEL_QUIET_ARGUMENTS = ["--IPKernelApp.log_level=ERROR", "--IPKernelApp.extensions=course_tools.kernel_noise"]


def _kernel_name(notebook: Path, kernel_name: str | None) -> str:
    """The kernel: the one asked for, else the notebook's if installed, else ``python3`` (this Python)."""
    if kernel_name:
        return kernel_name
    from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager

    wanted = read_notebook(notebook).metadata.get("kernelspec", {}).get("name")
    if wanted and wanted in KernelSpecManager().find_kernel_specs():
        return wanted
    return NATIVE_KERNEL_NAME


#: How long a kernel may take to stop the cell a stop signal interrupted (seconds); then the run stops without it.
KERNEL_FINISH_SECONDS = 10.0


class Stopper:
    """Turns :data:`STOP_SIGNALS` into a stop that loses nothing, the way Jupyter's "interrupt" button works.

    While a cell runs, the first signal interrupts the kernel: the cell ends with a ``KeyboardInterrupt``,
    papermill saves the notebook, and the idle kernel shuts down cleanly. (Raising in ``course run`` instead,
    while the kernel is busy, races the kernel's last reply against its shutdown: the kernel then logs a 17-line
    ``ZMQError`` traceback.) While papermill is busy otherwise (starting the kernel, between two cells), the next
    cell does not start. Outside papermill, at a second signal, or when the kernel has not stopped the cell after
    :data:`KERNEL_FINISH_SECONDS`, :class:`RunStopped` is raised at once and the kernel is shut down immediately.
    """

    def __init__(self) -> None:
        self.signal_number: int | None = None  # the first stop signal received
        self.forced = False  # stopped without waiting for the kernel
        self.executing = False  # papermill is executing a lesson
        self.cell_running = False
        self.cell_index: int | None = None  # the notebook index of the cell the kernel is running
        self.cut_cell: int | None = None  # the cell a stop cut without waiting for the kernel
        self.refused_cell: int | None = None  # the cell a stop kept from starting
        self.kernel: Any = None  # the kernel manager of the lesson being executed
        self._timer: Any = None

    def receive(self, number: int, frame: object = None) -> None:
        """The signal handler."""
        if self.signal_number is None and self.executing:
            self.signal_number = number
            if not self.cell_running or self._interrupt_kernel():
                return
        self._force()
        raise RunStopped(self.signal_number or number)

    def _force(self) -> None:
        """Stop without waiting for the kernel, remembering the cell that is cut."""
        self.forced = True
        if self.cell_running:
            self.cut_cell = self.cell_index

    def _interrupt_kernel(self) -> bool:
        """Ask the event loop that waits for the running cell to interrupt the kernel; whether it could."""
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self.kernel is None:
            return False

        def interrupt() -> None:
            task = loop.create_task(self.kernel.interrupt_kernel())
            task.add_done_callback(lambda done: done.cancelled() or done.exception())  # failures: see the timer
            self._timer = loop.call_later(KERNEL_FINISH_SECONDS, self._give_up)

        loop.call_soon_threadsafe(interrupt)
        return True

    def _give_up(self) -> None:
        if self.cell_running:
            self._force()
            raise RunStopped(self.signal_number or signal.SIGINT)

    def cell_starts(self, **cell: Any) -> None:
        """papermill's hook before a cell is sent to the kernel: no new cell once a stop was asked for."""
        if self.signal_number is not None:
            self.refused_cell = cell.get("cell_index")
            raise RunStopped(self.signal_number)
        self.cell_running, self.cell_index = True, cell.get("cell_index")

    def cell_ends(self, **cell: Any) -> None:
        """papermill's hook when a cell's reply arrived."""
        self.cell_running, self.cell_index = False, None

    @contextlib.contextmanager
    def executing_lesson(self) -> Iterator[dict[str, Any]]:
        """Around papermill's execution of one lesson: the options that connect papermill's kernel to this
        stopper (hooks, kernel manager)."""
        self.executing, self.cell_running, self.kernel = True, False, None
        self.cell_index = self.cut_cell = self.refused_cell = None
        try:
            yield {"kernel_manager_class": _kernel_manager_class(self), "on_cell_execute": self.cell_starts,
                   "on_cell_executed": self.cell_ends}
        finally:
            self.executing, self.cell_running, self.kernel = False, False, None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[None]:
        """Within the block, :meth:`receive` handles each of :data:`STOP_SIGNALS`. A signal someone set to be
        ignored (``nohup`` ignores ``SIGHUP``) or handled otherwise stays as it is; outside the main thread
        nothing changes (Python handles signals only there)."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                if signal.getsignal(number) in (signal.SIG_DFL, signal.default_int_handler):
                    previous[number] = signal.signal(number, self.receive)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _kernel_manager_class(stopper: Stopper) -> type:
    """jupyter_client's kernel manager, made known to ``stopper`` when it starts its kernel (so that a stop
    signal can interrupt it), and shutting the kernel down at once when ``stopper`` could not wait for it."""
    from jupyter_client.manager import AsyncKernelManager

    class LessonKernelManager(AsyncKernelManager):
        async def start_kernel(self, **options: Any) -> None:
            stopper.kernel = self
            await super().start_kernel(**options)

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            await super().shutdown_kernel(now=now or stopper.forced, restart=restart)

    return LessonKernelManager


class _WithoutKernelDiedLine(logging.Filter):
    """Drops nbclient's "Kernel died while waiting for execute reply." log line: ``course run`` reports a dead
    kernel itself, in one line that names the lesson and the cell."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Kernel died")


#: What a dead kernel's cell and line say: a kernel dies mostly because the system ran out of memory and killed it.
_DEAD_KERNEL_ADVICE = ("the kernel died (most often: it ran out of memory; try a smaller BATCH_SIZE or IMAGE_SIZE, "
                       "or close other programs)")


def _solution_cells(notebook: Any) -> list:
    """The cells of an executed notebook that come from the solution (not those papermill put in)."""
    added = {"injected-parameters", "papermill-error-cell-tag"}
    return [cell for cell in notebook.cells if not added & set(cell.metadata.get("tags", []))]


def _mark_cut_short(notebook: Any, cut: Any, error: tuple[str, str] | None) -> None:
    """Make an executed notebook's statuses true after papermill was cut short at the cell ``cut``.

    papermill then marks every cell "completed", the ones that never ran included. Here ``cut`` becomes "failed"
    with an error output ``(name, message)``, or "pending" with ``error=None`` (it never started), and every cell
    after it "pending".
    """
    import nbformat

    after = False
    for cell in notebook.cells:
        state = cell.metadata.get("papermill")
        if (after or (cell is cut and error is None)) and isinstance(state, dict):
            state.update(status="pending", exception=None, start_time=None, end_time=None, duration=None)
        after = after or cell is cut
    if error is not None:
        name, message = error
        cut.metadata.setdefault("papermill", {}).update(status="failed", exception=True)
        cut.setdefault("outputs", []).append(nbformat.v4.new_output(
            "error", ename=name, evalue=message, traceback=[f"{name}: {message}"]))
        notebook.metadata.setdefault("papermill", {})["exception"] = True


def _record_stop(executed: Path, stopper: Stopper) -> None:
    """After a stop that did not wait for the kernel, mark in the executed notebook the cell it cut (or the one it
    kept from starting) and the cells that never ran; a stop the kernel finished itself is already recorded."""
    import nbformat

    index = stopper.cut_cell if stopper.cut_cell is not None else stopper.refused_cell
    if index is None or stopper.signal_number is None:
        return
    try:
        notebook = read_notebook(executed)
        cut = notebook.cells[index]
    except (OSError, ValueError, IndexError, AttributeError):
        return  # a notebook cut off mid-write is kept as it is
    name = signal.Signals(stopper.signal_number).name
    error = None if stopper.cut_cell is None else (
        "KeyboardInterrupt", f"stopped by {name}: the kernel had not finished this cell {KERNEL_FINISH_SECONDS:.0f} s "
                             f"after the stop, so it was shut down")
    _mark_cut_short(notebook, cut, error)
    with contextlib.suppress(OSError):
        write_text_atomic(executed, nbformat.writes(notebook))


def _record_dead_kernel(lesson: str, executed: Path) -> str:
    """Mark in the executed notebook the cell that ran when the kernel died; return one line naming it.

    papermill marks every cell "completed" when the kernel dies; here the cell that was running becomes "failed"
    with an error output saying why, and the cells after it "pending" (they never ran).
    """
    import nbformat

    try:
        notebook = read_notebook(executed)
        started = [cell for cell in notebook.cells if cell.metadata.get("papermill", {}).get("start_time")]
        running = started[-1]
    except (OSError, ValueError, IndexError, AttributeError):
        return f"{lesson}: {_DEAD_KERNEL_ADVICE}"
    _mark_cut_short(notebook, running, ("DeadKernelError", _DEAD_KERNEL_ADVICE))
    with contextlib.suppress(OSError):
        write_text_atomic(executed, nbformat.writes(notebook))
    cells = _solution_cells(notebook)
    index = next((i for i, cell in enumerate(cells) if cell is running), None)
    first_line = next((line.strip() for line in running.source.splitlines() if line.strip()), "")
    count = running.get("execution_count")  # None when the kernel died before it numbered the cell
    prompt = f"In [{count}]: " if count is not None else ""
    where = f"cell {index} ({prompt}{first_line[:60]})" if index is not None else "a cell"
    return f"{lesson}: {where} was running when {_DEAD_KERNEL_ADVICE}"


def _failure_line(lesson: str, error: BaseException, executed: Path) -> str:
    """One line naming the lesson, the failing cell (as numbered in the solution notebook) and the error."""
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(error, PapermillExecutionError):
        first = (str(error).strip().splitlines() or [""])[0]
        return f"{lesson}: {type(error).__name__}: {first}"
    index = error.cell_index
    with contextlib.suppress(Exception):  # number the cell as in the solution notebook
        cells = _solution_cells(read_notebook(executed))
        index = next(i for i, cell in enumerate(cells) if cell.cell_type == "code"
                     and cell.source == error.source and cell.execution_count == error.exec_count)
    first_line = next((line.strip() for line in (error.source or "").splitlines() if line.strip()), "")
    evalue = (error.evalue or "").strip().splitlines()[0] if error.evalue else ""
    return (f"{lesson}: cell {index} (In [{error.exec_count}]: {first_line[:60]}) failed: "
            f"{error.ename}: {evalue}")


def export_html(notebook: Path, output_dir: Path | None = None) -> Path | None:
    """Write ``<notebook>.html`` beside an executed notebook (nbconvert); ``None`` without nbconvert.

    The page is meant to be shared: the folders of this machine in it are written as :func:`public_text` does.
    """
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    body, _ = HTMLExporter().from_notebook_node(read_notebook(notebook))
    return write_text_atomic(notebook.with_suffix(".html"), public_text(body, output_dir))


#: The output types of a Jupyter widget: alive only while the kernel that drew it runs.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_widget_state(notebook: Path) -> bool:
    """Remove the widgets' saved state and views from an executed notebook; whether anything was removed.

    A finished notebook reopened later cannot reach the kernel that drew its widgets, so every widget shows
    "Error displaying widget: model not found" (and an empty box in HTML). The plain-text form each output
    carries beside its widget (the one-line summary of a progress bar) stays.
    """
    document = read_notebook(notebook)
    changed = document.metadata.pop("widgets", None) is not None
    for cell in document.cells:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data")
            if isinstance(data, dict) and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                changed = True
                if not data:
                    continue  # a widget with no text form: nothing left to show
            kept.append(output)
        if "outputs" in cell:
            cell.outputs = kept
    if changed:
        write_notebook(document, notebook)
    return changed


def run_lesson(lesson: str, *, profile: str | None, parameters: dict[str, Any], output_dir: Path,
               solutions_dir: Path, kernel_name: str | None = None, verbose: bool = True,
               stopper: Stopper | None = None) -> LessonResult:
    """Execute one lesson into ``output_dir/<lesson>/`` and return its result (failures are returned).

    A ``KeyboardInterrupt`` during the execution (Ctrl+C, or :class:`RunStopped`), a stop signal that ``stopper``
    received, or a ``KeyboardInterrupt`` in the kernel gives an ``interrupted`` result; one that comes later (while
    the HTML copy is written) is raised.
    """
    import papermill
    from nbclient.exceptions import DeadKernelError

    folder = (output_dir / lesson).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METRICS_FILE).unlink(missing_ok=True)  # a failed run must not report last run's numbers
    source = solutions_dir / f"{lesson}.ipynb"
    executed = folder / f"{lesson}.ipynb"
    values = dict(parameters, OUTPUT_DIR=str(folder))
    if profile is not None:
        values["PROFILE"] = profile
    running = folder / f".{lesson}.running.ipynb"  # renamed when done: the folder never holds half a notebook
    start = time.perf_counter()
    error: str | None = None
    stopped_by: int | None = None  # the signal that interrupted the lesson
    stopper = stopper or Stopper()
    quiet_log = _WithoutKernelDiedLine()
    logging.getLogger("papermill").addFilter(quiet_log)
    kernel_noise.install()  # kept after the lesson: the race can fire while the kernel's sockets close
    try:
        with _environment(COURSE_PROFILE=profile, COURSE_OUTPUT_DIR=str(output_dir.resolve()),
                          OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", CPU_WAIT_POLICY)), \
                stopper.executing_lesson() as connection:
            papermill.execute_notebook(
                str(source), str(running), parameters=values, kernel_name=_kernel_name(source, kernel_name),
                progress_bar=verbose, cwd=str(solutions_dir.resolve()), log_output=False,
                # the kernel's own start-up log (e.g. "[IPKernelApp] WARNING | Kernel is running over TCP")
                # is about the local connection, not the lesson: keep it out of the run's output
                extra_arguments=KERNEL_QUIET_ARGUMENTS, **connection,
            )
    except KeyboardInterrupt as stop:  # Ctrl+C or another stop signal: keep what ran, report, stop
        stopped_by = getattr(stop, "signal_number", signal.SIGINT)
    except DeadKernelError:  # killed from outside, most often for lack of memory: the cell it ran is named
        error = _record_dead_kernel(lesson, running)
    except Exception as failure:  # any failure is reported; the other lessons go on
        error = _failure_line(lesson, failure, running)
        if getattr(failure, "ename", None) == "KeyboardInterrupt":  # the kernel got the Ctrl+C
            stopped_by = signal.SIGINT
    finally:
        logging.getLogger("papermill").removeFilter(quiet_log)
    if stopper.signal_number is not None:  # the run was asked to stop while this lesson ran
        stopped_by = stopper.signal_number
        _record_stop(running, stopper)
    with contextlib.suppress(OSError):
        if running.is_file() and running.stat().st_size:
            os.replace(running, executed)
        else:
            running.unlink(missing_ok=True)
            executed.unlink(missing_ok=True)
    running.unlink(missing_ok=True)
    # Cosmetic clean-up: a notebook cut short may not parse (nbformat raises its own errors); it is then kept as is.
    with contextlib.suppress(Exception):
        if executed.is_file() and not executed.is_symlink():
            drop_widget_state(executed)
    seconds = time.perf_counter() - start
    if stopped_by is not None:
        return LessonResult(lesson, "interrupted", seconds, read_metrics(folder), _interrupted(lesson, stopped_by),
                            executed if executed.is_file() else None, None, stopped_by)
    page = None
    if executed.is_file():
        try:
            page = export_html(executed, output_dir)
        except Exception as failure:  # a full disk, say: the lesson ran, but its HTML copy is missing
            first = (str(failure).strip().splitlines() or [""])[0]
            error = error or (f"{lesson}: the lesson ran, but its HTML copy {executed.with_suffix('.html')} "
                              f"could not be written ({type(failure).__name__}: {first})")
    return LessonResult(lesson, "failed" if error else "passed", seconds, read_metrics(folder), error,
                        executed if executed.is_file() else None, page)


def run_lessons(lessons: Sequence[str] | None = None, *, profile: str | None, parameters: dict[str, Any],
                output_dir: str | Path, solutions_dir: str | Path = Path("solutions"),
                stop_on_failure: bool = False, kernel_name: str | None = None,
                verbose: bool = True) -> list[LessonResult]:
    """Execute lessons in order (all by default) with papermill and write the report; return the results.

    ``lessons`` accepts names like ``01``, ``1`` or ``01_cnn_from_scratch``. ``parameters`` maps notebook
    parameter names to values; strings are converted to each parameter's type. Unknown lessons or parameter
    names raise :class:`LessonSelectionError` before anything runs.
    """
    solutions_dir, output_dir = require_solutions_dir(solutions_dir), Path(output_dir)
    known = available_lessons(solutions_dir)
    chosen = [resolve_lesson(name, known) for name in lessons] if lessons else known
    if not chosen:
        raise LessonSelectionError(f"No lesson notebooks in {solutions_dir}.")
    if profile is not None and profile not in config.PROFILES:
        choices = ", ".join(config.PROFILES)
        raise LessonSelectionError(f"Unknown profile {profile!r}: choose one of {choices}.")
    values = lesson_parameters(chosen, parameters, solutions_dir)
    for lesson in chosen:  # checked here, before any kernel starts
        values[lesson] = absolute_paths(values[lesson])
        config.check_parameters(values[lesson])

    results: list[LessonResult] = []
    stopper = Stopper()
    with stopper.handling_signals():
        try:
            for number, lesson in enumerate(chosen, start=1):
                if any(result.status == "interrupted" for result in results):
                    results.append(LessonResult(lesson, "skipped", error="not run: the run was interrupted"))
                    continue
                if stop_on_failure and any(result.status == "failed" for result in results):
                    results.append(LessonResult(lesson, "skipped", error="not run: an earlier lesson failed"))
                    continue
                if verbose:
                    print(f"[{number}/{len(chosen)}] {lesson}: running (profile {profile or 'auto'}) ...",
                          flush=True)
                result = run_lesson(lesson, profile=profile, parameters=values[lesson], output_dir=output_dir,
                                    solutions_dir=solutions_dir, kernel_name=kernel_name, verbose=verbose,
                                    stopper=stopper)
                results.append(result)
                if verbose and result.status != "interrupted":
                    print(result.error if result.error else f"[{number}/{len(chosen)}] {lesson}: passed in "
                          f"{_duration(result.seconds)}", flush=True)
        except KeyboardInterrupt as stop:  # between two lessons, or while a lesson's HTML copy was written
            _stopped_between_lessons(results, chosen, getattr(stop, "signal_number", signal.SIGINT))
    write_report(results, output_dir, profile=profile, parameters=parameters)
    return results


def _interrupted(lesson: str, signal_number: int) -> str:
    """The report's line for an interrupted lesson: ``interrupted in lesson 03_fine_tuning (by SIGTERM)``."""
    how = "" if signal_number == signal.SIGINT else f" by {signal.Signals(signal_number).name}"
    return f"interrupted in lesson {lesson}{how}"


def _stopped_between_lessons(results: list[LessonResult], chosen: Sequence[str], signal_number: int) -> None:
    """Add the results of a run stopped outside a kernel's work: the lesson it was at (or the next one) is
    interrupted, the ones after it skipped."""
    for index, lesson in enumerate(chosen[len(results):]):
        results.append(LessonResult(lesson, "interrupted", error=_interrupted(lesson, signal_number),
                                    signal_number=signal_number) if index == 0 else
                       LessonResult(lesson, "skipped", error="not run: the run was interrupted"))


# --------------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


#: Words of metric names written as readers know them (``val_accuracy`` -> "validation accuracy").
METRIC_WORDS = {"val": "validation", "auroc": "AUROC", "msp": "MSP", "mlp": "MLP", "batchnorm": "BatchNorm",
                "fe": "feature extraction", "ft": "fine-tuning", "cnn": "CNN", "nn": "NN"}


def metric_name(key: str) -> str:
    """A metric's key in words: ``test_accuracy`` -> "test accuracy", ``msp_auroc`` -> "MSP AUROC",
    ``fine_tuning_all_seconds`` -> "fine-tuning all time"."""
    words = [METRIC_WORDS.get(word.lower(), word) for word in key.split("_") if word]
    if words and words[-1] == "seconds":
        words[-1] = "time"
    return " ".join(words).replace("fine tuning", "fine-tuning").replace("fine tune", "fine-tune")


def key_metrics(metrics: dict[str, Any]) -> str:
    """The numbers worth a report column, named in words: accuracies, AUROC and the times of parts of a lesson,
    e.g. ``test accuracy 91.2%, feature time 16 s``. The lesson's own total (``seconds``) is left out: the
    report's "Wall time" column is the one time of the lesson."""
    shown = []
    for key, value in metrics.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            continue
        if key.endswith("accuracy"):
            shown.append(f"{metric_name(key)} {value:.1%}")
        elif key.endswith("auroc"):
            shown.append(f"{metric_name(key)} {value:.3f}")
        elif key.endswith("_seconds"):
            shown.append(f"{metric_name(key)} {_duration(value)}")
    return ", ".join(shown)


def _machine_folders(output_dir: Path | None) -> list[tuple[str, str]]:
    """This machine's folders that a shared report must not show, each with what is written instead."""
    here = Path.cwd()
    folders: dict[str, str] = {}
    if output_dir is not None:
        output = Path(output_dir).absolute()
        shown = os.path.relpath(output, here) if output.resolve().is_relative_to(here.resolve()) else output.name
        for form in (output, output.resolve()):
            folders[str(form)] = shown or "."
    for folder, shown in ((here, "."), (Path.home(), "~"), (Path(tempfile.gettempdir()), "$TMPDIR")):
        for form in (folder, folder.resolve()):
            folders.setdefault(str(form), shown)
    named = [(folder, shown) for folder, shown in folders.items() if folder not in ("/", "")]
    return sorted(named, key=lambda pair: len(pair[0]), reverse=True)  # the most specific folder first


def _host_name() -> str | None:
    """This machine's name, when it is distinctive enough to replace in text without hitting ordinary words."""
    name = platform.node().split(".")[0]
    return name if len(name) >= 6 or re.search(r"[\d-]", name) else None


def public_text(text: str, output_dir: Path | None = None) -> str:
    """``text`` without this machine's folders and name, for a report that is shared.

    The output folder becomes its name (or its path from the current folder), the current folder ``.``, the home
    folder ``~``, the temporary folder ``$TMPDIR``; any other home folder (``/home/<user>``, ``/Users/<user>``)
    ``~``; the host name ``this-machine``. A folder counts only as a whole path (``/work/main`` is not replaced
    in ``/work/mainline``), and only where a path can start, so encoded images stay intact.
    """
    start, end = r"(?<![\w.~+/=,-])", r"(?=[/\\\s\"'`<>)\],;:]|$)"
    for folder, shown in _machine_folders(output_dir):
        text = re.sub(start + re.escape(folder) + end, lambda _, shown=shown: shown, text)
    text = re.sub(start + r"/(?:home|Users)/[^/\s\"'`<>]+" + end, "~", text)
    host = _host_name()
    if host:
        text = re.sub(rf"\b{re.escape(host)}\b", "this-machine", text)
    return text


#: The report page's style: a readable line length on wide screens; on narrow ones (below about 800 pixels) the
#: text wraps and a table too wide for the screen scrolls sideways inside its box instead of widening the page.
REPORT_STYLE = (
    "body{font-family:sans-serif;max-width:75em;margin:1em auto;padding:0 1em;line-height:1.4}"
    ".table{overflow-x:auto;max-width:100%}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}"
    "p,li{overflow-wrap:anywhere}"
    ".failed{background:#fdd}.passed{background:#efe}.skipped{background:#eee}.interrupted{background:#ffd}"
    "@media (max-width:800px){body{padding:0 0.5em}td,th{padding:3px 4px;font-size:0.9em}}"
)

REPORT_COLUMNS = ("Lesson", "Status", "Profile", "Data set", "Backbone", "Key metrics", "Wall time")


def report_rows(results: Sequence[LessonResult], profile: str | None) -> list[tuple[str, ...]]:
    """One tuple per lesson, in the order of :data:`REPORT_COLUMNS`."""
    return [
        (r.lesson, r.status, str(r.metrics.get("profile", profile or "auto")),
         str(r.metrics.get("dataset", "")), str(r.metrics.get("arch", "")), key_metrics(r.metrics),
         _duration(r.seconds) if r.seconds else "")
        for r in results
    ]


def finding_lines(metrics: dict[str, Any]) -> list[str]:
    """One line per finding a lesson recorded: verdict, both numbers, the difference with its interval, held."""
    from course_tools.claims import finding_cells

    lines = []
    for record in metrics.get("findings") or []:
        claim, values, difference, held = finding_cells(record)
        lines.append(f"{claim}: {values}; difference {difference}; held: {held}")
    return lines


def write_report(results: Sequence[LessonResult], output_dir: str | Path, *, profile: str | None,
                 parameters: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (one row per lesson, its findings below it, then the failures)
    to ``output_dir``.

    Reports are meant to be shared: they name no folder of this machine and not its name (see
    :func:`public_text`), and the HTML page reflows on narrow screens (wide tables scroll sideways).
    """
    output_dir = Path(output_dir)
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    settings = ", ".join(f"{name}={value!r}" for name, value in parameters.items()) or "none"
    title = f"Course run, {when}"
    intro = public_text(f"Profile {profile or 'auto'}; parameters: {settings}; Python {platform.python_version()}.",
                        output_dir)
    rows = [tuple(public_text(value, output_dir) for value in row) for row in report_rows(results, profile)]
    failures = [r for r in results if r.error]

    def cell(text: str) -> str:
        return public_text(text, output_dir).replace("|", "\\|").replace("\n", " ")

    lines = [f"# {title}", "", intro, "", "| " + " | ".join(REPORT_COLUMNS) + " |",
             "|" + "---|" * len(REPORT_COLUMNS)]
    for result, row in zip(results, rows, strict=True):
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
        empty = [""] * (len(REPORT_COLUMNS) - 3)
        lines += ["| " + " | ".join(["", "finding", *empty[:-1], cell(text), ""]) + " |"
                  for text in finding_lines(result.metrics)]
    if failures:
        lines += ["", "## Problems", ""] + [f"- {public_text(r.error or '', output_dir)}" for r in failures]
    lines += ["", "Executed notebooks: `<lesson>/<lesson>.ipynb` (HTML beside them)."]
    markdown = write_text_atomic(output_dir / "report.md", "\n".join(lines) + "\n")

    def link(result: LessonResult) -> str:
        if result.html is None:
            return html.escape(result.lesson)
        return f'<a href="{html.escape(result.html.relative_to(output_dir.resolve()).as_posix())}">' \
               f"{html.escape(result.lesson)}</a>"

    body = "".join(
        f'<tr class="{html.escape(r.status)}"><td>{link(r)}</td>'
        + "".join(f"<td>{html.escape(value)}</td>" for value in row[1:]) + "</tr>\n"
        + "".join(f'<tr class="finding"><td></td><td>finding</td><td colspan="{len(REPORT_COLUMNS) - 2}">'
                  f"{html.escape(public_text(text, output_dir))}</td></tr>\n" for text in finding_lines(r.metrics))
        for r, row in zip(results, rows, strict=True)
    )
    problems = "".join(f"<li>{html.escape(public_text(r.error or '', output_dir))}</li>" for r in failures)
    page = (
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>{REPORT_STYLE}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(intro)}</p>\n<div class=\"table\"><table>\n<tr>"
        + "".join(f"<th>{html.escape(name)}</th>" for name in REPORT_COLUMNS) + "</tr>\n"
        + body + "</table></div>\n"
        + (f"<h2>Problems</h2>\n<ul>{problems}</ul>\n" if problems else "")
        + "</body></html>\n"
    )
    return markdown, write_text_atomic(output_dir / "report.html", page)
