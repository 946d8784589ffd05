"""``run_lessons``: papermill execution, parameters, failures and the report (small fixture lessons)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from helpers import python_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

from course_tools.notebooks import Parameter
from course_tools.runner import (
    LessonResult,
    LessonSelectionError,
    available_lessons,
    convert_value,
    key_metrics,
    lesson_parameters,
    resolve_lesson,
    run_lessons,
    write_report,
)

PARAMETERS = (
    "PROFILE = None  # full, offline or smoke\n"
    "EPOCHS: int = 2  # passes over the training set\n"
    "LEARNING_RATE = 0.01  # step size\n"
    "FREEZE = True  # keep the backbone frozen\n"
    "DATA_DIR = None  # where data sets live\n"
    "OUTPUT_DIR = None  # where results go\n"
)

WRITE_METRICS = (
    "import json, os, pathlib\n"
    "metrics = {'profile': PROFILE, 'dataset': 'synthetic-signs', 'arch': 'tiny', 'epochs': EPOCHS,\n"
    "           'test_accuracy': 0.5 + EPOCHS / 100, 'learning_rate': LEARNING_RATE, 'freeze': FREEZE,\n"
    "           'seconds': 1.5, 'environment_profile': os.environ.get('COURSE_PROFILE'),\n"
    "           'wait_policy': os.environ.get('OMP_WAIT_POLICY')}\n"
    "pathlib.Path(OUTPUT_DIR, 'metrics.json').write_text(json.dumps(metrics))"
)


def write_lesson(folder: Path, name: str, fail: bool = False) -> Path:
    """A fixture lesson: parameters cell, an optional failing cell, then metrics.json."""
    cells = [new_markdown_cell(f"# {name}"), new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
             new_code_cell("total = EPOCHS * 2")]
    if fail:
        cells.append(new_code_cell("value = total + 1\nraise ValueError('the loss is NaN')"))
    cells.append(new_code_cell(WRITE_METRICS))
    python_notebook(cells, folder, name)
    return folder / f"{name}.ipynb"


def test_lessons_are_found_by_number_name_or_topic(tmp_path):
    write_lesson(tmp_path, "01_cnn_from_scratch")
    write_lesson(tmp_path, "02_feature_extraction")
    (tmp_path / "scratch.ipynb").write_text("{}")  # not a lesson
    lessons = available_lessons(tmp_path)
    assert lessons == ["01_cnn_from_scratch", "02_feature_extraction"]
    for name in ("01", "1", "01_cnn_from_scratch", "cnn_from_scratch", "solutions/01_cnn_from_scratch.ipynb"):
        assert resolve_lesson(name, lessons) == "01_cnn_from_scratch"
    with pytest.raises(LessonSelectionError, match="one of 01_cnn_from_scratch, 02_feature_extraction"):
        resolve_lesson("7", lessons)


@pytest.mark.parametrize(
    ("text", "parameter", "expected"),
    [
        ("5", Parameter("EPOCHS", "int", "2", ""), 5),
        ("5", Parameter("EPOCHS", "None", "2", ""), 5),
        ("0.5", Parameter("LR", "None", "0.01", ""), 0.5),
        ("false", Parameter("FREEZE", "None", "True", ""), False),
        ("yes", Parameter("FREEZE", "bool", "False", ""), True),
        ("resnet50", Parameter("ARCH", "None", "None", ""), "resnet50"),
        ("3", Parameter("SEED", "None", "None", ""), 3),
        ("None", Parameter("EPOCHS", "int", "2", ""), None),
        ("/tmp/data", Parameter("DATA_DIR", "str", "'x'", ""), "/tmp/data"),
        ("12", Parameter("NAME", "None", "'abc'", ""), "12"),
        (7, Parameter("EPOCHS", "int", "2", ""), 7),
    ],
)
def test_command_line_values_take_the_type_of_the_default(text, parameter, expected):
    value = convert_value(text, parameter)
    assert value == expected and type(value) is type(expected)


def test_a_value_of_the_wrong_type_is_refused():
    with pytest.raises(ValueError, match="EPOCHS expects int"):
        convert_value("many", Parameter("EPOCHS", "int", "2", ""))


def test_unknown_or_reserved_parameters_are_refused_before_anything_runs(tmp_path):
    solutions = tmp_path / "solutions"
    write_lesson(solutions, "01_demo")
    output = tmp_path / "out"
    with pytest.raises(LessonSelectionError) as caught:
        run_lessons(profile="smoke", parameters={"EPOCH": "3"}, output_dir=output, solutions_dir=solutions)
    assert "Unknown parameter 'EPOCH'" in str(caught.value)
    assert "DATA_DIR, EPOCHS, FREEZE, LEARNING_RATE" in str(caught.value)
    with pytest.raises(LessonSelectionError, match="use --output"):
        run_lessons(profile="smoke", parameters={"OUTPUT_DIR": "x"}, output_dir=output,
                    solutions_dir=solutions)
    assert not output.exists()  # nothing ran


def test_parameters_go_to_the_lessons_that_declare_them(tmp_path):
    write_lesson(tmp_path, "01_a")
    python_notebook([new_code_cell("SEED = 0  # seed", metadata={"tags": ["parameters"]})], tmp_path, "02_b")
    values = lesson_parameters(["01_a", "02_b"], {"epochs": "4", "SEED": "1"}, tmp_path)
    assert values == {"01_a": {"EPOCHS": 4}, "02_b": {"SEED": 1}}


@pytest.mark.notebooks
def test_run_lessons_executes_reports_and_goes_on_after_a_failure(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    solutions = tmp_path / "solutions"
    write_lesson(solutions, "01_broken", fail=True)
    write_lesson(solutions, "02_good")
    output = tmp_path / "out"
    (output / "01_broken").mkdir(parents=True)
    (output / "01_broken" / "metrics.json").write_text('{"test_accuracy": 0.99}')  # from an older run

    results = run_lessons(profile="smoke", parameters={"EPOCHS": "3", "FREEZE": "false"}, output_dir=output,
                          solutions_dir=solutions, verbose=False)

    broken, good = results
    assert (broken.lesson, broken.status) == ("01_broken", "failed")
    assert broken.error == "01_broken: cell 3 (In [4]: value = total + 1) failed: ValueError: the loss is NaN"
    assert broken.metrics == {}  # the stale metrics.json is gone
    assert (output / "01_broken" / "01_broken.ipynb").is_file()

    assert (good.status, good.error) == ("passed", None)
    metrics = json.loads((output / "02_good" / "metrics.json").read_text())
    assert good.metrics == metrics
    assert metrics["epochs"] == 3 and metrics["freeze"] is False and metrics["profile"] == "smoke"
    assert metrics["environment_profile"] == "smoke"
    executed = nbformat.read(str(output / "02_good" / "02_good.ipynb"), 4)
    injected = [cell.source for cell in executed.cells
                if "injected-parameters" in cell.metadata.get("tags", [])]
    assert f'OUTPUT_DIR = "{(output / "02_good").resolve()}"' in injected[0]
    assert "EPOCHS" in good.html.read_text() and good.html == output / "02_good" / "02_good.html"
    assert not list(output.rglob(".*.running.ipynb"))

    report = (output / "report.md").read_text()
    assert "| 02_good | passed | smoke | synthetic-signs | tiny | test accuracy 53.0% |" in report
    assert "| 01_broken | failed | smoke |" in report
    assert "- 01_broken: cell 3" in report
    page = (output / "report.html").read_text()
    assert '<a href="02_good/02_good.html">02_good</a>' in page and "the loss is NaN" in page


def test_report_lists_key_metrics_and_escapes_text(tmp_path):
    metrics = {"val_accuracy": 0.5, "auroc": 0.875, "seconds": 61.2, "lesson": "x", "epochs": 3}
    assert key_metrics(metrics) == "validation accuracy 50.0%, AUROC 0.875"  # the lesson's time: "Wall time"
    results = [LessonResult("01_a", "failed", 2.0, {"arch": "resnet18"}, error="01_a: x | y <b>"),
               LessonResult("02_b", "skipped", error="not run")]
    markdown, page = write_report(results, tmp_path, profile="offline", parameters={"EPOCHS": 1})
    text = markdown.read_text()
    assert "| 01_a | failed | offline |  | resnet18 |  | 2.0 s |" in text
    assert "| 02_b | skipped | offline |" in text
    assert "Profile offline; parameters: EPOCHS=1" in text
    assert "x | y &lt;b&gt;" in page.read_text()


def test_the_kernels_start_up_log_stays_out_of_the_output(tmp_path, monkeypatch, capfd):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    solutions = tmp_path / "solutions"
    write_lesson(solutions, "01_good")
    results = run_lessons(profile="smoke", parameters={}, output_dir=tmp_path / "out", solutions_dir=solutions,
                          verbose=False)
    assert results[0].status == "passed"
    captured = capfd.readouterr()
    assert "Kernel is running over TCP" not in captured.out + captured.err  # the kernel's start-up warning


@pytest.mark.notebooks
def test_the_kernels_threads_wait_passively_unless_the_user_chose(tmp_path, monkeypatch):
    solutions = tmp_path / "solutions"
    write_lesson(solutions, "01_good")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    run_lessons(profile="smoke", parameters={}, output_dir=tmp_path / "default", solutions_dir=solutions,
                verbose=False)
    assert json.loads((tmp_path / "default" / "01_good" / "metrics.json").read_text())["wait_policy"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    run_lessons(profile="smoke", parameters={}, output_dir=tmp_path / "chosen", solutions_dir=solutions,
                verbose=False)
    assert json.loads((tmp_path / "chosen" / "01_good" / "metrics.json").read_text())["wait_policy"] == "ACTIVE"


# ------------------------------------------------------------------ reports meant to be shared (issue 21, item 8)
def test_a_report_names_no_folder_or_name_of_this_machine_and_reads_in_words(tmp_path, monkeypatch):
    import platform

    monkeypatch.setattr(platform, "node", lambda: "alice-laptop-7")
    home = Path.home()
    output = tmp_path / "build"
    metrics = {"profile": "offline", "dataset": str(home / "photos"), "arch": "resnet18", "test_accuracy": 0.9,
               "msp_auroc": 0.75, "fine_tuning_all_seconds": 41.2, "seconds": 139.5,
               "findings": [{"name": "n", "claim": "The CNN stays below 90%", "metric": "accuracy", "label_a": "90%",
                             "label_b": "CNN from scratch", "value_a": 0.9, "value_b": 0.664, "difference": 0.236,
                             "ci_low": 0.15, "ci_high": 0.3, "held": True}]}
    error = (f"01_a: the lesson ran, but its HTML copy {output / '01_a' / '01_a.html'} could not be written "
             f"(OSError: disk full on alice-laptop-7, see {Path.cwd() / 'solutions'} and /home/bob/x)")
    results = [LessonResult("01_a", "failed", 140.0, metrics, error=error)]
    markdown, page = write_report(results, output, profile="offline", parameters={"DATASET": str(home / "photos")})
    for text in (markdown.read_text(), page.read_text()):
        for machine in ("/home", "/work", "/tmp", "/root", str(home), str(tmp_path), "alice-laptop-7"):
            assert machine not in text
        assert "test accuracy 90.0%" in text and "MSP AUROC 0.750" in text and "fine-tuning all time 41.2 s" in text
        assert "test_accuracy" not in text and "139" not in text  # one time per lesson: the wall time
        assert "2 min 20 s" in text
        assert "~/photos" in text and "build/01_a/01_a.html" in text and "./solutions" in text
        assert "90.0% vs CNN from scratch 66.4%" in text and "90% 90.0%" not in text


def test_public_text_replaces_whole_folders_only_and_leaves_encoded_images_alone(tmp_path, monkeypatch):
    import tempfile

    from course_tools.runner import public_text

    # wherever the repository lies (under /tmp in CI, under a home folder elsewhere), the folders this test reads
    # are its own: a working folder, and a temporary folder and a home that are not above it
    monkeypatch.chdir((tmp_path / "course").mkdir() or tmp_path / "course")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: "/var/empty-temp")
    monkeypatch.setenv("HOME", "/var/empty-home")
    here = str(Path.cwd())
    image = "data:image/png;base64,iVBOR/tmp/x" + here.replace("/", "A") + "/tmp/"
    text = f"{here}/solutions, {here}line, {image}, ({Path.home()}/.cache)"
    assert public_text(text) == f"./solutions, {here}line, {image}, (~/.cache)"


def test_the_report_page_reflows_on_a_narrow_screen(tmp_path):
    _, page = write_report([LessonResult("01_a", "passed", 1.0, {"test_accuracy": 0.5})], tmp_path,
                           profile="smoke", parameters={})
    text = page.read_text()
    assert '<meta name="viewport" content="width=device-width' in text
    assert "max-width:75em" in text and "overflow-x:auto" in text and "overflow-wrap:anywhere" in text
    assert "@media (max-width:800px)" in text
    assert '<div class="table"><table>' in text  # the table scrolls inside its box, the page does not widen


def test_a_saved_notebook_keeps_no_widget_state_but_keeps_the_bars_summary_line(tmp_path):
    from course_tools.runner import WIDGET_VIEW, drop_widget_state

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    cell = new_code_cell("train()")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "abc"},
                                                      "text/plain": "epochs: 3/3 in 2.0 s"}),
        nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "def"}}),
        nbformat.v4.new_output("stream", text="done\n"),
    ]
    notebook.cells.append(cell)
    path = tmp_path / "lesson.ipynb"
    nbformat.write(notebook, str(path))
    assert drop_widget_state(path) is True
    saved = nbformat.read(str(path), 4)
    assert "widgets" not in saved.metadata
    outputs = saved.cells[0].outputs
    assert [output.get("data", {}).get("text/plain", output.get("text")) for output in outputs] == \
        ["epochs: 3/3 in 2.0 s", "done\n"]
    assert WIDGET_VIEW not in path.read_text()
    assert drop_widget_state(path) is False  # nothing left to drop: the file is not rewritten


def test_the_closed_socket_race_of_a_stopped_run_is_not_logged_and_other_errors_are(caplog):
    import errno
    import logging

    import zmq

    from course_tools import kernel_noise

    kernel_noise.install()
    kernel_noise.install()  # once per process, however often a run starts
    logger = logging.getLogger("tornado.general")
    assert logger.filters.count(kernel_noise.CLOSED_SOCKET_NOISE) == 1
    for error in (zmq.ZMQError(errno.ENOTSOCK), ValueError("a real bug")):
        try:
            raise error
        except Exception:
            logger.error("Uncaught exception in ZMQStream callback", exc_info=True)
    logged = [record.exc_info[1] for record in caplog.records if record.name == "tornado.general"]
    assert [type(error).__name__ for error in logged] == ["ValueError"]


# A cell that logs what pyzmq logs when a stream's callback fails, once for the closed-socket race and once for a
# real error, on the kernel's tornado logger (ipykernel writes that logger to the kernel's standard error).
LOG_BOTH_IN_THE_KERNEL = """
import errno, logging
import zmq
for error in (zmq.ZMQError(errno.ENOTSOCK), ValueError("a real bug in a callback")):
    try:
        raise error
    except Exception:
        logging.getLogger("tornado.general").error("Uncaught exception in ZMQStream callback", exc_info=True)
"""


def test_a_kernel_that_course_run_starts_drops_the_closed_socket_race_and_shows_other_errors(tmp_path, capfd):
    # the race is logged by the kernel process, on the terminal of course run: the runner's own logger cannot
    # filter it, so every kernel loads course_tools.kernel_noise as an IPython extension
    python_notebook([new_code_cell("OUTPUT_DIR = None  # outputs", metadata={"tags": ["parameters"]}),
                     new_code_cell(LOG_BOTH_IN_THE_KERNEL)], tmp_path / "solutions", "01_noise")
    results = run_lessons(profile=None, parameters={}, output_dir=tmp_path / "out",
                          solutions_dir=tmp_path / "solutions", verbose=False)
    assert [result.status for result in results] == ["passed"]
    terminal = capfd.readouterr().err
    assert "a real bug in a callback" in terminal and "ValueError" in terminal  # other errors are still shown
    assert "ZMQError" not in terminal and "non-socket" not in terminal, terminal
