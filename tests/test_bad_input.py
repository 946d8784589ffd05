"""Bad input fails fast and clearly; interruptions lose nothing (issue 10: parameters, paths, Ctrl+C, ...)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import python_notebook
from nbformat.v4 import new_code_cell

from course_tools import cli, runner
from course_tools.runner import absolute_paths, run_lessons
from course_utils import config
from course_utils.config import ParameterError, check_parameters

PARAMETERS = (
    "PROFILE = None  # profile\n"
    "EPOCHS = None  # epochs\n"
    "BATCH_SIZE = None  # batch\n"
    "IMAGE_SIZE = None  # pixels\n"
    "ARCH = None  # backbone\n"
    "DATASET = None  # data set\n"
    "SEED = 0  # seed\n"
    "LEARNING_RATE = 0.003  # step size\n"
    "DATA_DIR = None  # data\n"
    "OUTPUT_DIR = None  # outputs\n"
)

WRITE_METRICS = (
    "import json, pathlib\n"
    "pathlib.Path(OUTPUT_DIR, 'metrics.json').write_text(json.dumps({'dataset': DATASET, 'data': DATA_DIR,\n"
    "    'test_accuracy': 0.5}))"
)


def lesson(folder: Path, name: str, *extra: str) -> Path:
    cells = [new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}), *map(new_code_cell, extra),
             new_code_cell(WRITE_METRICS)]
    python_notebook(cells, folder, name)
    return folder / f"{name}.ipynb"


# ------------------------------------------------------------------ 1. parameter values
@pytest.mark.parametrize(("name", "value", "message"), [
    ("EPOCHS", "abc", "EPOCHS"),
    ("EPOCHS", -1, "EPOCHS=-1 is not allowed: use a whole number >= 1."),
    ("EPOCHS", 0, "EPOCHS=0 is not allowed: use a whole number >= 1."),
    ("EPOCHS", 2.5, "EPOCHS=2.5 is not allowed: use a whole number >= 1."),
    ("feature_epochs", 0, "FEATURE_EPOCHS=0 is not allowed"),
    ("IMAGE_SIZE", 7, "IMAGE_SIZE=7 is not allowed: use a whole number of pixels from 32 to 1024."),
    ("IMAGE_SIZE", 100000, "IMAGE_SIZE=100000 is not allowed"),
    ("SECOND_IMAGE_SIZE", 1, "SECOND_IMAGE_SIZE=1 is not allowed: use a whole number of pixels from 32 to 1024."),
    ("BATCH_SIZE", 0, "BATCH_SIZE=0 is not allowed: use a whole number >= 1."),
    ("BATCH_SIZE", True, "BATCH_SIZE=True is not allowed"),
    ("ARCH", "resnet999", "ARCH='resnet999' is not allowed: use one of resnet18, "),
    ("SEED", -3, "SEED=-3 is not allowed"),
    ("PROFILE", "fast", "PROFILE='fast' is not allowed: use one of full, offline, smoke"),
    ("LEARNING_RATE", -0.1, "LEARNING_RATE=-0.1 is not allowed: use a number greater than 0."),
    ("HEAD_LR", float("nan"), "HEAD_LR=nan is not allowed"),
    ("KEEP_KNOWN", 1.5, "KEEP_KNOWN=1.5 is not allowed: use a number greater than 0 and at most 1."),
    ("LAST_BLOCKS", -1, "LAST_BLOCKS=-1 is not allowed"),
    ("DATASET", "my_photos", "DATASET='my_photos' is unknown"),
])
def test_bad_parameter_values_get_one_line_naming_value_and_what_is_allowed(name, value, message):
    with pytest.raises(ParameterError) as caught:
        check_parameters({name: value})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_good_values_and_defaults_pass():
    check_parameters({"EPOCHS": 3, "BATCH_SIZE": 1, "IMAGE_SIZE": 32, "ARCH": "resnet18", "SEED": 0,
                      "DATASET": "synthetic-signs", "LEARNING_RATE": 1e-4, "KEEP_KNOWN": 1.0, "LAST_BLOCKS": 0,
                      "FINE_TUNE_ALL": False, "HELD_OUT_SIGNS": "stop", "EPOCHS_X": None})
    for profile in config.PROFILES:
        for name in config.LESSONS:
            config.resolve(profile, name)  # every default is allowed


def test_resolve_checks_values_so_notebooks_run_by_hand_check_too():
    with pytest.raises(ParameterError, match="EPOCHS=0 is not allowed"):
        config.resolve("smoke", "02_feature_extraction", EPOCHS=0)
    with pytest.raises(ParameterError, match="IMAGE_SIZE=7"):
        config.resolve("smoke", "02_feature_extraction", image_size=7)


def test_a_regular_file_as_dataset_or_data_dir_is_named(tmp_path):
    afile = tmp_path / "photos.zip"
    afile.write_text("zip")
    with pytest.raises(ParameterError, match="DATASET=.*photos.zip.* is a file, not a folder"):
        check_parameters({"DATASET": str(afile)})
    with pytest.raises(ParameterError, match="DATA_DIR=.*photos.zip.* is a file, not a folder"):
        check_parameters({"DATA_DIR": str(afile)})


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("EPOCHS", "abc", "EPOCHS='abc' is not allowed: use a whole number >= 1."),
    ("EPOCHS", "-1", "EPOCHS=-1 is not allowed"),
    ("IMAGE_SIZE", "7", "IMAGE_SIZE=7 is not allowed"),
    ("ARCH", "resnet999", "ARCH='resnet999' is not allowed"),
    ("LEARNING_RATE", "0", "LEARNING_RATE=0.0 is not allowed"),
])
def test_course_run_refuses_bad_values_before_any_kernel_starts(tmp_path, monkeypatch, capsys, name, value,
                                                               expected):
    solutions = tmp_path / "solutions"
    lesson(solutions, "01_a")
    started = []
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: started.append(a))
    status = cli.main(["run", "--solutions", str(solutions), "--output", str(tmp_path / "out"), "-p", name, value])
    assert status == 2
    assert expected in capsys.readouterr().err
    assert started == [] and not (tmp_path / "out" / "report.md").exists()


# ------------------------------------------------------------------ 2. relative paths
def test_relative_paths_mean_relative_to_where_course_run_started(tmp_path, monkeypatch):
    solutions = tmp_path / "repo" / "solutions"
    lesson(solutions, "01_a")
    here = tmp_path / "work"
    (here / "my_photos" / "cat").mkdir(parents=True)
    (here / "my_photos" / "dog").mkdir(parents=True)
    monkeypatch.chdir(here)
    assert absolute_paths({"DATASET": "gtsrb", "DATA_DIR": "mydata"}) == \
        {"DATASET": "gtsrb", "DATA_DIR": str(here / "mydata")}
    results = run_lessons(profile=None, parameters={"DATASET": "my_photos", "DATA_DIR": "mydata"},
                          output_dir="out", solutions_dir=solutions, verbose=False)
    assert results[0].status == "passed", results[0].error
    metrics = json.loads((here / "out" / "01_a" / "metrics.json").read_text())
    assert metrics["dataset"] == str(here / "my_photos")
    assert metrics["data"] == str(here / "mydata")
    assert not (solutions / "mydata").exists()


# ------------------------------------------------------------------ 3. Ctrl+C
def test_ctrl_c_writes_the_report_keeps_finished_lessons_and_exits_130(tmp_path, monkeypatch, capsys):
    solutions = tmp_path / "solutions"
    lesson(solutions, "01_done")
    lesson(solutions, "02_stopped")
    lesson(solutions, "03_later")
    output = tmp_path / "out"
    (output / "03_later").mkdir(parents=True)
    (output / "03_later" / "metrics.json").write_text('{"test_accuracy": 0.7}')  # an earlier run's
    import papermill

    real = papermill.execute_notebook

    def execute(source, target, **options):
        if "02_stopped" in source:  # Ctrl+C half-way through lesson 2
            Path(target).write_text("{}")
            raise KeyboardInterrupt
        return real(source, target, **options)

    monkeypatch.setattr("papermill.execute_notebook", execute)
    status = cli.main(["run", "--solutions", str(solutions), "--output", str(output), "--quiet"])
    assert status == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"interrupted in lesson 02_stopped; report: {output / 'report.md'}"]
    report = (output / "report.md").read_text()
    assert "| 01_done | passed |" in report
    assert "| 02_stopped | interrupted |" in report
    assert "| 03_later | skipped |" in report
    assert (output / "01_done" / "metrics.json").is_file()
    assert (output / "03_later" / "metrics.json").read_text() == '{"test_accuracy": 0.7}'
    assert not list(output.rglob(".*.running.ipynb"))


def test_ctrl_c_reaching_the_kernel_counts_as_an_interruption(tmp_path, capsys):
    solutions = tmp_path / "solutions"
    lesson(solutions, "01_stopped", "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nimport time\n"
                                    "time.sleep(5)")
    output = tmp_path / "out"
    status = cli.main(["run", "--solutions", str(solutions), "--output", str(output), "--quiet"])
    assert status == 130
    assert "interrupted in lesson 01_stopped" in capsys.readouterr().err
    assert "| 01_stopped | interrupted |" in (output / "report.md").read_text()
    assert not list(output.rglob(".*.running.ipynb"))


# ------------------------------------------------------------------ 5. outside the repository
@pytest.mark.parametrize("command", [["check"], ["build"], ["run", "01"], ["params"]])
def test_commands_outside_the_repository_fail_and_name_the_folder(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert f"No solutions folder at {tmp_path / 'solutions'}" in err
    assert not (tmp_path / "notebooks").exists()


# ------------------------------------------------------------------ 9. the HTML copy fails
def test_a_failed_html_copy_is_reported_not_passed(tmp_path, monkeypatch):
    solutions = tmp_path / "solutions"
    lesson(solutions, "01_a")

    def full_disk(notebook, output_dir=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "export_html", full_disk)
    (result,) = run_lessons(profile=None, parameters={}, output_dir=tmp_path / "out", solutions_dir=solutions,
                            verbose=False)
    assert result.status == "failed"
    assert "HTML copy" in result.error and "No space left on device" in result.error
    assert "| 01_a | failed |" in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "01_a" / "01_a.ipynb").is_file()  # the executed notebook is kept


def test_a_data_dir_below_a_regular_file_is_named(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("notes")
    with pytest.raises(ParameterError, match=f"DATA_DIR=.* lies below {afile}, which is a file"):
        check_parameters({"DATA_DIR": str(afile / "data")})
