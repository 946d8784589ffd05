"""``course run`` loses nothing when it is stopped or its kernel dies (issue 24, items 13, 15, 16, 2).

SIGTERM and SIGHUP stop a run the way Ctrl+C does (report, finished lessons kept, exit status 128 + the signal),
Ctrl+C prints one line and no traceback, a kernel killed for memory is reported with the cell it ran, and
UNLABELED_DIR is checked before any kernel starts.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import python_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

from course_tools.runner import (
    LessonResult,
    RunStopped,
    Stopper,
    _record_stop,
    absolute_paths,
    interrupted_exit_code,
    run_lessons,
)
from course_utils.config import ParameterError, parameter_problem

ROOT = Path(__file__).resolve().parents[1]

PARAMETERS = "OUTPUT_DIR = None  # outputs\nUNLABELED_DIR = None  # images to predict\n"
WRITE_METRICS = ("import json, pathlib\n"
                 "pathlib.Path(OUTPUT_DIR, 'metrics.json').write_text(json.dumps({'unlabeled': UNLABELED_DIR}))")


def lesson(folder: Path, name: str, *cells: str) -> None:
    """A fixture lesson: the parameters cell, ``cells``, then one that writes metrics.json."""
    python_notebook([new_markdown_cell(f"# {name}"), new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                     *map(new_code_cell, cells), new_code_cell(WRITE_METRICS)], folder, name)


def statuses(notebook: Path) -> list[tuple[str, str | None]]:
    """Each code cell's first line and the status papermill recorded for it."""
    cells = nbformat.read(str(notebook), 4).cells
    return [(cell.source.splitlines()[0], cell.metadata.get("papermill", {}).get("status"))
            for cell in cells if cell.cell_type == "code"]


# ------------------------------------------------------------------ 13. SIGTERM and SIGHUP, like Ctrl+C
RUN_AND_REPORT = """
import json, signal, sys
from course_tools.runner import interrupted_exit_code, run_lessons
# as a terminal starts it: a test suite run under nohup would hand its SIGHUP-ignored state down, and the run
# rightly keeps a signal that its user chose to ignore (test_an_ignored_sighup_stays_ignored)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
results = run_lessons(profile=None, parameters={}, output_dir=sys.argv[2], solutions_dir=sys.argv[1], verbose=False)
print(json.dumps([[result.lesson, result.status, result.error, result.signal_number] for result in results]))
stopped = [result for result in results if result.status == "interrupted"]
sys.exit(interrupted_exit_code(stopped[0]) if stopped else 0)
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_a_run_like_ctrl_c(tmp_path, name):
    number = getattr(signal, name)
    solutions, output = tmp_path / "solutions", tmp_path / "out"
    lesson(solutions, "01_done")
    lesson(solutions, "02_stopped", f"import os, signal, time\nos.kill(os.getppid(), {number})  # from outside\n"
                                    "time.sleep(60)", "print('never')")
    lesson(solutions, "03_later")
    (output / "03_later").mkdir(parents=True)
    (output / "03_later" / "metrics.json").write_text('{"test_accuracy": 0.7}')  # an earlier run's
    run = subprocess.run([sys.executable, "-c", RUN_AND_REPORT, str(solutions), str(output)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 128 + number, run.stdout + run.stderr  # not killed by the signal
    results = json.loads(run.stdout.splitlines()[-1])
    assert results == [["01_done", "passed", None, None],
                       ["02_stopped", "interrupted", f"interrupted in lesson 02_stopped by {name}", number],
                       ["03_later", "skipped", "not run: the run was interrupted", None]]
    assert "Traceback" not in run.stderr and "ZMQError" not in run.stderr
    report = (output / "report.md").read_text()
    assert "| 01_done | passed |" in report and "| 02_stopped | interrupted |" in report
    assert "| 03_later | skipped |" in report
    assert (output / "01_done" / "metrics.json").is_file()
    assert (output / "03_later" / "metrics.json").read_text() == '{"test_accuracy": 0.7}'
    assert not list(output.rglob(".*.running.ipynb"))
    assert statuses(output / "02_stopped" / "02_stopped.ipynb")[-3:] == [
        ("import os, signal, time", "failed"), ("print('never')", "pending"), ("import json, pathlib", "pending")]


def test_ctrl_c_prints_one_line_and_no_kernel_traceback(tmp_path, capfd):
    solutions, output = tmp_path / "solutions", tmp_path / "out"
    lesson(solutions, "01_stopped", "import os, signal, time\nos.kill(os.getppid(), signal.SIGINT)  # Ctrl+C\n"
                                    "time.sleep(60)")
    results = run_lessons(profile=None, parameters={}, output_dir=output, solutions_dir=solutions, verbose=False)
    assert [(result.status, result.signal_number) for result in results] == [("interrupted", signal.SIGINT)]
    assert interrupted_exit_code(results[0]) == 130
    captured = capfd.readouterr()
    # the kernel answered the interrupted cell before it was shut down: no "ZMQError: Socket operation on
    # non-socket" traceback from a reply sent on a closed connection
    assert "Traceback" not in captured.err and "ZMQError" not in captured.err, captured.err
    assert not list(output.rglob(".*.running.ipynb"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back after the run


def test_a_kernel_that_does_not_stop_is_shut_down_and_its_notebook_says_which_cells_never_ran(tmp_path):
    # the kernel ignores the interrupt, so the run gives up waiting and shuts it down; papermill alone would
    # then mark every cell "completed", the two that never ran included
    solutions, output = tmp_path / "solutions", tmp_path / "out"
    lesson(solutions, "01_stubborn", "import os, signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                     "os.kill(os.getppid(), signal.SIGTERM)\ntime.sleep(60)", "print('never')")
    script = "import course_tools.runner as runner\nrunner.KERNEL_FINISH_SECONDS = 2\n" + RUN_AND_REPORT
    run = subprocess.run([sys.executable, "-c", script, str(solutions), str(output)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 128 + signal.SIGTERM, run.stdout + run.stderr
    executed = output / "01_stubborn" / "01_stubborn.ipynb"
    assert statuses(executed)[-3:] == [
        ("import os, signal, time", "failed"), ("print('never')", "pending"), ("import json, pathlib", "pending")]
    cut = nbformat.read(str(executed), 4).cells[-3]
    assert cut.outputs[-1].ename == "KeyboardInterrupt" and "stopped by SIGTERM" in cut.outputs[-1].evalue
    assert not (output / "01_stubborn" / "metrics.json").exists()


def test_a_stop_that_keeps_a_cell_from_starting_leaves_it_pending(tmp_path):
    stopper = Stopper()
    solutions = tmp_path / "solutions"
    lesson(solutions, "01_lesson", "print('ran')", "print('never')")
    notebook = solutions / "01_lesson.ipynb"
    document = nbformat.read(str(notebook), 4)
    for index, cell in enumerate(document.cells):  # what papermill leaves: every cell "completed"
        cell.metadata["papermill"] = {"status": "completed", "start_time": "t" if index <= 3 else None}
    nbformat.write(document, str(notebook))
    with stopper.executing_lesson():
        stopper.cell_starts(cell=None, cell_index=2)
        stopper.cell_ends(cell=None, cell_index=2)
        stopper.receive(signal.SIGTERM)  # between cells 2 and 3
        with pytest.raises(RunStopped):
            stopper.cell_starts(cell=None, cell_index=3)
    _record_stop(notebook, stopper)
    assert statuses(notebook) == [("OUTPUT_DIR = None  # outputs", "completed"), ("print('ran')", "completed"),
                                  ("print('never')", "pending"), ("import json, pathlib", "pending")]
    assert nbformat.read(str(notebook), 4).cells[3].metadata["papermill"]["start_time"] is None


def test_a_stop_between_two_cells_stops_before_the_next_cell():
    stopper = Stopper()
    with stopper.executing_lesson():
        stopper.receive(signal.SIGTERM)  # no cell running (the kernel is starting, say): nothing to interrupt
        with pytest.raises(RunStopped) as stopped:
            stopper.cell_starts(cell=None, cell_index=3)
    assert stopped.value.signal_number == signal.SIGTERM and isinstance(stopped.value, KeyboardInterrupt)
    with pytest.raises(RunStopped):  # outside a lesson's execution: at once
        Stopper().receive(signal.SIGHUP)


def test_a_second_signal_stops_at_once_and_the_kernel_is_not_waited_for():
    stopper = Stopper()
    with stopper.executing_lesson():
        stopper.receive(signal.SIGINT)
        assert not stopper.forced
        with pytest.raises(RunStopped):
            stopper.receive(signal.SIGINT)
    assert stopper.forced
    assert interrupted_exit_code(LessonResult("x", "interrupted", signal_number=signal.SIGHUP)) == 129


def test_an_ignored_sighup_stays_ignored():
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        stopper = Stopper()
        with stopper.handling_signals():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stopper.receive
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, before)


# ------------------------------------------------------------------ 15. a kernel killed for memory
def test_a_killed_kernel_names_the_lesson_and_the_cell_and_later_cells_stay_pending(tmp_path, capfd):
    solutions, output = tmp_path / "solutions", tmp_path / "out"
    lesson(solutions, "01_memory", "x = 1", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)  # the OOM killer",
           "print('never')")
    (result,) = run_lessons(profile=None, parameters={}, output_dir=output, solutions_dir=solutions, verbose=False)
    assert result.status == "failed"
    # "In [4]: " appears when the kernel numbered the cell before it died (on a busy machine it may not have)
    assert result.error.replace("In [4]: ", "") == (
        "01_memory: cell 3 (import os, signal) was running when the kernel died (most often: it ran out of memory; "
        "try a smaller BATCH_SIZE or IMAGE_SIZE, or close other programs)")
    assert "Kernel died" not in capfd.readouterr().err  # nbclient's own line: the one line above says it
    notebook = output / "01_memory" / "01_memory.ipynb"
    assert statuses(notebook)[-4:] == [("x = 1", "completed"), ("import os, signal", "failed"),
                                       ("print('never')", "pending"), ("import json, pathlib", "pending")]
    dying = next(cell for cell in nbformat.read(str(notebook), 4).cells if "SIGKILL" in cell.source)
    assert [output["ename"] for output in dying.outputs] == ["DeadKernelError"]
    assert "- 01_memory: cell 3" in (output / "report.md").read_text()


# ------------------------------------------------------------------ 16. UNLABELED_DIR
def test_unlabeled_dir_is_checked_before_any_kernel_starts(tmp_path, monkeypatch):
    solutions, output = tmp_path / "solutions", tmp_path / "out"
    lesson(solutions, "01_a")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file.png").write_bytes(b"")
    for value, message in [("missing", f"UNLABELED_DIR='{tmp_path / 'missing'}' does not exist: use the path of a "
                                       "folder of images to predict."),
                           ("a_file.png", f"UNLABELED_DIR='{tmp_path / 'a_file.png'}' is a file, not a folder"),
                           ("", "UNLABELED_DIR='' is not allowed: use the path of a folder of images")]:
        with pytest.raises(ParameterError, match=re.escape(message)):
            run_lessons(profile=None, parameters={"UNLABELED_DIR": value}, output_dir=output,
                        solutions_dir=solutions, verbose=False)
    assert not output.exists()  # nothing ran


def test_a_relative_unlabeled_dir_means_relative_to_where_course_run_started(tmp_path, monkeypatch):
    here = tmp_path / "here"
    solutions = here / "solutions"
    lesson(solutions, "01_a")
    (here / "new_photos").mkdir(parents=True)
    (solutions / "new_photos").mkdir()  # the same name beside the notebooks must not be the one used
    monkeypatch.chdir(here)
    assert absolute_paths({"UNLABELED_DIR": "new_photos"}) == {"UNLABELED_DIR": str(here / "new_photos")}
    assert absolute_paths({"UNLABELED_DIR": "~/photos"}) == {"UNLABELED_DIR": str(Path.home() / "photos")}
    assert parameter_problem("UNLABELED_DIR", "new_photos", base_dir=here) is None
    assert "does not exist" in parameter_problem("UNLABELED_DIR", "new_photos", base_dir=tmp_path)
    (result,) = run_lessons(profile=None, parameters={"UNLABELED_DIR": "new_photos"}, output_dir="out",
                            solutions_dir=solutions, verbose=False)
    assert result.status == "passed", result.error
    assert json.loads((here / "out" / "01_a" / "metrics.json").read_text()) == {"unlabeled": str(here / "new_photos")}


# ------------------------------------------------------------------ 2. lesson 5 deletes no folder it did not make
def test_lesson_5_makes_its_unlabeled_folder_with_the_library_and_deletes_nothing():
    notebook = nbformat.read(str(ROOT / "solutions" / "05_your_own_images.ipynb"), 4)
    # the lesson's own cells: the set-up cell (course_tools/setup_cell_code.py) removes only its own temporary folder
    code = "\n".join(cell.source for cell in notebook.cells
                     if cell.cell_type == "code" and "setup" not in cell.metadata.get("tags", []))
    assert "rmtree" not in code and ".unlink(" not in code
    assert "sample_folders.copy_unlabeled_images(" in code
    assert 'config.check_parameters({"UNLABELED_DIR": UNLABELED_DIR})' in code

